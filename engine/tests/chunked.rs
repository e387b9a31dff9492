//! Wycheproof's Cobblestone-256 vectors (c2sp_chunked_encryption_aes_256_gcm_test.json) through every
//! decryption interface: whole buffer, streaming (`OpenReader` as a plain `Read`, with the
//! PartialPlaintext rule), and random access (`OpenReader`'s `Seek`: length authentication and
//! whole reads after seeking); encryption checked byte for byte by injecting each vector's salt.

use std::io::{Cursor, Read, Seek, SeekFrom};

use serde::Deserialize;
use sha2::{Digest, Sha512};
use ssekit_engine::object::{self, Error, OpenReader, SealWriter};

#[derive(Deserialize)]
struct File {
    #[serde(rename = "testGroups")]
    groups: Vec<Group>,
    #[serde(rename = "numberOfTests")]
    count: usize,
}

#[derive(Deserialize)]
struct Group {
    aead: String,
    sha: String,
    tests: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    #[serde(rename = "tcId")]
    id: u32,
    comment: String,
    key: String,
    ctx: String,
    ct: String,
    #[serde(rename = "msgLength")]
    msg_length: Option<usize>,
    #[serde(rename = "msgSha512")]
    msg_sha512: Option<String>,
    result: String,
    flags: Vec<String>,
}

struct Vector {
    id: u32,
    comment: String,
    key: Vec<u8>,
    ctx: Vec<u8>,
    ct: Vec<u8>,
    msg_length: Option<usize>,
    msg_sha512: Option<Vec<u8>>,
    valid: bool,
    flags: Vec<String>,
}

impl Vector {
    fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    fn check_message(&self, what: &str, msg: &[u8]) {
        assert_eq!(
            Some(msg.len()),
            self.msg_length,
            "tc {} {what}: length",
            self.id
        );
        assert_eq!(
            Some(Sha512::digest(msg).to_vec()),
            self.msg_sha512,
            "tc {} {what}: SHA-512",
            self.id
        );
    }
}

fn vectors() -> Vec<Vector> {
    let raw = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/c2sp_chunked_encryption_aes_256_gcm_test.json"
    ))
    .unwrap();
    let f: File = serde_json::from_str(&raw).unwrap();
    let mut out = Vec::new();
    for g in f.groups {
        assert_eq!(
            (g.aead.as_str(), g.sha.as_str()),
            ("AEAD_AES_256_GCM", "SHA-512")
        );
        for c in g.tests {
            let mut ct = Vec::new();
            flate2::read::ZlibDecoder::new(&hex::decode(&c.ct).unwrap()[..])
                .read_to_end(&mut ct)
                .unwrap();
            out.push(Vector {
                id: c.id,
                comment: c.comment,
                key: hex::decode(&c.key).unwrap(),
                ctx: hex::decode(&c.ctx).unwrap(),
                ct,
                msg_length: c.msg_length,
                msg_sha512: c.msg_sha512.map(|h| hex::decode(h).unwrap()),
                valid: c.result == "valid",
                flags: c.flags,
            });
        }
    }
    assert_eq!(out.len(), f.count);
    out
}

#[test]
fn whole_buffer() {
    let vs = vectors();
    assert_eq!(vs.len(), 35);
    let (mut valid, mut invalid) = (0, 0);
    for v in &vs {
        let r = object::open_message(&v.key, &v.ctx, &v.ct);
        if v.valid {
            v.check_message(
                "whole",
                &r.unwrap_or_else(|e| panic!("tc {} ({}): {e}", v.id, v.comment)),
            );
            valid += 1;
        } else {
            let e = r.expect_err(&format!("tc {} ({}) must fail", v.id, v.comment));
            if v.has("InvalidKeySize") {
                assert_eq!(e, Error::InvalidKeySize, "tc {}", v.id);
            } else if v.has("WrongKey") || v.has("WrongContext") {
                assert_eq!(e, Error::WrongKey, "tc {}", v.id);
            } else if v.has("HeaderFailure") {
                assert!(
                    matches!(e, Error::WrongKey | Error::Truncated),
                    "tc {}: {e:?}",
                    v.id
                );
            } else {
                assert!(
                    matches!(e, Error::Tampered { .. } | Error::Truncated),
                    "tc {}: {e:?}",
                    v.id
                );
            }
            invalid += 1;
        }
    }
    assert_eq!((valid, invalid), (10, 25));
}

