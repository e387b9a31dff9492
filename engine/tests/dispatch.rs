//! The dispatcher: it picks the best backend this CPU has, every available backend can be forced, and
//! forcing one this CPU lacks is a clean error.

use ssekit_engine::aead::{Aes256Gcm, Backend, Error};

const ALL: [Backend; 4] = [
    Backend::Portable,
    Backend::AesNiClmul,
    Backend::VaesAvx2,
    Backend::VaesAvx512,
];

#[test]
fn detect_picks_the_first_available() {
    let avail = Backend::available();
    assert_eq!(Backend::detect(), avail[0]);
    assert_eq!(avail.last(), Some(&Backend::Portable));
    assert_eq!(Backend::select(None), Ok(avail[0]));
    assert_eq!(Backend::select(Some("")), Ok(avail[0]));
    for b in ALL {
        assert_eq!(avail.contains(&b), b.is_available(), "{b}");
    }
}

#[test]
fn each_available_backend_can_be_forced() {
    for b in Backend::available() {
        let k = Aes256Gcm::with_backend(&[1; 32], b).unwrap();
        assert_eq!(k.backend(), b);
        assert_eq!(Backend::select(Some(b.name())), Ok(b));
        // Debug shows the backend and no key material.
        let dbg = format!("{k:?}");
        assert!(dbg.contains(&format!("{b:?}")), "{dbg}");
        assert!(!dbg.contains("rk") && !dbg.contains("[1, 1"), "{dbg}");
    }
}

#[test]
fn forcing_an_unavailable_backend_errors() {
    let mut unavailable = 0;
    for b in ALL.into_iter().filter(|b| !b.is_available()) {
        unavailable += 1;
        assert_eq!(
            Aes256Gcm::with_backend(&[1; 32], b).unwrap_err(),
            Error::BackendUnavailable(b)
        );
        assert_eq!(
            Backend::select(Some(b.name())),
            Err(Error::BackendUnavailable(b))
        );
        let msg = Error::BackendUnavailable(b).to_string();
        assert!(msg.contains(b.name()), "{msg}");
    }
    // No CPU has every backend built so far, so there is always one to try here.
    assert!(unavailable > 0);
    assert_eq!(Backend::select(Some("aes-ni")), Err(Error::UnknownBackend));
}

/// Cross-check `cpufeatures` (what the dispatcher uses) against the standard library's detection.
#[cfg(target_arch = "x86_64")]
#[test]
fn x86_detection_matches_std() {
    let has_aesni = std::arch::is_x86_feature_detected!("aes")
        && std::arch::is_x86_feature_detected!("pclmulqdq")
        && std::arch::is_x86_feature_detected!("avx");
    assert_eq!(Backend::AesNiClmul.is_available(), has_aesni);
    let has_vaes_avx2 = has_aesni
        && std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("vaes")
        && std::arch::is_x86_feature_detected!("vpclmulqdq");
    assert_eq!(Backend::VaesAvx2.is_available(), has_vaes_avx2);
    // Fastest first: where the 256-bit kernel runs, it is the one picked.
    if has_vaes_avx2 {
        assert_eq!(Backend::detect(), Backend::VaesAvx2);
    } else if has_aesni {
        assert_eq!(Backend::detect(), Backend::AesNiClmul);
    }
}

#[test]
fn names() {
    let names: Vec<_> = ALL.iter().map(|b| b.name()).collect();
    assert_eq!(names, ["portable", "aesni", "vaes-avx2", "vaes-avx512"]);
    for b in ALL {
        assert_eq!(Backend::from_name(b.name()), Some(b));
        assert_eq!(b.to_string(), b.name());
    }
}
