//! The parse pipeline: limits → split + normalise → validate → Content-Length → rsip.
//! Validation runs before the Content-Length check so the reported problem is the
//! most specific one (RFC 4475 multi01 is about duplicate headers, not its body).

use super::error::{context_from, ParseError, ParseErrorKind, RequestContext};
use super::normalize::{find_header_end, skip_leading_crlf, split_message, Split};
use super::validate::{parse_start_line, validate_headers, StartLine};
use super::Limits;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Datagram,
    Stream,
}

/// Parses one UDP datagram (RFC 3261 §18.3): Content-Length is optional; when present
/// it must not exceed the body (→ 400, RFC 4475 clerr) and bytes beyond it are
/// discarded (RFC 4475 dblreq).
pub fn parse_datagram(bytes: &[u8], limits: &Limits) -> Result<rsip::SipMessage, ParseError> {
    parse(bytes, limits, Mode::Datagram)
}

/// Parses one message cut by [`StreamFramer`](super::StreamFramer): Content-Length is
/// mandatory and must equal the body length exactly.
pub fn parse_stream_message(bytes: &[u8], limits: &Limits) -> Result<rsip::SipMessage, ParseError> {
    parse(bytes, limits, Mode::Stream)
}

fn is_request_line(line: &str) -> bool {
    !line
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
}

/// Best-effort context for a too-large message, looking only at the first
/// `max_message_bytes`.
fn context_of_prefix(bytes: &[u8], limits: &Limits) -> Option<RequestContext> {
    let prefix = bytes.get(..limits.max_message_bytes).unwrap_or(bytes);
    let end = find_header_end(prefix)?;
    let split = split_message(prefix.get(..end + 4)?).ok()?;
    context_from(
        is_request_line(&split.start_line),
        &split.headers,
        limits.max_via,
    )
}

/// Content-Length value: digits only (no sign, RFC 4475 ncl), leading zeros allowed.
fn content_length(split: &Split<'_>) -> Result<Option<usize>, ParseErrorKind> {
    let mut found = None;
    for (_, v) in split.headers.iter().filter(|(n, _)| n == "Content-Length") {
        if found.is_some() {
            // RFC 4475 mcl01: which one would frame the body? Refuse.
            return Err(ParseErrorKind::DuplicateHeader {
                name: "Content-Length",
            });
        }
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseErrorKind::BadContentLength {
                value: v.chars().take(32).collect(),
            });
        }
        let n = v.trim_start_matches('0');
        let n: usize = if n.is_empty() {
            0
        } else {
            n.parse().map_err(|_| ParseErrorKind::BadContentLength {
                value: v.chars().take(32).collect(),
            })?
        };
        found = Some(n);
    }
    Ok(found)
}

