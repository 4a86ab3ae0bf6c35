//! Offer/answer (RFC 3264) for one G.711 audio stream plus RFC 4733 telephone-event.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use super::{Connection, Direction, Fmtp, Media, Origin, RtpMap, SdpError, SessionDescription};

/// Payload type we use for telephone-event in our own offers (the de-facto value carriers and
/// most UAs use; any 96–127 would do, RFC 3551 §3).
pub const OFFER_TELEPHONE_EVENT_PT: u8 = 101;
/// Events we offer: DTMF 0–9 * # A–D and flash (RFC 4733 §3.2 `0-16`).
const OFFER_TELEPHONE_EVENT_FMTP: &str = "0-16";
/// Packetization default for G.711 when the peer says nothing (RFC 3551 §4.5: 20 ms).
const DEFAULT_PTIME_MS: u32 = 20;

/// Codecs we can carry on the phone leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, static payload type 0 (RFC 3551 §6).
    Pcmu,
    /// G.711 A-law, static payload type 8 (RFC 3551 §6).
    Pcma,
}

impl Codec {
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    pub fn static_payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    pub fn clock_rate(self) -> u32 {
        8000
    }

    /// Codec a payload type stands for in `m`: its rtpmap if present (names are
    /// case-insensitive, RFC 4855 §3), else the RFC 3551 static table.
    fn identify(m: &Media, pt: u8) -> Option<Codec> {
        match m.rtpmap(pt) {
            Some(r) => Codec::from_rtpmap(r),
            None => match pt {
                0 => Some(Codec::Pcmu),
                8 => Some(Codec::Pcma),
                _ => None,
            },
        }
    }

    fn from_rtpmap(r: &RtpMap) -> Option<Codec> {
        if r.clock_rate != 8000 || r.channels.is_some_and(|c| c != 1) {
            return None;
        }
        [Codec::Pcmu, Codec::Pcma]
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(&r.encoding))
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Our side of the media session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// Address we receive RTP on (written in `o=` and `c=`).
    pub address: IpAddr,
    pub rtp_port: u16,
    /// Supported codecs in our preference order (used for offers; answers follow the
    /// offerer's order, see [`negotiate_answer`]).
    pub codecs: Vec<Codec>,
    /// Whether we do RFC 4733 telephone-event.
    pub telephone_event: bool,
    pub session_id: u64,
    /// Must increase with every new offer/answer in the session (RFC 3264 §8).
    pub session_version: u64,
    /// `o=` username; `-` when empty (RFC 8866 §5.2).
    pub username: String,
}

/// Why the peer's media counts as on hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// `a=sendonly` (RFC 3264 §8.4).
    SendOnly,
    /// `a=inactive` (RFC 3264 §8.4).
    Inactive,
    /// RFC 2543 style `c=IN IP4 0.0.0.0` (RFC 3264 §8.4 compatibility).
    NullConnection,
}

/// Media parameters agreed by an offer/answer exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Index of the accepted m-line.
    pub media_index: usize,
    /// Where to send RTP (an unspecified IP when the peer holds RFC 2543 style).
    pub remote_rtp: SocketAddr,
    /// Where to send RTCP: `a=rtcp` (RFC 3605) or RTP port + 1.
    pub remote_rtcp: Option<SocketAddr>,
    /// Payload type to send with, and the codec.
    pub codec: (u8, Codec),
    pub telephone_event_pt: Option<u8>,
    /// Our direction: whether we may send and whether we should expect to receive.
    pub direction: Direction,
    pub ptime_ms: u32,
    /// The peer put the call on hold.
    pub hold: Option<Hold>,
}

/// Result of [`negotiate_answer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The answer SDP, CRLF line ends.
    pub sdp: String,
    pub media_index: usize,
    pub remote_rtp: SocketAddr,
    pub remote_rtcp: Option<SocketAddr>,
    /// (payload type, codec); the payload type is the offerer's (RFC 3264 §6.1).
    pub codec: (u8, Codec),
    pub telephone_event_pt: Option<u8>,
    /// The direction we wrote in the answer (RFC 3264 §6.1 mapping of the offer's).
    pub direction: Direction,
    pub ptime_ms: u32,
    pub hold: Option<Hold>,
}

