//! The per-call media bridge between the carrier (G.711 over RTP) and the manager's browser
//! (Opus payloads carried by WebRTC), sans-IO.
//!
//! Every 20 ms tick it plays one frame each way out of two jitter buffers:
//! carrier RTP → jitter buffer → G.711 decode (or concealment) → Opus encode at 8 kHz → browser;
//! browser Opus → jitter buffer → Opus decode (or Opus concealment) → G.711 encode → carrier RTP.
//! RFC 4733 telephone-events are reported from the carrier and sent to it. Both legs keep
//! running on loss: the carrier always gets a packet per tick (silence before the browser
//! speaks), so carrier-side media timers never fire on a quiet manager.
//!
//! The carrier may packetize G.711 at another interval than the tick (`a=ptime`, 10 to 120 ms
//! in steps of 10, RFC 3551 §4.5): its packets are decoded into a sample queue the tick takes
//! 20 ms from, and our packets to it are cut from a queue at the negotiated interval.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::dtmf::{DtmfError, DtmfReceiver, DtmfSender};
use crate::g711::G711Law;
use crate::jitter::{JitterBuffer, JitterConfig, JitterError, Playout};
use crate::mixer::{Mixer, MixerError, ParticipantId, MAX_PARTICIPANTS};
use crate::opus_codec::{
    OpusDecoder8k, OpusEncoder8k, OpusError, FRAME_SAMPLES_8K, RTP_TIMESTAMP_INCREMENT_20MS,
};
use crate::rtp::{self, RtpHeader};

/// One frame of audio per tick (RFC 3551 §4.5: 20 ms is the default G.711 packetization).
pub const TICK: Duration = Duration::from_millis(20);
/// Longest carrier packetization we accept (RFC 3551 §4.5 frames of 10 ms, up to 120 ms).
pub const MAX_CARRIER_PTIME_MS: u32 = 120;
/// G.711 samples (and bytes) in the longest carrier packet.
const MAX_CARRIER_PACKET_SAMPLES: usize = (MAX_CARRIER_PTIME_MS * 8) as usize;
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
    #[error(transparent)]
    Mixer(#[from] MixerError),
    /// Adding a manager leg would exceed the meet's participant limit (carrier included).
    #[error("the meet is full: at most {max} participants")]
    Full { max: usize },
    #[error("manager leg {0} already exists")]
    DuplicateLeg(LegId),
}

