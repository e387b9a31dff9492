//! Metadata parsing: binary, base64 and the file container. Must never panic or allocate more than
//! the input; what parses must encode back to the same bytes (the encoding is canonical).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssekit_engine::object::{ObjectMeta, read_container_header};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = ObjectMeta::from_bytes(data) {
        assert_eq!(m.to_bytes().expect("a parsed record encodes"), data);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = ObjectMeta::from_base64(s);
    }
    let _ = read_container_header(&mut &data[..]);
});
