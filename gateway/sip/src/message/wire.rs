//! Byte-exact serialisation of rsip messages.
//!
//! rsip's `Display` (and its `Into<Vec<u8>>`, built on it) writes the body through
//! `String::from_utf8_lossy`, so a binary body (RFC 4475 mpart01, S/MIME, images) is
//! corrupted and no longer matches its Content-Length. It also prints well-known status
//! codes with the enum name as reason phrase (`183 SessionProgress`) and a `tel:`
//! Request-URI as `tel://` (see `validate.rs`). Send what these functions return.

use super::headers::request_uri_string;
use super::response::default_reason;

/// The request on the wire: start line, headers, blank line, body bytes untouched.
pub fn request_to_bytes(req: &rsip::Request) -> Vec<u8> {
    let head = format!(
        "{} {} {}\r\n{}\r\n",
        req.method,
        request_uri_string(req),
        req.version,
        req.headers
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(&req.body);
    out
}

/// The response on the wire, with a real reason phrase (RFC 3261 §21) for well-known
/// codes and the given one for `StatusCode::Other`.
pub fn response_to_bytes(resp: &rsip::Response) -> Vec<u8> {
    let reason = match &resp.status_code {
        rsip::StatusCode::Other(_, reason) => reason.clone(),
        other => default_reason(other.code()).to_string(),
    };
    let head = format!(
        "{} {} {}\r\n{}\r\n",
        resp.version,
        resp.status_code.code(),
        reason,
        resp.headers
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(&resp.body);
    out
}

pub fn to_bytes(msg: &rsip::SipMessage) -> Vec<u8> {
    match msg {
        rsip::SipMessage::Request(r) => request_to_bytes(r),
        rsip::SipMessage::Response(r) => response_to_bytes(r),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::message::{parse_datagram, Limits};
    use rsip::message::HasHeaders;

    #[test]
    fn binary_body_and_reason_survive() {
        let mut raw = b"SIP/2.0 183 Session Progress\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Type: application/octet-stream\r\nContent-Length: 4\r\n\r\n".to_vec();
        raw.extend_from_slice(&[0xff, 0x00, 0xc3, 0x28]);
        let m = parse_datagram(&raw, &Limits::default()).unwrap();
        let out = to_bytes(&m);
        assert!(out.starts_with(b"SIP/2.0 183 Session Progress\r\n"));
        assert!(out.ends_with(&[0xff, 0x00, 0xc3, 0x28]));
        assert_eq!(parse_datagram(&out, &Limits::default()).unwrap(), m);
        // What rsip alone would have sent:
        assert_ne!(m.to_string().len(), out.len());
    }

    #[test]
    fn tel_uri_goes_out_as_tel() {
        let raw = b"INVITE tel:+15550100 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <tel:+15550100>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let m = parse_datagram(raw, &Limits::default()).unwrap();
        let out = to_bytes(&m);
        assert!(out.starts_with(b"INVITE tel:+15550100 SIP/2.0\r\n"));
        assert_eq!(parse_datagram(&out, &Limits::default()).unwrap(), m);
        assert_eq!(crate::message::headers::to_tag(m.headers()), Ok(None));
    }
}
