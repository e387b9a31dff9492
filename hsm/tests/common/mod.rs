//! The token the PKCS#11 tests run on (and, in `kms`, the KMS the KMS tests run on).
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use ssekit_engine::keys::EncryptionContext;
use ssekit_hsm::{Binding, Pkcs11Config};

pub mod kms;

pub struct Token {
    pub module: PathBuf,
    pub label: String,
    pub pin: String,
}

/// The token for this test process, from the environment.
pub fn token() -> &'static Token {
    static TOKEN: OnceLock<Token> = OnceLock::new();
    TOKEN.get_or_init(|| {
        if let Ok(module) = std::env::var("SSEKIT_PKCS11_MODULE") {
            return Token {
                module: module.into(),
                label: std::env::var("SSEKIT_PKCS11_TOKEN_LABEL")
                    .expect("SSEKIT_PKCS11_TOKEN_LABEL with SSEKIT_PKCS11_MODULE"),
                pin: std::env::var("SSEKIT_PKCS11_PIN")
                    .expect("SSEKIT_PKCS11_PIN with SSEKIT_PKCS11_MODULE"),
            };
        }
        panic!(
            "the PKCS#11 tests need a token: run scripts/test.sh (it creates a SoftHSM2 token), or set \
             SOFTHSM2_CONF (for SoftHSM2), SSEKIT_PKCS11_MODULE, SSEKIT_PKCS11_TOKEN_LABEL and SSEKIT_PKCS11_PIN"
        )
    })
}

pub fn config(home: &std::path::Path, binding: Binding) -> Pkcs11Config {
    let t = token();
    Pkcs11Config {
        module: t.module.clone(),
        token_label: t.label.clone(),
        pin: t.pin.clone().into(),
        home: home.to_path_buf(),
        pool_size: 8,
        binding: Some(binding),
    }
}

/// A key id no other test (or earlier run on the same token) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

pub fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
    EncryptionContext::from_pairs(pairs.iter().copied()).unwrap()
}
