//! RTP packets (RFC 3550 §5.1) parsed without copying and written into caller buffers, plus
//! sequence-number and timestamp arithmetic with wrap-around (RFC 3550 §A.1, RFC 1982 style)
//! and RTP/RTCP demultiplexing on one port (RFC 5761 §4).
//!
//! Everything here takes bytes straight off the wire: every length is checked before use and
//! no input can make these functions panic.

/// Fixed RTP header length (RFC 3550 §5.1).
pub const RTP_HEADER_LEN: usize = 12;
/// Largest CSRC count the 4-bit CC field can carry.
pub const MAX_CSRC: usize = 15;

/// Why a datagram is not a valid RTP packet, or a packet could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Shorter than the fixed header plus the CSRC list it announces.
    #[error("RTP packet too short: {len} bytes, need {needed}")]
    TooShort { len: usize, needed: usize },
    /// The version field is not 2 (RFC 3550 §5.1).
    #[error("RTP version {0}, expected 2")]
    BadVersion(u8),
    /// The P bit is set but the padding count is 0 or larger than the bytes after the header.
    #[error("RTP padding count {count} invalid for {available} bytes after the header")]
    BadPadding { count: u8, available: usize },
    /// The X bit is set but the extension header or its data runs past the end.
    #[error("RTP header extension of {needed} bytes overruns a {len}-byte packet")]
    ExtensionOverflow { len: usize, needed: usize },
    /// Writer: the output buffer cannot hold the packet.
    #[error("output buffer of {got} bytes, packet needs {needed}")]
    BufferTooSmall { needed: usize, got: usize },
    /// Writer: payload type does not fit in 7 bits.
    #[error("payload type {0} out of range 0..=127")]
    BadPayloadType(u8),
    /// Writer: more than 15 CSRCs, or a header whose csrc_count disagrees with the list given.
    #[error("CSRC count {0} invalid")]
    BadCsrcCount(usize),
}

impl RtpError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            RtpError::TooShort { .. } => "media.rtp.too_short",
            RtpError::BadVersion(_) => "media.rtp.bad_version",
            RtpError::BadPadding { .. } => "media.rtp.bad_padding",
            RtpError::ExtensionOverflow { .. } => "media.rtp.extension_overflow",
            RtpError::BufferTooSmall { .. } => "media.rtp.buffer_too_small",
            RtpError::BadPayloadType(_) => "media.rtp.bad_payload_type",
            RtpError::BadCsrcCount(_) => "media.rtp.bad_csrc_count",
        }
    }
}

/// The fixed-header fields of an RTP packet (RFC 3550 §5.1). Version is always 2; padding and
/// extension are properties of a parsed packet, not something a sender sets here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RtpHeader {
    /// 7-bit payload type.
    pub payload_type: u8,
    /// M bit: start of a talkspurt for audio (RFC 3551 §4.1), start of a DTMF event (RFC 4733 §2.5.1.1).
    pub marker: bool,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// Number of CSRCs (0..=15) that follow the fixed header.
    pub csrc_count: u8,
}

/// A parsed RTP packet borrowing the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    header: RtpHeader,
    csrc: &'a [u8],
    extension: Option<(u16, &'a [u8])>,
    payload: &'a [u8],
    padding: u8,
}

impl<'a> RtpPacket<'a> {
    /// Fixed-header fields.
    pub fn header(&self) -> &RtpHeader {
        &self.header
    }

    /// The payload, with any padding removed (RFC 3550 §5.1, P bit).
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// CSRC identifiers (RFC 3550 §5.1), in order.
    pub fn csrcs(&self) -> impl Iterator<Item = u32> + 'a {
        self.csrc
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// Header extension (RFC 3550 §5.3.1): the 16-bit profile-defined value and the data bytes.
    /// We do not interpret extensions (RFC 8285 one/two-byte headers are WebRTC-side concerns).
    pub fn extension(&self) -> Option<(u16, &'a [u8])> {
        self.extension
    }

