//! RFC 4733 telephone-events (DTMF over RTP), both directions, sans-IO.
//!
//! Payload (RFC 4733 §2.3): `event(8) | E(1) R(1) volume(6) | duration(16)`, duration in RTP
//! timestamp units counted from the event's RTP timestamp (§2.5.1.1: every packet of one event
//! carries the timestamp of its start).
//!
//! Receiver ([`DtmfReceiver`]): reports each event once, when it ends, whatever mix of repeated
//! start/update packets and the three end retransmissions (§2.5.1.4) arrives. Events are keyed
//! by (SSRC, RTP timestamp). An event without an end packet is closed when a newer event starts
//! or after [`DtmfReceiver::DEFAULT_TIMEOUT`] without packets (§2.5.2.2 leaves the interval to
//! the receiver). Long events split into segments (§2.5.1.3) are stitched back together.
//!
//! Sender ([`DtmfSender`]): the §2.5 packet train for one event at a time (later digits queue):
//! a first packet with the marker bit (§2.5.1.1), an update every ptime with the same timestamp
//! and a growing duration (§2.5.1.2), and the final packet with the E bit sent three times
//! (§2.5.1.4, "a total of three times at the interval used by the source for updates").
//! Simplification of §2.5.1.3: the sender never segments; an event is clamped to 0xFFFF
//! timestamp units (8.19 s at 8 kHz), far longer than any keypad press.
//!
//! Sequence numbers and SSRC belong to the audio stream the events share (§2.1), so the sender
//! leaves them to the caller ([`DtmfPacket::header`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::rtp::{ts_distance, RtpHeader};

/// Events 0–9 are digits, 10 `*`, 11 `#`, 12–15 `A`–`D` (RFC 4733 §3.2, Table 3).
const EVENT_CHARS: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D',
];
/// Event 16 is hook flash (§3.2). Reported as `'!'`, the symbol SIP INFO `dtmf-relay` uses.
pub const EVENT_FLASH: u8 = 16;

/// The digit for an event code, or `None` for codes this gateway does not relay (> 16:
/// modem/fax tones and line events of RFC 4734 are not DTMF).
pub fn event_to_char(event: u8) -> Option<char> {
    match event {
        EVENT_FLASH => Some('!'),
        e => EVENT_CHARS.get(usize::from(e)).copied(),
    }
}

/// The event code for a digit (`0`–`9`, `*`, `#`, `A`–`D` or `a`–`d`, `!` for flash).
pub fn char_to_event(c: char) -> Option<u8> {
    if c == '!' {
        return Some(EVENT_FLASH);
    }
    let c = c.to_ascii_uppercase();
    EVENT_CHARS.iter().position(|&d| d == c).map(|i| i as u8)
}

/// DTMF errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtmfError {
    /// A telephone-event payload is 4 bytes (§2.3); fewer cannot be read.
    #[error("telephone-event payload of {len} bytes, need 4")]
    PayloadTooShort { len: usize },
    /// Sender: not a DTMF digit.
    #[error("{0:?} is not a DTMF digit")]
    UnknownDigit(char),
    /// Sender: too many digits waiting.
    #[error("DTMF send queue full ({0} digits)")]
    QueueFull(usize),
}

impl DtmfError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            DtmfError::PayloadTooShort { .. } => "media.dtmf.payload_too_short",
            DtmfError::UnknownDigit(_) => "media.dtmf.unknown_digit",
            DtmfError::QueueFull(_) => "media.dtmf.queue_full",
        }
    }
}

/// One telephone-event payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    /// E bit: this is (a retransmission of) the final packet of the event.
    pub end: bool,
    /// Power level, 0..=63 meaning 0 to -63 dBm0 (§2.3.4).
    pub volume: u8,
    /// Duration in RTP timestamp units since the event's timestamp (§2.3.5).
    pub duration: u16,
}

impl TelephoneEvent {
    /// Read the first 4 bytes. Extra bytes (RFC 2198 redundancy is not negotiated) are ignored;
    /// the R bit is ignored as §2.3.3 requires.
    pub fn parse(payload: &[u8]) -> Result<Self, DtmfError> {
        match payload {
            [event, flags, d0, d1, ..] => Ok(Self {
                event: *event,
                end: flags & 0x80 != 0,
                volume: flags & 0x3F,
                duration: u16::from_be_bytes([*d0, *d1]),
            }),
            _ => Err(DtmfError::PayloadTooShort { len: payload.len() }),
        }
    }

