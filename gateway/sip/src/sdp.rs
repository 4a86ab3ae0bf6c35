//! SDP (RFC 8866, formerly RFC 4566) and offer/answer (RFC 3264) for the carrier leg.
//!
//! Scope: one audio stream of G.711 (PCMU / PCMA, RFC 3551 static payload types 0 and 8) plus
//! RFC 4733 telephone-event, over plain `RTP/AVP`. Everything else in an offer is parsed
//! tolerantly and answered with port 0.
//!
//! - [`SessionDescription::parse`]: bounded, tolerant parser (CRLF or LF, unknown lines ignored,
//!   unknown attributes kept), never panics on wire input.
//! - [`negotiate_answer`]: we are the answerer (carrier INVITE with an offer).
//! - [`build_offer`] / [`parse_answer`]: we are the offerer (our outgoing INVITE).
//!
//! Sans-IO: session id / version and addresses come from the caller ([`LocalMedia`]).

mod negotiate;
mod parse;

use std::fmt;
use std::net::IpAddr;

pub use negotiate::{
    build_offer, negotiate_answer, parse_answer, Answer, Codec, Hold, LocalMedia, Negotiated,
    OFFER_TELEPHONE_EVENT_PT,
};

/// Largest SDP body accepted. Carrier offers are well under 2 KiB; the bound stops a peer from
/// making us allocate or scan without limit.
pub const MAX_SDP_LEN: usize = 16 * 1024;
/// Most m-lines accepted in one description.
pub const MAX_MEDIA: usize = 16;
/// Most formats on one m-line.
pub const MAX_FORMATS: usize = 64;
/// Most attribute lines in one description (all levels together).
pub const MAX_ATTRIBUTES: usize = 512;

/// Errors from SDP parsing and offer/answer. Each has a stable [`code`](Self::code) and the SIP
/// status to reject the offer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("SDP is not valid UTF-8")]
    NotUtf8,
    #[error("SDP line {line}: {reason}")]
    InvalidLine { line: usize, reason: &'static str },
    #[error("SDP lacks a required `{field}=` line")]
    MissingField { field: &'static str },
    #[error("SDP has more than {max} {what}")]
    TooMany { what: &'static str, max: usize },
    #[error("no connection address for media stream {media_index}")]
    MissingConnection { media_index: usize },
    #[error("unsupported connection address `{address}`")]
    UnsupportedAddress { address: String },
    #[error("no acceptable media stream (need m=audio over RTP/AVP)")]
    NoAcceptableMedia,
    #[error("no common codec (we support G.711 PCMU/PCMA)")]
    NoCommonCodec,
    #[error("answer does not match our offer: {reason}")]
    AnswerMismatch { reason: &'static str },
    #[error("answer selected a codec we did not offer")]
    AnswerCodecNotOffered,
    #[error("local media has no codecs configured")]
    NoLocalCodecs,
}

impl SdpError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            SdpError::TooLarge { .. } => "sdp.too_large",
            SdpError::NotUtf8 => "sdp.not_utf8",
            SdpError::InvalidLine { .. } => "sdp.invalid_line",
            SdpError::MissingField { .. } => "sdp.missing_field",
            SdpError::TooMany { .. } => "sdp.too_many",
            SdpError::MissingConnection { .. } => "sdp.missing_connection",
            SdpError::UnsupportedAddress { .. } => "sdp.unsupported_address",
            SdpError::NoAcceptableMedia => "media.no_acceptable_stream",
            SdpError::NoCommonCodec => "media.no_common_codec",
            SdpError::AnswerMismatch { .. } => "sdp.answer_mismatch",
            SdpError::AnswerCodecNotOffered => "media.answer_codec_not_offered",
            SdpError::NoLocalCodecs => "media.no_local_codecs",
        }
    }

    /// SIP status for rejecting the request that carried the offer: 488 Not Acceptable Here
    /// when the SDP was understood but cannot be served (RFC 3261 §21.4.26), 400 when it
    /// could not be read at all, 500 for our own misconfiguration.
    pub fn sip_status(&self) -> u16 {
        match self {
            SdpError::TooLarge { .. }
            | SdpError::NotUtf8
            | SdpError::InvalidLine { .. }
            | SdpError::MissingField { .. }
            | SdpError::TooMany { .. }
            | SdpError::MissingConnection { .. } => 400,
            SdpError::NoLocalCodecs => 500,
            _ => 488,
        }
    }

    /// Warning code and text for a `Warning:` header (RFC 3261 §20.43), when one applies.
    pub fn warning_code(&self) -> Option<(u16, &'static str)> {
        match self {
            // 304: the media type (or every media type) offered is not available.
            SdpError::NoAcceptableMedia => Some((304, "Media type not available")),
            // 305 is the precise code for "none of the formats is understood"; the
            // text of 304 is what many carriers log, but the code must match its meaning.
            SdpError::NoCommonCodec | SdpError::AnswerCodecNotOffered => {
                Some((305, "Incompatible media format"))
            }
            SdpError::UnsupportedAddress { .. } => {
                Some((301, "Incompatible network address formats"))
            }
            SdpError::InvalidLine { .. }
            | SdpError::MissingField { .. }
            | SdpError::MissingConnection { .. } => Some((399, "Malformed session description")),
            _ => None,
        }
    }

    /// Full `Warning:` header value, e.g. `305 gw.example.net "Incompatible media format"`.
    pub fn warning(&self, agent: &str) -> Option<String> {
        self.warning_code()
            .map(|(code, text)| format!("{code} {agent} \"{text}\""))
    }
}

