//! Opening arbitrary stored data: whole buffer, in place, streaming and by range, under a fixed data
//! key.
//! The first byte picks a mutation of a valid object (so the fuzzer reaches chunk decryption, not
//! only the commitment check) or raw input. Nothing may panic; a whole open, an open in place and a
//! streaming open must agree.
#![no_main]

use std::io::Read;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ssekit_engine::keys::DataKey;
use ssekit_engine::object::{self, ByteRange, OpenReader};

fn fixture() -> &'static (DataKey, Vec<u8>) {
    static F: OnceLock<(DataKey, Vec<u8>)> = OnceLock::new();
    F.get_or_init(|| {
        let dek = DataKey::from_bytes(&[7u8; 32]);
        let pt: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
        let sealed = object::seal(&dek, &pt).expect("seal");
        (dek, sealed)
    })
}

fuzz_target!(|data: &[u8]| {
    let (dek, good) = fixture();
    let Some((&mode, rest)) = data.split_first() else { return };
    let input: Vec<u8> = match mode % 3 {
        0 => rest.to_vec(),
        1 => {
            // Overwrite bytes of the valid object at positions the input picks.
            let mut v = good.clone();
            for pair in rest.chunks(3) {
                if let [a, b, x] = pair {
                    let at = (usize::from(*a) << 8 | usize::from(*b)) * 7 % v.len();
                    v[at] ^= x | 1;
                }
            }
            v
        }
        _ => {
            // Cut or extend the valid object.
            let n = rest.first().map_or(0, |&b| usize::from(b) * 173) % (good.len() + 40);
            let mut v = good[..n.min(good.len())].to_vec();
            v.extend_from_slice(rest);
            v
        }
    };
    let whole = object::open(dek, &input);
    let streamed = OpenReader::new(&input[..], dek).and_then(|mut r| {
        let mut out = Vec::new();
        r.read_to_end(&mut out).map_err(object::Error::from)?;
        Ok(out)
    });
    assert_eq!(whole.is_ok(), streamed.is_ok());
    if let (Ok(a), Ok(b)) = (&whole, &streamed) {
        assert_eq!(a, b);
    }
    let mut buf = input.clone();
    match (object::open_in_place(dek, &mut buf), &whole) {
        (Ok(n), Ok(a)) => {
            let got: Vec<u8> = object::chunk_slots(n).flat_map(|s| buf[s].to_vec()).collect();
            assert_eq!(&got, a);
        }
        (Err(e), Err(f)) => assert_eq!(&e, f),
        (r, w) => panic!("in place {r:?}, whole {w:?}"),
    }
    let first = u64::from(rest.first().copied().unwrap_or(0)) * 300;
    for r in [ByteRange::From(first), ByteRange::Suffix(first + 1), ByteRange::Inclusive { first, last: first + 20_000 }] {
        let _ = object::open_range(dek, input.len() as u64, &[], r, &input[..]);
    }
});