fn parse(bytes: &[u8], limits: &Limits, mode: Mode) -> Result<rsip::SipMessage, ParseError> {
    if bytes.len() > limits.max_message_bytes {
        return Err(ParseError::new(
            ParseErrorKind::TooLarge {
                size: bytes.len(),
                limit: limits.max_message_bytes,
            },
            context_of_prefix(bytes, limits),
        ));
    }
    let bytes = skip_leading_crlf(bytes);
    let split = split_message(bytes).map_err(|k| ParseError::new(k, None))?;
    let is_request = is_request_line(&split.start_line);
    let ctx = context_from(is_request, &split.headers, limits.max_via);
    let fail = |kind: ParseErrorKind| ParseError::new(kind, ctx.clone());

    if split.header_lines > limits.max_header_lines {
        return Err(fail(ParseErrorKind::TooManyHeaders {
            count: split.header_lines,
            limit: limits.max_header_lines,
        }));
    }
    let via_count = split.headers.iter().filter(|(n, _)| n == "Via").count();
    if via_count > limits.max_via {
        return Err(fail(ParseErrorKind::TooManyVias {
            count: via_count,
            limit: limits.max_via,
        }));
    }

    if let Some(problem) = split.problem.clone() {
        return Err(fail(problem));
    }
    let start = parse_start_line(&split.start_line).map_err(&fail)?;
    validate_headers(&start, &split.headers).map_err(&fail)?;

    let declared = content_length(&split).map_err(&fail)?;
    let body = match (mode, declared) {
        (Mode::Datagram, None) => split.body,
        (Mode::Datagram, Some(n)) => split.body.get(..n).ok_or_else(|| {
            fail(ParseErrorKind::ContentLengthMismatch {
                declared: n,
                actual: split.body.len(),
            })
        })?,
        (Mode::Stream, None) => return Err(fail(ParseErrorKind::MissingContentLength)),
        (Mode::Stream, Some(n)) if n != split.body.len() => {
            return Err(fail(ParseErrorKind::ContentLengthMismatch {
                declared: n,
                actual: split.body.len(),
            }))
        }
        (Mode::Stream, Some(_)) => split.body,
    };
    if body.len() > limits.max_body_bytes {
        return Err(fail(ParseErrorKind::BodyTooLarge {
            size: body.len(),
            limit: limits.max_body_bytes,
        }));
    }

    // Canonical bytes for rsip.
    let mut out = Vec::with_capacity(bytes.len() + 64);
    out.extend_from_slice(start.render().as_bytes());
    out.extend_from_slice(b"\r\n");
    for (n, v) in &split.headers {
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    let mut msg = rsip::SipMessage::try_from(out.as_slice()).map_err(|e| {
        let detail: String = e.to_string().chars().take(200).collect();
        fail(ParseErrorKind::Unparsable { detail })
    })?;
    if let (
        rsip::SipMessage::Request(req),
        StartLine::Request {
            user_semicolons_escaped: true,
            ..
        },
    ) = (&mut msg, &start)
    {
        restore_user_semicolons(&mut req.uri);
    }
    Ok(msg)
}

/// Undoes the `;` → `%3B` escaping of `validate::rsip_request_uri`. rsip puts the user
/// part in `auth` or, when it contains a '.', leaves it in the host string.
fn restore_user_semicolons(uri: &mut rsip::Uri) {
    if let Some(auth) = &mut uri.auth {
        auth.user = auth.user.replace("%3B", ";");
    }
    if let rsip::Host::Domain(d) = &uri.host_with_port.host {
        let s = d.to_string();
        if s.contains("%3B") {
            uri.host_with_port.host = rsip::Host::Domain(s.replace("%3B", ";").into());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rsip::prelude::{HeadersExt, ToTypedHeader, UntypedHeader};

    const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.example.com:5066;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@example.com>\r\n\
From: Alice <sip:alice@example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.example.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\r";

    fn lim() -> Limits {
        Limits::default()
    }

    fn err(s: &[u8]) -> ParseError {
        parse_datagram(s, &lim()).unwrap_err()
    }

    #[test]
    fn parses_plain_invite_both_modes() {
        let m = parse_datagram(INVITE.as_bytes(), &lim()).unwrap();
        assert_eq!(m.body(), b"v=0\r");
        assert!(parse_stream_message(INVITE.as_bytes(), &lim()).is_ok());
        // §18.3: extra datagram bytes beyond Content-Length are discarded.
        let mut more = INVITE.as_bytes().to_vec();
        more.extend_from_slice(b"\nJUNK");
        assert_eq!(parse_datagram(&more, &lim()).unwrap().body(), b"v=0\r");
        // ...but on a stream the framer must have cut exactly.
        assert_eq!(
            parse_stream_message(&more, &lim()).unwrap_err().code(),
            "sip.content_length_mismatch"
        );
    }

    #[test]
    fn content_length_rules() {
        let big = INVITE.replace("Content-Length: 4", "Content-Length: 9999");
        let e = err(big.as_bytes());
        assert_eq!(e.code(), "sip.content_length_mismatch");
        assert_eq!(e.bad_request_response().unwrap().status_code.code(), 400);
        for v in ["-999", "4x", "", "+4"] {
            let s = INVITE.replace("Content-Length: 4", &format!("Content-Length: {v}"));
            assert_eq!(err(s.as_bytes()).code(), "sip.bad_content_length", "{v:?}");
        }
        let huge = INVITE.replace(
            "Content-Length: 4",
            "Content-Length: 99999999999999999999999999",
        );
        assert_eq!(err(huge.as_bytes()).code(), "sip.bad_content_length");
        let two = INVITE.replace("Content-Length: 4", "Content-Length: 4\r\nl: 3");
        assert_eq!(err(two.as_bytes()).code(), "sip.duplicate_header");
        let none = INVITE.replace("Content-Length: 4\r\n", "");
        assert_eq!(
            parse_datagram(none.as_bytes(), &lim()).unwrap().body(),
            b"v=0\r"
        );
        assert_eq!(
            parse_stream_message(none.as_bytes(), &lim())
                .unwrap_err()
                .code(),
            "sip.missing_content_length"
        );
    }

    #[test]
    fn normaliser_output_reaches_rsip_typed() {
        let s = "OPTIONS sip:bob@example.com SIP/2.0\r\n\
v: SIP/2.0/UDP a.example.com;branch=z9hG4bKa, SIP / 2.0 / TCP b.example.com:5070 ;branch=z9hG4bKb\r\n\
f : <sip:alice@example.com>\r\n ;tag=9\r\n\
t: sip:bob@example.com\r\n\
i: cid\r\n\
CSeq: 1\r\n OPTIONS\r\n\
l: 0\r\n\r\n";
        let m = parse_datagram(s.as_bytes(), &lim()).unwrap();
        let rsip::SipMessage::Request(r) = m else {
            panic!("request")
        };
        assert_eq!(r.call_id_header().unwrap().value(), "cid");
        assert_eq!(
            r.from_header().unwrap().tag().unwrap().unwrap().value(),
            "9"
        );
        assert_eq!(r.cseq_header().unwrap().typed().unwrap().seq, 1);
        let vias: Vec<_> = r
            .headers
            .iter()
            .filter(|h| matches!(h, rsip::Header::Via(_)))
            .collect();
        assert_eq!(vias.len(), 2);
        assert_eq!(
            r.via_header()
                .unwrap()
                .typed()
                .unwrap()
                .branch()
                .unwrap()
                .to_string(),
            "z9hG4bKa"
        );
    }

    #[test]
    fn tel_request_uri_survives() {
        let s = INVITE.replace(
            "INVITE sip:bob@example.com",
            "INVITE tel:+1-212-555-0101;phone-context=example.com",
        );
        let m = parse_datagram(s.as_bytes(), &lim()).unwrap();
        let rsip::SipMessage::Request(r) = m else {
            panic!("request")
        };
        assert_eq!(
            super::super::headers::request_uri_string(&r),
            "tel:+1-212-555-0101;phone-context=example.com"
        );
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn responses_for_each_failure() {
        let cases: Vec<(String, &str, Option<(u16, &str)>)> = vec![
            (
                INVITE.replace("CSeq: 314159 INVITE\r\n", ""),
                "sip.missing_header",
                Some((400, "Missing CSeq")),
            ),
            (
                INVITE.replace("Call-ID: a84b4c76e66710@pc33.example.com\r\n", ""),
                "sip.missing_header",
                Some((400, "Missing Call-ID")),
            ),
            (
                INVITE.replace("CSeq: 314159 INVITE", "CSeq: 314159 BYE"),
                "sip.cseq_mismatch",
                Some((400, "CSeq Method Mismatch")),
            ),
            (
                INVITE.replace("SIP/2.0\r\n", "SIP/3.0\r\n"),
                "sip.unsupported_version",
                Some((505, "Version Not Supported")),
            ),
            (
                INVITE
                    .replace("INVITE sip:", "FOO sip:")
                    .replace("314159 INVITE", "314159 FOO"),
                "sip.unknown_method",
                Some((501, "Not Implemented")),
            ),
            (
                INVITE.replace(
                    "INVITE sip:bob@example.com",
                    "INVITE mailto:bob@example.com",
                ),
                "sip.unsupported_uri_scheme",
                Some((416, "Unsupported URI Scheme")),
            ),
            (
                INVITE.replace("Max-Forwards: 70", "Max-Forwards: seventy"),
                "sip.malformed_header",
                Some((400, "Malformed Max-Forwards")),
            ),
            (
                INVITE.replace(";branch=z9hG4bK776asdhds", ""),
                "sip.missing_branch",
                Some((400, "Missing Via Branch")),
            ),
            (
                INVITE.replace("Max-Forwards: 70", "Max-Forwards: 70\r\nbroken line"),
                "sip.malformed_header_line",
                Some((400, "Malformed Header Line")),
            ),
            (
                INVITE.replace("Max-Forwards: 70", "Max-Forwards: 70\r\nX: a\x00b"),
                "sip.invalid_character",
                Some((400, "Invalid Character")),
            ),
            (
                INVITE.replace(
                    "Via: SIP/2.0/UDP pc33.example.com:5066;branch=z9hG4bK776asdhds;rport\r\n",
                    "",
                ),
                "sip.missing_header",
                None,
            ),
            (
                INVITE
                    .replace("INVITE sip:bob@example.com SIP/2.0", "SIP/2.0 200 OK")
                    .replace("Max-Forwards: 70\r\n", "")
                    .replace("CSeq: 314159 INVITE", "CSeq: 3141592653 INVITE"),
                "sip.malformed_header",
                None,
            ),
        ];
        for (msg, code, resp) in cases {
            let e = err(msg.as_bytes());
            assert_eq!(e.code(), code, "{msg}");
            let r = e.bad_request_response();
            match resp {
                None => assert!(r.is_none(), "{code}"),
                Some((status, reason)) => {
                    let r = r.unwrap();
                    assert_eq!(r.status_code.code(), status);
                    assert!(
                        r.to_string()
                            .starts_with(&format!("SIP/2.0 {status} {reason}\r\n")),
                        "{r}"
                    );
                    // The answer must be addressable and parseable.
                    assert!(r
                        .to_string()
                        .contains("Via: SIP/2.0/UDP pc33.example.com:5066;"));
                    assert!(rsip::SipMessage::try_from(r.to_string()).is_ok());
                }
            }
        }
    }

    #[test]
    fn limits() {
        let l = Limits {
            max_message_bytes: 400,
            ..Limits::default()
        };
        let big = INVITE.replace(
            "Content-Length: 4\r\n\r\nv=0\r",
            &format!("Content-Length: 400\r\n\r\n{}", "a".repeat(400)),
        );
        let e = parse_datagram(big.as_bytes(), &l).unwrap_err();
        assert_eq!(e.code(), "sip.too_large");
        assert_eq!(e.bad_request_response().unwrap().status_code.code(), 513);
        let l = Limits {
            max_body_bytes: 3,
            ..Limits::default()
        };
        assert_eq!(
            parse_datagram(INVITE.as_bytes(), &l).unwrap_err().code(),
            "sip.body_too_large"
        );
        let l = Limits {
            max_header_lines: 5,
            ..Limits::default()
        };
        assert_eq!(
            parse_datagram(INVITE.as_bytes(), &l).unwrap_err().code(),
            "sip.too_many_headers"
        );
        let vias = format!(
            "Via: {}\r\n",
            vec!["SIP/2.0/UDP x;branch=z9hG4bKx"; 1000].join(",")
        );
        let s = INVITE.replace(
            "Max-Forwards: 70\r\n",
            &format!("Max-Forwards: 70\r\n{vias}"),
        );
        let e = err(s.as_bytes());
        assert_eq!(e.code(), "sip.too_many_vias");
        assert!(e.bad_request_response().is_none(), "no amplification");
    }

    #[test]
    fn garbage_and_truncation() {
        assert_eq!(err(b"").code(), "sip.empty");
        assert_eq!(err(b"\r\n\r\n").code(), "sip.empty");
        for cut in [10, 50, 120, 300] {
            let e = err(&INVITE.as_bytes()[..cut]);
            assert_eq!(e.code(), "sip.truncated");
            assert!(e.bad_request_response().is_none());
        }
        assert!(
            parse_datagram(&[0xff, 0xfe, 0, 1, 2, b'\r', b'\n', b'\r', b'\n'], &lim()).is_err()
        );
        let mut nul = INVITE.as_bytes().to_vec();
        nul[3] = 0;
        assert!(parse_datagram(&nul, &lim()).is_err());
    }
}
