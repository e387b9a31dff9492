//! One line of the audit log: writing it, its hash, and reading it back (see docs/AUDIT.md).
//!
//! A line is `BODY,"hash":"HEX"}` where `BODY` is `{"seq":…` up to and including the `prev` field
//! and `HEX` is the lowercase hex SHA-256 of the bytes of `BODY`. Strings are JSON-escaped with
//! every control character (C0, DEL, C1) written as `\uXXXX` (or `\n`, `\r`, `\t`), so a line holds
//! no raw control characters and `cat` of a log is safe for a terminal.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

/// What follows the body: `,"hash":"` + 64 hex digits + `"}`.
const HASH_PREFIX: &str = ",\"hash\":\"";
const SUFFIX_LEN: usize = HASH_PREFIX.len() + 64 + 2;

/// The `prev` of the very first line (seq 0): 32 zero bytes.
pub const GENESIS: [u8; 32] = [0; 32];

/// Lowercase hex of a hash.
pub fn hex(bytes: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(64);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// A hash from 64 lowercase hex digits (the only form lines use).
pub fn unhex(s: &str) -> Option<[u8; 32]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = nibble(b[2 * i])? << 4 | nibble(b[2 * i + 1])?;
    }
    Some(out)
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds: `2026-12-03T07:01:02.345Z`.
pub fn format_millis(ms: u64) -> String {
    let secs = crate::keys::format_time(ms / 1000);
    // `format_time` ends in `Z`; the milliseconds go before it.
    format!("{}.{:03}Z", &secs[..secs.len() - 1], ms % 1000)
}

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Control characters, and the invisible ones that reorder or break what a reader of
            // the log sees (bidirectional overrides and isolates, line and paragraph separators).
            '\u{0}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{200e}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_opt_str(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => json_str(out, s),
        None => out.push_str("null"),
    }
}

/// The fields of a line, borrowed, in their order on the line.
pub(crate) struct Fields<'a, C> {
    pub seq: u64,
    pub time: &'a str,
    pub op: &'a str,
    pub provider: &'a str,
    pub key_id: Option<&'a str>,
    pub key_version: Option<u32>,
    pub context: Option<C>,
    pub principal: Option<&'a str>,
    pub outcome: &'a str,
    pub error: Option<&'a str>,
    pub prev: &'a str,
}

impl<'a, C: IntoIterator<Item = (&'a str, &'a str)>> Fields<'a, C> {
    /// The body: `{"seq":…,"prev":"…"` (no hash, no closing brace).
    pub(crate) fn body(self, out: &mut String) {
        let _ = write!(out, "{{\"seq\":{},\"time\":", self.seq);
        json_str(out, self.time);
        out.push_str(",\"op\":");
        json_str(out, self.op);
        out.push_str(",\"provider\":");
        json_str(out, self.provider);
        out.push_str(",\"key_id\":");
        json_opt_str(out, self.key_id);
        out.push_str(",\"key_version\":");
        match self.key_version {
            Some(v) => {
                let _ = write!(out, "{v}");
            }
            None => out.push_str("null"),
        }
        out.push_str(",\"context\":");
        match self.context {
            None => out.push_str("null"),
            Some(pairs) => {
                out.push('{');
                for (i, (k, v)) in pairs.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json_str(out, k);
                    out.push(':');
                    json_str(out, v);
                }
                out.push('}');
            }
        }
        out.push_str(",\"principal\":");
        json_opt_str(out, self.principal);
        out.push_str(",\"outcome\":");
        json_str(out, self.outcome);
        out.push_str(",\"error\":");
        json_opt_str(out, self.error);
        out.push_str(",\"prev\":");
        json_str(out, self.prev);
    }
}

/// Appends `,"hash":"HEX"}` to a body and returns the hash.
pub(crate) fn finish(line: &mut String) -> [u8; 32] {
    let hash: [u8; 32] = Sha256::digest(line.as_bytes()).into();
    line.push_str(HASH_PREFIX);
    line.push_str(&hex(&hash));
    line.push_str("\"}");
    hash
}

