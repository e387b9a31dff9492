//! docs/FORMAT.md's worked example, byte for byte: the test recomputes every hex block of section 6
//! (`FORMAT_PRINT=1` prints them for the document) and checks the document holds exactly those.

use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha512};
use ssekit_engine::keys::{DataKey, EncryptionContext, WrappedKey};
use ssekit_engine::object::{self, MetaAuth, ObjectMeta, SseMode};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Hex in lines of 32 bytes, as the document shows it.
fn block(b: &[u8]) -> String {
    b.chunks(32).map(hex).collect::<Vec<_>>().join("\n")
}

fn example() -> Vec<(&'static str, Vec<u8>)> {
    let dek: [u8; 32] = std::array::from_fn(|i| i as u8);
    let salt: [u8; 24] = std::array::from_fn(|i| 0xa0 + i as u8);
    let plaintext = b"hello, object store\n";
    let context = object::part_context(0);
    // HKDF-Expand-SHA-512 by hand, independent of the engine: T(1) ‖ T(2), first 76 bytes.
    let mut info = b"c2sp.org/chunked-encryption@v1+AEAD_AES_256_GCM\x00".to_vec();
    info.extend_from_slice(&salt);
    info.extend_from_slice(&context);
    let mut m = <Hmac<Sha512>>::new_from_slice(&dek).unwrap();
    m.update(&info);
    m.update(&[1]);
    let t1 = m.finalize().into_bytes();
    let mut m = <Hmac<Sha512>>::new_from_slice(&dek).unwrap();
    m.update(&t1);
    m.update(&info);
    m.update(&[2]);
    let t2 = m.finalize().into_bytes();
    let okm: Vec<u8> = t1.iter().chain(t2.iter()).copied().take(76).collect();
    let data = object::__seal_message_with_salt(&dek, &context, &salt, plaintext).unwrap();
    assert_eq!(&data[24..56], &okm[44..76], "commitment");
    // The metadata's commitment and MAC key: HKDF-Expand-SHA-512 with its own label, one block.
    let meta_info = b"ssekit object metadata v2\x00".to_vec();
    let mut m = <Hmac<Sha512>>::new_from_slice(&dek).unwrap();
    m.update(&meta_info);
    m.update(&[1]);
    let meta_okm = m.finalize().into_bytes().to_vec();
    // What the MAC covers: version 3, mode 1, be64 size, the context, an empty part table.
    let mut covered = vec![3u8, 1];
    covered.extend_from_slice(&(plaintext.len() as u64).to_be_bytes());
    covered.extend_from_slice(b"\x00\x01\x00\x06bucket\x00\x04pics");
    covered.extend_from_slice(&[0, 0]);
    let mut m = <Hmac<Sha256>>::new_from_slice(&meta_okm[32..]).unwrap();
    m.update(&covered);
    let mac = m.finalize().into_bytes().to_vec();
    let meta = ObjectMeta {
        mode: SseMode::SseS3,
        size: plaintext.len() as u64,
        context: EncryptionContext::from_pairs([("bucket", "pics")]).unwrap(),
        keys: vec![WrappedKey {
            provider: "local".into(),
            key_id: "default".into(),
            key_version: 1,
            algorithm: "AES256-GCM".into(),
            ciphertext: (0..60).map(|i| 0xc0u8.wrapping_add(i)).collect(),
        }],
        parts: vec![],
        auth: MetaAuth {
            commitment: meta_okm[..32].try_into().unwrap(),
            mac: mac.clone().try_into().unwrap(),
        },
    };
    // The engine computes the same authentication, and the object opens under it.
    let dk = DataKey::from_bytes(&dek);
    let mut again = meta.clone();
    again.authenticate(&dk).unwrap();
    assert_eq!(again, meta);
    assert_eq!(meta.verify(&dk).unwrap().open(&data).unwrap(), plaintext);
    let meta_bytes = meta.to_bytes().unwrap();
    let mut container = Vec::new();
    object::write_container_header(&mut container, &meta).unwrap();
    let header_only = container.clone();
    container.extend_from_slice(&data);
    vec![
        ("data key", dek.to_vec()),
        ("salt", salt.to_vec()),
        ("context", context.to_vec()),
        ("plaintext", plaintext.to_vec()),
        ("HKDF info", info),
        ("key", okm[..32].to_vec()),
        ("base nonce", okm[32..44].to_vec()),
        ("commitment", okm[44..].to_vec()),
        ("metadata HKDF info", meta_info),
        ("metadata commitment", meta_okm[..32].to_vec()),
        ("metadata MAC key", meta_okm[32..].to_vec()),
        ("MAC input", covered),
        ("metadata MAC", mac),
        ("object data", data),
        ("ObjectMeta", meta_bytes),
        ("container header", header_only),
        ("container", container),
    ]
}

#[test]
fn format_md_worked_example_is_exact() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/FORMAT.md")).unwrap();
    for (name, bytes) in example() {
        let want = format!(
            "{name} ({} bytes):\n```\n{}\n```",
            bytes.len(),
            block(&bytes)
        );
        if std::env::var_os("FORMAT_PRINT").is_some() {
            println!("{want}\n");
            continue;
        }
        assert!(
            doc.contains(&want),
            "docs/FORMAT.md lacks or misstates:\n{want}"
        );
    }
}
