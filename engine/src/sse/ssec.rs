//! SSE-C: the customer's key wraps a fresh data key and is never stored. What is stored is a salted
//! check value that tells a wrong key (403 AccessDenied) from a right one, and the wrapped data key.
//!
//! `okm = HKDF-Expand-SHA-512(PRK = customer key, info = "ssekit sse-c v1\0" ‖ salt, 64)` with a random
//! 32-byte salt per object; `check = okm[0..32]`, `wrap key = okm[32..64]`; the data key is sealed with
//! AES-256-GCM under the wrap key (a fresh key per object, so the all-zero nonce is used once), with
//! AAD `"ssekit sse-c wrap v1\0" ‖ canonical(context)`. The wrapped key's ciphertext is
//! `salt ‖ check ‖ sealed data key ‖ tag` (112 bytes). Knowing the check value without the key
//! reveals nothing of it but lets one test a guess; the salt makes every object's check different.

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::CustomerKey;
use crate::aead::Aes256Gcm;
use crate::keys::{DataKey, EncryptionContext, WrappedKey};
use crate::object::cobblestone::hkdf_expand_sha512;

/// The provider name SSE-C wrapped keys record.
pub(crate) const PROVIDER: &str = "sse-c";
/// Their algorithm name.
pub(crate) const ALGORITHM: &str = "ssec-hkdf-sha512+aes-256-gcm-v1";
const INFO: &[u8] = b"ssekit sse-c v1\x00";
const AAD: &[u8] = b"ssekit sse-c wrap v1\x00";
const SALT_LEN: usize = 32;
const WRAPPED_LEN: usize = SALT_LEN + 32 + 32 + 16;

/// Why an SSE-C wrapped key did not open.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SsecError {
    /// The key is not the one the object was written with.
    WrongKey,
    /// The wrapped key is damaged (its layout, or its tag under the right key).
    Corrupt,
}

fn derive(key: &CustomerKey, salt: &[u8]) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
    let mut okm = Zeroizing::new([0u8; 64]);
    hkdf_expand_sha512(&*key.key, &[INFO, salt], okm.as_mut());
    let mut check = Zeroizing::new([0u8; 32]);
    check.copy_from_slice(&okm[..32]);
    let mut wrap = Zeroizing::new([0u8; 32]);
    wrap.copy_from_slice(&okm[32..]);
    (check, wrap)
}

/// AES-256-GCM of a data key under `key` with `nonce` and `aad`: 32 bytes and a 16-byte tag.
pub(crate) fn seal_dek(gcm: &Aes256Gcm, nonce: &[u8; 12], aad: &[u8], dek: &DataKey) -> [u8; 48] {
    let mut out = [0u8; 48];
    let (body, tag) = out.split_at_mut(32);
    body.copy_from_slice(dek.expose());
    tag.copy_from_slice(&gcm.seal_in_place(nonce, aad, body));
    out
}

/// Opens [`seal_dek`]'s output; `None` if it does not authenticate.
pub(crate) fn open_dek(
    gcm: &Aes256Gcm,
    nonce: &[u8; 12],
    aad: &[u8],
    sealed: &[u8],
) -> Option<DataKey> {
    let sealed: &[u8; 48] = sealed.try_into().ok()?;
    let mut body = Zeroizing::new([0u8; 32]);
    body.copy_from_slice(&sealed[..32]);
    let tag: &[u8; 16] = sealed[32..].try_into().expect("16 bytes");
    gcm.open_in_place(nonce, aad, body.as_mut(), tag).ok()?;
    Some(DataKey::from_bytes(&body))
}

fn aad(context: &EncryptionContext) -> Vec<u8> {
    let mut a = AAD.to_vec();
    a.extend_from_slice(&context.canonical_bytes());
    a
}

/// Wraps `dek` under the customer's key, bound to `context`.
pub(crate) fn wrap(key: &CustomerKey, dek: &DataKey, context: &EncryptionContext) -> WrappedKey {
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt).expect("the operating system's random number generator failed");
    let (check, wrap_key) = derive(key, &salt);
    let gcm = Aes256Gcm::new(&wrap_key);
    let sealed = seal_dek(&gcm, &[0u8; 12], &aad(context), dek);
    let mut ciphertext = Vec::with_capacity(WRAPPED_LEN);
    ciphertext.extend_from_slice(&salt);
    ciphertext.extend_from_slice(&*check);
    ciphertext.extend_from_slice(&sealed);
    WrappedKey {
        provider: PROVIDER.to_owned(),
        key_id: "customer".to_owned(),
        key_version: 1,
        algorithm: ALGORITHM.to_owned(),
        ciphertext,
    }
}

/// Unwraps an SSE-C wrapped key with the customer's key: the check value first (constant time), then
/// the data key.
pub(crate) fn unwrap(
    key: &CustomerKey,
    wrapped: &WrappedKey,
    context: &EncryptionContext,
) -> Result<DataKey, SsecError> {
    if wrapped.provider != PROVIDER
        || wrapped.algorithm != ALGORITHM
        || wrapped.ciphertext.len() != WRAPPED_LEN
    {
        return Err(SsecError::Corrupt);
    }
    let (salt, rest) = wrapped.ciphertext.split_at(SALT_LEN);
    let (stored_check, sealed) = rest.split_at(32);
    let (check, wrap_key) = derive(key, salt);
    if !bool::from(check.ct_eq(stored_check)) {
        return Err(SsecError::WrongKey);
    }
    let gcm = Aes256Gcm::new(&wrap_key);
    open_dek(&gcm, &[0u8; 12], &aad(context), sealed).ok_or(SsecError::Corrupt)
}
