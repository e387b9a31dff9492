//! Metadata parsing: binary, base64 and the file container. Must never panic or allocate more than
//! the input; what parses must encode back to the same bytes (the encoding is canonical), in every
//! form; its MAC (from the input) must not verify, and once authenticated it must verify, through
//! its encoding too, and only under its own key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssekit_engine::keys::DataKey;
use ssekit_engine::object::{ObjectMeta, read_container_header, write_container_header};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = ObjectMeta::from_bytes(data) {
        assert_eq!(m.to_bytes().expect("a parsed record encodes"), data);
        let b64 = m.to_base64().expect("a parsed record encodes");
        assert_eq!(ObjectMeta::from_base64(&b64).as_ref(), Ok(&m));
        let mut file = Vec::new();
        let n = write_container_header(&mut file, &m).expect("a parsed record encodes");
        assert_eq!(n, file.len() as u64);
        assert_eq!(read_container_header(&mut &file[..]), Ok((m.clone(), n)));

        let dek = DataKey::from_bytes(&[7u8; 32]);
        // The input's MAC does not verify (a fuzzer cannot forge HMAC-SHA-256).
        assert!(m.verify(&dek).is_err(), "a MAC from the input verified");
        let mut a = m.clone();
        a.authenticate(&dek).expect("a parsed record authenticates");
        assert!(a.verify(&dek).is_ok());
        assert!(a.verify(&DataKey::from_bytes(&[8u8; 32])).is_err());
        let back = ObjectMeta::from_bytes(&a.to_bytes().expect("encodes")).expect("parses");
        assert_eq!(back, a);
        assert_eq!(back.verify(&dek).map(|v| v.size()), Ok(m.size));
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = ObjectMeta::from_base64(s);
    }
    let _ = read_container_header(&mut &data[..]);
});