impl BridgeError {
    pub fn code(&self) -> &'static str {
        match self {
            BridgeError::Config(_) => "media.bridge_config",
            BridgeError::Opus(e) => e.code(),
            BridgeError::Jitter(e) => e.code(),
            BridgeError::Dtmf(e) => e.code(),
            BridgeError::Mixer(e) => e.code(),
            BridgeError::Full { .. } => "meet.full",
            BridgeError::DuplicateLeg(_) => "media.bridge_duplicate_leg",
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
    /// The carrier leg's packetization interval (negotiated `a=ptime`): 10 to 120 ms, a
    /// multiple of 10.
    pub carrier_ptime_ms: u32,
    pub opus_bitrate_bps: u32,
    pub opus_complexity: u8,
    /// Keep a stereo recording of the call (left the customer, right the managers mixed),
    /// taken with [`PhoneBridge::take_recording`].
    pub record: bool,
    /// RFC 3550 §5.1: SSRC, first sequence number and timestamp are random (injected).
    pub carrier_ssrc: u32,
    pub carrier_first_sequence: u16,
    pub carrier_first_timestamp: u32,
    pub browser_first_timestamp: u32,
}

/// A manager leg of the bridge. The leg created with the bridge (the answering manager's
/// browser) is [`PRIMARY_LEG`]; its frames come out as [`BridgeOutput::ToBrowser`], those of
/// legs added later (managers invited into the meet) as [`BridgeOutput::ToLeg`].
pub type LegId = u8;
pub const PRIMARY_LEG: LegId = 0;
/// The carrier's id in the mixer (legs use their own ids, which must differ).
const CARRIER_MIX_ID: ParticipantId = ParticipantId::MAX;

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
    /// An Opus payload for an added manager leg (not the primary one).
    ToLeg {
        leg: LegId,
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
    /// Carrier audio packets the jitter buffer threw away: too late for their slot, beyond
    /// its window, or oversized. Duplicates are not counted: nothing was lost.
    pub carrier_discarded: u64,
    /// The same for the managers' Opus packets, all legs together.
    pub browser_discarded: u64,
}

fn discarded(s: &crate::jitter::JitterStats) -> u64 {
    s.late + s.overflow_dropped + s.oversize_dropped
}

/// One manager's browser: its Opus stream in and out.
struct Leg {
    id: LegId,
    jitter: JitterBuffer,
    encoder: OpusEncoder8k,
    decoder: OpusDecoder8k,
    ts: u32,
    pcm: [i16; FRAME_SAMPLES_8K],
}

impl Leg {
    fn new(id: LegId, cfg: &BridgeConfig, first_timestamp: u32) -> Result<Leg, BridgeError> {
        Ok(Leg {
            id,
            jitter: JitterBuffer::new(JitterConfig::opus())?,
            encoder: OpusEncoder8k::new(cfg.opus_bitrate_bps, cfg.opus_complexity)?,
            decoder: OpusDecoder8k::new()?,
            ts: first_timestamp,
            pcm: [0; FRAME_SAMPLES_8K],
        })
    }
}

/// The bridge between the carrier and one or more manager legs. With one leg it is a plain
/// 1:1 bridge; with more, every 20 ms tick mixes at 8 kHz (mix-minus, [`Mixer`]): the carrier
/// hears the sum of all managers, each manager hears the carrier and the other managers.
pub struct PhoneBridge {
    cfg: BridgeConfig,
    next_tick: Instant,
    carrier_jitter: JitterBuffer,
    legs: Vec<Leg>,
    mixer: Mixer,
    mix_out: Vec<i16>,
    dtmf_in: Option<DtmfReceiver>,
    dtmf_out: Option<DtmfSender>,
    carrier_seq: u16,
    carrier_marker: bool,
    /// G.711 samples in one carrier packet (8 per ms of ptime).
    carrier_packet_samples: usize,
    /// Decoded carrier audio waiting for the ticks that play it, 20 ms at a time.
    carrier_in: VecDeque<i16>,
    /// Audio for the carrier waiting to fill a packet of `carrier_packet_samples`, and the RTP
    /// timestamp of its first sample.
    carrier_out: VecDeque<i16>,
    carrier_out_ts: u32,
    /// RTP timestamp of the next tick's audio toward the carrier.
    carrier_tick_ts: u32,
    /// Last carrier packet's audio (`carrier_packet_samples` of it), faded for concealment.
    last_carrier_pcm: [i16; MAX_CARRIER_PACKET_SAMPLES],
    carrier_started: bool,
    /// Sequence number and timestamp of the last carrier audio packet, so telephone-event
    /// packets (which share the audio's sequence space, RFC 4733 §2.1) can be placed into the
    /// audio timeline as silence instead of looking like lost audio.
    last_carrier_audio: Option<(u16, u32)>,
    last_carrier_packet_at: Option<Instant>,
    pcm: [i16; FRAME_SAMPLES_8K],
    opus_out: Vec<u8>,
    outputs: VecDeque<BridgeOutput>,
    /// Interleaved 16-bit stereo at 8 kHz since the last [`PhoneBridge::take_recording`].
    recording: Vec<u8>,
    stats: BridgeStats,
}

impl PhoneBridge {
    pub fn new(cfg: BridgeConfig, now: Instant) -> Result<PhoneBridge, BridgeError> {
        if cfg.law.payload_type() != cfg.carrier_payload_type {
            return Err(BridgeError::Config(
                "G.711 payload type does not match the law (PCMU 0, PCMA 8)",
            ));
        }
        if !(10..=MAX_CARRIER_PTIME_MS).contains(&cfg.carrier_ptime_ms)
            || !cfg.carrier_ptime_ms.is_multiple_of(10)
        {
            return Err(BridgeError::Config(
                "carrier ptime must be 10 to 120 ms in steps of 10",
            ));
        }
        let carrier_packet_samples = (cfg.carrier_ptime_ms * 8) as usize;
        let dtmf_out = cfg.carrier_dtmf_payload_type.map(|pt| {
            let mut s = DtmfSender::new(pt, 8000, 20);
            s.set_timestamp_anchor(now, cfg.carrier_first_timestamp);
            s
        });
        Ok(PhoneBridge {
            next_tick: now,
            carrier_jitter: JitterBuffer::new(JitterConfig::g711_packets(Duration::from_millis(
                u64::from(cfg.carrier_ptime_ms),
            )))?,
            legs: vec![Leg::new(PRIMARY_LEG, &cfg, cfg.browser_first_timestamp)?],
            mixer: Mixer::new(8000, TICK)?,
            mix_out: vec![0; MAX_PARTICIPANTS * FRAME_SAMPLES_8K],
            dtmf_in: cfg
                .carrier_dtmf_payload_type
                .map(|_| DtmfReceiver::new(8000)),
            dtmf_out,
            carrier_seq: cfg.carrier_first_sequence,
            carrier_marker: true,
            carrier_packet_samples,
            carrier_in: VecDeque::with_capacity(MAX_CARRIER_PACKET_SAMPLES + FRAME_SAMPLES_8K),
            carrier_out: VecDeque::with_capacity(MAX_CARRIER_PACKET_SAMPLES + FRAME_SAMPLES_8K),
            carrier_out_ts: cfg.carrier_first_timestamp,
            carrier_tick_ts: cfg.carrier_first_timestamp,
            last_carrier_pcm: [0; MAX_CARRIER_PACKET_SAMPLES],
            carrier_started: false,
            last_carrier_audio: None,
            last_carrier_packet_at: None,
            pcm: [0; FRAME_SAMPLES_8K],
            opus_out: vec![0; OPUS_PACKET_BYTES],
            outputs: VecDeque::new(),
            recording: Vec::new(),
            stats: BridgeStats::default(),
            cfg,
        })
    }

