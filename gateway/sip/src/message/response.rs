//! Building responses (RFC 3261 §8.2.6) and choosing where to send them (§18.2.2,
//! RFC 3581).

use std::net::{IpAddr, SocketAddr};

use rsip::headers::UntypedHeader;

use super::headers::{name_is, name_value, parse_name_addr, ViaInfo};

/// Methods listed in `Allow` of our 501 answers (§21.5.2; RFC 4475 intmeth: endpoints
/// list the methods they understand).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK";

/// Default reason phrases (§21) for the codes we send.
pub fn default_reason(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        _ => match status / 100 {
            1 => "Progress",
            2 => "Success",
            3 => "Redirection",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    }
}

/// Appends `;tag=` to a To value that has none (§8.2.6.2). Parameters after an
/// addr-spec without `<>` are header parameters (§20.10), so appending is right in
/// both forms.
pub(crate) fn add_to_tag(to: &str, tag: &str) -> String {
    let has_tag = parse_name_addr(to, "To")
        .map(|na| na.params.iter().any(|(n, _)| n.eq_ignore_ascii_case("tag")))
        .unwrap_or(false);
    if has_tag {
        to.to_string()
    } else {
        format!("{to};tag={tag}")
    }
}

/// Methods whose 1xx (except 100) / 2xx responses create a dialog and so carry the
/// request's Record-Route (§12.1.1; RFC 6665 SUBSCRIBE, RFC 3515 REFER).
fn creates_dialog(method: &rsip::Method) -> bool {
    matches!(
        method,
        rsip::Method::Invite | rsip::Method::Subscribe | rsip::Method::Refer
    )
}