/// Media direction attribute (RFC 3264 §5.1, RFC 8866 §6.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Parse an attribute name; attribute names are case-sensitive per RFC 8866 §5.13 but we
    /// accept any case (tolerant reader).
    pub fn parse(name: &str) -> Option<Direction> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|d| d.as_str().eq_ignore_ascii_case(name))
    }

    /// The direction as seen from the other side: what an answerer writes for this offer
    /// (RFC 3264 §6.1: sendonly↔recvonly, sendrecv and inactive unchanged).
    pub fn reversed(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    pub fn from_flags(send: bool, recv: bool) -> Direction {
        match (send, recv) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `o=` line (RFC 8866 §5.2). Ids are kept as text: peers send values beyond u64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    pub session_id: String,
    pub session_version: String,
    pub net_type: String,
    pub addr_type: String,
    pub address: String,
}

/// `c=` line (RFC 8866 §5.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub net_type: String,
    pub addr_type: String,
    /// Address as written, without a multicast `/ttl` suffix.
    pub address: String,
}

impl Connection {
    pub fn new(ip: IpAddr) -> Connection {
        Connection {
            net_type: "IN".into(),
            addr_type: addr_type(ip).into(),
            address: ip.to_string(),
        }
    }

    /// The IP address for `IN IP4` / `IN IP6`; `None` for FQDNs or other network types.
    pub fn ip(&self) -> Option<IpAddr> {
        if !self.net_type.eq_ignore_ascii_case("IN") {
            return None;
        }
        let ip: IpAddr = self.address.parse().ok()?;
        let type_ok = match ip {
            IpAddr::V4(_) => self.addr_type.eq_ignore_ascii_case("IP4"),
            IpAddr::V6(_) => self.addr_type.eq_ignore_ascii_case("IP6"),
        };
        type_ok.then_some(ip)
    }

    /// RFC 2543 hold: `c=IN IP4 0.0.0.0` (RFC 3264 §8.4 keeps answerers compatible with it).
    pub fn is_null(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }
}

/// `a=rtpmap:<pt> <name>/<rate>[/<channels>]` (RFC 8866 §6.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub payload_type: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u16>,
}

/// `a=fmtp:<format> <params>` (RFC 8866 §6.15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    pub format: String,
    pub params: String,
}

/// `a=rtcp:<port> [IN IP4 <addr>]` (RFC 3605).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtcp {
    pub port: u16,
    pub connection: Option<Connection>,
}

/// Any other attribute, kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub value: Option<String>,
}

/// One `m=` section (RFC 8866 §5.14).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Media {
    /// `audio`, `video`, `image`, ...
    pub kind: String,
    pub port: u16,
    pub port_count: Option<u16>,
    pub proto: String,
    /// Formats as written (payload type numbers for RTP).
    pub formats: Vec<String>,
    pub connection: Option<Connection>,
    pub bandwidth: Vec<String>,
    pub rtpmaps: Vec<RtpMap>,
    pub fmtps: Vec<Fmtp>,
    pub ptime: Option<u32>,
    pub maxptime: Option<u32>,
    pub direction: Option<Direction>,
    pub rtcp: Option<Rtcp>,
    pub attributes: Vec<Attribute>,
}

impl Media {
    /// Formats that are valid RTP payload type numbers (0–127), in offer order.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats
            .iter()
            .filter_map(|f| f.parse::<u8>().ok())
            .filter(|pt| *pt <= 127)
    }

    pub fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|r| r.payload_type == pt)
    }

    pub fn fmtp(&self, format: &str) -> Option<&str> {
        self.fmtps
            .iter()
            .find(|f| f.format == format)
            .map(|f| f.params.as_str())
    }

    pub fn is_kind(&self, kind: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind)
    }
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    pub origin: Origin,
    pub session_name: String,
    pub connection: Option<Connection>,
    pub bandwidth: Vec<String>,
    /// First `t=` line (start, stop); `None` if absent or unreadable.
    pub timing: Option<(u64, u64)>,
    pub direction: Option<Direction>,
    pub attributes: Vec<Attribute>,
    pub media: Vec<Media>,
}

