//! Published vectors on every backend and through every call: NIST CAVP (`gcmEncryptExtIV256.rsp`,
//! `gcmDecrypt256.rsp`, 96-bit IVs, FAIL cases included) and Wycheproof `aes_gcm_test.json` (256-bit
//! keys, valid and invalid). The runners fail on any attribute they did not read and on counts that do
//! not match the files, so a vector cannot be skipped silently.

mod common;

use std::collections::BTreeMap;

use common::{CALLS, keys, open, seal};
use ssekit_engine::aead::Error;

const ENCRYPT: &str = include_str!("data/gcmEncryptExtIV256.rsp");
const DECRYPT: &str = include_str!("data/gcmDecrypt256.rsp");
const WYCHEPROOF: &str = include_str!("data/aes_gcm_test.json");

/// One `Count = …` block of a CAVP file with its section's `[…]` parameters.
struct Case {
    params: BTreeMap<String, String>,
    attrs: BTreeMap<String, String>,
    fail: bool,
}

impl Case {
    /// Takes an attribute; `check_all_read` later fails if any was left.
    fn take(&mut self, name: &str) -> Vec<u8> {
        let v = self
            .attrs
            .remove(name)
            .unwrap_or_else(|| panic!("case lacks {name}"));
        hex::decode(v).expect("hex")
    }
    fn check_all_read(&self) {
        assert!(
            self.attrs.is_empty(),
            "unread attributes {:?}",
            self.attrs.keys()
        );
    }
}

fn parse_rsp(text: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut params = BTreeMap::new();
    let mut cur: Option<Case> = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        if line.is_empty() {
            cases.extend(cur.take());
        } else if let Some(p) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let (k, v) = p.split_once(" = ").expect("section parameter");
            params.insert(k.to_string(), v.to_string());
        } else if line == "FAIL" {
            cur.as_mut().expect("FAIL inside a case").fail = true;
        } else {
            let (k, v) = line.split_once(" =").expect("attribute");
            let case = cur.get_or_insert_with(|| Case {
                params: params.clone(),
                attrs: BTreeMap::new(),
                fail: false,
            });
            case.attrs.insert(k.to_string(), v.trim().to_string());
        }
    }
    cases.extend(cur);
    cases
}

fn array<const N: usize>(v: &[u8]) -> [u8; N] {
    v.try_into().expect("length")
}

