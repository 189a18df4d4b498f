//! Text someone else chose (registry answers, command-line input), made safe to print or log.
//!
//! Input: a string from outside. Output: the same text with control characters escaped, so ANSI sequences,
//! CR and LF cannot repaint a terminal or forge a line of output or of a log, and, for echoes of input,
//! cut to [`ECHO_LIMIT`] characters with a marker of its full length, so a 100 KB mistake is one line.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Characters of an echoed input shown before it is cut.
pub const ECHO_LIMIT: usize = 200;

/// `text` with control characters (C0, DEL, C1) and bidirectional overrides written as Rust escapes
/// (`\n`, `\u{1b}`); everything else as is. Borrowed when there is nothing to escape.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`escape`] of at most [`ECHO_LIMIT`] characters of `text`, followed by `… (N bytes)` when cut.
pub fn echo(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(ECHO_LIMIT) {
        None => escape(text),
        Some((cut, _)) => Cow::Owned(format!("{}… ({} bytes)", escape(&text[..cut]), text.len())),
    }
}

/// Controls, plus the bidirectional overrides that make text read differently from what it is.
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_plain_text_is_borrowed() {
        assert!(matches!(escape("1.2.3-alpine"), Cow::Borrowed(_)));
        assert_eq!(
            escape("a\u{1b}[31mb\r\nc\u{9b}d"),
            "a\\u{1b}[31mb\\r\\nc\\u{9b}d"
        );
        assert_eq!(escape("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(escape("ünïcødé"), "ünïcødé");
    }

    #[test]
    fn long_echoes_are_cut_at_the_limit_with_their_length() {
        assert_eq!(echo("short"), "short");
        let long = "é".repeat(ECHO_LIMIT + 1);
        let shown = echo(&long);
        assert!(shown.starts_with(&"é".repeat(ECHO_LIMIT)));
        assert!(shown.ends_with(&format!("… ({} bytes)", long.len())));
        assert_eq!(echo(&"a".repeat(ECHO_LIMIT)), "a".repeat(ECHO_LIMIT));
    }
}