/// Splits a line into its body and the hash it claims, if it ends in a well-formed hash field.
pub(crate) fn split_hash(line: &str) -> Option<(&str, [u8; 32])> {
    if line.len() < SUFFIX_LEN || !line.ends_with("\"}") {
        return None;
    }
    let at = line.len() - SUFFIX_LEN;
    let (body, tail) = (line.get(..at)?, line.get(at..)?);
    let hex_part = tail.strip_prefix(HASH_PREFIX)?.strip_suffix("\"}")?;
    Some((body, unhex(hex_part)?))
}

/// SHA-256 of a body, as the `hash` field states it.
pub(crate) fn body_hash(body: &str) -> [u8; 32] {
    Sha256::digest(body.as_bytes()).into()
}

/// One audit line, read back (for tools and tests; the verifier checks the bytes, not this).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Position in the log: 0, 1, 2, … over all files of a rotated log.
    pub seq: u64,
    /// When the line was written: RFC 3339 UTC with milliseconds.
    pub time: String,
    /// The provider call: `generate`, `wrap`, `unwrap`, `create`, `rotate`, `enable`, `disable`,
    /// `schedule_deletion`, `cancel_deletion` or `rewrap`.
    pub op: String,
    /// The provider's name (`local`, `pkcs11`, `kms`).
    pub provider: String,
    /// The key id the call named (`null` only for a failed `create` that named none).
    pub key_id: Option<String>,
    /// The KEK version, when known.
    pub key_version: Option<u32>,
    /// The encryption context of a data call; `null` for lifecycle calls.
    pub context: Option<BTreeMap<String, String>>,
    /// Who asked, as the caller said; `null` if nobody was named.
    pub principal: Option<String>,
    /// `ok`, or the error's kind (`Disabled`, `NotFound`, `UnwrapFailed`, …).
    pub outcome: String,
    /// The error's message, for a failed call.
    pub error: Option<String>,
    /// The previous line's `hash` (64 zeros for seq 0), lowercase hex.
    pub prev: String,
    /// SHA-256 of this line's bytes up to `,"hash":`, lowercase hex.
    pub hash: String,
}

impl Record {
    /// Parses one line (without its newline).
    ///
    /// # Errors
    ///
    /// The JSON parser's message when the line is not a record.
    pub fn parse(line: &str) -> Result<Record, String> {
        serde_json::from_str(line).map_err(|e| e.to_string())
    }

    /// The line's body as the writer would write it (for the canonical-form check).
    pub(crate) fn canonical_body(&self) -> String {
        let mut out = String::with_capacity(384);
        Fields {
            seq: self.seq,
            time: &self.time,
            op: &self.op,
            provider: &self.provider,
            key_id: self.key_id.as_deref(),
            key_version: self.key_version,
            context: self
                .context
                .as_ref()
                .map(|c| c.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            principal: self.principal.as_deref(),
            outcome: &self.outcome,
            error: self.error.as_deref(),
            prev: &self.prev,
        }
        .body(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_time_has_millis() {
        let h: [u8; 32] = core::array::from_fn(|i| (i * 37) as u8);
        assert_eq!(unhex(&hex(&h)), Some(h));
        assert_eq!(unhex(&hex(&h).to_uppercase()), None);
        assert_eq!(format_millis(1_796_281_262_345), "2026-12-03T07:01:02.345Z");
        assert_eq!(format_millis(5), "1970-01-01T00:00:00.005Z");
    }

    #[test]
    fn controls_are_escaped_and_parse_back() {
        let mut s = String::new();
        json_str(&mut s, "a\"b\\c\n\u{1b}[31m\u{7f}\u{9b}é");
        assert_eq!(s, r#""a\"b\\c\n\u001b[31m\u007f\u009bé""#);
        let back: String = serde_json::from_str(&s).unwrap();
        assert_eq!(back, "a\"b\\c\n\u{1b}[31m\u{7f}\u{9b}é");
    }
}
