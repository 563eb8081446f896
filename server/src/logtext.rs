//! Text from outside (a phone, a browser, a database error quoting what
//! they sent) made safe to write into a log line.
//!
//! A log line is one line: a newline in a phone's text would start a line
//! of the phone's choosing (`…ERROR gridsync_server::api: FORGED`), a
//! carriage return or an escape sequence would rewrite what a terminal
//! shows, and a long text would fill the disk. [`Logged`] writes every
//! control character (C0, DEL, C1), line and paragraph separator and
//! bidirectional override as a visible escape (`\n`, `\u{1b}`), a
//! backslash as `\\` (so an escape in the text cannot pass for one of
//! ours), and at most [`MAX_LOGGED_CHARS`] characters, then `…(+N)` with
//! the number left out.
//!
//! Every string a request supplies that reaches `tracing` goes through
//! [`logged`]; what the server made itself (ids it issued, UUIDs, checked
//! hashes, its own codes) needs no escaping.

use std::fmt;

/// Most characters of one outside text written into a log line.
pub const MAX_LOGGED_CHARS: usize = 200;

/// Outside text, written escaped and bounded (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Logged<'a> {
    text: &'a str,
    max: usize,
}

/// `text` escaped and cut to [`MAX_LOGGED_CHARS`] characters when written.
pub fn logged(text: &str) -> Logged<'_> {
    Logged { text, max: MAX_LOGGED_CHARS }
}

/// `text` escaped and cut to `max` characters, as a string.
pub fn escaped(text: &str, max: usize) -> String {
    Logged { text, max }.to_string()
}

/// Whether `c` must not reach a log line as itself.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

impl fmt::Display for Logged<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.text.chars();
        for c in chars.by_ref().take(self.max) {
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '\\' => f.write_str("\\\\")?,
                c if unsafe_char(c) => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => fmt::Write::write_char(f, c)?,
            }
        }
        let left = chars.count();
        if left > 0 {
            write!(f, "…(+{left})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_control_character_or_separator_survives() {
        let forged = "坏\n2026-12-08T04:00:00Z ERROR gridsync_server::api: FORGED\r\x1b[2K\u{85}\u{2028}\u{202e}\0\\n";
        let out = logged(forged).to_string();
        assert!(!out.chars().any(unsafe_char), "{out:?}");
        assert_eq!(
            out,
            "坏\\n2026-12-08T04:00:00Z ERROR gridsync_server::api: FORGED\\r\\u{1b}[2K\\u{85}\\u{2028}\\u{202e}\\u{0}\\\\n"
        );
    }

    #[test]
    fn long_text_is_cut_and_says_how_much_is_left() {
        let long = "长".repeat(MAX_LOGGED_CHARS + 50);
        let out = logged(&long).to_string();
        assert_eq!(out, format!("{}…(+50)", "长".repeat(MAX_LOGGED_CHARS)));
        assert_eq!(escaped("abcdef", 3), "abc…(+3)");
        assert_eq!(escaped("设备一", 3), "设备一");
    }
}
