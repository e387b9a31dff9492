//! Text from an object's metadata, a config file or a key service, made safe for a terminal.
//!
//! A key id, provider name, algorithm or context value in an object's header is written by whoever
//! wrote the object: printed raw, `ESC [` sequences would recolour, move or rewrite what the user
//! sees, and a newline could forge a line of output. Every C0 control (U+0000–U+001F), DEL (U+007F)
//! and C1 control (U+0080–U+009F, which some terminals also act on) is shown as an escape instead:
//! `\x1b`, `\n`, `\u{9b}`. Everything else, backslashes included, is printed as it is.

use std::borrow::Cow;
use std::fmt::Write as _;

fn is_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// `s` with its control characters escaped (borrowed when it has none).
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && is_control(c) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_control(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// JSON text with the controls serde_json leaves raw (DEL and C1) written as `\u` escapes: valid
/// JSON for the same value. (serde_json escapes C0 itself; outside strings JSON text is ASCII.)
pub fn escape_json(json: String) -> String {
    if !json.chars().any(is_control) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 12);
    for c in json.chars() {
        if is_control(c) && c != '\n' {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_the_rest_kept() {
        assert_eq!(escape("plain `id` é \\x"), "plain `id` é \\x");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
        assert_eq!(
            escape("a\u{1b}[31mred\nline\u{7f}\u{9b}\0"),
            "a\\x1b[31mred\\nline\\x7f\\u{9b}\\x00"
        );
    }

    #[test]
    fn json_stays_valid_and_means_the_same() {
        let v = serde_json::json!({"k": "a\u{1b}b\u{7f}c\u{9b}d\n"});
        let text = escape_json(serde_json::to_string_pretty(&v).unwrap());
        assert!(!text.chars().any(|c| is_control(c) && c != '\n'), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
    }
}
