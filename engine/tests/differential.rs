//! Every backend and every call against two independent implementations: RustCrypto's `aes-gcm` and
//! `ring`. Random keys, nonces, AAD of 0..=600 bytes and messages of 0..=70000 bytes, plus every message
//! length 0..=1100 exhaustively.

mod common;

use aes_gcm::aead::{AeadInOut, KeyInit};
use common::{CALLS, Call, keys, open, pool, seal};
use proptest::prelude::*;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey};

/// (ciphertext ‖ tag) from both peers; they must agree with each other before they judge us.
fn reference(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], msg: &[u8]) -> (Vec<u8>, [u8; 16]) {
    let rc = aes_gcm::Aes256Gcm::new(key.into());
    let mut ct = msg.to_vec();
    let tag = rc
        .encrypt_inout_detached(nonce.into(), aad, (&mut ct[..]).into())
        .expect("RustCrypto seal");

    let rk = LessSafeKey::new(UnboundKey::new(&ring::aead::AES_256_GCM, key).expect("ring key"));
    let mut ct2 = msg.to_vec();
    let tag2 = rk
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(*nonce),
            Aad::from(aad),
            &mut ct2,
        )
        .expect("ring seal");
    assert_eq!(ct, ct2, "the two peers disagree");
    assert_eq!(tag.as_slice(), tag2.as_ref(), "the two peers disagree");
    (ct, tag.into())
}

fn check_all(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], msg: &[u8], calls: &[Call]) {
    let (want_ct, want_tag) = reference(key, nonce, aad, msg);
    for k in keys(key) {
        for &call in calls {
            let ctx = format!("backend {} {call:?} len {}", k.backend(), msg.len());
            let mut buf = msg.to_vec();
            let tag = seal(&k, call, nonce, aad, &mut buf);
            assert_eq!(buf, want_ct, "{ctx}: ciphertext");
            assert_eq!(tag, want_tag, "{ctx}: tag");
            open(&k, call, nonce, aad, &mut buf, &want_tag)
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            assert_eq!(buf, msg, "{ctx}: plaintext");
        }
    }
}

/// Every length 0..=1100: all of the AES-NI kernel's 8-block batch and tail shapes, and the portable
/// backend's GHASH lane groups, which start at 32 blocks (512 bytes). AAD lengths straddle the same
/// boundaries.
#[test]
fn every_length_up_to_1100() {
    let key: [u8; 32] = std::array::from_fn(|i| (i * 7 + 1) as u8);
    let nonce: [u8; 12] = std::array::from_fn(|i| (i * 13 + 5) as u8);
    let bytes: Vec<u8> = (0..=1100u32).map(|i| (i * 31 % 251) as u8).collect();
    for len in 0..=1100 {
        for aad_len in [0, 1, 16, 17, 129, 511, 513] {
            check_all(&key, &nonce, &bytes[..aad_len], &bytes[..len], &CALLS);
        }
    }
}

/// Lengths around every multiple of the kernels' batch widths (128 bytes for `aesni`, 256 for
/// `vaes-avx2`, whose last 0..=255 bytes go to the 128-bit kernel) up to 10 KiB, with AAD lengths that
/// straddle the AAD hashing batches (8 blocks) and the portable backend's lane groups (32 blocks).
#[test]
fn around_batch_multiples() {
    let key = [0x17u8; 32];
    let nonce = [0x71u8; 12];
    let bytes: Vec<u8> = (0..10 * 1024 + 64).map(|i| (i * 13 % 256) as u8).collect();
    for k in 1..=40usize {
        for delta in [-17isize, -16, -15, -1, 0, 1, 15, 16, 17] {
            let len = (k * 256).checked_add_signed(delta).expect("positive");
            for aad_len in [127, 128, 129, 255, 256, 257, 511, 512, 513] {
                check_all(&key, &nonce, &bytes[..aad_len], &bytes[..len], &CALLS[..3]);
            }
        }
    }
}

fn arb_call() -> impl Strategy<Value = Call> {
    prop_oneof![
        Just(Call::Single),
        Just(Call::Copy),
        (1usize..=8).prop_map(|threads| Call::Par { threads }),
        (1usize..=8, 1usize..=20_000).prop_map(|(threads, chunk)| Call::Chunked { threads, chunk }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_messages(
        key in any::<[u8; 32]>(),
        nonce in any::<[u8; 12]>(),
        aad in proptest::collection::vec(any::<u8>(), 0..=600),
        msg in proptest::collection::vec(any::<u8>(), 0..=70_000),
        calls in proptest::collection::vec(arb_call(), 1..=3),
    ) {
        check_all(&key, &nonce, &aad, &msg, &calls);
    }
}

/// Messages past the automatic split threshold, so `par_seal_in_place` really fans out.
#[test]
fn long_messages_split_automatically() {
    let key = [0x42u8; 32];
    let nonce = [0x24u8; 12];
    for len in [
        128 * 1024 - 1,
        128 * 1024,
        1024 * 1024 + 7,
        3 * 1024 * 1024 + 16,
    ] {
        let msg: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        for threads in [2, 3, 8] {
            check_all(&key, &nonce, b"aad", &msg, &[Call::Par { threads }]);
        }
    }
    // Any piece size a caller passes works, from 0 (one block per task) to usize::MAX (no split).
    for chunk in [0, usize::MAX, usize::MAX - 7] {
        check_all(
            &key,
            &nonce,
            b"aad",
            &[7u8; 1000],
            &[Call::Chunked { threads: 2, chunk }],
        );
    }
    // The pool is really used: a pool of 3 threads reports 3.
    assert_eq!(pool(3).install(rayon::current_num_threads), 3);
}
