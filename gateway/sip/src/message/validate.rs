//! Start-line and header validation (RFC 3261 §7.1, §7.2, §8.1.1, §8.2), done on our
//! canonical header lines before rsip sees the message: rsip itself accepts messages
//! missing mandatory headers (rsip note).

use super::error::ParseErrorKind;
use super::headers::{is_token, parse_cseq, parse_max_forwards, parse_name_addr, parse_via};

/// The parsed start line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StartLine {
    Request {
        method: String,
        /// Request-URI as rsip must see it (`tel:` rewritten, see [`rsip_request_uri`]).
        uri: String,
        /// `;` in the user part was escaped for rsip and must be restored after parsing.
        user_semicolons_escaped: bool,
    },
    Response {
        code: u16,
        reason: String,
    },
}

impl StartLine {
    /// The line to give rsip: version upper-cased (`sip/2.0` is legal, §7.1 ABNF
    /// literals are case-insensitive), Request-URI rewritten.
    pub fn render(&self) -> String {
        match self {
            Self::Request { method, uri, .. } => format!("{method} {uri} SIP/2.0"),
            Self::Response { code, reason } => format!("SIP/2.0 {code} {reason}"),
        }
    }
}

/// rsip's closed method set. Methods are case-sensitive (§7.1), so `invite` is an
/// extension method, not INVITE (rsip's own parser would accept it as INVITE).
fn rsip_knows_method(m: &str) -> bool {
    rsip::Method::all().iter().any(|k| k.to_string() == m)
}

/// `SIP/x.y` → Ok(is 2.0), anything else → Err.
fn check_version(v: &str) -> Result<bool, ()> {
    let Some(rest) = v
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("SIP/"))
        .and(v.get(4..))
    else {
        return Err(());
    };
    let (maj, min) = rest.split_once('.').ok_or(())?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(maj) || !digits(min) {
        return Err(());
    }
    Ok(maj.trim_start_matches('0') == "2" && min.trim_start_matches('0').is_empty())
}

pub(crate) fn parse_start_line(line: &str) -> Result<StartLine, ParseErrorKind> {
    let is_response = line
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"));
    if is_response {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase (§7.2); the reason
        // may be empty (RFC 4475 noreason) and UTF-8 (unreason).
        let mut parts = line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        let code = parts.next().unwrap_or("");
        let reason = parts.next().unwrap_or("");
        match check_version(version) {
            Ok(true) => {}
            Ok(false) => {
                return Err(ParseErrorKind::UnsupportedVersion {
                    version: version.to_string(),
                })
            }
            Err(()) => {
                return Err(ParseErrorKind::MalformedStartLine {
                    reason: "bad version",
                })
            }
        }
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseErrorKind::BadStatusCode);
        }
        let code: u16 = code.parse().map_err(|_| ParseErrorKind::BadStatusCode)?;
        if !(100..=699).contains(&code) {
            return Err(ParseErrorKind::BadStatusCode);
        }
        return Ok(StartLine::Response {
            code,
            reason: reason.to_string(),
        });
    }

    // Request-Line = Method SP Request-URI SP SIP-Version (§7.1): exactly single SPs,
    // no LWS anywhere (RFC 4475 lwsruri, lwsstart, trws).
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, uri, version] = parts.as_slice() else {
        return Err(ParseErrorKind::MalformedStartLine {
            reason: "expected METHOD SP Request-URI SP SIP-Version",
        });
    };
    if !is_token(method) || uri.is_empty() {
        return Err(ParseErrorKind::MalformedStartLine {
            reason: "bad method",
        });
    }
    match check_version(version) {
        Ok(true) => {}
        Ok(false) => {
            return Err(ParseErrorKind::UnsupportedVersion {
                version: version.to_string(),
            })
        }
        Err(()) => {
            return Err(ParseErrorKind::MalformedStartLine {
                reason: "bad version",
            })
        }
    }
    let uri = rsip_request_uri(uri)?;
    // §8.2.1: a method we cannot represent is answered 501 (RFC 4475 intmeth, esc02).
    if !rsip_knows_method(method) {
        return Err(ParseErrorKind::UnknownMethod {
            method: method.to_string(),
        });
    }
    let (uri, user_semicolons_escaped) = uri?;
    Ok(StartLine::Request {
        method: method.to_string(),
        uri,
        user_semicolons_escaped,
    })
}

