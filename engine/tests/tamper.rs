//! Flipping any single bit of the tag, the ciphertext, the AAD or the nonce makes open fail with the one
//! opaque error and release no plaintext; so do truncated, extended and swapped messages. Every backend,
//! every call.

mod common;

use common::{CALLS, keys, open, seal};
use ssekit_engine::aead::Error;

/// Key, nonce, AAD, plaintext, ciphertext, tag.
type Sealed = ([u8; 32], [u8; 12], Vec<u8>, Vec<u8>, Vec<u8>, [u8; 16]);

/// 300 bytes: two full 8-block batches, a partial batch and a partial block.
fn sealed() -> Sealed {
    let key: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(29));
    let nonce: [u8; 12] = std::array::from_fn(|i| (i as u8).wrapping_mul(71));
    let aad: Vec<u8> = (0..37u8).collect();
    let msg: Vec<u8> = (0..300u32).map(|i| (i * 7 % 256) as u8).collect();
    let k = &keys(&key)[0];
    let mut ct = msg.clone();
    let tag = k.seal_in_place(&nonce, &aad, &mut ct);
    (key, nonce, aad, msg, ct, tag)
}

fn must_fail(
    k: &ssekit_engine::aead::Aes256Gcm,
    nonce: &[u8; 12],
    aad: &[u8],
    ct: &[u8],
    tag: &[u8; 16],
    what: &str,
) {
    for call in CALLS {
        let mut buf = ct.to_vec();
        assert_eq!(
            open(k, call, nonce, aad, &mut buf, tag),
            Err(Error::Authentication),
            "{what}: {} {call:?}",
            k.backend()
        );
        assert!(buf.iter().all(|&b| b == 0), "{what}: plaintext released");
    }
}

#[test]
fn untouched_message_opens() {
    let (key, nonce, aad, msg, ct, tag) = sealed();
    for k in keys(&key) {
        for call in CALLS {
            let mut buf = ct.clone();
            open(&k, call, &nonce, &aad, &mut buf, &tag).unwrap();
            assert_eq!(buf, msg);
            let mut again = msg.clone();
            assert_eq!(seal(&k, call, &nonce, &aad, &mut again), tag);
        }
    }
}

#[test]
fn every_bit_of_tag_ciphertext_aad_and_nonce() {
    let (key, nonce, aad, _msg, ct, tag) = sealed();
    for k in keys(&key) {
        for bit in 0..128 {
            let mut t = tag;
            t[bit / 8] ^= 1 << (bit % 8);
            must_fail(&k, &nonce, &aad, &ct, &t, &format!("tag bit {bit}"));
        }
        for bit in 0..ct.len() * 8 {
            let mut c = ct.clone();
            c[bit / 8] ^= 1 << (bit % 8);
            must_fail(&k, &nonce, &aad, &c, &tag, &format!("ciphertext bit {bit}"));
        }
        for bit in 0..aad.len() * 8 {
            let mut a = aad.clone();
            a[bit / 8] ^= 1 << (bit % 8);
            must_fail(&k, &nonce, &a, &ct, &tag, &format!("aad bit {bit}"));
        }
        for bit in 0..96 {
            let mut n = nonce;
            n[bit / 8] ^= 1 << (bit % 8);
            must_fail(&k, &n, &aad, &ct, &tag, &format!("nonce bit {bit}"));
        }
    }
}

#[test]
fn truncated_extended_and_moved_data() {
    let (key, nonce, aad, _msg, ct, tag) = sealed();
    for k in keys(&key) {
        for cut in [0, 1, 15, 16, 17, 128, 299] {
            must_fail(
                &k,
                &nonce,
                &aad,
                &ct[..cut],
                &tag,
                &format!("truncated to {cut}"),
            );
        }
        let mut longer = ct.clone();
        longer.push(0);
        must_fail(&k, &nonce, &aad, &longer, &tag, "extended");
        // Moving bytes between the AAD and the ciphertext keeps the concatenation but not the message.
        let mut moved_aad = aad.clone();
        moved_aad.extend_from_slice(&ct[..16]);
        must_fail(
            &k,
            &nonce,
            &moved_aad,
            &ct[16..],
            &tag,
            "ciphertext moved into AAD",
        );
        let mut swapped = ct.clone();
        swapped.swap(0, 16);
        must_fail(&k, &nonce, &aad, &swapped, &tag, "bytes swapped");
        must_fail(&k, &nonce, &[], &ct, &tag, "AAD dropped");
        let wrong: Vec<_> = keys(&[0xee; 32]);
        for w in &wrong {
            must_fail(w, &nonce, &aad, &ct, &tag, "wrong key");
        }
    }
}