    /// Number of padding bytes that were stripped (0 if the P bit was clear).
    pub fn padding_len(&self) -> u8 {
        self.padding
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Parse one RTP packet (RFC 3550 §5.1). An empty payload is valid (Chrome sends them as
/// probes; the caller decides what to do with them).
pub fn parse(buf: &[u8]) -> Result<RtpPacket<'_>, RtpError> {
    let len = buf.len();
    let too_short = |needed| RtpError::TooShort { len, needed };
    let b0 = *buf.first().ok_or(too_short(RTP_HEADER_LEN))?;
    if len < RTP_HEADER_LEN {
        return Err(too_short(RTP_HEADER_LEN));
    }
    let version = b0 >> 6;
    if version != 2 {
        return Err(RtpError::BadVersion(version));
    }
    let has_padding = b0 & 0x20 != 0;
    let has_extension = b0 & 0x10 != 0;
    let cc = b0 & 0x0F;
    let b1 = buf.get(1).copied().ok_or(too_short(RTP_HEADER_LEN))?;
    let sequence = be16(buf, 2).ok_or(too_short(RTP_HEADER_LEN))?;
    let timestamp = be32(buf, 4).ok_or(too_short(RTP_HEADER_LEN))?;
    let ssrc = be32(buf, 8).ok_or(too_short(RTP_HEADER_LEN))?;

    let mut off = RTP_HEADER_LEN + 4 * usize::from(cc);
    let csrc = buf.get(RTP_HEADER_LEN..off).ok_or(too_short(off))?;

    let extension = if has_extension {
        // §5.3.1: 16-bit profile value, 16-bit length in 32-bit words excluding this header.
        let ext_hdr_end = off + 4;
        let profile = be16(buf, off).ok_or(RtpError::ExtensionOverflow {
            len,
            needed: ext_hdr_end,
        })?;
        let words = be16(buf, off + 2).ok_or(RtpError::ExtensionOverflow {
            len,
            needed: ext_hdr_end,
        })?;
        let ext_end = ext_hdr_end + 4 * usize::from(words);
        let data = buf
            .get(ext_hdr_end..ext_end)
            .ok_or(RtpError::ExtensionOverflow {
                len,
                needed: ext_end,
            })?;
        off = ext_end;
        Some((profile, data))
    } else {
        None
    };

    // Everything after the header (payload plus padding).
    let rest = buf.get(off..).ok_or(too_short(off))?;
    let (payload, padding) = if has_padding {
        // §5.1: the last octet counts the padding octets including itself, so 0 is invalid.
        let count = rest.last().copied().unwrap_or(0);
        let available = rest.len();
        if count == 0 || usize::from(count) > available {
            return Err(RtpError::BadPadding { count, available });
        }
        let payload = rest
            .get(..available - usize::from(count))
            .ok_or(RtpError::BadPadding { count, available })?;
        (payload, count)
    } else {
        (rest, 0)
    };

    Ok(RtpPacket {
        header: RtpHeader {
            payload_type: b1 & 0x7F,
            marker: b1 & 0x80 != 0,
            sequence,
            timestamp,
            ssrc,
            csrc_count: cc,
        },
        csrc,
        extension,
        payload,
        padding,
    })
}

/// Write an RTP packet with no CSRC, extension or padding into `out`; returns its length.
/// `header.csrc_count` must be 0 (use [`write_packet_with_csrcs`] to send CSRCs).
pub fn write_packet(header: &RtpHeader, payload: &[u8], out: &mut [u8]) -> Result<usize, RtpError> {
    if header.csrc_count != 0 {
        return Err(RtpError::BadCsrcCount(usize::from(header.csrc_count)));
    }
    write_packet_with_csrcs(header, &[], payload, out)
}

/// Write an RTP packet with the given CSRC list (the header's `csrc_count` is ignored and
/// set from `csrcs.len()`). Returns the number of bytes written.
pub fn write_packet_with_csrcs(
    header: &RtpHeader,
    csrcs: &[u32],
    payload: &[u8],
    out: &mut [u8],
) -> Result<usize, RtpError> {
    if header.payload_type > 0x7F {
        return Err(RtpError::BadPayloadType(header.payload_type));
    }
    if csrcs.len() > MAX_CSRC {
        return Err(RtpError::BadCsrcCount(csrcs.len()));
    }
    let hdr_len = RTP_HEADER_LEN + 4 * csrcs.len();
    let needed = hdr_len + payload.len();
    let got = out.len();
    let dst = out
        .get_mut(..needed)
        .ok_or(RtpError::BufferTooSmall { needed, got })?;
    let (h, body) = dst.split_at_mut(hdr_len);
    h[0] = 0x80 | csrcs.len() as u8;
    h[1] = (u8::from(header.marker) << 7) | header.payload_type;
    h[2..4].copy_from_slice(&header.sequence.to_be_bytes());
    h[4..8].copy_from_slice(&header.timestamp.to_be_bytes());
    h[8..12].copy_from_slice(&header.ssrc.to_be_bytes());
    for (chunk, c) in h[RTP_HEADER_LEN..].chunks_exact_mut(4).zip(csrcs) {
        chunk.copy_from_slice(&c.to_be_bytes());
    }
    body.copy_from_slice(payload);
    Ok(needed)
}

/// RFC 5761 §4: on a muxed port, a datagram whose second octet (M bit + payload type) is
/// 192..=223 is RTCP (RTCP packet types 200–204 SR/RR/SDES/BYE/APP, 205/206 feedback, 207 XR
/// all fall there), provided it looks like version 2. Anything else is treated as RTP.
pub fn is_rtcp(buf: &[u8]) -> bool {
    match (buf.first(), buf.get(1)) {
        // The RTCP common header is 4 bytes (RFC 3550 §6.4.1); shorter is neither.
        (Some(&b0), Some(&b1)) if buf.len() >= 4 => b0 >> 6 == 2 && (192..=223).contains(&b1),
        _ => false,
    }
}

/// Signed distance from sequence number `a` to `b` modulo 2^16: positive when `b` is after `a`
/// (`seq_distance(65535, 0) == 1`), negative when it is before. Exactly half-way (32768 apart)
/// is ambiguous and reported as -32768.
pub fn seq_distance(a: u16, b: u16) -> i32 {
    i32::from(b.wrapping_sub(a) as i16)
}

/// True when `b` comes strictly after `a` in sequence space.
pub fn seq_newer(a: u16, b: u16) -> bool {
    seq_distance(a, b) > 0
}

/// Signed distance from RTP timestamp `a` to `b` modulo 2^32 (positive if `b` is later).
pub fn ts_distance(a: u32, b: u32) -> i64 {
    i64::from(b.wrapping_sub(a) as i32)
}

/// True when timestamp `b` is strictly later than `a` (wrap-aware).
pub fn ts_newer(a: u32, b: u32) -> bool {
    ts_distance(a, b) > 0
}

/// Unwraps 32-bit RTP timestamps into a monotonic-ish 64-bit timeline, accepting jumps of up
/// to ±2^31 relative to the highest value seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampUnwrapper {
    highest: i64,
}

impl TimestampUnwrapper {
    /// Start at `first` (its extended value is `first` itself).
    pub fn new(first: u32) -> Self {
        Self {
            highest: i64::from(first),
        }
    }