/// Checks the Request-URI and returns the form rsip can parse. The outer `Result` is
/// a syntax error (400), the inner one an unsupported scheme (416, decided after the
/// method per §8.2.1 before §8.2.2).
#[allow(clippy::type_complexity)]
fn rsip_request_uri(uri: &str) -> Result<Result<(String, bool), ParseErrorKind>, ParseErrorKind> {
    if uri.contains(['<', '>', '"']) || uri.chars().any(|c| c.is_control()) {
        // RFC 4475 ltgtruri: `INVITE <sip:...>` is not a Request-URI.
        return Err(ParseErrorKind::BadRequestUri {
            reason: "illegal characters",
        });
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err(ParseErrorKind::BadRequestUri {
            reason: "no scheme",
        });
    };
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok || rest.is_empty() {
        return Err(ParseErrorKind::BadRequestUri {
            reason: "bad scheme",
        });
    }
    if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        // The host part follows the last '@' (userinfo may hold escaped '@' only).
        let (userinfo, hostpart) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        if hostpart.starts_with('[') {
            // rsip splits host and port at the first ':' and fails on IPv6 references;
            // refuse cleanly rather than mis-parse.
            return Err(ParseErrorKind::Ipv6Unsupported);
        }
        if hostpart.contains('?') {
            // §19.1.1 table: headers are not allowed in a Request-URI (RFC 4475 escruri).
            return Err(ParseErrorKind::BadRequestUri {
                reason: "headers in Request-URI",
            });
        }
        let host = hostpart.split([';', ':']).next().unwrap_or("");
        if host.is_empty() {
            return Err(ParseErrorKind::BadRequestUri {
                reason: "empty host",
            });
        }
        if let Some(user) = userinfo.filter(|u| u.contains(';')) {
            // `;` is legal in the user part (§25.1 user-unreserved; RFC 4475 semiuri)
            // but rsip reads it as the start of URI parameters and fails. Escape it for
            // rsip and restore it in the parsed struct (`parse.rs`). Refuse the one case
            // where the restore would be ambiguous.
            if user.to_ascii_lowercase().contains("%3b") {
                return Err(ParseErrorKind::BadRequestUri {
                    reason: "both ';' and '%3B' in the user part",
                });
            }
            let escaped = format!("{scheme}:{}@{hostpart}", user.replace(';', "%3B"));
            return Ok(Ok((escaped, true)));
        }
        return Ok(Ok((uri.to_string(), false)));
    }
    if scheme.eq_ignore_ascii_case("tel") {
        // RFC 3966 telephone-subscriber has no '/' or '@'; rsip parses a non-SIP
        // scheme only as `scheme://...`, so `tel:+1555` travels as `tel://+1555` and
        // `headers::request_uri_string` gives the wire form back.
        // Our own serialisation (`tel://...`) must parse again (round trip).
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        if rest.is_empty() || rest.contains(['/', '@', '?']) || rest.starts_with(';') {
            return Err(ParseErrorKind::BadRequestUri {
                reason: "bad tel URI",
            });
        }
        return Ok(Ok((format!("tel://{rest}"), false)));
    }
    Ok(Err(ParseErrorKind::UnsupportedUriScheme {
        scheme: scheme.to_string(),
    }))
}

/// Headers that must appear at most once (§7.3.1: only list-valued headers may
/// repeat; RFC 4475 multi01, mcl01).
const SINGLE: &[&str] = &[
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Max-Forwards",
    "Content-Length",
    "Content-Type",
];

