//! The SSE request-header parser: arbitrary header lists (one `name: value` per line; the first byte
//! chooses TLS or not) must give parsed headers or an S3 error, never a panic; and the Range parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssekit_engine::sse::{Headers, SseHeaders, parse_range_header};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut headers = Headers::new();
    for line in text.lines() {
        let (n, v) = line.split_once(':').unwrap_or((line, ""));
        // Short names expand to the SSE headers, so the fuzzer reaches them quickly.
        let name = match n {
            "s" => "x-amz-server-side-encryption",
            "k" => "x-amz-server-side-encryption-aws-kms-key-id",
            "c" => "x-amz-server-side-encryption-context",
            "b" => "x-amz-server-side-encryption-bucket-key-enabled",
            "a" => "x-amz-server-side-encryption-customer-algorithm",
            "K" => "x-amz-server-side-encryption-customer-key",
            "m" => "x-amz-server-side-encryption-customer-key-MD5",
            "A" => "x-amz-copy-source-server-side-encryption-customer-algorithm",
            "C" => "x-amz-copy-source-server-side-encryption-customer-key",
            "M" => "x-amz-copy-source-server-side-encryption-customer-key-md5",
            other => other,
        };
        headers.insert(name, v.trim());
        let _ = parse_range_header(v);
    }
    match SseHeaders::parse(&headers, flags & 1 == 1) {
        Ok(h) => {
            if let Some(ck) = &h.customer_key {
                assert_eq!(ck.md5().len(), 24);
            }
        }
        Err(e) => assert!((400..600).contains(&e.status) && !e.code.is_empty()),
    }
});
