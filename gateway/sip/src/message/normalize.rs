//! The pre-normaliser: lossless rewrites of valid RFC 3261 syntax that rsip would
//! otherwise reject or misread (see `shared/notes/rsip.md`).
//!
//! - header continuation lines are unfolded (§7.3.1: LWS incl. CRLF+WSP = one SP);
//! - whitespace before the colon is removed (§7.3.1, `HCOLON`);
//! - compact names are expanded and well-known names canonically spelled (§7.3.3);
//! - comma-separated Via / Contact / Route / Record-Route values become one header line
//!   each (§7.3.1 says both forms are equivalent; rsip's typed Via keeps only the first);
//! - Via values are rewritten canonically (`SIP / 2.0 / UDP h ; branch = x` →
//!   `SIP/2.0/UDP h;branch=x`), and LWS around `;` / `=` in name-addr parameters is
//!   dropped (§25.1 `SEMI`, `EQUAL` allow it; it carries no meaning).
//!
//! Problems found on the way are recorded (first one wins) rather than returned at
//! once, so the caller can still address a `400` from the lines that were fine.

use super::error::ParseErrorKind;
use super::headers::{canonical_name, is_list_header, is_token, parse_via, split_top_level};

/// The message cut into its parts, header lines canonical.
#[derive(Debug)]
pub(crate) struct Split<'a> {
    pub start_line: String,
    /// (canonical name, value) in wire order; list headers already split.
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
    /// Header lines after unfolding, before list splitting.
    pub header_lines: usize,
    /// First problem met in a line; the message is invalid if set.
    pub problem: Option<ParseErrorKind>,
}

/// Offset of the first CRLFCRLF.
pub(crate) fn find_header_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Leading CRLFs before a start line are ignored (§7.5; §18.3 for streams).
pub(crate) fn skip_leading_crlf(mut bytes: &[u8]) -> &[u8] {
    while let Some(rest) = bytes.strip_prefix(b"\r\n") {
        bytes = rest;
    }
    bytes
}

/// A control character is allowed only as the second half of a quoted-pair inside a
/// quoted string (§25.1: `quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)`, e.g.
/// RFC 4475 intmeth); HTAB is LWS. Anything else (NUL, bare CR or LF, ESC...) is refused
/// because rsip would carry it into values silently.
fn line_chars_ok(line: &str) -> bool {
    let mut in_quotes = false;
    let mut escaped = false;
    for c in line.chars() {
        let ctl = (c < ' ' && c != '\t') || c == '\x7f';
        if in_quotes {
            if escaped {
                escaped = false;
                if c == '\r' || c == '\n' {
                    return false;
                }
                continue;
            }
            if ctl {
                return false;
            }
            if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
            continue;
        }
        if ctl {
            return false;
        }
        if c == '"' {
            in_quotes = true;
        }
    }
    true
}

/// Drops LWS around `;` and `=` and collapses other LWS runs to one SP, outside quoted
/// strings and `<...>`.
pub(crate) fn squeeze_param_lws(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut in_quotes = false;
    let mut escaped = false;
    let mut in_angle = false;
    let mut pending_space = false;
    // Just wrote `;` or `=`: whitespace after it is dropped.
    let mut after_sep = false;
    for c in value.chars() {
        if in_quotes {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
            continue;
        }
        if in_angle {
            out.push(c);
            if c == '>' {
                in_angle = false;
            }
            continue;
        }
        match c {
            ' ' | '\t' => pending_space = !after_sep,
            ';' | '=' => {
                pending_space = false;
                after_sep = true;
                out.push(c);
            }
            _ => {
                if pending_space && !out.is_empty() {
                    out.push(' ');
                }
                pending_space = false;
                after_sep = false;
                out.push(c);
                if c == '"' {
                    in_quotes = true;
                } else if c == '<' {
                    in_angle = true;
                }
            }
        }
    }
    out
}