    /// Extended value of `ts`. Late timestamps map below the highest; they may go negative
    /// right after start if they belong before the first packet.
    pub fn unwrap(&mut self, ts: u32) -> i64 {
        let low = self.highest as u32; // truncation is the point: low 32 bits
        let ext = self.highest + ts_distance(low, ts);
        if ext > self.highest {
            self.highest = ext;
        }
        ext
    }
}

/// RFC 3550 §A.1 constants.
const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;
const RTP_SEQ_MOD: u32 = 1 << 16;

/// What [`SeqCounter::update`] decided about one packet (RFC 3550 §A.1 `update_seq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqUpdate {
    /// In order (possibly after a gap smaller than MAX_DROPOUT); the new extended highest.
    InOrder { extended: u64 },
    /// Old, duplicate or reordered within MAX_MISORDER; its extended number (≤ highest).
    Late { extended: u64 },
    /// Source still on probation (needs consecutive packets before it is valid).
    Probation,
    /// A large jump: dropped unless the next packet confirms it (then [`SeqUpdate::Restarted`]).
    Jump,
    /// The sender restarted its sequence (two packets confirmed the jump); counters reset.
    Restarted { extended: u64 },
}

impl SeqUpdate {
    /// Extended sequence number of the packet, when it is accepted.
    pub fn extended(&self) -> Option<u64> {
        match *self {
            SeqUpdate::InOrder { extended }
            | SeqUpdate::Late { extended }
            | SeqUpdate::Restarted { extended } => Some(extended),
            SeqUpdate::Probation | SeqUpdate::Jump => None,
        }
    }
}