pub(crate) fn validate_headers(
    start: &StartLine,
    headers: &[(String, String)],
) -> Result<(), ParseErrorKind> {
    let count = |name: &str| headers.iter().filter(|(n, _)| n == name).count();
    let first = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    for &name in SINGLE {
        if count(name) > 1 {
            return Err(ParseErrorKind::DuplicateHeader { name });
        }
    }
    // §8.1.1: To, From, CSeq, Call-ID, Max-Forwards and Via are mandatory in requests;
    // responses carry the same except Max-Forwards.
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if count(name) == 0 {
            return Err(ParseErrorKind::MissingHeader { name });
        }
    }
    let malformed = |name: &str, reason: String| ParseErrorKind::MalformedHeader {
        name: name.to_string(),
        reason,
    };
    let top_via =
        parse_via(first("Via").unwrap_or("")).map_err(|e| malformed("Via", e.to_string()))?;
    for name in ["From", "To", "Contact", "Route", "Record-Route", "Reply-To"] {
        for (_, v) in headers.iter().filter(|(n, _)| n == name) {
            let name_static: &'static str = match name {
                "From" => "From",
                "To" => "To",
                "Contact" => "Contact",
                "Route" => "Route",
                "Record-Route" => "Record-Route",
                _ => "Reply-To",
            };
            parse_name_addr(v, name_static).map_err(|e| malformed(name, e.to_string()))?;
        }
    }
    let call_id = first("Call-ID").unwrap_or("");
    if call_id.is_empty() || call_id.contains([' ', '\t']) {
        return Err(malformed("Call-ID", "empty or contains whitespace".into()));
    }
    let cseq =
        parse_cseq(first("CSeq").unwrap_or("")).map_err(|e| malformed("CSeq", e.to_string()))?;
    if let Some(mf) = first("Max-Forwards") {
        parse_max_forwards(mf).map_err(|e| malformed("Max-Forwards", e.to_string()))?;
    }
    if let StartLine::Request { method, .. } = start {
        // §8.1.1.5 / §8.2 (RFC 4475 mismatch01): CSeq method equals the request's.
        if &cseq.method != method {
            return Err(ParseErrorKind::CSeqMethodMismatch {
                method: method.clone(),
                cseq_method: cseq.method,
            });
        }
        // §8.1.1.7: the branch is mandatory; without it no transaction can be matched.
        if top_via.branch().is_none_or(str::is_empty) {
            return Err(ParseErrorKind::MissingBranch);
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn req(method: &str) -> StartLine {
        StartLine::Request {
            method: method.into(),
            uri: "sip:a@b".into(),
            user_semicolons_escaped: false,
        }
    }

    fn base() -> Vec<(String, String)> {
        [
            ("Via", "SIP/2.0/UDP h;branch=z9hG4bK1"),
            ("From", "<sip:a@b>;tag=1"),
            ("To", "<sip:c@d>"),
            ("Call-ID", "x@y"),
            ("CSeq", "1 INVITE"),
            ("Max-Forwards", "70"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn start_lines() {
        assert!(matches!(
            parse_start_line("INVITE sip:a@b SIP/2.0"),
            Ok(StartLine::Request { .. })
        ));
        assert!(matches!(
            parse_start_line("INVITE sip:a@b sip/2.0"),
            Ok(StartLine::Request { .. })
        ));
        assert_eq!(
            parse_start_line("INVITE tel:+1-555-0100;phone-context=x SIP/2.0"),
            Ok(StartLine::Request {
                method: "INVITE".into(),
                uri: "tel://+1-555-0100;phone-context=x".into(),
                user_semicolons_escaped: false
            })
        );
        for (line, code) in [
            ("INVITE  sip:a@b SIP/2.0", "sip.bad_start_line"),
            ("INVITE sip:a@b SIP/2.0 ", "sip.bad_start_line"),
            ("INVITE sip:a@b; lr SIP/2.0", "sip.bad_start_line"),
            ("INVITE <sip:a@b> SIP/2.0", "sip.bad_request_uri"),
            ("INVITE sip:a@b?Route=x SIP/2.0", "sip.bad_request_uri"),
            ("INVITE sip:a@[2001:db8::1] SIP/2.0", "sip.ipv6_unsupported"),
            ("OPTIONS sip:a@b SIP/7.0", "sip.unsupported_version"),
            ("NEWMETHOD sip:a@b SIP/2.0", "sip.unknown_method"),
            ("invite sip:a@b SIP/2.0", "sip.unknown_method"),
            (
                "OPTIONS nobodyKnowsThisScheme:x SIP/2.0",
                "sip.unsupported_uri_scheme",
            ),
            ("SIP/2.0 4294967301 better not break", "sip.bad_status_code"),
            ("SIP/2.0 099 Low", "sip.bad_status_code"),
            ("SIP/2.0 700 High", "sip.bad_status_code"),
            ("SIP/3.0 200 OK", "sip.unsupported_version"),
        ] {
            assert_eq!(parse_start_line(line).unwrap_err().code(), code, "{line}");
        }
        assert_eq!(
            parse_start_line("SIP/2.0 100 "),
            Ok(StartLine::Response {
                code: 100,
                reason: String::new()
            })
        );
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn header_failures() {
        assert_eq!(validate_headers(&req("INVITE"), &base()), Ok(()));
        let cases: Vec<(Box<dyn Fn(&mut Vec<(String, String)>)>, &str, &str)> = vec![
            (
                Box::new(|h| h.retain(|(n, _)| n != "CSeq")),
                "sip.missing_header",
                "CSeq",
            ),
            (
                Box::new(|h| h.retain(|(n, _)| n != "Via")),
                "sip.missing_header",
                "Via",
            ),
            (
                Box::new(|h| h.retain(|(n, _)| n != "Call-ID")),
                "sip.missing_header",
                "Call-ID",
            ),
            (
                Box::new(|h| h.push(("From".into(), "<sip:z@z>".into()))),
                "sip.duplicate_header",
                "From",
            ),
            (
                Box::new(|h| h[4].1 = "1 BYE".into()),
                "sip.cseq_mismatch",
                "",
            ),
            (
                Box::new(|h| h[4].1 = "2147483648 INVITE".into()),
                "sip.malformed_header",
                "CSeq",
            ),
            (
                Box::new(|h| h[5].1 = "seventy".into()),
                "sip.malformed_header",
                "Max-Forwards",
            ),
            (
                Box::new(|h| h[5].1 = "300".into()),
                "sip.malformed_header",
                "Max-Forwards",
            ),
            (
                Box::new(|h| h[0].1 = "SIP/2.0/UDP h".into()),
                "sip.missing_branch",
                "",
            ),
            (
                Box::new(|h| h[1].1 = "\"unterminated <sip:a@b>".into()),
                "sip.malformed_header",
                "From",
            ),
        ];
        for (mutate, code, _name) in cases {
            let mut h = base();
            mutate(&mut h);
            assert_eq!(
                validate_headers(&req("INVITE"), &h).unwrap_err().code(),
                code
            );
        }
        let mut h = base();
        h[4].1 = "2147483647 INVITE".into();
        assert_eq!(validate_headers(&req("INVITE"), &h), Ok(()));
    }
}