#[test]
fn cavp_encrypt() {
    let cases = parse_rsp(ENCRYPT);
    assert_eq!(
        cases.len(),
        2625,
        "gcmEncryptExtIV256.rsp, 96-bit IV sections"
    );
    let mut checked = 0;
    for mut c in cases {
        assert_eq!(c.params["IVlen"], "96");
        let _count = c.attrs.remove("Count");
        let key = array::<32>(&c.take("Key"));
        let iv = array::<12>(&c.take("IV"));
        let pt = c.take("PT");
        let aad = c.take("AAD");
        let ct = c.take("CT");
        let tag = c.take("Tag");
        c.check_all_read();
        assert!(!c.fail);
        for k in keys(&key) {
            for call in CALLS {
                let mut buf = pt.clone();
                let got = seal(&k, call, &iv, &aad, &mut buf);
                assert_eq!(buf, ct, "{} {call:?}", k.backend());
                // Truncated-tag sections: the tag is the prefix of the full one (SP 800-38D 7.1).
                assert_eq!(
                    &got[..tag.len()],
                    tag.as_slice(),
                    "{} {call:?}",
                    k.backend()
                );
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 2625);
}

#[test]
fn cavp_decrypt() {
    let cases = parse_rsp(DECRYPT);
    assert_eq!(cases.len(), 2625, "gcmDecrypt256.rsp, 96-bit IV sections");
    let (mut pass, mut fail, mut short_tag) = (0, 0, 0);
    for mut c in cases {
        assert_eq!(c.params["IVlen"], "96");
        let _count = c.attrs.remove("Count");
        let key = array::<32>(&c.take("Key"));
        let iv = array::<12>(&c.take("IV"));
        let ct = c.take("CT");
        let aad = c.take("AAD");
        let tag = c.take("Tag");
        let pt = if c.fail { None } else { Some(c.take("PT")) };
        c.check_all_read();
        if tag.len() != 16 {
            // ssekit accepts only full 128-bit tags; truncated-tag sections cannot be expressed.
            assert_ne!(c.params["Taglen"], "128");
            short_tag += 1;
            continue;
        }
        let tag = array::<16>(&tag);
        for k in keys(&key) {
            for call in CALLS {
                let mut buf = ct.clone();
                let r = open(&k, call, &iv, &aad, &mut buf, &tag);
                match &pt {
                    Some(pt) => {
                        assert_eq!(r, Ok(()), "{} {call:?}", k.backend());
                        assert_eq!(&buf, pt, "{} {call:?}", k.backend());
                    }
                    None => {
                        assert_eq!(r, Err(Error::Authentication), "{} {call:?}", k.backend());
                        assert!(buf.iter().all(|&b| b == 0), "plaintext released");
                    }
                }
            }
        }
        if pt.is_some() {
            pass += 1;
        } else {
            fail += 1;
        }
    }
    assert_eq!(pass + fail, 375, "Taglen = 128 cases");
    assert!(
        fail > 100 && pass > 100,
        "both kinds present: {pass} pass, {fail} fail"
    );
    assert_eq!(short_tag, 2250);
}

#[derive(serde::Deserialize)]
struct WycheFile {
    #[serde(rename = "testGroups")]
    groups: Vec<WycheGroup>,
}

#[derive(serde::Deserialize)]
struct WycheGroup {
    #[serde(rename = "keySize")]
    key_size: u32,
    #[serde(rename = "ivSize")]
    iv_size: u32,
    #[serde(rename = "tagSize")]
    tag_size: u32,
    tests: Vec<WycheTest>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WycheTest {
    #[serde(rename = "tcId")]
    id: u32,
    comment: String,
    flags: Vec<String>,
    key: String,
    iv: String,
    aad: String,
    msg: String,
    ct: String,
    tag: String,
    result: String,
}

#[test]
fn wycheproof() {
    let file: WycheFile = serde_json::from_str(WYCHEPROOF).expect("json");
    let (mut valid, mut invalid, mut other_iv) = (0, 0, 0);
    for g in file.groups.iter().filter(|g| g.key_size == 256) {
        assert_eq!(g.tag_size, 128);
        for t in &g.tests {
            let ctx = format!("tcId {} ({}, {:?})", t.id, t.comment, t.flags);
            if g.iv_size != 96 {
                // Nonces of other sizes are not expressible with `&[u8; 12]`; counted below.
                other_iv += 1;
                continue;
            }
            let key = array::<32>(&hex::decode(&t.key).unwrap());
            let iv = array::<12>(&hex::decode(&t.iv).unwrap());
            let aad = hex::decode(&t.aad).unwrap();
            let msg = hex::decode(&t.msg).unwrap();
            let ct = hex::decode(&t.ct).unwrap();
            let tag = array::<16>(&hex::decode(&t.tag).unwrap());
            for k in keys(&key) {
                for call in CALLS {
                    let mut buf = ct.clone();
                    let r = open(&k, call, &iv, &aad, &mut buf, &tag);
                    match t.result.as_str() {
                        "valid" => {
                            assert_eq!(r, Ok(()), "{ctx} {} {call:?}", k.backend());
                            assert_eq!(buf, msg, "{ctx}");
                            let mut buf = msg.clone();
                            let got = seal(&k, call, &iv, &aad, &mut buf);
                            assert_eq!((buf, got), (ct.clone(), tag), "{ctx} {}", k.backend());
                        }
                        "invalid" => {
                            assert_eq!(r, Err(Error::Authentication), "{ctx} {}", k.backend());
                            assert!(buf.iter().all(|&b| b == 0), "{ctx}: plaintext released");
                        }
                        other => panic!("{ctx}: unexpected result {other}"),
                    }
                }
            }
            if t.result == "valid" {
                valid += 1;
            } else {
                invalid += 1;
            }
        }
    }
    assert_eq!((valid, invalid), (39, 27), "256-bit key, 96-bit IV cases");
    assert_eq!(other_iv, 39);
}