    /// The 4-byte payload (R bit zero, §2.3.3).
    pub fn to_bytes(&self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }
}

/// How a reported event ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfEnd {
    /// An end packet (E bit) arrived.
    EndPacket,
    /// No end packet; a newer event (or another SSRC) started.
    Superseded,
    /// No end packet; nothing arrived for the receiver's timeout.
    TimedOut,
}

/// A received DTMF digit, reported once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfEvent {
    pub digit: char,
    /// Length of the tone as the sender last reported it (all segments together).
    pub duration_ms: u32,
    /// 0..=63, in -dBm0.
    pub volume: u8,
    /// RTP timestamp of the event's start (of its first segment).
    pub timestamp: u32,
    pub ssrc: u32,
    pub ended: DtmfEnd,
}

#[derive(Debug, Clone, Copy)]
struct Active {
    ssrc: u32,
    /// Timestamp of the first segment (what we report).
    first_ts: u32,
    /// Timestamp of the current segment (what packets carry).
    seg_ts: u32,
    /// Units of the earlier segments.
    base: u64,
    event: u8,
    volume: u8,
    duration: u16,
    last_seen: Instant,
}

/// Receives telephone-event packets and reports each digit once.
#[derive(Debug)]
pub struct DtmfReceiver {
    clock_rate: u32,
    timeout: Duration,
    current: Option<Active>,
    /// (SSRC, segment timestamp) of the last finished event: its retransmissions are dropped.
    last_done: Option<(u32, u32)>,
    out: VecDeque<DtmfEvent>,
}

/// Below this many units a segment cannot have been cut for overflow, so a newer timestamp
/// is a new key press even without a marker (its start packet was lost).
const SEGMENT_MIN: u32 = 0xC000;

impl DtmfReceiver {
    /// Close an event without end packet after this long without packets: ten 50 ms update
    /// intervals (§2.5.1.2 suggests 50 ms), longer than normal jitter.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);

    /// `clock_rate` is the telephone-event rtpmap rate (8000 for `telephone-event/8000`).
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            timeout: Self::DEFAULT_TIMEOUT,
            current: None,
            last_done: None,
            out: VecDeque::with_capacity(4),
        }
    }

    /// Change the missing-end timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The digit being received right now (e.g. to mute the audio path meanwhile).
    pub fn active_digit(&self) -> Option<char> {
        self.current.and_then(|a| event_to_char(a.event))
    }

    /// Feed one RTP packet already identified (by payload type) as telephone-event.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        header: &RtpHeader,
        payload: &[u8],
    ) -> Result<(), DtmfError> {
        let ev = TelephoneEvent::parse(payload)?;
        if event_to_char(ev.event).is_none() {
            return Ok(());
        }
        let ts = header.timestamp;
        let ssrc = header.ssrc;

        if let Some(cur) = self.current {
            if cur.ssrc != ssrc {
                self.finish(DtmfEnd::Superseded);
            }
        }
        if let Some((done_ssrc, done_ts)) = self.last_done {
            // Retransmitted end packets or late updates of a finished event.
            if done_ssrc == ssrc && ts_distance(done_ts, ts) <= 0 {
                return Ok(());
            }
        }

        if let Some(cur) = self.current.as_mut() {
            let dist = ts_distance(cur.seg_ts, ts);
            if dist < 0 {
                return Ok(()); // late packet of an older event
            }
            if dist == 0 {
                // Update or end of the current segment; reordering can bring a smaller duration.
                cur.duration = cur.duration.max(ev.duration);
                cur.volume = ev.volume;
                cur.last_seen = now;
                if ev.end {
                    self.finish(DtmfEnd::EndPacket);
                }
                return Ok(());
            }
            let continuation = ev.event == cur.event
                && !header.marker
                && dist >= i64::from(SEGMENT_MIN)
                && dist <= 0xFFFF
                && dist >= i64::from(cur.duration);
            if continuation {
                // §2.5.1.3: a new segment of the same long event starts where the last ended.
                cur.base += dist as u64;
                cur.seg_ts = ts;
                cur.duration = ev.duration;
                cur.volume = ev.volume;
                cur.last_seen = now;
                if ev.end {
                    self.finish(DtmfEnd::EndPacket);
                }
                return Ok(());
            }
            self.finish(DtmfEnd::Superseded);
        }

        // A new event; its start packet may have been lost, so no marker is required.
        self.current = Some(Active {
            ssrc,
            first_ts: ts,
            seg_ts: ts,
            base: 0,
            event: ev.event,
            volume: ev.volume,
            duration: ev.duration,
            last_seen: now,
        });
        if ev.end {
            self.finish(DtmfEnd::EndPacket);
        }
        Ok(())
    }

    /// When [`DtmfReceiver::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.current.map(|a| a.last_seen + self.timeout)
    }

    /// Close an event whose end packets never came.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(deadline) = self.poll_timeout() {
            if now >= deadline {
                self.finish(DtmfEnd::TimedOut);
            }
        }
    }

    /// Next finished digit, oldest first.
    pub fn poll_event(&mut self) -> Option<DtmfEvent> {
        self.out.pop_front()
    }

    fn finish(&mut self, ended: DtmfEnd) {
        let Some(a) = self.current.take() else { return };
        self.last_done = Some((a.ssrc, a.seg_ts));
        let units = a.base + u64::from(a.duration);
        let ms = units * 1000 / u64::from(self.clock_rate);
        if let Some(digit) = event_to_char(a.event) {
            self.out.push_back(DtmfEvent {
                digit,
                duration_ms: u32::try_from(ms).unwrap_or(u32::MAX),
                volume: a.volume,
                timestamp: a.first_ts,
                ssrc: a.ssrc,
                ended,
            });
        }
    }
}