/// Builds a response to `req` per §8.2.6: all Vias in order, From, To (with `to_tag`
/// added when given and the To has none), Call-ID, CSeq, Record-Route for 101..=299
/// responses to dialog-creating requests, `Content-Length: 0`.
///
/// The status is `rsip::StatusCode::Other(status, reason)` so the reason phrase is sent
/// as given (rsip would print well-known codes as e.g. `BadRequest`); compare with
/// `.code()`.
pub fn build_response(
    req: &rsip::Request,
    status: u16,
    reason: Option<&str>,
    to_tag: Option<&str>,
) -> rsip::Response {
    let reason = reason.unwrap_or_else(|| default_reason(status)).to_string();
    let copy_rr = (101..300).contains(&status) && creates_dialog(&req.method);
    let mut headers = rsip::Headers::default();
    // Two passes keep the order of §8.2.6.2 examples while copying Vias in wire order.
    for h in req.headers.iter() {
        let (n, v) = name_value(h);
        if name_is(&n, "Via") {
            // Tolerate `Header::Other("v", ..)` leftovers: re-emit as typed Via.
            for elem in super::headers::split_top_level(&v, ',') {
                headers.push(rsip::Header::Via(rsip::headers::Via::new(elem.trim())));
            }
        }
    }
    for h in req.headers.iter() {
        let (n, v) = name_value(h);
        if name_is(&n, "From") {
            headers.push(rsip::Header::From(rsip::headers::From::new(v)));
        } else if name_is(&n, "To") {
            let v = match to_tag {
                Some(tag) => add_to_tag(&v, tag),
                None => v,
            };
            headers.push(rsip::Header::To(rsip::headers::To::new(v)));
        } else if name_is(&n, "Call-ID") {
            headers.push(rsip::Header::CallId(rsip::headers::CallId::new(v)));
        } else if name_is(&n, "CSeq") {
            headers.push(rsip::Header::CSeq(rsip::headers::CSeq::new(v)));
        } else if copy_rr && name_is(&n, "Record-Route") {
            headers.push(rsip::Header::RecordRoute(rsip::headers::RecordRoute::new(
                v,
            )));
        }
    }
    headers.push(rsip::Header::ContentLength(
        rsip::headers::ContentLength::new("0"),
    ));
    rsip::Response {
        status_code: rsip::StatusCode::Other(status, reason),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// Adds a header before `Content-Length` (which we keep last for readability).
pub fn with_header(mut resp: rsip::Response, header: rsip::Header) -> rsip::Response {
    let pos = resp
        .headers
        .iter()
        .position(|h| matches!(h, rsip::Header::ContentLength(_)));
    let mut list: Vec<rsip::Header> = std::mem::take(&mut resp.headers).into();
    match pos {
        Some(i) => list.insert(i, header),
        None => list.push(header),
    }
    resp.headers = list.into();
    resp
}

/// Sets the body with its Content-Type and a matching Content-Length (§20.14, §20.15).
pub fn with_body(mut resp: rsip::Response, content_type: &str, body: Vec<u8>) -> rsip::Response {
    resp.headers.retain(|h| {
        !matches!(
            h,
            rsip::Header::ContentLength(_) | rsip::Header::ContentType(_)
        )
    });
    resp.headers
        .push(rsip::Header::ContentType(rsip::headers::ContentType::new(
            content_type,
        )));
    resp.headers.push(rsip::Header::ContentLength(
        rsip::headers::ContentLength::new(body.len().to_string()),
    ));
    resp.body = body;
    resp
}

/// How the request arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseTransport {
    /// UDP: the address is computed from the Via (§18.2.2 + RFC 3581).
    Unreliable,
    /// TCP/TLS/WS: §18.2.2 says send on the connection the request came in on, which
    /// is identified by its remote address.
    Reliable,
}

/// Where to send a response (§18.2.2, RFC 3581 §4).
///
/// For UDP: IP = `received` if it parses (the server transport stamps it when the
/// sent-by differs from the source, §18.2.1), else the packet's source IP; port = the
/// source port when `rport` is present (RFC 3581: symmetric response routing through
/// NATs), else the sent-by port, else 5060. `maddr` (multicast) is not supported: we
/// answer unicast.
/// For reliable transports: the connection's remote address.
pub fn response_destination(
    top_via: &ViaInfo,
    source: SocketAddr,
    transport: ResponseTransport,
) -> SocketAddr {
    if transport == ResponseTransport::Reliable {
        return source;
    }
    let ip = top_via
        .received()
        .and_then(|r| r.parse::<IpAddr>().ok())
        .unwrap_or_else(|| source.ip());
    let port = if top_via.rport().is_some() {
        source.port()
    } else {
        top_via.port.unwrap_or(5060)
    };
    SocketAddr::new(ip, port)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::message::headers::parse_via;
    use crate::message::{parse_datagram, Limits};
    use rsip::message::HasHeaders;

    fn req(s: &str) -> rsip::Request {
        match parse_datagram(s.as_bytes(), &Limits::default()).unwrap() {
            rsip::SipMessage::Request(r) => r,
            rsip::SipMessage::Response(_) => panic!("expected request"),
        }
    }

    const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bK1, SIP/2.0/UDP pc33.example.com;branch=z9hG4bK0\r\n\
Record-Route: <sip:p1.example.com;lr>\r\n\
Max-Forwards: 69\r\n\
To: Bob <sip:bob@example.com>\r\n\
From: Alice <sip:alice@example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.example.com>\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn ringing_copies_everything_and_adds_tag() {
        let r = build_response(&req(INVITE), 180, None, Some("abc"));
        let s = r.to_string();
        assert!(s.starts_with("SIP/2.0 180 Ringing\r\n"), "{s}");
        let via1 = s
            .find("Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bK1")
            .unwrap();
        let via2 = s
            .find("Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK0")
            .unwrap();
        assert!(via1 < via2);
        assert!(s.contains("To: Bob <sip:bob@example.com>;tag=abc\r\n"));
        assert!(s.contains("From: Alice <sip:alice@example.com>;tag=1928301774\r\n"));
        assert!(s.contains("Call-ID: a84b4c76e66710\r\n"));
        assert!(s.contains("CSeq: 314159 INVITE\r\n"));
        assert!(s.contains("Record-Route: <sip:p1.example.com;lr>\r\n"));
        assert!(s.ends_with("Content-Length: 0\r\n\r\n"));
        // Our own output goes through our own parser.
        let back = parse_datagram(s.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(
            crate::message::headers::to_tag(back.headers())
                .unwrap()
                .as_deref(),
            Some("abc")
        );
    }

    #[test]
    fn no_record_route_on_errors_or_non_dialog_methods_and_tag_not_doubled() {
        let r = build_response(&req(INVITE), 486, None, Some("x"));
        assert!(!r.to_string().contains("Record-Route"));
        let tagged = INVITE.replace(
            "To: Bob <sip:bob@example.com>",
            "To: Bob <sip:bob@example.com>;tag=old",
        );
        let r = build_response(&req(&tagged), 200, Some("Fine"), Some("new"));
        let s = r.to_string();
        assert!(s.starts_with("SIP/2.0 200 Fine\r\n"));
        assert!(s.contains(";tag=old\r\n") && !s.contains("tag=new"));
        let opt = INVITE
            .replace("INVITE sip", "OPTIONS sip")
            .replace("314159 INVITE", "314159 OPTIONS");
        assert!(!build_response(&req(&opt), 200, None, None)
            .to_string()
            .contains("Record-Route"));
    }

    #[test]
    fn body_and_header_helpers() {
        let r = build_response(&req(INVITE), 200, None, Some("t"));
        let r = with_header(r, rsip::Header::Other("Allow".into(), ALLOW.into()));
        let r = with_body(r, "application/sdp", b"v=0\r\n".to_vec());
        let s = r.to_string();
        assert!(s.contains("Allow: INVITE"));
        assert!(s.contains("Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n"));
        assert_eq!(s.matches("Content-Length").count(), 1);
    }

    #[test]
    fn destinations() {
        let src: SocketAddr = "203.0.113.7:40000".parse().unwrap();
        let d = |via: &str, t| response_destination(&parse_via(via).unwrap(), src, t);
        use ResponseTransport::*;
        assert_eq!(
            d("SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK1", Unreliable),
            "203.0.113.7:5062".parse().unwrap()
        );
        assert_eq!(
            d("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1", Unreliable),
            "203.0.113.7:5060".parse().unwrap()
        );
        assert_eq!(
            d(
                "SIP/2.0/UDP 10.0.0.1:5062;rport;branch=z9hG4bK1",
                Unreliable
            ),
            src
        );
        assert_eq!(
            d(
                "SIP/2.0/UDP h.example.com:5062;received=198.51.100.9;branch=z9hG4bK1",
                Unreliable
            ),
            "198.51.100.9:5062".parse().unwrap()
        );
        assert_eq!(
            d(
                "SIP/2.0/UDP [2001:db8::1]:5070;received=2001:db8::20;rport=1;branch=z9hG4bK1",
                Unreliable
            ),
            "[2001:db8::20]:40000".parse().unwrap()
        );
        assert_eq!(
            d("SIP/2.0/TCP 10.0.0.1:5062;branch=z9hG4bK1", Reliable),
            src
        );
    }
}