impl Answer {
    /// The negotiated media parameters without the SDP text.
    pub fn negotiated(&self) -> Negotiated {
        Negotiated {
            media_index: self.media_index,
            remote_rtp: self.remote_rtp,
            remote_rtcp: self.remote_rtcp,
            codec: self.codec,
            telephone_event_pt: self.telephone_event_pt,
            direction: self.direction,
            ptime_ms: self.ptime_ms,
            hold: self.hold,
        }
    }
}

/// True for the one transport we serve: plain RTP/AVP (RFC 3551). `RTP/SAVP` (SRTP) and
/// `RTP/AVPF` are answered with port 0.
fn is_plain_rtp(m: &Media) -> bool {
    m.proto.eq_ignore_ascii_case("RTP/AVP")
}

/// First telephone-event/8000 payload type in `m` (RFC 4733 §7.1.1). The rate must match the
/// audio codec's clock, hence 8000 only.
fn telephone_event(m: &Media) -> Option<u8> {
    m.payload_types().find(|&pt| {
        m.rtpmap(pt).is_some_and(|r| {
            r.encoding.eq_ignore_ascii_case("telephone-event") && r.clock_rate == 8000
        })
    })
}

/// Packetization time to use: the peer's `a=ptime` when it is a sane G.711 value, bounded by
/// `a=maxptime` (RFC 3264 §6.1 / RFC 8866 §6.4, §6.5), else 20 ms.
fn choose_ptime(m: &Media) -> u32 {
    let sane = |p: u32| (10..=120).step_by(10).any(|x| x == p);
    let mut ptime = m.ptime.filter(|p| sane(*p)).unwrap_or(DEFAULT_PTIME_MS);
    if let Some(max) = m.maxptime {
        if ptime > max {
            // Largest multiple of 10 within maxptime, at least 10.
            ptime = (max / 10 * 10).max(10);
        }
    }
    ptime
}

fn hold_of(direction: Direction, conn: &Connection) -> Option<Hold> {
    match direction {
        Direction::SendOnly => Some(Hold::SendOnly),
        Direction::Inactive => Some(Hold::Inactive),
        _ if conn.is_null() => Some(Hold::NullConnection),
        _ => None,
    }
}

/// Remote RTP and RTCP addresses of stream `index` of `sdp`.
fn remote_addrs(
    sdp: &SessionDescription,
    index: usize,
    m: &Media,
) -> Result<(SocketAddr, Option<SocketAddr>, Connection), SdpError> {
    let conn = sdp
        .media_connection(index)
        .ok_or(SdpError::MissingConnection { media_index: index })?;
    let ip = conn.ip().ok_or_else(|| SdpError::UnsupportedAddress {
        address: conn.address.clone(),
    })?;
    let rtp = SocketAddr::new(ip, m.port);
    // RFC 3605: a=rtcp overrides the implicit RTP port + 1 (RFC 3550 §11).
    let rtcp = match &m.rtcp {
        Some(r) => {
            let rip = r.connection.as_ref().and_then(Connection::ip).unwrap_or(ip);
            Some(SocketAddr::new(rip, r.port))
        }
        None => m.port.checked_add(1).map(|p| SocketAddr::new(ip, p)),
    };
    Ok((rtp, rtcp, conn.clone()))
}

fn origin(local: &LocalMedia) -> Origin {
    // The o= username must be one token (RFC 8866 §5.2).
    let username = if local.username.is_empty()
        || local
            .username
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        "-".to_owned()
    } else {
        local.username.clone()
    };
    let conn = Connection::new(local.address);
    Origin {
        username,
        session_id: local.session_id.to_string(),
        session_version: local.session_version.to_string(),
        net_type: conn.net_type,
        addr_type: conn.addr_type,
        address: conn.address,
    }
}

fn rtpmap(pt: u8, encoding: &str) -> RtpMap {
    RtpMap {
        payload_type: pt,
        encoding: encoding.to_owned(),
        clock_rate: 8000,
        channels: None,
    }
}