/// Cuts `bytes` (leading CRLFs already skipped) into start line, canonical header lines
/// and body. Fails only when there is no header section at all.
pub(crate) fn split_message(bytes: &[u8]) -> Result<Split<'_>, ParseErrorKind> {
    if bytes.is_empty() {
        return Err(ParseErrorKind::Empty);
    }
    // Without the blank line rsip would keep the first header and call the rest "body"
    // (rsip note): refuse instead.
    let end = find_header_end(bytes).ok_or(ParseErrorKind::Truncated)?;
    let head = bytes.get(..end).unwrap_or_default();
    let body = bytes.get(end + 4..).unwrap_or_default();

    let mut problem: Option<ParseErrorKind> = None;
    let note = |p: ParseErrorKind, problem: &mut Option<ParseErrorKind>| {
        if problem.is_none() {
            *problem = Some(p);
        }
    };

    let mut lines = Vec::new();
    let mut rest = head;
    loop {
        match rest.windows(2).position(|w| w == b"\r\n") {
            Some(i) => {
                lines.push(rest.get(..i).unwrap_or_default());
                rest = rest.get(i + 2..).unwrap_or_default();
            }
            None => {
                lines.push(rest);
                break;
            }
        }
    }

    let mut start_line = String::new();
    let mut unfolded: Vec<(String, String)> = Vec::new();
    for (idx, raw) in lines.iter().enumerate() {
        let line_no = idx + 1;
        let text = match std::str::from_utf8(raw) {
            Ok(t) => {
                if !line_chars_ok(t) {
                    note(
                        ParseErrorKind::InvalidCharacter { line: line_no },
                        &mut problem,
                    );
                }
                std::borrow::Cow::Borrowed(t)
            }
            Err(_) => {
                note(
                    ParseErrorKind::InvalidCharacter { line: line_no },
                    &mut problem,
                );
                String::from_utf8_lossy(raw)
            }
        };
        if idx == 0 {
            start_line = text.into_owned();
            continue;
        }
        if text.starts_with([' ', '\t']) {
            // §7.3.1 folding: continuation of the previous header value.
            match unfolded.last_mut() {
                Some((_, v)) => {
                    let cont = text.trim();
                    if !cont.is_empty() {
                        if !v.is_empty() {
                            v.push(' ');
                        }
                        v.push_str(cont);
                    }
                }
                None => note(
                    ParseErrorKind::MalformedHeaderLine { line: line_no },
                    &mut problem,
                ),
            }
            continue;
        }
        match text.split_once(':') {
            Some((name, value)) => {
                // §7.3.1: whitespace is allowed between the name and the colon.
                let name = name.trim_end_matches([' ', '\t']);
                if !is_token(name) {
                    note(
                        ParseErrorKind::MalformedHeaderLine { line: line_no },
                        &mut problem,
                    );
                    continue;
                }
                unfolded.push((name.to_string(), value.trim().to_string()));
            }
            None => note(
                ParseErrorKind::MalformedHeaderLine { line: line_no },
                &mut problem,
            ),
        }
    }

    let header_lines = unfolded.len();
    let mut headers = Vec::with_capacity(header_lines);
    for (name, value) in unfolded {
        let name = canonical_name(&name).into_owned();
        if is_list_header(&name) {
            for elem in split_top_level(&value, ',') {
                let elem = elem.trim();
                if elem.is_empty() {
                    note(
                        ParseErrorKind::MalformedHeader {
                            name: name.clone(),
                            reason: "empty list element".into(),
                        },
                        &mut problem,
                    );
                    continue;
                }
                let v = canonical_value(&name, elem, &mut problem);
                headers.push((name.clone(), v));
            }
        } else {
            let v = canonical_value(&name, &value, &mut problem);
            headers.push((name, v));
        }
    }

    Ok(Split {
        start_line,
        headers,
        body,
        header_lines,
        problem,
    })
}