/// Extended (cycle-counting) sequence number tracker, RFC 3550 Appendix A.1, with the
/// received/expected counts of §A.3 for loss statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqCounter {
    max_seq: u16,
    cycles: u64,
    base_seq: u16,
    bad_seq: u32,
    probation: u8,
    received: u64,
    min_sequential: u8,
}

impl SeqCounter {
    /// A source whose first packet carried `seq`, valid immediately: right for a stream
    /// negotiated in SDP, where §A.1 probation only delays audio.
    pub fn new(seq: u16) -> Self {
        let mut s = Self::with_probation(seq, 0);
        s.received = 1;
        s
    }

    /// §A.1 behaviour: the source becomes valid after `min_sequential` packets in sequence
    /// (the RFC uses 2). `seq` is the first packet's number, which counts toward it.
    pub fn with_probation(seq: u16, min_sequential: u8) -> Self {
        let mut s = Self {
            max_seq: seq,
            cycles: 0,
            base_seq: seq,
            bad_seq: RTP_SEQ_MOD + 1,
            probation: 0,
            received: 0,
            min_sequential,
        };
        if min_sequential > 1 {
            // As if init_seq(seq - 1) with probation, then the first packet counted.
            s.probation = min_sequential - 1;
        }
        s
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = seq;
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
    }

    fn extended_of(&self, seq: u16) -> u64 {
        // Late packet: same cycle unless it is numerically above max (then previous cycle).
        let c = if seq > self.max_seq {
            self.cycles.saturating_sub(RTP_SEQ_MOD.into())
        } else {
            self.cycles
        };
        c + u64::from(seq)
    }

