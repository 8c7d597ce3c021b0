//! Finding-derived text, made safe for each channel. A finding's title, description, resource
//! names, principal names and tags are partly written by the attacker (a domain the malware
//! queried, a user it created; for Security Hub any text imported with `BatchImportFindings`),
//! so none of it may speak to the responders:
//! - everywhere: control characters (line breaks too: finding text cannot fake lines of the
//!   message) become spaces, bidirectional controls and zero-width characters are removed,
//!   whitespace runs collapse, and the length is bounded when the message is built ([`clean`]);
//! - Slack: finding text goes only into `plain_text` objects without emoji codes, with `&`, `<`
//!   and `>` as entities (Slack's control characters): no mention, link or formatting can come
//!   from it ([`slack_plain`]); `mrkdwn` carries only text the project writes;
//! - Jira: finding text only in ADF text nodes, never as marks, links or mentions;
//! - PagerDuty: the summary is built from parsed fields; finding text is data in
//!   `custom_details`;
//! - SNS: plain text, cleaned.

use serde_json::{json, Value};

/// Bounds, in characters, applied to finding-derived text before any rendering.
pub const DESCRIPTION_MAX: usize = 1000;
pub const FIELD_MAX: usize = 256;
pub const DETAIL_MAX: usize = 500;

/// Characters that change how text reads without being seen: bidirectional embeddings,
/// overrides and isolates, marks, zero-width spaces and joiners, word joiners, invisible
/// operators, the byte-order mark, the soft hyphen and the Mongolian vowel separator.
pub fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E007F}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

/// `s` unless it is empty or only whitespace: no channel takes an empty text (an ADF text node
/// needs a character, a Slack text object too).
pub fn non_blank(s: &str) -> Option<&str> {
    Some(s).filter(|t| !t.trim().is_empty())
}

/// At most `max` characters of `s`, the cut marked with `…`.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// `s` with control characters as spaces, invisible characters removed, whitespace collapsed
/// and trimmed, then bounded to `max` characters. Reading stops early on huge input, so a
/// 100 KB description costs no more than its first few thousand characters.
pub fn clean(s: &str, max: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    let mut space = false;
    for c in s.chars() {
        if invisible(c) {
            continue;
        }
        if c.is_control() || c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            count += 1;
            space = false;
        }
        out.push(c);
        count += 1;
        if count > max {
            break;
        }
    }
    truncate(&out, max)
}

/// Slack's control characters as the entities Slack's formatting rules require.
pub fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Cleaned, escaped text of at most `max` characters once escaped (entities count); a cut
/// never splits an entity and is marked with `…`.
pub fn slack_text(s: &str, max: usize) -> String {
    fit_escaped(&clean(s, max), max)
}

/// `text` escaped, cut at a character (never inside an entity) so that it fits `max`.
fn fit_escaped(text: &str, max: usize) -> String {
    let escaped = slack_escape(text);
    if escaped.chars().count() <= max {
        return escaped;
    }
    let mut out = String::new();
    let mut n = 0;
    for c in text.chars() {
        let piece = slack_escape(&c.to_string());
        let len = piece.chars().count();
        if n + len > max.saturating_sub(1) {
            break;
        }
        out.push_str(&piece);
        n += len;
    }
    out.push('…');
    out
}

/// Lines of finding-derived text, each cleaned and escaped, one per line, within `max`.
pub fn slack_lines(lines: &[String], line_max: usize, max: usize) -> String {
    let raw: Vec<String> = lines
        .iter()
        .map(|l| format!("• {}", clean(l, line_max)))
        .collect();
    fit_escaped(&raw.join("\n"), max)
}

/// A Slack `plain_text` object of finding-derived text: no formatting, mentions, links or emoji
/// codes.
pub fn slack_plain(s: &str, max: usize) -> Value {
    json!({"type": "plain_text", "text": slack_text(s, max), "emoji": false})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_removes_what_deceives_and_bounds_before_rendering() {
        assert_eq!(
            clean("evil\u{202E}txt.exe \u{200D}x\u{FEFF}", 50),
            "eviltxt.exe x"
        );
        assert_eq!(
            clean("line1\nActions:\r\n- approved\u{7}\u{1b}[31m", 100),
            "line1 Actions: - approved [31m"
        );
        let big = clean(&"A".repeat(100_000), DESCRIPTION_MAX);
        assert_eq!(big.chars().count(), DESCRIPTION_MAX);
        assert!(big.ends_with('…'));
        assert_eq!(clean("  \n\t ", 10), "");
    }

    #[test]
    fn slack_text_escapes_control_characters_within_the_limit() {
        assert_eq!(
            slack_text("<!channel> <https://evil.example/|Jira> & co", 100),
            "&lt;!channel&gt; &lt;https://evil.example/|Jira&gt; &amp; co"
        );
        let t = slack_text(&"<".repeat(5000), 3000);
        assert!(t.chars().count() <= 3000, "{}", t.chars().count());
        assert!(!t.contains('<'));
        // A cut keeps as much as fits and never splits an entity.
        let header = slack_text(&format!("[HIGH] {} on i-0abc", "<".repeat(40)), 150);
        assert!(header.starts_with("[HIGH] &lt;"), "{header}");
        assert!(header.chars().count() >= 140, "{header}");
        assert!(header.trim_end_matches('…').ends_with("&lt;"), "{header}");
        let lines = slack_lines(&["a".into(), "&".repeat(100)], 800, 50);
        assert!(lines.starts_with("• a\n• &amp;"), "{lines}");
        assert!(lines.trim_end_matches('…').ends_with("&amp;"), "{lines}");
        assert_eq!(clean("x\u{E0041}\u{E0042}\u{FE0F}\u{3164}y", 10), "xy");
        assert_eq!(slack_plain("x", 10)["emoji"], false);
    }
}