fn canonical_value(name: &str, value: &str, problem: &mut Option<ParseErrorKind>) -> String {
    if name == "Via" {
        match parse_via(value) {
            Ok(v) => return v.to_canonical(),
            Err(e) => {
                if problem.is_none() {
                    *problem = Some(ParseErrorKind::MalformedHeader {
                        name: "Via".into(),
                        reason: e.to_string(),
                    });
                }
                return value.to_string();
            }
        }
    }
    if ["From", "To", "Contact", "Route", "Record-Route"].contains(&name) {
        return squeeze_param_lws(value);
    }
    value.to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn split(s: &str) -> Split<'_> {
        split_message(s.as_bytes()).unwrap()
    }

    #[test]
    fn unfolds_continuation_lines() {
        let s =
            split("OPTIONS sip:a@b SIP/2.0\r\nSubject: one\r\n two\r\n\tthree\r\nX-Y: y\r\n\r\n");
        assert_eq!(s.headers[0], ("Subject".into(), "one two three".into()));
        assert_eq!(s.headers[1], ("X-Y".into(), "y".into()));
        assert!(s.problem.is_none());
    }

    #[test]
    fn strips_whitespace_before_colon_and_expands_compact_names() {
        let s = split("OPTIONS sip:a@b SIP/2.0\r\nTO :\r\n sip:a@b\r\ni   : x\r\nl: 0\r\nmAX-fORWARDS: 1\r\n\r\n");
        let names: Vec<_> = s.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["To", "Call-ID", "Content-Length", "Max-Forwards"]);
        assert_eq!(s.headers[0].1, "sip:a@b");
    }

    #[test]
    fn all_compact_forms_expand() {
        for (c, long) in [
            ("i", "Call-ID"),
            ("m", "Contact"),
            ("f", "From"),
            ("t", "To"),
            ("v", "Via"),
            ("l", "Content-Length"),
            ("c", "Content-Type"),
            ("k", "Supported"),
            ("s", "Subject"),
            ("e", "Content-Encoding"),
            ("o", "Event"),
            ("u", "Allow-Events"),
            ("r", "Refer-To"),
            ("b", "Referred-By"),
            ("x", "Session-Expires"),
            ("a", "Accept-Contact"),
            ("j", "Reject-Contact"),
            ("d", "Request-Disposition"),
            ("y", "Identity"),
            ("n", "Identity-Info"),
        ] {
            assert_eq!(canonical_name(c), long);
            assert_eq!(canonical_name(&c.to_uppercase()), long);
        }
        assert_eq!(canonical_name("q"), "q");
    }

    #[test]
    fn splits_comma_separated_list_headers_and_canonicalises_via() {
        let s = split("OPTIONS sip:a@b SIP/2.0\r\nv:  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239\r\nContact: \"a,b\" <sip:x@y>, <sip:z@w>\r\n\r\n");
        assert!(s.problem.is_none(), "{:?}", s.problem);
        assert_eq!(
            s.headers[0].1,
            "SIP/2.0/TCP spindle.example.com;branch=z9hG4bK9ikj8"
        );
        assert_eq!(
            s.headers[1].1,
            "SIP/2.0/UDP 192.168.255.111;branch=z9hG4bK30239"
        );
        assert_eq!(s.headers[2].1, "\"a,b\" <sip:x@y>");
        assert_eq!(s.headers[3].1, "<sip:z@w>");
    }

    #[test]
    fn squeezes_param_whitespace_outside_quotes_and_brackets() {
        assert_eq!(
            squeeze_param_lws("\"J  R\"       <sip:j@e.com> ;\t tag = 98 ; x"),
            "\"J  R\" <sip:j@e.com>;tag=98;x"
        );
        assert_eq!(
            squeeze_param_lws("sip:v@c.example.com ;   tag    = 1n"),
            "sip:v@c.example.com;tag=1n"
        );
    }

    #[test]
    fn records_problems_without_failing() {
        let s = split("OPTIONS sip:a@b SIP/2.0\r\n continuation first\r\nVia: SIP/2.0/UDP h;;,;\r\nbad line\r\nX\x00: y\r\n\r\n");
        assert_eq!(
            s.problem,
            Some(ParseErrorKind::MalformedHeaderLine { line: 2 })
        );
        assert!(matches!(
            split_message(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x"),
            Err(ParseErrorKind::Truncated)
        ));
    }

    #[test]
    fn control_characters() {
        assert!(line_chars_ok(
            "To: \"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f\" <sip:x@y>"
        ));
        assert!(!line_chars_ok("To: <sip:x@y>\x00"));
        assert!(!line_chars_ok("To: \"\x00\" <sip:x@y>"));
        assert!(!line_chars_ok("Subject: a\rb"));
        assert!(line_chars_ok("Subject: a\tb"));
    }
}
