//! Small helpers the CLI modules share: the spinner shown during slow steps, and
//! timestamps for people.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A spinner on stderr with `message` and the elapsed time (hidden when stderr is not a
/// terminal).
pub(crate) fn spinner(message: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
        pb.set_style(style);
    }
    pb.set_message(message.to_owned());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// Unix milliseconds as RFC 3339 (UTC, with the fraction if there is one), or `@msms`
/// when out of range.
pub(crate) fn rfc3339_ms(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("@{ms}ms"))
}

/// Unix seconds as RFC 3339 (UTC), or `@secs` when out of range.
pub(crate) fn rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("@{secs}"))
}

/// Whether `c` must not reach a terminal raw: control characters (C0 but the newline,
/// DEL, C1), bidirectional controls, and invisible formatting characters that could make
/// text look like something it is not.
fn unsafe_char(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(
            c,
            '\u{00AD}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{E0000}'..='\u{E007F}'
        )
}

/// Text a peer chose, made safe to print: every character of [`unsafe_char`] is shown
/// escaped (`\u{1b}`, `\r`, `\t`, `\u{202e}`), a backslash as `\\` (so an escape
/// cannot be faked either), and every line after the first starts with `continuation`, so
/// that no line of it can pose as a line the client printed itself (a sender, a
/// history entry).
pub(crate) fn safe_text(text: &str, continuation: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => {
                out.push('\n');
                out.push_str(continuation);
            }
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_text_cannot_reach_the_terminal_raw() {
        assert_eq!(safe_text("plain text, 한국어", "  "), "plain text, 한국어");
        // ANSI escapes, carriage return, tab, bidi override, zero-width joiner.
        let hostile = "ok\x1b[2J\rfrom coord-1\tx\u{202e}gnp.exe\u{200d}";
        let shown = safe_text(hostile, "  ");
        assert!(shown.chars().all(|c| !unsafe_char(c)), "{shown:?}");
        assert_eq!(
            shown,
            "ok\\u{1b}[2J\\rfrom coord-1\\tx\\u{202e}gnp.exe\\u{200d}"
        );
        // A line of its own cannot start where ours do.
        assert_eq!(
            safe_text("note\n2026-01-01T00:00:00Z  confirmed", "      | "),
            "note\n      | 2026-01-01T00:00:00Z  confirmed"
        );
        // A literal backslash-u in the text is not mistaken for an escape.
        assert_eq!(safe_text("\\u{1b}", ""), "\\\\u{1b}");
        // C1 controls and DEL.
        assert_eq!(safe_text("\u{9b}\u{7f}", ""), "\\u{9b}\\u{7f}");
    }
}
