//! Parse errors, their stable codes, and the stateless error response they allow.

use super::headers;
use rsip::headers::UntypedHeader;

/// What went wrong. Every variant has a stable [`code`](ParseErrorKind::code) and the
/// SIP status it maps to (when the request can be answered at all).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("empty message")]
    Empty,
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("body of {size} bytes exceeds the limit of {limit}")]
    BodyTooLarge { size: usize, limit: usize },
    #[error("{count} header lines exceed the limit of {limit}")]
    TooManyHeaders { count: usize, limit: usize },
    #[error("{count} Via values exceed the limit of {limit}")]
    TooManyVias { count: usize, limit: usize },
    #[error("no empty line ends the header section (truncated message)")]
    Truncated,
    #[error("invalid character in line {line}")]
    InvalidCharacter { line: usize },
    #[error("malformed start line: {reason}")]
    MalformedStartLine { reason: &'static str },
    #[error("unknown method {method}")]
    UnknownMethod { method: String },
    #[error("unsupported SIP version {version}")]
    UnsupportedVersion { version: String },
    #[error("unsupported Request-URI scheme {scheme}")]
    UnsupportedUriScheme { scheme: String },
    #[error("malformed Request-URI: {reason}")]
    BadRequestUri { reason: &'static str },
    #[error("IPv6 Request-URI hosts are not supported")]
    Ipv6Unsupported,
    #[error("malformed header line {line}")]
    MalformedHeaderLine { line: usize },
    #[error("malformed {name} header: {reason}")]
    MalformedHeader { name: String, reason: String },
    #[error("missing {name} header")]
    MissingHeader { name: &'static str },
    #[error("more than one {name} header")]
    DuplicateHeader { name: &'static str },
    #[error("CSeq method {cseq_method} does not match request method {method}")]
    CSeqMethodMismatch { method: String, cseq_method: String },
    #[error("top Via has no branch parameter")]
    MissingBranch,
    #[error("missing Content-Length on a stream transport")]
    MissingContentLength,
    #[error("bad Content-Length {value:?}")]
    BadContentLength { value: String },
    #[error("Content-Length {declared} does not match the {actual} body bytes")]
    ContentLengthMismatch { declared: usize, actual: usize },
    #[error("status code out of range 100..=699")]
    BadStatusCode,
    #[error("rejected by the SIP parser: {detail}")]
    Unparsable { detail: String },
}

impl ParseErrorKind {
    /// Stable machine-readable code (metrics labels, logs, API).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "sip.empty",
            Self::TooLarge { .. } => "sip.too_large",
            Self::BodyTooLarge { .. } => "sip.body_too_large",
            Self::TooManyHeaders { .. } => "sip.too_many_headers",
            Self::TooManyVias { .. } => "sip.too_many_vias",
            Self::Truncated => "sip.truncated",
            Self::InvalidCharacter { .. } => "sip.invalid_character",
            Self::MalformedStartLine { .. } => "sip.bad_start_line",
            Self::UnknownMethod { .. } => "sip.unknown_method",
            Self::UnsupportedVersion { .. } => "sip.unsupported_version",
            Self::UnsupportedUriScheme { .. } => "sip.unsupported_uri_scheme",
            Self::BadRequestUri { .. } => "sip.bad_request_uri",
            Self::Ipv6Unsupported => "sip.ipv6_unsupported",
            Self::MalformedHeaderLine { .. } => "sip.malformed_header_line",
            Self::MalformedHeader { .. } => "sip.malformed_header",
            Self::MissingHeader { .. } => "sip.missing_header",
            Self::DuplicateHeader { .. } => "sip.duplicate_header",
            Self::CSeqMethodMismatch { .. } => "sip.cseq_mismatch",
            Self::MissingBranch => "sip.missing_branch",
            Self::MissingContentLength => "sip.missing_content_length",
            Self::BadContentLength { .. } => "sip.bad_content_length",
            Self::ContentLengthMismatch { .. } => "sip.content_length_mismatch",
            Self::BadStatusCode => "sip.bad_status_code",
            Self::Unparsable { .. } => "sip.unparsable",
        }
    }

    /// Status and reason phrase of the answer, `None` when the message must be dropped
    /// even if it is an addressable request.
    pub fn status(&self) -> Option<(u16, String)> {
        let bad = |r: String| Some((400, r));
        match self {
            // Nothing to answer, or the peer is not speaking SIP.
            Self::Empty | Self::Truncated => None,
            // Answering would copy every one of the Vias back (§8.2.6.2): an
            // amplification vector. Drop.
            Self::TooManyVias { .. } => None,
            // §21.5.14 513: "message length exceeded the capabilities".
            Self::TooLarge { .. } | Self::BodyTooLarge { .. } | Self::TooManyHeaders { .. } => {
                Some((513, "Message Too Large".into()))
            }
            // §8.2.1 / §21.5.2 501 for a method the UAS does not implement.
            Self::UnknownMethod { .. } => Some((501, "Not Implemented".into())),
            // §8.2.2.1 / §21.5.6 505.
            Self::UnsupportedVersion { .. } => Some((505, "Version Not Supported".into())),
            // §8.2.2.1: 416 for a Request-URI scheme we do not understand.
            Self::UnsupportedUriScheme { .. } => Some((416, "Unsupported URI Scheme".into())),
            Self::InvalidCharacter { .. } => bad("Invalid Character".into()),
            Self::MalformedStartLine { .. } => bad("Malformed Request Line".into()),
            Self::BadRequestUri { .. } => bad("Bad Request-URI".into()),
            Self::Ipv6Unsupported => bad("IPv6 Request-URI Not Supported".into()),
            Self::MalformedHeaderLine { .. } => bad("Malformed Header Line".into()),
            Self::MalformedHeader { name, .. } => bad(format!("Malformed {name}")),
            Self::MissingHeader { name } => bad(format!("Missing {name}")),
            Self::DuplicateHeader { name } => bad(format!("Multiple {name}")),
            Self::CSeqMethodMismatch { .. } => bad("CSeq Method Mismatch".into()),
            Self::MissingBranch => bad("Missing Via Branch".into()),
            Self::MissingContentLength => bad("Missing Content-Length".into()),
            Self::BadContentLength { .. } | Self::ContentLengthMismatch { .. } => {
                bad("Bad Content-Length".into())
            }
            Self::BadStatusCode => None,
            Self::Unparsable { .. } => bad("Bad Request".into()),
        }
    }
}

/// What is needed to address a stateless answer to a broken request (§8.2.6.2,
/// §18.2.2): the Vias (already split and canonical) plus From/To/Call-ID/CSeq as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestContext {
    pub vias: Vec<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub call_id: Option<String>,
    pub cseq: Option<String>,
}