/// The in-place interface answers every vector as the whole-buffer one does; on success the slots
/// hold the message; when a chunk fails, every slot is zero.
#[test]
fn in_place() {
    for v in &vectors() {
        let whole = object::open_message(&v.key, &v.ctx, &v.ct);
        let mut buf = v.ct.clone();
        let r = object::open_message_in_place(&v.key, &v.ctx, &mut buf);
        match (&whole, r) {
            (Ok(msg), Ok(n)) => {
                assert_eq!(n, msg.len(), "tc {}", v.id);
                let got: Vec<u8> = object::chunk_slots(n)
                    .flat_map(|s| buf[s].to_vec())
                    .collect();
                v.check_message("in place", &got);
            }
            (Err(e), Err(f)) => {
                assert_eq!(*e, f, "tc {}", v.id);
                // A chunk failed after others opened: nothing of theirs may stay.
                if let (Error::Tampered { .. }, Ok(n)) =
                    (f, object::plaintext_len(buf.len() as u64))
                {
                    for s in object::chunk_slots(n as usize) {
                        assert!(
                            buf[s].iter().all(|&b| b == 0),
                            "tc {}: plaintext left",
                            v.id
                        );
                    }
                }
            }
            (w, r) => panic!("tc {}: whole {w:?}, in place {r:?}", v.id),
        }
    }
}

/// Reads everything a reader gives until an error or the end; returns the bytes and the error.
fn drain<R: Read>(r: &mut R) -> (Vec<u8>, Option<std::io::Error>) {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 7000]; // not a divisor of the chunk size: reads straddle chunks
    loop {
        match r.read(&mut buf) {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Some(e)),
        }
    }
}

#[test]
fn streaming() {
    for v in vectors() {
        let reader = OpenReader::for_message(Cursor::new(&v.ct), &v.key, &v.ctx);
        let mut reader = match reader {
            Ok(r) => r,
            Err(e) => {
                assert!(
                    !v.valid && v.has("HeaderFailure"),
                    "tc {}: header rejected: {e}",
                    v.id
                );
                continue;
            }
        };
        assert!(
            !v.has("HeaderFailure"),
            "tc {}: header must be rejected",
            v.id
        );
        let (out, err) = drain(&mut reader);
        if v.valid {
            assert!(err.is_none(), "tc {}: {err:?}", v.id);
            v.check_message("streaming", &out);
            continue;
        }
        let err = err.unwrap_or_else(|| panic!("tc {} ({}): stream must fail", v.id, v.comment));
        if v.has("PartialPlaintext") {
            // Everything released is the valid prefix; this reader releases all of it.
            v.check_message("partial plaintext", &out);
        } else {
            assert!(
                out.is_empty(),
                "tc {}: released {} bytes of an invalid message",
                v.id,
                out.len()
            );
        }
        // And it keeps failing, with the same error.
        let again = reader.read(&mut [0u8; 100]).expect_err("sticky error");
        assert_eq!(Error::from(again), Error::from(err), "tc {}", v.id);
        assert!(reader.read(&mut [0u8; 1]).is_err());
    }
}

#[test]
fn random_access() {
    for v in vectors() {
        let Ok(mut reader) = OpenReader::for_message(Cursor::new(&v.ct), &v.key, &v.ctx) else {
            assert!(!v.valid && v.has("HeaderFailure"), "tc {}", v.id);
            continue;
        };
        let len = reader.authenticated_len();
        if v.valid || v.has("ValidFinalChunk") {
            let len = len.unwrap_or_else(|e| panic!("tc {}: length must authenticate: {e}", v.id));
            if v.valid {
                assert_eq!(Some(len as usize), v.msg_length);
            }
        } else {
            assert!(
                len.is_err(),
                "tc {} ({}): length must not authenticate",
                v.id,
                v.comment
            );
            continue;
        }
        // Seek relative to the end, back to the start, and read everything.
        reader.seek(SeekFrom::End(-1)).map(|_| ()).ok();
        let r = reader.seek(SeekFrom::Start(0));
        let (out, err) = match r {
            Ok(_) => drain(&mut reader),
            Err(e) => (Vec::new(), Some(e)),
        };
        if v.valid {
            assert!(err.is_none(), "tc {}: {err:?}", v.id);
            v.check_message("random access", &out);
        } else {
            assert!(
                err.is_some(),
                "tc {} ({}): whole read must fail",
                v.id,
                v.comment
            );
        }
    }
}