impl SessionDescription {
    /// Parse SDP text. See module docs for the tolerance rules.
    pub fn parse(input: &str) -> Result<SessionDescription, SdpError> {
        parse::parse(input)
    }

    /// Parse an SDP body from raw bytes (must be UTF-8; RFC 8866 §5 uses UTF-8 by default).
    pub fn parse_bytes(input: &[u8]) -> Result<SessionDescription, SdpError> {
        if input.len() > MAX_SDP_LEN {
            return Err(SdpError::TooLarge {
                len: input.len(),
                max: MAX_SDP_LEN,
            });
        }
        let s = std::str::from_utf8(input).map_err(|_| SdpError::NotUtf8)?;
        parse::parse(s)
    }

    /// Effective direction of media stream `index`: media level overrides session level,
    /// default sendrecv (RFC 3264 §5.1).
    pub fn media_direction(&self, index: usize) -> Direction {
        self.media
            .get(index)
            .and_then(|m| m.direction)
            .or(self.direction)
            .unwrap_or_default()
    }

    /// Effective connection of media stream `index` (media level overrides session level).
    pub fn media_connection(&self, index: usize) -> Option<&Connection> {
        self.media
            .get(index)
            .and_then(|m| m.connection.as_ref())
            .or(self.connection.as_ref())
    }

    /// Serialize with CRLF line ends, in RFC 8866 §5 field order.
    pub fn to_sdp_string(&self) -> String {
        self.to_string()
    }
}

impl std::str::FromStr for SessionDescription {
    type Err = SdpError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SessionDescription::parse(s)
    }
}

fn addr_type(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

fn write_connection(f: &mut fmt::Formatter<'_>, c: &Connection) -> fmt::Result {
    write!(f, "c={} {} {}\r\n", c.net_type, c.addr_type, c.address)
}

fn write_attr(f: &mut fmt::Formatter<'_>, a: &Attribute) -> fmt::Result {
    match &a.value {
        Some(v) => write!(f, "a={}:{}\r\n", a.name, v),
        None => write!(f, "a={}\r\n", a.name),
    }
}

impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        f.write_str("v=0\r\n")?;
        write!(
            f,
            "o={} {} {} {} {} {}\r\n",
            o.username, o.session_id, o.session_version, o.net_type, o.addr_type, o.address
        )?;
        // RFC 8866 §5.3: an empty session name is written as a single space.
        if self.session_name.is_empty() {
            f.write_str("s= \r\n")?;
        } else {
            write!(f, "s={}\r\n", self.session_name)?;
        }
        if let Some(c) = &self.connection {
            write_connection(f, c)?;
        }
        for b in &self.bandwidth {
            write!(f, "b={b}\r\n")?;
        }
        let (start, stop) = self.timing.unwrap_or((0, 0));
        write!(f, "t={start} {stop}\r\n")?;
        for a in &self.attributes {
            write_attr(f, a)?;
        }
        if let Some(d) = self.direction {
            write!(f, "a={d}\r\n")?;
        }
        for m in &self.media {
            write!(f, "m={} {}", m.kind, m.port)?;
            if let Some(n) = m.port_count {
                write!(f, "/{n}")?;
            }
            write!(f, " {}", m.proto)?;
            for fmt_ in &m.formats {
                write!(f, " {fmt_}")?;
            }
            f.write_str("\r\n")?;
            if let Some(c) = &m.connection {
                write_connection(f, c)?;
            }
            for b in &m.bandwidth {
                write!(f, "b={b}\r\n")?;
            }
            for r in &m.rtpmaps {
                write!(
                    f,
                    "a=rtpmap:{} {}/{}",
                    r.payload_type, r.encoding, r.clock_rate
                )?;
                if let Some(ch) = r.channels {
                    write!(f, "/{ch}")?;
                }
                f.write_str("\r\n")?;
            }
            for p in &m.fmtps {
                write!(f, "a=fmtp:{} {}\r\n", p.format, p.params)?;
            }
            if let Some(p) = m.ptime {
                write!(f, "a=ptime:{p}\r\n")?;
            }
            if let Some(p) = m.maxptime {
                write!(f, "a=maxptime:{p}\r\n")?;
            }
            if let Some(r) = &m.rtcp {
                write!(f, "a=rtcp:{}", r.port)?;
                if let Some(c) = &r.connection {
                    write!(f, " {} {} {}", c.net_type, c.addr_type, c.address)?;
                }
                f.write_str("\r\n")?;
            }
            for a in &m.attributes {
                write_attr(f, a)?;
            }
            if let Some(d) = m.direction {
                write!(f, "a={d}\r\n")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