/// A message that could not be accepted. [`kind`](ParseError::kind) says why;
/// [`bad_request_response`](ParseError::bad_request_response) builds the answer when
/// the input was an addressable request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct ParseError {
    kind: ParseErrorKind,
    context: Option<Box<RequestContext>>,
}

impl ParseError {
    pub(crate) fn new(kind: ParseErrorKind, context: Option<RequestContext>) -> Self {
        Self {
            kind,
            context: context.map(Box::new),
        }
    }

    pub fn kind(&self) -> &ParseErrorKind {
        &self.kind
    }

    /// Stable code of the variant, e.g. `sip.missing_header`.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// Whether a response can be addressed (a request with a parsable top Via).
    pub fn is_answerable(&self) -> bool {
        self.context.is_some() && self.kind.status().is_some()
    }

    /// The stateless answer (400 with a reason naming the problem, 416, 501, 505 or 513)
    /// when the input was a request with a usable top Via; `None` means drop and count.
    /// No To-tag is added: tags come from the caller's injected randomness
    /// (DESIGN.md, determinism); see [`bad_request_response_with_to_tag`].
    ///
    /// The status is an `rsip::StatusCode::Other(code, reason)` so the reason phrase
    /// survives; compare with `.code()`.
    ///
    /// [`bad_request_response_with_to_tag`]: ParseError::bad_request_response_with_to_tag
    pub fn bad_request_response(&self) -> Option<rsip::Response> {
        self.bad_request_response_with_to_tag(None)
    }

    /// As [`bad_request_response`](ParseError::bad_request_response), adding `tag=` to a
    /// To that has none (§8.2.6.2).
    pub fn bad_request_response_with_to_tag(&self, to_tag: Option<&str>) -> Option<rsip::Response> {
        let ctx = self.context.as_deref()?;
        let (code, reason) = self.kind.status()?;
        let mut h = rsip::Headers::default();
        for v in &ctx.vias {
            h.push(rsip::Header::Via(rsip::headers::Via::new(v.clone())));
        }
        if let Some(f) = &ctx.from {
            h.push(rsip::Header::From(rsip::headers::From::new(f.clone())));
        }
        if let Some(t) = &ctx.to {
            let t = match to_tag {
                Some(tag) => super::response::add_to_tag(t, tag),
                None => t.clone(),
            };
            h.push(rsip::Header::To(rsip::headers::To::new(t)));
        }
        if let Some(c) = &ctx.call_id {
            h.push(rsip::Header::CallId(rsip::headers::CallId::new(c.clone())));
        }
        if let Some(c) = &ctx.cseq {
            h.push(rsip::Header::CSeq(rsip::headers::CSeq::new(c.clone())));
        }
        if matches!(self.kind, ParseErrorKind::UnknownMethod { .. }) {
            // §21.5.2: a 501 should list what we do implement.
            h.push(rsip::Header::Allow(rsip::headers::Allow::new(
                super::response::ALLOW.to_string(),
            )));
        }
        h.push(rsip::Header::ContentLength(
            rsip::headers::ContentLength::new("0"),
        ));
        Some(rsip::Response {
            status_code: rsip::StatusCode::Other(code, reason),
            version: rsip::Version::V2,
            headers: h,
            body: Vec::new(),
        })
    }
}

/// Builds the response context from canonical header lines when the start line is a
/// request and the top Via parses.
pub(crate) fn context_from(
    is_request: bool,
    headers_list: &[(String, String)],
    max_via: usize,
) -> Option<RequestContext> {
    if !is_request {
        return None;
    }
    let first = |name: &str| {
        headers_list
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let vias: Vec<String> = headers_list
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("Via"))
        .map(|(_, v)| v.clone())
        .collect();
    if vias.len() > max_via {
        return None;
    }
    let top = headers::parse_via(vias.first()?).ok()?;
    // The top Via must be usable to send anything back (§18.2.2).
    let mut vias = vias;
    if let Some(v) = vias.first_mut() {
        *v = top.to_canonical();
    }
    Some(RequestContext {
        vias,
        from: first("From"),
        to: first("To"),
        call_id: first("Call-ID"),
        cseq: first("CSeq"),
    })
}