    pub fn stats(&self) -> BridgeStats {
        BridgeStats {
            carrier_discarded: discarded(&self.carrier_jitter.stats()),
            browser_discarded: self.stats.browser_discarded
                + self
                    .legs
                    .iter()
                    .map(|l| discarded(&l.jitter.stats()))
                    .sum::<u64>(),
            ..self.stats.clone()
        }
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
            self.last_carrier_audio = Some((header.sequence, header.timestamp));
            self.carrier_jitter
                .push(now, header.sequence, header.timestamp, packet.payload());
        } else if Some(header.payload_type) == self.cfg.carrier_dtmf_payload_type {
            self.last_carrier_packet_at = Some(now);
            self.fill_event_slot(now, header.sequence, packet.payload().len());
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

    /// While a digit is sent the carrier sends telephone-event packets instead of audio, in
    /// the audio's sequence space (RFC 4733 §2.1): a gap the audio jitter buffer would count
    /// as loss, concealing (repeating the last audio) and stretching its delay. Each event
    /// packet's slot is filled with one packet of G.711 silence instead, its timestamp extrapolated
    /// from the last audio packet (the event's own timestamp is the event start, §2.3.4).
    fn fill_event_slot(&mut self, now: Instant, sequence: u16, event_payload_len: usize) {
        let Some((audio_seq, audio_ts)) = self.last_carrier_audio else {
            return; // no audio yet: nothing to keep continuous
        };
        if event_payload_len < 4 {
            return; // not a valid event (RFC 4733 §2.3): leave the slot alone
        }
        let packets_after = i32::from(sequence.wrapping_sub(audio_seq) as i16);
        let samples = self.carrier_packet_samples;
        let timestamp = audio_ts.wrapping_add_signed(packets_after * samples as i32);
        let silence = [self.cfg.law.silence(); MAX_CARRIER_PACKET_SAMPLES];
        self.carrier_jitter
            .push(now, sequence, timestamp, &silence[..samples]);
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
        self.handle_leg_audio(PRIMARY_LEG, now, sequence, rtp_timestamp, payload);
    }

    /// An Opus payload from manager leg `leg` (ignored when the leg is gone).
    pub fn handle_leg_audio(
        &mut self,
        leg: LegId,
        now: Instant,
        sequence: u16,
        rtp_timestamp: u32,
        payload: &[u8],
    ) {
        if payload.is_empty() {
            self.stats.browser_empty_skipped += 1;
            return;
        }
        let Some(l) = self.legs.iter_mut().find(|l| l.id == leg) else {
            return;
        };
        self.stats.browser_packets += 1;
        l.jitter.push(now, sequence, rtp_timestamp, payload);
    }

    /// Adds a manager leg (an invited manager joined). The carrier counts as one participant:
    /// at most [`MAX_PARTICIPANTS`] − 1 manager legs.
    pub fn add_leg(&mut self, leg: LegId, first_timestamp: u32) -> Result<(), BridgeError> {
        if leg == CARRIER_MIX_ID || self.legs.iter().any(|l| l.id == leg) {
            return Err(BridgeError::DuplicateLeg(leg));
        }
        if self.legs.len() + 1 >= MAX_PARTICIPANTS {
            return Err(BridgeError::Full {
                max: MAX_PARTICIPANTS,
            });
        }
        let l = Leg::new(leg, &self.cfg, first_timestamp)?;
        self.legs.push(l);
        Ok(())
    }

    /// Removes a manager leg (the manager left only themselves). True if it existed.
    pub fn remove_leg(&mut self, leg: LegId) -> bool {
        let Some(i) = self.legs.iter().position(|l| l.id == leg) else {
            return false;
        };
        let gone = self.legs.remove(i);
        // Keep the counter monotonic once the leg's jitter buffer is gone.
        self.stats.browser_discarded += discarded(&gone.jitter.stats());
        true
    }

    /// Manager legs in the bridge.
    pub fn leg_count(&self) -> usize {
        self.legs.len()
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
            self.tick(tick)?;
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

    /// One 20 ms tick: decode every input, mix (mix-minus), encode every output.
    fn tick(&mut self, now: Instant) -> Result<(), BridgeError> {
        let carrier_present = self.carrier_pcm(now);
        for i in 0..self.legs.len() {
            self.leg_pcm(i, now)?;
        }
        let n = self.legs.len();
        let mut inputs: [(ParticipantId, Option<&[i16]>); MAX_PARTICIPANTS] =
            [(0, None); MAX_PARTICIPANTS];
        inputs[0] = (CARRIER_MIX_ID, carrier_present.then_some(&self.pcm[..]));
        for (slot, leg) in inputs[1..].iter_mut().zip(&self.legs) {
            *slot = (leg.id, Some(&leg.pcm[..]));
        }
        self.mixer.mix(&inputs[..=n], &mut self.mix_out)?;
        // Managers hear nothing before the carrier's first packet, unless others talk too.
        if self.carrier_started || n > 1 {
            for (i, leg) in self.legs.iter_mut().enumerate() {
                let heard = &self.mix_out[(i + 1) * FRAME_SAMPLES_8K..(i + 2) * FRAME_SAMPLES_8K];
                let len = leg.encoder.encode(heard, &mut self.opus_out)?;
                let payload = self.opus_out[..len].to_vec();
                let rtp_timestamp = leg.ts;
                leg.ts = leg.ts.wrapping_add(RTP_TIMESTAMP_INCREMENT_20MS);
                self.outputs.push_back(if leg.id == PRIMARY_LEG {
                    BridgeOutput::ToBrowser {
                        payload,
                        rtp_timestamp,
                    }
                } else {
                    BridgeOutput::ToLeg {
                        leg: leg.id,
                        payload,
                        rtp_timestamp,
                    }
                });
                self.stats.frames_to_browser += 1;
            }
        }
        let mut to_carrier = [0i16; FRAME_SAMPLES_8K];
        to_carrier.copy_from_slice(&self.mix_out[..FRAME_SAMPLES_8K]);
        if self.cfg.record {
            // What the carrier hears is every manager mixed: that is the right channel.
            let customer = if carrier_present {
                self.pcm
            } else {
                [0; FRAME_SAMPLES_8K]
            };
            crate::wav::interleave_stereo(&customer, &to_carrier, &mut self.recording);
        }
        self.send_to_carrier(now, &to_carrier);
        Ok(())
    }

    /// The recording since the last call (whole 20 ms ticks), or `None` if there is none.
    pub fn take_recording(&mut self) -> Option<Vec<u8>> {
        (!self.recording.is_empty()).then(|| std::mem::take(&mut self.recording))
    }

    /// The carrier's frame for this tick into `self.pcm`; false when there is none. As many
    /// carrier packets are taken from the jitter buffer as the tick needs: one per tick at
    /// 20 ms, two at 10 ms, two every three ticks at 30 ms.
    fn carrier_pcm(&mut self, now: Instant) -> bool {
        if !self.carrier_started {
            self.pcm = [0; FRAME_SAMPLES_8K];
            return false; // nothing heard yet
        }
        let packet = self.carrier_packet_samples;
        while self.carrier_in.len() < FRAME_SAMPLES_8K {
            match self.carrier_jitter.pop(now) {
                Playout::Frame { payload, .. } => {
                    // The jitter buffer refuses packets longer than one ptime; a shorter one
                    // (a sender ignoring our ptime) is played for what it holds.
                    let n = payload.len().min(packet);
                    let mut pcm = [0i16; MAX_CARRIER_PACKET_SAMPLES];
                    self.cfg.law.decode(&payload[..n], &mut pcm[..n]).ok();
                    self.carrier_in.extend(&pcm[..n]);
                    self.last_carrier_pcm[..n].copy_from_slice(&pcm[..n]);
                    self.last_carrier_pcm[n..packet].fill(0);
                }
                Playout::Missing => {
                    // G.711 has no concealment of its own (ITU-T G.711 Appendix I is heavier):
                    // repeat the last packet, fading, which hides single losses well.
                    self.stats.carrier_concealed += 1;
                    for s in &mut self.last_carrier_pcm[..packet] {
                        *s = (f32::from(*s) * CONCEAL_FADE) as i16;
                    }
                    self.carrier_in.extend(&self.last_carrier_pcm[..packet]);
                }
                Playout::Empty => self.carrier_in.extend(std::iter::repeat_n(0, packet)),
            }
        }
        for (out, s) in self
            .pcm
            .iter_mut()
            .zip(self.carrier_in.drain(..FRAME_SAMPLES_8K))
        {
            *out = s;
        }
        true
    }

    /// Leg `i`'s frame for this tick into its `pcm` (silence before its audio arrives).
    fn leg_pcm(&mut self, i: usize, now: Instant) -> Result<(), BridgeError> {
        let leg = &mut self.legs[i];
        match leg.jitter.pop(now) {
            Playout::Frame { payload, .. } => match leg.decoder.decode(payload, &mut leg.pcm) {
                Ok(n) if n >= FRAME_SAMPLES_8K => {}
                _ => {
                    self.stats.browser_decode_errors += 1;
                    leg.decoder.conceal(&mut leg.pcm)?;
                }
            },
            Playout::Missing => {
                self.stats.browser_concealed += 1;
                leg.decoder.conceal(&mut leg.pcm)?;
            }
            // Before the manager's audio arrives the carrier still gets a steady stream.
            Playout::Empty => leg.pcm = [0; FRAME_SAMPLES_8K],
        }
        Ok(())
    }

    /// This tick's audio toward the carrier; whole packets of the negotiated ptime go out.
    fn send_to_carrier(&mut self, now: Instant, pcm: &[i16; FRAME_SAMPLES_8K]) {
        let tick_ts = self.carrier_tick_ts;
        self.carrier_tick_ts = tick_ts.wrapping_add(FRAME_SAMPLES_8K as u32);
        let dtmf_due = self
            .dtmf_out
            .as_ref()
            .is_some_and(|s| s.is_active() || s.poll_timeout().is_some_and(|t| t <= now));
        if dtmf_due {
            // RFC 4733 §2.5.1.1: the event replaces audio while it plays.
            self.carrier_out.clear();
            while let Some(p) = self.dtmf_out.as_mut().and_then(|s| s.poll_packet(now)) {
                let header = p.header(self.carrier_seq, self.cfg.carrier_ssrc);
                self.push_carrier_packet(&header, &p.payload);
            }
            return;
        }
        if self.carrier_out.is_empty() {
            self.carrier_out_ts = tick_ts;
        }
        self.carrier_out.extend(pcm);
        let packet = self.carrier_packet_samples;
        while self.carrier_out.len() >= packet {
            let mut g711 = [0u8; MAX_CARRIER_PACKET_SAMPLES];
            for (i, s) in self.carrier_out.drain(..packet).enumerate() {
                g711[i] = self.cfg.law.encode_sample(s);
            }
            let header = RtpHeader {
                payload_type: self.cfg.carrier_payload_type,
                marker: std::mem::take(&mut self.carrier_marker),
                sequence: self.carrier_seq,
                timestamp: self.carrier_out_ts,
                ssrc: self.cfg.carrier_ssrc,
                csrc_count: 0,
            };
            self.carrier_out_ts = self.carrier_out_ts.wrapping_add(packet as u32);
            self.push_carrier_packet(&header, &g711[..packet]);
        }
    }

    fn push_carrier_packet(&mut self, header: &RtpHeader, payload: &[u8]) {
        let mut buf = vec![0u8; 12 + payload.len()];
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
