//! The per-call media bridge between the carrier (G.711 over RTP) and the manager's browser
//! (Opus payloads carried by WebRTC), sans-IO.
//!
//! Every 20 ms tick it plays one frame each way out of two jitter buffers:
//! carrier RTP → jitter buffer → G.711 decode (or concealment) → Opus encode at 8 kHz → browser;
//! browser Opus → jitter buffer → Opus decode (or Opus concealment) → G.711 encode → carrier RTP.
//! RFC 4733 telephone-events are reported from the carrier and sent to it. Both legs keep
//! running on loss: the carrier always gets a packet per tick (silence before the browser
//! speaks), so carrier-side media timers never fire on a quiet manager.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::dtmf::{DtmfError, DtmfReceiver, DtmfSender};
use crate::g711::G711Law;
use crate::jitter::{JitterBuffer, JitterConfig, JitterError, Playout};
use crate::opus_codec::{
    OpusDecoder8k, OpusEncoder8k, OpusError, FRAME_SAMPLES_8K, RTP_TIMESTAMP_INCREMENT_20MS,
};
use crate::rtp::{self, RtpHeader};

/// One frame of audio per tick (RFC 3551 §4.5: 20 ms is the default G.711 packetization).
pub const TICK: Duration = Duration::from_millis(20);
/// Largest RTP packet we build: 12-byte header + 160 bytes of G.711.
const CARRIER_PACKET_BYTES: usize = 12 + FRAME_SAMPLES_8K;
/// Enough for any 20 ms Opus packet at the rates we use (RFC 6716 §3.2.1 allows 1275).
const OPUS_PACKET_BYTES: usize = 1275;
/// Concealed G.711 frames fade by this factor each, so a long gap turns into silence.
const CONCEAL_FADE: f32 = 0.5;

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("invalid bridge configuration: {0}")]
    Config(&'static str),
    #[error(transparent)]
    Opus(#[from] OpusError),
    #[error(transparent)]
    Jitter(#[from] JitterError),
    #[error(transparent)]
    Dtmf(#[from] DtmfError),
}

impl BridgeError {
    pub fn code(&self) -> &'static str {
        match self {
            BridgeError::Config(_) => "media.bridge_config",
            BridgeError::Opus(e) => e.code(),
            BridgeError::Jitter(e) => e.code(),
            BridgeError::Dtmf(e) => e.code(),
        }
    }
}

/// What the call negotiated with the carrier, and our own stream's random start values.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    pub law: G711Law,
    /// Payload type of the G.711 codec on the carrier leg (0 or 8, static).
    pub carrier_payload_type: u8,
    /// Payload type of telephone-event on the carrier leg, when negotiated.
    pub carrier_dtmf_payload_type: Option<u8>,
    pub opus_bitrate_bps: u32,
    pub opus_complexity: u8,
    /// RFC 3550 §5.1: SSRC, first sequence number and timestamp are random (injected).
    pub carrier_ssrc: u32,
    pub carrier_first_sequence: u16,
    pub carrier_first_timestamp: u32,
    pub browser_first_timestamp: u32,
}

/// Work for the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeOutput {
    /// A complete RTP packet (G.711 or telephone-event) for the carrier.
    ToCarrier(Vec<u8>),
    /// An Opus payload for the browser leg, with its RTP timestamp (48 kHz clock).
    ToBrowser {
        payload: Vec<u8>,
        rtp_timestamp: u32,
    },
    /// A digit the carrier sent as an RFC 4733 event (reported once, at its end).
    DigitFromCarrier(char),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BridgeStats {
    pub carrier_packets: u64,
    pub carrier_dropped: u64,
    pub carrier_concealed: u64,
    pub browser_packets: u64,
    pub browser_empty_skipped: u64,
    pub browser_concealed: u64,
    pub browser_decode_errors: u64,
    pub frames_to_browser: u64,
    pub packets_to_carrier: u64,
    pub digits_from_carrier: u64,
    pub digits_to_carrier: u64,
}

pub struct PhoneBridge {
    cfg: BridgeConfig,
    next_tick: Instant,
    carrier_jitter: JitterBuffer,
    browser_jitter: JitterBuffer,
    encoder: OpusEncoder8k,
    decoder: OpusDecoder8k,
    dtmf_in: Option<DtmfReceiver>,
    dtmf_out: Option<DtmfSender>,
    carrier_seq: u16,
    carrier_ts: u32,
    carrier_marker: bool,
    browser_ts: u32,
    /// Last carrier frame, faded for concealment.
    last_carrier_pcm: [i16; FRAME_SAMPLES_8K],
    carrier_started: bool,
    last_carrier_packet_at: Option<Instant>,
    pcm: [i16; FRAME_SAMPLES_8K],
    opus_out: Vec<u8>,
    outputs: VecDeque<BridgeOutput>,
    stats: BridgeStats,
}

impl PhoneBridge {
    pub fn new(cfg: BridgeConfig, now: Instant) -> Result<PhoneBridge, BridgeError> {
        if cfg.law.payload_type() != cfg.carrier_payload_type {
            return Err(BridgeError::Config(
                "G.711 payload type does not match the law (PCMU 0, PCMA 8)",
            ));
        }
        let dtmf_out = cfg.carrier_dtmf_payload_type.map(|pt| {
            let mut s = DtmfSender::new(pt, 8000, 20);
            s.set_timestamp_anchor(now, cfg.carrier_first_timestamp);
            s
        });
        Ok(PhoneBridge {
            next_tick: now,
            carrier_jitter: JitterBuffer::new(JitterConfig::g711())?,
            browser_jitter: JitterBuffer::new(JitterConfig::opus())?,
            encoder: OpusEncoder8k::new(cfg.opus_bitrate_bps, cfg.opus_complexity)?,
            decoder: OpusDecoder8k::new()?,
            dtmf_in: cfg
                .carrier_dtmf_payload_type
                .map(|_| DtmfReceiver::new(8000)),
            dtmf_out,
            carrier_seq: cfg.carrier_first_sequence,
            carrier_ts: cfg.carrier_first_timestamp,
            carrier_marker: true,
            browser_ts: cfg.browser_first_timestamp,
            last_carrier_pcm: [0; FRAME_SAMPLES_8K],
            carrier_started: false,
            last_carrier_packet_at: None,
            pcm: [0; FRAME_SAMPLES_8K],
            opus_out: vec![0; OPUS_PACKET_BYTES],
            outputs: VecDeque::new(),
            stats: BridgeStats::default(),
            cfg,
        })
    }

    pub fn stats(&self) -> &BridgeStats {
        &self.stats
    }

    /// When the carrier last sent a usable RTP packet (for the media inactivity timeout).
    pub fn last_carrier_packet_at(&self) -> Option<Instant> {
        self.last_carrier_packet_at
    }

    /// A datagram from the carrier's RTP port: audio, telephone-event, or something to drop.
    pub fn handle_carrier_packet(&mut self, now: Instant, datagram: &[u8]) {
        if rtp::is_rtcp(datagram) {
            return; // RTCP is not needed to bridge; the carrier's reports are ignored.
        }
        let Ok(packet) = rtp::parse(datagram) else {
            self.stats.carrier_dropped += 1;
            return;
        };
        let header = *packet.header();
        if header.payload_type == self.cfg.carrier_payload_type {
            self.stats.carrier_packets += 1;
            self.last_carrier_packet_at = Some(now);
            self.carrier_started = true;
            self.carrier_jitter
                .push(now, header.sequence, header.timestamp, packet.payload());
        } else if Some(header.payload_type) == self.cfg.carrier_dtmf_payload_type {
            self.last_carrier_packet_at = Some(now);
            if let Some(rx) = &mut self.dtmf_in {
                if rx.handle_packet(now, &header, packet.payload()).is_err() {
                    self.stats.carrier_dropped += 1;
                }
            }
            self.drain_digits();
        } else {
            // Comfort noise (13) or a payload type we did not negotiate.
            self.stats.carrier_dropped += 1;
        }
    }

    /// An Opus payload from the browser leg. Empty payloads are Chrome's probes: feeding one
    /// to the decoder would make it invent audio, so they are skipped here.
    pub fn handle_browser_audio(
        &mut self,
        now: Instant,
        sequence: u16,
        rtp_timestamp: u32,
        payload: &[u8],
    ) {
        if payload.is_empty() {
            self.stats.browser_empty_skipped += 1;
            return;
        }
        self.stats.browser_packets += 1;
        self.browser_jitter
            .push(now, sequence, rtp_timestamp, payload);
    }

    /// Sends `digit` to the carrier as an RFC 4733 event; audio toward the carrier pauses
    /// while it plays (§2.5.1.1).
    pub fn send_digit(
        &mut self,
        now: Instant,
        digit: char,
        duration_ms: u32,
    ) -> Result<(), BridgeError> {
        let sender = self.dtmf_out.as_mut().ok_or(BridgeError::Config(
            "the carrier did not negotiate telephone-event",
        ))?;
        sender.start(digit, duration_ms, now)?;
        self.stats.digits_to_carrier += 1;
        Ok(())
    }

    pub fn poll_timeout(&self) -> Instant {
        let mut at = self.next_tick;
        if let Some(t) = self.dtmf_in.as_ref().and_then(DtmfReceiver::poll_timeout) {
            at = at.min(t);
        }
        at
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), BridgeError> {
        if let Some(rx) = &mut self.dtmf_in {
            rx.handle_timeout(now);
        }
        self.drain_digits();
        // A late driver catches up tick by tick, so both streams keep their clocks.
        while now >= self.next_tick {
            let tick = self.next_tick;
            self.next_tick += TICK;
            self.carrier_to_browser(tick)?;
            self.browser_to_carrier(tick)?;
        }
        Ok(())
    }

    pub fn poll_output(&mut self) -> Option<BridgeOutput> {
        self.outputs.pop_front()
    }

    fn drain_digits(&mut self) {
        if let Some(rx) = &mut self.dtmf_in {
            while let Some(ev) = rx.poll_event() {
                self.stats.digits_from_carrier += 1;
                self.outputs
                    .push_back(BridgeOutput::DigitFromCarrier(ev.digit));
            }
        }
    }

    fn carrier_to_browser(&mut self, now: Instant) -> Result<(), BridgeError> {
        if !self.carrier_started {
            return Ok(()); // nothing heard yet: nothing to send
        }
        match self.carrier_jitter.pop(now) {
            Playout::Frame { payload, .. } => {
                // A frame of another size (30 ms packets) is cut or padded to 20 ms.
                let n = payload.len().min(FRAME_SAMPLES_8K);
                self.cfg.law.decode(&payload[..n], &mut self.pcm[..n]).ok();
                self.pcm[n..].fill(0);
                self.last_carrier_pcm = self.pcm;
            }
            Playout::Missing => {
                // G.711 has no concealment of its own (ITU-T G.711 Appendix I is heavier):
                // repeat the last frame, fading, which hides single losses well.
                self.stats.carrier_concealed += 1;
                for s in &mut self.last_carrier_pcm {
                    *s = (f32::from(*s) * CONCEAL_FADE) as i16;
                }
                self.pcm = self.last_carrier_pcm;
            }
            Playout::Empty => self.pcm = [0; FRAME_SAMPLES_8K],
        }
        let n = self.encoder.encode(&self.pcm, &mut self.opus_out)?;
        self.outputs.push_back(BridgeOutput::ToBrowser {
            payload: self.opus_out[..n].to_vec(),
            rtp_timestamp: self.browser_ts,
        });
        self.browser_ts = self.browser_ts.wrapping_add(RTP_TIMESTAMP_INCREMENT_20MS);
        self.stats.frames_to_browser += 1;
        Ok(())
    }

    fn browser_to_carrier(&mut self, now: Instant) -> Result<(), BridgeError> {
        match self.browser_jitter.pop(now) {
            Playout::Frame { payload, .. } => match self.decoder.decode(payload, &mut self.pcm) {
                Ok(n) if n >= FRAME_SAMPLES_8K => {}
                _ => {
                    self.stats.browser_decode_errors += 1;
                    self.decoder.conceal(&mut self.pcm)?;
                }
            },
            Playout::Missing => {
                self.stats.browser_concealed += 1;
                self.decoder.conceal(&mut self.pcm)?;
            }
            // Before the manager's audio arrives the carrier still gets a steady stream.
            Playout::Empty => self.pcm = [0; FRAME_SAMPLES_8K],
        }
        let timestamp = self.carrier_ts;
        self.carrier_ts = self.carrier_ts.wrapping_add(FRAME_SAMPLES_8K as u32);
        let dtmf_due = self
            .dtmf_out
            .as_ref()
            .is_some_and(|s| s.is_active() || s.poll_timeout().is_some_and(|t| t <= now));
        if dtmf_due {
            // RFC 4733 §2.5.1.1: the event replaces audio while it plays.
            while let Some(p) = self.dtmf_out.as_mut().and_then(|s| s.poll_packet(now)) {
                let header = p.header(self.carrier_seq, self.cfg.carrier_ssrc);
                self.push_carrier_packet(&header, &p.payload);
            }
            return Ok(());
        }
        let mut g711 = [0u8; FRAME_SAMPLES_8K];
        self.cfg.law.encode(&self.pcm, &mut g711).ok();
        let header = RtpHeader {
            payload_type: self.cfg.carrier_payload_type,
            marker: std::mem::take(&mut self.carrier_marker),
            sequence: self.carrier_seq,
            timestamp,
            ssrc: self.cfg.carrier_ssrc,
            csrc_count: 0,
        };
        self.push_carrier_packet(&header, &g711);
        Ok(())
    }

    fn push_carrier_packet(&mut self, header: &RtpHeader, payload: &[u8]) {
        let mut buf = vec![0u8; CARRIER_PACKET_BYTES];
        if let Ok(n) = rtp::write_packet(header, payload, &mut buf) {
            buf.truncate(n);
            self.carrier_seq = self.carrier_seq.wrapping_add(1);
            self.stats.packets_to_carrier += 1;
            self.outputs.push_back(BridgeOutput::ToCarrier(buf));
        }
    }
}

#[cfg(test)]
mod tests;