    /// Feed one packet's sequence number (RFC 3550 §A.1 `update_seq`).
    pub fn update(&mut self, seq: u16) -> SeqUpdate {
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.received += 1;
                    return SeqUpdate::InOrder {
                        extended: self.extended_max(),
                    };
                }
            } else {
                self.probation = self.min_sequential.saturating_sub(1);
                self.max_seq = seq;
            }
            return SeqUpdate::Probation;
        }
        let result = if udelta == 0 {
            SeqUpdate::Late {
                extended: self.extended_max(),
            }
        } else if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += u64::from(RTP_SEQ_MOD);
            }
            self.max_seq = seq;
            SeqUpdate::InOrder {
                extended: self.extended_max(),
            }
        } else if u32::from(udelta) <= RTP_SEQ_MOD - u32::from(MAX_MISORDER) {
            if u32::from(seq) == self.bad_seq {
                // Two sequential packets after a big jump: the sender restarted (§A.1).
                self.init_seq(seq);
                self.received += 1;
                return SeqUpdate::Restarted {
                    extended: self.extended_max(),
                };
            }
            self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
            return SeqUpdate::Jump;
        } else {
            SeqUpdate::Late {
                extended: self.extended_of(seq),
            }
        };
        self.received += 1;
        result
    }

    /// Highest extended sequence number seen (cycles + max_seq).
    pub fn extended_max(&self) -> u64 {
        self.cycles + u64::from(self.max_seq)
    }

    /// Packets counted as received (duplicates included, as in §A.3).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Packets expected since the base (§A.3: extended_max - base_seq + 1).
    pub fn expected(&self) -> u64 {
        (self.extended_max() + 1).saturating_sub(u64::from(self.base_seq))
    }

    /// Cumulative lost packets (§A.3), clamped at 0 when duplicates outnumber losses.
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32) -> RtpHeader {
        RtpHeader {
            payload_type: pt,
            marker,
            sequence: seq,
            timestamp: ts,
            ssrc,
            csrc_count: 0,
        }
    }

    #[test]
    fn parse_minimal_packet() {
        let bytes = [
            0x80, 0x80, 0x12, 0x34, 0x00, 0x00, 0x01, 0x00, 0xDE, 0xAD, 0xBE, 0xEF, 1, 2, 3,
        ];
        let p = parse(&bytes).unwrap();
        assert_eq!(*p.header(), hdr(0, true, 0x1234, 256, 0xDEADBEEF));
        assert_eq!(p.payload(), &[1, 2, 3]);
        assert_eq!(p.csrcs().count(), 0);
        assert_eq!(p.extension(), None);
        assert_eq!(p.padding_len(), 0);
    }

    #[test]
    fn write_then_parse_round_trip() {
        let h = hdr(8, false, 65535, 0xFFFF_FF00, 42);
        let payload = [0xD5u8; 160];
        let mut buf = [0u8; 1500];
        let n = write_packet(&h, &payload, &mut buf).unwrap();
        assert_eq!(n, 172);
        let p = parse(&buf[..n]).unwrap();
        assert_eq!(*p.header(), h);
        assert_eq!(p.payload(), &payload[..]);

        let n = write_packet_with_csrcs(&h, &[1, 0xAABBCCDD], &payload[..10], &mut buf).unwrap();
        assert_eq!(n, 12 + 8 + 10);
        let p = parse(&buf[..n]).unwrap();
        assert_eq!(p.header().csrc_count, 2);
        assert_eq!(p.csrcs().collect::<Vec<_>>(), vec![1, 0xAABBCCDD]);
        assert_eq!(p.payload(), &payload[..10]);
    }

    #[test]
    fn writer_errors() {
        let mut small = [0u8; 20];
        let h = hdr(0, false, 1, 1, 1);
        let e = write_packet(&h, &[0u8; 160], &mut small).unwrap_err();
        assert_eq!(
            e,
            RtpError::BufferTooSmall {
                needed: 172,
                got: 20
            }
        );
        assert_eq!(e.code(), "media.rtp.buffer_too_small");
        let mut buf = [0u8; 200];
        assert_eq!(
            write_packet(&hdr(128, false, 1, 1, 1), &[], &mut buf),
            Err(RtpError::BadPayloadType(128))
        );
        let mut with_cc = h;
        with_cc.csrc_count = 1;
        assert_eq!(
            write_packet(&with_cc, &[], &mut buf),
            Err(RtpError::BadCsrcCount(1))
        );
        assert_eq!(
            write_packet_with_csrcs(&h, &[0; 16], &[], &mut buf),
            Err(RtpError::BadCsrcCount(16))
        );
        // Empty payload is a valid packet.
        assert_eq!(write_packet(&h, &[], &mut buf), Ok(12));
    }

    #[test]
    fn padding_and_extension() {
        // P and X set, one CSRC, extension of 1 word, payload 2 bytes, 3 bytes padding.
        let mut b = vec![0xB1, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        b.extend_from_slice(&[0, 0, 0, 9]); // CSRC
        b.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x10, 0xAA, 0, 0]); // extension
        b.extend_from_slice(&[7, 8]); // payload
        b.extend_from_slice(&[0, 0, 3]); // padding
        let p = parse(&b).unwrap();
        assert_eq!(p.csrcs().collect::<Vec<_>>(), vec![9]);
        assert_eq!(p.extension(), Some((0xBEDE, &[0x10, 0xAA, 0, 0][..])));
        assert_eq!(p.payload(), &[7, 8]);
        assert_eq!(p.padding_len(), 3);
    }

    #[test]
    fn malformed_packets_rejected() {
        assert_eq!(parse(&[]), Err(RtpError::TooShort { len: 0, needed: 12 }));
        assert_eq!(
            parse(&[0x80; 11]).unwrap_err().code(),
            "media.rtp.too_short"
        );
        let mut b = [0u8; 12];
        b[0] = 0x40;
        assert_eq!(parse(&b), Err(RtpError::BadVersion(1)));
        // CSRC count larger than the packet.
        b[0] = 0x83;
        assert_eq!(
            parse(&b),
            Err(RtpError::TooShort {
                len: 12,
                needed: 24
            })
        );
        // Padding larger than what follows the header.
        let mut p = vec![0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 5];
        assert_eq!(
            parse(&p),
            Err(RtpError::BadPadding {
                count: 5,
                available: 2
            })
        );
        // Padding count 0 is invalid (it counts itself).
        *p.last_mut().unwrap() = 0;
        assert_eq!(parse(&p).unwrap_err().code(), "media.rtp.bad_padding");
        // P bit set with nothing after the header.
        assert!(matches!(parse(&p[..12]), Err(RtpError::BadPadding { .. })));
        // Padding equal to everything after the header: empty payload, valid.
        *p.last_mut().unwrap() = 2;
        assert_eq!(parse(&p).unwrap().payload(), &[] as &[u8]);
        // Extension header truncated, and extension length overrunning.
        let mut x = vec![0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE];
        assert_eq!(
            parse(&x),
            Err(RtpError::ExtensionOverflow {
                len: 14,
                needed: 16
            })
        );
        x.extend_from_slice(&[0xFF, 0xFF, 1, 2, 3, 4]);
        assert_eq!(
            parse(&x).unwrap_err().code(),
            "media.rtp.extension_overflow"
        );
    }

    #[test]
    fn random_bytes_never_panic() {
        // xorshift64*, seeded: deterministic fuzzing of the parser.
        let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            s.wrapping_mul(0x2545_F491_4F6C_DD1D)
        };
        let mut buf = [0u8; 64];
        let mut ok = 0;
        for _ in 0..200_000 {
            let len = (next() % 65) as usize;
            for b in buf.iter_mut().take(len) {
                *b = next() as u8;
            }
            // Bias toward version 2 so the deeper paths get exercised.
            if len > 0 && next() % 2 == 0 {
                buf[0] = (buf[0] & 0x3F) | 0x80;
            }
            let _ = is_rtcp(&buf[..len]);
            if let Ok(p) = parse(&buf[..len]) {
                ok += 1;
                assert!(p.payload().len() <= len);
                let _ = p.csrcs().count();
            }
        }
        assert!(ok > 1000, "parser accepted only {ok} packets");
    }

    #[test]
    fn rtcp_demux() {
        // Receiver report: V=2, PT=201.
        assert!(is_rtcp(&[0x81, 201, 0, 7, 0, 0, 0, 0]));
        assert!(is_rtcp(&[0x80, 200, 0, 6]));
        assert!(is_rtcp(&[0x80, 223, 0, 0]));
        // RTP: PCMU with and without marker, dynamic 111 with marker (=239).
        assert!(!is_rtcp(&[0x80, 0x00, 0, 1]));
        assert!(!is_rtcp(&[0x80, 0x80, 0, 1]));
        assert!(!is_rtcp(&[0x80, 0x80 | 111, 0, 1]));
        assert!(!is_rtcp(&[0x80, 191, 0, 1]));
        assert!(!is_rtcp(&[0x80, 224, 0, 1]));
        // Wrong version or too short.
        assert!(!is_rtcp(&[0x40, 201, 0, 1]));
        assert!(!is_rtcp(&[0x80, 201]));
        assert!(!is_rtcp(&[]));
    }

    #[test]
    fn sequence_and_timestamp_arithmetic() {
        assert_eq!(seq_distance(1, 2), 1);
        assert_eq!(seq_distance(2, 1), -1);
        assert_eq!(seq_distance(65535, 0), 1);
        assert_eq!(seq_distance(0, 65535), -1);
        assert_eq!(seq_distance(65000, 100), 636);
        assert_eq!(seq_distance(0, 32768), -32768);
        assert!(seq_newer(65535, 3));
        assert!(!seq_newer(3, 65535));
        assert_eq!(ts_distance(u32::MAX - 79, 80), 160);
        assert_eq!(ts_distance(80, u32::MAX - 79), -160);
        assert!(ts_newer(u32::MAX, 0));
        let mut u = TimestampUnwrapper::new(u32::MAX - 159);
        assert_eq!(u.unwrap(u32::MAX - 159), i64::from(u32::MAX - 159));
        assert_eq!(u.unwrap(1), i64::from(u32::MAX) + 2);
        assert_eq!(u.unwrap(u32::MAX), i64::from(u32::MAX)); // late, before the wrap
        assert_eq!(u.unwrap(161), i64::from(u32::MAX) + 162);
    }

    #[test]
    fn extended_sequence_wraps_and_counts_loss() {
        let mut c = SeqCounter::new(65533);
        assert_eq!(c.update(65534), SeqUpdate::InOrder { extended: 65534 });
        assert_eq!(c.update(65535), SeqUpdate::InOrder { extended: 65535 });
        assert_eq!(c.update(0), SeqUpdate::InOrder { extended: 65536 });
        // Gap of one (seq 1 lost), then 1 arrives late.
        assert_eq!(c.update(2), SeqUpdate::InOrder { extended: 65538 });
        assert_eq!(c.lost(), 1);
        assert_eq!(c.update(1), SeqUpdate::Late { extended: 65537 });
        assert_eq!(c.lost(), 0);
        // Late packet from before the wrap.
        assert_eq!(c.update(65535), SeqUpdate::Late { extended: 65535 });
        // Duplicate of the highest.
        assert_eq!(c.update(2), SeqUpdate::Late { extended: 65538 });
        assert_eq!(c.expected(), 6);
        assert_eq!(c.received(), 8);
        assert_eq!(c.lost(), 0);
    }

    #[test]
    fn sequence_jump_needs_confirmation() {
        let mut c = SeqCounter::new(100);
        assert_eq!(c.update(101).extended(), Some(101));
        // A big jump is dropped once...
        assert_eq!(c.update(20000), SeqUpdate::Jump);
        assert_eq!(c.update(102), SeqUpdate::InOrder { extended: 102 });
        // ...and accepted as a restart when the next one follows it.
        assert_eq!(c.update(30000), SeqUpdate::Jump);
        assert_eq!(c.update(30001), SeqUpdate::Restarted { extended: 30001 });
        assert_eq!(c.update(30002), SeqUpdate::InOrder { extended: 30002 });
        assert_eq!(c.lost(), 0);
    }

    #[test]
    fn probation_per_a1() {
        let mut c = SeqCounter::with_probation(500, 2);
        assert_eq!(c.update(700), SeqUpdate::Probation); // not sequential: restart probation
        assert_eq!(c.update(701), SeqUpdate::InOrder { extended: 701 });
        assert_eq!(c.update(702), SeqUpdate::InOrder { extended: 702 });
        let mut c = SeqCounter::with_probation(500, 2);
        assert_eq!(c.update(501), SeqUpdate::InOrder { extended: 501 });
    }
}