/// Answer a remote offer (RFC 3264 §6).
///
/// - One m-line per offered m-line, same order (§6). The first `m=audio` over `RTP/AVP` with a
///   non-zero port and a codec in common is accepted; every other stream gets port 0 (§6, §8.2).
/// - The codec is the first of the *offerer's* formats that we support (§6.1: the answerer
///   SHOULD follow the offerer's preference), with the offerer's payload type number.
/// - telephone-event/8000 is included with the offerer's payload type and fmtp when offered
///   and `local.telephone_event` is set.
/// - Direction per §6.1; hold (§8.4 and RFC 2543 `c=0.0.0.0`) reported in [`Answer::hold`].
pub fn negotiate_answer(
    offer: &SessionDescription,
    local: &LocalMedia,
) -> Result<Answer, SdpError> {
    if local.codecs.is_empty() {
        return Err(SdpError::NoLocalCodecs);
    }
    let mut saw_audio = false;
    let mut chosen = None;
    for (index, m) in offer.media.iter().enumerate() {
        if !(m.is_kind("audio") && is_plain_rtp(m) && m.port != 0) {
            continue;
        }
        saw_audio = true;
        let codec = m.payload_types().find_map(|pt| {
            Codec::identify(m, pt)
                .filter(|c| local.codecs.contains(c))
                .map(|c| (pt, c))
        });
        if let Some(codec) = codec {
            chosen = Some((index, m, codec));
            break;
        }
    }
    let Some((index, m, codec)) = chosen else {
        return Err(if saw_audio {
            SdpError::NoCommonCodec
        } else {
            SdpError::NoAcceptableMedia
        });
    };
    let (remote_rtp, remote_rtcp, conn) = remote_addrs(offer, index, m)?;
    let offer_direction = offer.media_direction(index);
    let direction = offer_direction.reversed();
    let hold = hold_of(offer_direction, &conn);
    let ptime_ms = choose_ptime(m);
    let te_pt = if local.telephone_event {
        telephone_event(m)
    } else {
        None
    };

    let mut media = Vec::with_capacity(offer.media.len());
    for (i, om) in offer.media.iter().enumerate() {
        if i != index {
            // Rejected stream: port 0, offer's proto and formats (§6: at least one format).
            media.push(Media {
                kind: om.kind.clone(),
                port: 0,
                proto: om.proto.clone(),
                formats: om.formats.clone(),
                ..Media::default()
            });
            continue;
        }
        let (pt, c) = codec;
        let mut am = Media {
            kind: om.kind.clone(),
            port: local.rtp_port,
            proto: om.proto.clone(),
            formats: vec![pt.to_string()],
            rtpmaps: vec![rtpmap(pt, c.name())],
            ptime: Some(ptime_ms),
            direction: Some(direction),
            ..Media::default()
        };
        if let Some(te) = te_pt {
            am.formats.push(te.to_string());
            am.rtpmaps.push(rtpmap(te, "telephone-event"));
            if let Some(params) = om.fmtp(&te.to_string()) {
                am.fmtps.push(Fmtp {
                    format: te.to_string(),
                    params: params.to_owned(),
                });
            }
        }
        media.push(am);
    }
    let answer = SessionDescription {
        origin: origin(local),
        session_name: "-".into(),
        connection: Some(Connection::new(local.address)),
        bandwidth: Vec::new(),
        // §6: the answer's t= line must equal the offer's.
        timing: Some(offer.timing.unwrap_or((0, 0))),
        direction: None,
        attributes: Vec::new(),
        media,
    };
    Ok(Answer {
        sdp: answer.to_string(),
        media_index: index,
        remote_rtp,
        remote_rtcp,
        codec,
        telephone_event_pt: te_pt,
        direction,
        ptime_ms,
        hold,
    })
}