/// One telephone-event packet to send; the caller adds sequence number and SSRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPacket {
    pub payload_type: u8,
    pub marker: bool,
    pub timestamp: u32,
    pub payload: [u8; 4],
}

impl DtmfPacket {
    /// RTP header for this packet in the caller's stream.
    pub fn header(&self, sequence: u16, ssrc: u32) -> RtpHeader {
        RtpHeader {
            payload_type: self.payload_type,
            marker: self.marker,
            sequence,
            timestamp: self.timestamp,
            ssrc,
            csrc_count: 0,
        }
    }

    /// The decoded payload.
    pub fn event(&self) -> TelephoneEvent {
        // Always 4 bytes, so parse cannot fail; fall back to a harmless value anyway.
        TelephoneEvent::parse(&self.payload).unwrap_or(TelephoneEvent {
            event: 0,
            end: true,
            volume: 0,
            duration: 0,
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Sending {
    event: u8,
    timestamp: u32,
    start: Instant,
    total: u16,
    /// Packets carrying the tone (the last one has E); two more end repeats follow.
    tone_packets: u32,
    next: u32,
    duration_ms: u32,
}

/// Produces RFC 4733 §2.5 packet trains, one digit at a time.
#[derive(Debug)]
pub struct DtmfSender {
    payload_type: u8,
    clock_rate: u32,
    ptime: Duration,
    ptime_units: u32,
    volume: u8,
    gap: Duration,
    anchor: Option<(Instant, u32)>,
    current: Option<Sending>,
    queue: VecDeque<(u8, u32)>,
    ready_at: Option<Instant>,
}

/// Digits that may wait behind the one being sent.
const SEND_QUEUE: usize = 32;

impl DtmfSender {
    /// `payload_type` of `telephone-event`, its `clock_rate` (8000) and the update interval
    /// `ptime_ms` (20 here to match the audio; §2.5.1.2 suggests 50).
    pub fn new(payload_type: u8, clock_rate: u32, ptime_ms: u32) -> Self {
        let ptime_ms = ptime_ms.max(1);
        let clock_rate = clock_rate.max(1);
        Self {
            payload_type: payload_type & 0x7F,
            clock_rate,
            ptime: Duration::from_millis(u64::from(ptime_ms)),
            ptime_units: (u64::from(clock_rate) * u64::from(ptime_ms) / 1000).clamp(1, 0xFFFF)
                as u32,
            volume: 10,
            // ITU-T Q.24 needs at least 40 ms between digits; 60 ms leaves margin.
            gap: Duration::from_millis(60),
            anchor: None,
            current: None,
            queue: VecDeque::with_capacity(SEND_QUEUE),
            ready_at: None,
        }
    }

    /// Volume field (0..=63, -dBm0); default 10.
    pub fn with_volume(mut self, volume: u8) -> Self {
        self.volume = volume.min(63);
        self
    }

    /// Pause between queued digits (after the end packets).
    pub fn with_gap(mut self, gap: Duration) -> Self {
        self.gap = gap;
        self
    }

    /// Tie the audio stream's RTP clock to real time: `timestamp` is the audio timestamp at
    /// `at`. Events then get the timestamp of the audio sample they start on (§2.5.1.1).
    /// Without an anchor the first event starts at timestamp 0.
    pub fn set_timestamp_anchor(&mut self, at: Instant, timestamp: u32) {
        self.anchor = Some((at, timestamp));
    }

    fn timestamp_at(&mut self, t: Instant) -> u32 {
        let (at, ts) = *self.anchor.get_or_insert((t, 0));
        let elapsed = t.saturating_duration_since(at);
        let units = elapsed.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000;
        ts.wrapping_add(units as u32) // modulo 2^32 is RTP timestamp arithmetic
    }

    /// Queue `digit` for `duration_ms` (clamped to 0xFFFF timestamp units); it starts at
    /// `now` if nothing is being sent, else after the current digits and the gap.
    pub fn start(&mut self, digit: char, duration_ms: u32, now: Instant) -> Result<(), DtmfError> {
        let event = char_to_event(digit).ok_or(DtmfError::UnknownDigit(digit))?;
        if self.queue.len() >= SEND_QUEUE {
            return Err(DtmfError::QueueFull(SEND_QUEUE));
        }
        self.queue.push_back((event, duration_ms));
        if self.current.is_none() && self.ready_at.is_none_or(|r| r < now) {
            self.ready_at = Some(now);
        }
        Ok(())
    }

    /// [`DtmfSender::start`] with an explicit audio timestamp for `now` (sets the anchor).
    pub fn start_at(
        &mut self,
        digit: char,
        duration_ms: u32,
        now: Instant,
        timestamp: u32,
    ) -> Result<(), DtmfError> {
        self.set_timestamp_anchor(now, timestamp);
        self.start(digit, duration_ms, now)
    }

    /// Whether an event is being sent (the audio path should stay silent meanwhile, §2.5.1.1
    /// lets the sender suppress audio during an event).
    pub fn is_active(&self) -> bool {
        self.current.is_some()
    }

    /// When the next packet is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.current {
            Some(s) => Some(s.start + self.ptime * s.next),
            None if !self.queue.is_empty() => self.ready_at,
            None => None,
        }
    }

    /// The next packet if one is due at `now`. Call until `None` (a late caller gets the
    /// overdue packets in order).
    pub fn poll_packet(&mut self, now: Instant) -> Option<DtmfPacket> {
        if self.current.is_none() {
            let ready = self.ready_at?;
            if now < ready {
                return None;
            }
            let (event, duration_ms) = self.queue.pop_front()?;
            let timestamp = self.timestamp_at(ready);
            let units = (u64::from(duration_ms) * u64::from(self.clock_rate) / 1000)
                .clamp(1, 0xFFFF) as u32;
            self.current = Some(Sending {
                event,
                timestamp,
                start: ready,
                total: units as u16,
                tone_packets: units.div_ceil(self.ptime_units),
                next: 0,
                duration_ms,
            });
        }
        let s = self.current.as_mut()?;
        let due = s.start + self.ptime * s.next;
        if now < due {
            return None;
        }
        let k = s.next;
        s.next += 1;
        let last_tone = s.tone_packets - 1;
        let end = k >= last_tone;
        let duration = if end {
            s.total
        } else {
            ((k + 1) * self.ptime_units).min(u32::from(s.total)) as u16
        };
        let pkt = DtmfPacket {
            payload_type: self.payload_type,
            marker: k == 0,
            timestamp: s.timestamp,
            payload: TelephoneEvent {
                event: s.event,
                end,
                volume: self.volume,
                duration,
            }
            .to_bytes(),
        };
        if k >= last_tone + 2 {
            // Third end packet sent: the event is over.
            let after_packets = s.start + self.ptime * (k + 1);
            let after_tone = s.start + Duration::from_millis(u64::from(s.duration_ms)) + self.gap;
            self.current = None;
            self.ready_at = Some(after_packets.max(after_tone));
        }
        Some(pkt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PT: u8 = 101;

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    /// Run a sender to completion at 1 ms resolution; returns (send time ms, packet).
    fn drain(sender: &mut DtmfSender, t0: Instant, until_ms: u64) -> Vec<(u64, DtmfPacket)> {
        let mut v = Vec::new();
        for t in 0..=until_ms {
            while let Some(p) = sender.poll_packet(ms(t0, t)) {
                v.push((t, p));
            }
        }
        v
    }

    fn hdr(ts: u32, marker: bool) -> RtpHeader {
        RtpHeader {
            payload_type: PT,
            marker,
            sequence: 0,
            timestamp: ts,
            ssrc: 7,
            csrc_count: 0,
        }
    }

    fn ev(event: u8, end: bool, duration: u16) -> [u8; 4] {
        TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
        .to_bytes()
    }

    fn all_events(rx: &mut DtmfReceiver) -> Vec<DtmfEvent> {
        std::iter::from_fn(|| rx.poll_event()).collect()
    }

    #[test]
    fn payload_codec() {
        let e = TelephoneEvent::parse(&[5, 0x8A, 0x03, 0x20]).unwrap();
        assert_eq!(
            e,
            TelephoneEvent {
                event: 5,
                end: true,
                volume: 10,
                duration: 800
            }
        );
        assert_eq!(e.to_bytes(), [5, 0x8A, 0x03, 0x20]);
        // R bit ignored on receipt.
        assert_eq!(TelephoneEvent::parse(&[5, 0xCA, 0, 0]).unwrap().volume, 10);
        let err = TelephoneEvent::parse(&[1, 2, 3]).unwrap_err();
        assert_eq!(err, DtmfError::PayloadTooShort { len: 3 });
        assert_eq!(err.code(), "media.dtmf.payload_too_short");
        for (i, c) in "0123456789*#ABCD!".chars().enumerate() {
            assert_eq!(char_to_event(c), Some(i as u8));
            assert_eq!(event_to_char(i as u8), Some(c));
        }
        assert_eq!(char_to_event('b'), Some(13));
        assert_eq!(char_to_event('x'), None);
        assert_eq!(event_to_char(17), None);
    }

    #[test]
    fn sender_exact_packet_sequence() {
        let t0 = Instant::now();
        let mut s = DtmfSender::new(PT, 8000, 20);
        s.start_at('5', 100, t0, 48_000).unwrap();
        assert_eq!(s.poll_timeout(), Some(t0));
        let pkts = drain(&mut s, t0, 1000);
        let got: Vec<(u64, bool, u32, TelephoneEvent)> = pkts
            .iter()
            .map(|(t, p)| (*t, p.marker, p.timestamp, p.event()))
            .collect();
        let te = |end, duration| TelephoneEvent {
            event: 5,
            end,
            volume: 10,
            duration,
        };
        assert_eq!(
            got,
            vec![
                (0, true, 48_000, te(false, 160)),
                (20, false, 48_000, te(false, 320)),
                (40, false, 48_000, te(false, 480)),
                (60, false, 48_000, te(false, 640)),
                (80, false, 48_000, te(true, 800)),
                (100, false, 48_000, te(true, 800)),
                (120, false, 48_000, te(true, 800)),
            ]
        );
        assert!(pkts.iter().all(|(_, p)| p.payload_type == PT));
        assert!(!s.is_active());
        assert_eq!(s.poll_timeout(), None);
        let h = pkts[0].1.header(9, 0xABCD);
        assert_eq!(
            (h.sequence, h.ssrc, h.marker, h.payload_type),
            (9, 0xABCD, true, PT)
        );
    }

    #[test]
    fn sender_short_digit_and_queue() {
        let t0 = Instant::now();
        let mut s = DtmfSender::new(PT, 8000, 20);
        // 10 ms: one tone packet that is already the end, plus two repeats.
        s.start_at('1', 10, t0, 0).unwrap();
        s.start('2', 40, t0).unwrap();
        assert_eq!(s.start('x', 40, t0), Err(DtmfError::UnknownDigit('x')));
        let pkts = drain(&mut s, t0, 1000);
        let summary: Vec<(u64, bool, u32, u8, bool, u16)> = pkts
            .iter()
            .map(|(t, p)| {
                let e = p.event();
                (*t, p.marker, p.timestamp, e.event, e.end, e.duration)
            })
            .collect();
        // Second digit starts after the last end packet (t=60) and 10 ms + 60 ms gap: t=70 ms,
        // timestamp 70 ms * 8 = 560.
        assert_eq!(
            summary,
            vec![
                (0, true, 0, 1, true, 80),
                (20, false, 0, 1, true, 80),
                (40, false, 0, 1, true, 80),
                (70, true, 560, 2, false, 160),
                (90, false, 560, 2, true, 320),
                (110, false, 560, 2, true, 320),
                (130, false, 560, 2, true, 320),
            ]
        );
    }

    #[test]
    fn sender_queue_limit() {
        let t0 = Instant::now();
        let mut s = DtmfSender::new(PT, 8000, 20);
        for _ in 0..SEND_QUEUE {
            s.start('9', 50, t0).unwrap();
        }
        assert_eq!(
            s.start('9', 50, t0).unwrap_err().code(),
            "media.dtmf.queue_full"
        );
    }

    #[test]
    fn sender_to_receiver_reports_once() {
        let t0 = Instant::now();
        let mut s = DtmfSender::new(PT, 8000, 20);
        let mut rx = DtmfReceiver::new(8000);
        for d in "19*#AD".chars() {
            s.start(d, 120, t0).unwrap();
        }
        let pkts = drain(&mut s, t0, 5000);
        for (t, p) in &pkts {
            rx.handle_packet(ms(t0, *t), &p.header(0, 7), &p.payload)
                .unwrap();
        }
        let got = all_events(&mut rx);
        let digits: String = got.iter().map(|e| e.digit).collect();
        assert_eq!(digits, "19*#AD");
        assert!(got
            .iter()
            .all(|e| e.duration_ms == 120 && e.ended == DtmfEnd::EndPacket && e.volume == 10));
        assert_eq!(rx.poll_timeout(), None);
    }

    #[test]
    fn lost_start_packet() {
        let t0 = Instant::now();
        let mut rx = DtmfReceiver::new(8000);
        // Start (marker, 160) lost; updates and ends arrive.
        rx.handle_packet(t0, &hdr(1000, false), &ev(3, false, 320))
            .unwrap();
        assert_eq!(rx.active_digit(), Some('3'));
        rx.handle_packet(ms(t0, 20), &hdr(1000, false), &ev(3, false, 480))
            .unwrap();
        for i in 0..3 {
            rx.handle_packet(ms(t0, 40 + 20 * i), &hdr(1000, false), &ev(3, true, 640))
                .unwrap();
        }
        let got = all_events(&mut rx);
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].digit, got[0].duration_ms, got[0].timestamp),
            ('3', 80, 1000)
        );
    }

    #[test]
    fn lost_end_times_out() {
        let t0 = Instant::now();
        let mut rx = DtmfReceiver::new(8000);
        rx.handle_packet(t0, &hdr(1000, true), &ev(7, false, 160))
            .unwrap();
        rx.handle_packet(ms(t0, 20), &hdr(1000, false), &ev(7, false, 320))
            .unwrap();
        assert_eq!(rx.poll_timeout(), Some(ms(t0, 520)));
        rx.handle_timeout(ms(t0, 519));
        assert_eq!(rx.poll_event(), None);
        rx.handle_timeout(ms(t0, 520));
        let e = rx.poll_event().unwrap();
        assert_eq!(
            (e.digit, e.duration_ms, e.ended),
            ('7', 40, DtmfEnd::TimedOut)
        );
        // A straggling end packet for the same event is not a second digit.
        rx.handle_packet(ms(t0, 600), &hdr(1000, false), &ev(7, true, 800))
            .unwrap();
        assert_eq!(rx.poll_event(), None);
        assert_eq!(rx.poll_timeout(), None);
    }

    #[test]
    fn lost_end_superseded_by_next_event() {
        let t0 = Instant::now();
        let mut rx = DtmfReceiver::new(8000).with_timeout(Duration::from_secs(5));
        rx.handle_packet(t0, &hdr(1000, true), &ev(1, false, 160))
            .unwrap();
        rx.handle_packet(ms(t0, 20), &hdr(1000, false), &ev(1, false, 320))
            .unwrap();
        // Same digit pressed again (new timestamp, marker): first one closes.
        rx.handle_packet(ms(t0, 200), &hdr(2600, true), &ev(1, false, 160))
            .unwrap();
        let e = rx.poll_event().unwrap();
        assert_eq!(
            (e.digit, e.duration_ms, e.ended, e.timestamp),
            ('1', 40, DtmfEnd::Superseded, 1000)
        );
        assert_eq!(rx.poll_event(), None);
        // Even without a marker (its start lost), a new timestamp is a new press.
        rx.handle_packet(ms(t0, 400), &hdr(4200, false), &ev(1, true, 480))
            .unwrap();
        let got = all_events(&mut rx);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].timestamp, got[0].duration_ms), (2600, 20));
        assert_eq!(
            (got[1].timestamp, got[1].duration_ms, got[1].ended),
            (4200, 60, DtmfEnd::EndPacket)
        );
    }

    #[test]
    fn duplicate_ends_and_late_packets_ignored() {
        let t0 = Instant::now();
        let mut rx = DtmfReceiver::new(8000);
        rx.handle_packet(t0, &hdr(500, true), &ev(11, false, 160))
            .unwrap();
        // Repeated start packets (some senders send the first packet 3 times).
        rx.handle_packet(t0, &hdr(500, true), &ev(11, false, 160))
            .unwrap();
        rx.handle_packet(t0, &hdr(500, true), &ev(11, false, 160))
            .unwrap();
        for _ in 0..5 {
            rx.handle_packet(ms(t0, 40), &hdr(500, false), &ev(11, true, 400))
                .unwrap();
        }
        // A reordered update of the finished event arrives last.
        rx.handle_packet(ms(t0, 60), &hdr(500, false), &ev(11, false, 320))
            .unwrap();
        let got = all_events(&mut rx);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].digit, got[0].duration_ms), ('#', 50));
        // A packet older than the finished event is ignored too.
        rx.handle_packet(ms(t0, 70), &hdr(300, true), &ev(2, false, 160))
            .unwrap();
        assert_eq!(rx.poll_event(), None);
        assert_eq!(rx.active_digit(), None);
    }

    #[test]
    fn reordered_update_keeps_longest_duration() {
        let t0 = Instant::now();
        let mut rx = DtmfReceiver::new(8000);
        rx.handle_packet(t0, &hdr(0, true), &ev(4, false, 480))
            .unwrap();
        rx.handle_packet(t0, &hdr(0, false), &ev(4, false, 320))
            .unwrap();
        rx.handle_timeout(ms(t0, 10_000));
        assert_eq!(rx.poll_event().unwrap().duration_ms, 60);
    }

    #[test]
    fn unsupported_events_ignored_letters_and_flash_reported() {
        let t0 = Instant::now();
        let mut rx = DtmfReceiver::new(8000);
        // Event 32 (fax ANS, RFC 4734) and 255 are ignored entirely.
        rx.handle_packet(t0, &hdr(100, true), &ev(32, true, 800))
            .unwrap();
        rx.handle_packet(t0, &hdr(200, true), &ev(255, true, 800))
            .unwrap();
        assert_eq!(rx.poll_event(), None);
        assert_eq!(rx.poll_timeout(), None);
        let mut ts = 1000;
        for code in [10u8, 11, 12, 13, 14, 15, 16] {
            rx.handle_packet(t0, &hdr(ts, true), &ev(code, true, 400))
                .unwrap();
            ts += 1000;
        }
        let s: String = all_events(&mut rx).iter().map(|e| e.digit).collect();
        assert_eq!(s, "*#ABCD!");
    }

    #[test]
    fn ssrc_change_closes_event() {
        let t0 = Instant::now();
        let mut rx = DtmfReceiver::new(8000);
        rx.handle_packet(t0, &hdr(1000, true), &ev(8, false, 160))
            .unwrap();
        let mut other = hdr(1000, true);
        other.ssrc = 99;
        rx.handle_packet(t0, &other, &ev(9, true, 160)).unwrap();
        let got = all_events(&mut rx);
        assert_eq!(
            got.iter().map(|e| (e.digit, e.ssrc)).collect::<Vec<_>>(),
            vec![('8', 7), ('9', 99)]
        );
    }

    #[test]
    fn long_event_near_duration_overflow() {
        let t0 = Instant::now();
        let mut s = DtmfSender::new(PT, 8000, 20);
        // 20 s asked: clamped to 0xFFFF units (8191 ms) instead of wrapping the u16 field.
        s.start_at('0', 20_000, t0, u32::MAX - 100).unwrap();
        let pkts = drain(&mut s, t0, 30_000);
        assert_eq!(pkts.len(), 410 + 2);
        let durs: Vec<u16> = pkts.iter().map(|(_, p)| p.event().duration).collect();
        assert!(
            durs.windows(2).all(|w| w[0] <= w[1]),
            "durations must not wrap"
        );
        assert_eq!(durs[408], 409 * 160);
        assert_eq!(&durs[409..], &[0xFFFF, 0xFFFF, 0xFFFF]);
        let mut rx = DtmfReceiver::new(8000);
        for (t, p) in &pkts {
            rx.handle_packet(ms(t0, *t), &p.header(0, 7), &p.payload)
                .unwrap();
        }
        let got = all_events(&mut rx);
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].digit, got[0].duration_ms, got[0].timestamp),
            ('0', 8191, u32::MAX - 100)
        );
    }

    #[test]
    fn segmented_long_event_is_stitched() {
        // §2.5.1.3: a long event continues in a new segment at ts + 0xFFFF without marker.
        let t0 = Instant::now();
        let mut rx = DtmfReceiver::new(8000);
        let ts = u32::MAX - 1000; // segments straddle the timestamp wrap
        rx.handle_packet(t0, &hdr(ts, true), &ev(6, false, 160))
            .unwrap();
        rx.handle_packet(ms(t0, 8000), &hdr(ts, false), &ev(6, false, 0xFFFF))
            .unwrap();
        let seg2 = ts.wrapping_add(0xFFFF);
        rx.handle_packet(ms(t0, 8200), &hdr(seg2, false), &ev(6, false, 1600))
            .unwrap();
        for _ in 0..3 {
            rx.handle_packet(ms(t0, 8400), &hdr(seg2, false), &ev(6, true, 3200))
                .unwrap();
        }
        let got = all_events(&mut rx);
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].duration_ms, got[0].timestamp),
            ((0xFFFF + 3200) * 1000 / 8000, ts)
        );
    }

    #[test]
    fn random_payloads_never_panic() {
        let t0 = Instant::now();
        let mut rx = DtmfReceiver::new(8000).with_timeout(Duration::from_millis(100));
        let mut x: u64 = 0x1234_5678_9ABC_DEF1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut reported = 0;
        for i in 0..20_000u64 {
            let r = next();
            let len = (r % 6) as usize;
            let bytes = next().to_be_bytes();
            let h = RtpHeader {
                payload_type: PT,
                marker: r & 0x100 != 0,
                sequence: i as u16,
                timestamp: (r >> 20) as u32 % 50_000,
                ssrc: (r >> 60) as u32 % 2,
                csrc_count: 0,
            };
            let now = ms(t0, i);
            let _ = rx.handle_packet(now, &h, &bytes[..len]);
            rx.handle_timeout(now);
            while rx.poll_event().is_some() {
                reported += 1;
            }
        }
        assert!(reported > 0);
    }
}