#[test]
fn random_access_reads_match_the_message() {
    for v in vectors().into_iter().filter(|v| v.valid) {
        let msg = object::open_message(&v.key, &v.ctx, &v.ct).unwrap();
        let mut reader = OpenReader::for_message(Cursor::new(&v.ct), &v.key, &v.ctx).unwrap();
        let n = msg.len() as u64;
        for &pos in &[
            0,
            1,
            16383,
            16384,
            16385,
            n / 2,
            n.saturating_sub(1),
            n,
            n + 5,
        ] {
            reader.seek(SeekFrom::Start(pos)).unwrap();
            let mut got = vec![0u8; 20000];
            let mut filled = 0;
            while filled < got.len() {
                let k = reader.read(&mut got[filled..]).unwrap();
                if k == 0 {
                    break;
                }
                filled += k;
            }
            let start = pos.min(n) as usize;
            let end = (pos as usize + 20000).min(msg.len()).max(start);
            assert_eq!(&got[..filled], &msg[start..end], "tc {} at {pos}", v.id);
        }
        assert_eq!(
            reader.seek(SeekFrom::End(-(n.min(3) as i64))).unwrap(),
            n - n.min(3)
        );
    }
}

#[test]
fn encryption_with_injected_salt_matches() {
    for v in vectors().into_iter().filter(|v| v.valid) {
        let msg = object::open_message(&v.key, &v.ctx, &v.ct).unwrap();
        let salt: [u8; 24] = v.ct[..24].try_into().unwrap();
        let sealed = object::__seal_message_with_salt(&v.key, &v.ctx, &salt, &msg).unwrap();
        assert!(
            sealed == v.ct,
            "tc {} ({}): re-encryption differs",
            v.id,
            v.comment
        );
    }
}

/// The two 4 MiB vectors (256 chunks) are the ones long enough to be spread over threads: sealed,
/// opened and refused when damaged from inside pools of 1, 3 and 8 threads (a server calling from
/// its own rayon pool); `encryption_with_injected_salt_matches` does it from outside the global
/// pool. So the batching is checked against the published bytes, not only against itself.
#[test]
fn long_vectors_match_from_inside_pools_of_every_size() {
    let long: Vec<Vector> = vectors()
        .into_iter()
        .filter(|v| v.valid && v.ct.len() > 1 << 20)
        .collect();
    assert_eq!(long.len(), 2);
    for v in &long {
        let msg = object::open_message(&v.key, &v.ctx, &v.ct).unwrap();
        let salt: [u8; 24] = v.ct[..24].try_into().unwrap();
        for threads in [1, 3, 8] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let run = || {
                let sealed = object::__seal_message_with_salt(&v.key, &v.ctx, &salt, &msg).unwrap();
                assert!(sealed == v.ct, "tc {}: {threads} threads", v.id);
                let opened = object::open_message(&v.key, &v.ctx, &v.ct).unwrap();
                assert!(opened == msg, "tc {}: {threads} threads, open", v.id);
                let mut bad = v.ct.clone();
                let at = bad.len() - 3 * 16400;
                bad[at] ^= 1;
                assert!(object::open_message(&v.key, &v.ctx, &bad).is_err());
            };
            pool.install(run);
        }
    }
}

#[test]
fn streaming_writer_round_trips_the_vector_messages() {
    for v in vectors().into_iter().filter(|v| v.valid) {
        let msg = object::open_message(&v.key, &v.ctx, &v.ct).unwrap();
        for write_size in [1000, 16384, 1 << 20] {
            let mut w = SealWriter::for_message(Vec::new(), &v.key, &v.ctx).unwrap();
            for piece in msg.chunks(write_size) {
                std::io::Write::write_all(&mut w, piece).unwrap();
            }
            let (sealed, n) = w.finish().unwrap();
            assert_eq!(n, msg.len() as u64);
            assert_eq!(sealed.len(), v.ct.len(), "tc {}", v.id);
            assert_eq!(
                object::open_message(&v.key, &v.ctx, &sealed).unwrap(),
                msg,
                "tc {}",
                v.id
            );
        }
    }
}