/// Build our offer for an outgoing call (RFC 3264 §5): one audio stream with our codecs in
/// preference order (static payload types), telephone-event as PT 101 when enabled, 20 ms.
/// Use [`Direction::SendOnly`] to put the peer on hold (§8.4).
pub fn build_offer(local: &LocalMedia, direction: Direction) -> String {
    let mut m = Media {
        kind: "audio".into(),
        port: local.rtp_port,
        proto: "RTP/AVP".into(),
        ptime: Some(DEFAULT_PTIME_MS),
        direction: Some(direction),
        ..Media::default()
    };
    let mut seen = Vec::with_capacity(local.codecs.len());
    for &c in &local.codecs {
        if seen.contains(&c) {
            continue;
        }
        seen.push(c);
        m.formats.push(c.static_payload_type().to_string());
        m.rtpmaps.push(rtpmap(c.static_payload_type(), c.name()));
    }
    if local.telephone_event {
        let te = OFFER_TELEPHONE_EVENT_PT;
        m.formats.push(te.to_string());
        m.rtpmaps.push(rtpmap(te, "telephone-event"));
        m.fmtps.push(Fmtp {
            format: te.to_string(),
            params: OFFER_TELEPHONE_EVENT_FMTP.into(),
        });
    }
    SessionDescription {
        origin: origin(local),
        session_name: "-".into(),
        connection: Some(Connection::new(local.address)),
        bandwidth: Vec::new(),
        timing: Some((0, 0)),
        direction: None,
        attributes: Vec::new(),
        media: vec![m],
    }
    .to_string()
}

/// Check a remote answer against our offer (RFC 3264 §7) and extract the media parameters.
///
/// The answer must have as many m-lines as the offer, of the same media types (§6). The first
/// audio stream we offered over RTP/AVP that the answer accepts (port ≠ 0) is used; its codec is
/// the first format in the answer that names a codec we offered (matched by name, so an answerer
/// renumbering a payload type still works); telephone-event uses the answer's payload type,
/// since that is what the answerer expects to receive.
pub fn parse_answer(
    answer: &SessionDescription,
    our_offer: &SessionDescription,
) -> Result<Negotiated, SdpError> {
    if answer.media.len() != our_offer.media.len() {
        return Err(SdpError::AnswerMismatch {
            reason: "m-line count differs from the offer",
        });
    }
    for (a, o) in answer.media.iter().zip(&our_offer.media) {
        if !a.kind.eq_ignore_ascii_case(&o.kind) {
            return Err(SdpError::AnswerMismatch {
                reason: "m-line media type differs from the offer",
            });
        }
    }
    let index = answer
        .media
        .iter()
        .zip(&our_offer.media)
        .position(|(a, o)| o.is_kind("audio") && is_plain_rtp(o) && o.port != 0 && a.port != 0)
        .ok_or(SdpError::NoAcceptableMedia)?;
    let am = &answer.media[index];
    let om = &our_offer.media[index];
    if !is_plain_rtp(am) {
        return Err(SdpError::AnswerMismatch {
            reason: "answer changed the transport protocol",
        });
    }
    let offered: Vec<Codec> = om
        .payload_types()
        .filter_map(|pt| Codec::identify(om, pt))
        .collect();
    let codec = am
        .payload_types()
        .find_map(|pt| {
            Codec::identify(am, pt)
                .filter(|c| offered.contains(c))
                .map(|c| (pt, c))
        })
        .ok_or(SdpError::AnswerCodecNotOffered)?;
    let te_pt = telephone_event(om).and_then(|_| telephone_event(am));
    let (remote_rtp, remote_rtcp, conn) = remote_addrs(answer, index, am)?;
    let their = answer.media_direction(index);
    let ours_offered = our_offer.media_direction(index);
    // We send only if we offered to send and they agreed to receive, and vice versa; a
    // non-conforming answer (e.g. sendrecv to our sendonly) cannot widen what we offered.
    let direction = Direction::from_flags(
        ours_offered.sends() && their.receives(),
        ours_offered.receives() && their.sends(),
    );
    Ok(Negotiated {
        media_index: index,
        remote_rtp,
        remote_rtcp,
        codec,
        telephone_event_pt: te_pt,
        direction,
        ptime_ms: choose_ptime(am),
        hold: hold_of(their, &conn),
    })
}
