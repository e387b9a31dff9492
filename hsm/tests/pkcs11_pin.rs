//! A wrong PIN, in a process of its own: PKCS#11 logins are per application, so once another test
//! has logged in, a second login reports "already logged in" whatever the PIN.

mod common;

use common::config;
use ssekit_engine::keys::KeyError;
use ssekit_hsm::{Binding, Pkcs11Provider};

#[test]
fn a_wrong_pin_names_the_call_and_the_code() {
    let home = tempfile::tempdir().unwrap();
    let mut cfg = config(home.path(), Binding::HsmGcm);
    cfg.pin = "0000".to_string().into();
    let e = Pkcs11Provider::open(&cfg).unwrap_err();
    assert_eq!(
        e,
        KeyError::Device {
            call: "C_Login".into(),
            code: "CKR_PIN_INCORRECT".into()
        }
    );
    assert_eq!(e.to_string(), "C_Login failed: CKR_PIN_INCORRECT");
}
