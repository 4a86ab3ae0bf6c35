//! Adaptive jitter buffer for one incoming audio stream of fixed-duration frames.
//!
//! Sans-IO: the driver hands every received RTP packet to [`JitterBuffer::push`] and calls
//! [`JitterBuffer::pop`] once per frame period from its playout clock (the consumer's clock is the
//! only clock; the buffer never reads one). Time arrives as `now: Instant`.
//!
//! # Model
//!
//! - **Pull-driven, indexed by sequence number.** RTP sequence numbers increase by one per packet
//!   (RFC 3550 §5.1), so a missing number is a lost or late packet, whatever the timestamp does
//!   during silence suppression / DTX. Every `pop` plays the frame at the playout pointer, or says
//!   [`Playout::Missing`] so the caller conceals it (Opus PLC, G.711 repeat/fade).
//! - **Storage** is a fixed ring of `max_frames` slots and one byte arena of
//!   `max_frames * max_frame_bytes`, both allocated in [`JitterBuffer::new`]; `push` copies the
//!   payload into its slot, so nothing allocates per packet. Packets beyond the ring (a burst, a
//!   stalled consumer) are dropped and counted, never stored.
//! - **Delay.** The *buffer level* is how many frames beyond the one being played have arrived
//!   (`highest received - playout pointer`). The *target* comes from the RFC 3550 §6.4.1
//!   interarrival jitter `J` (times [`JitterConfig::jitter_factor`]) and from late packets, held at
//!   its peak and lowered slowly, and clamped to `[min_delay, max_delay]`.
//!
//! # Adaptation policy
//!
//! - **Grow fast, for free.** When the expected frame is missing but later ones have arrived and
//!   the level is below target, the pointer *holds* (up to `target` pops) instead of skipping: the
//!   frame would have been concealed anyway, and holding both adds one frame of delay and gives
//!   the late packet its chance to play. When nothing at all has arrived beyond the pointer
//!   (underrun), it also holds. A packet that arrives after its frame was skipped (late) raises the
//!   target at once by how late it was.
//! - **Shrink slowly.** The target decays linearly at [`JitterConfig::target_decay_per_s`] (and
//!   never below what the current jitter asks). The real delay follows it down by discarding one
//!   frame at most every [`JitterConfig::shrink_interval`], and only if the level stayed above
//!   target for that whole interval (the excess is persistent, not a burst): in a silence-free
//!   stream that costs one 20 ms cut per interval. After a gap longer than the target (a new talk
//!   spurt after DTX, an outage) the buffer re-primes to the *current* target before playing again,
//!   which is where most shrinking happens in real calls.
//! - **Resync.** A packet far ahead of the ring while it is empty (sender skipped), or two
//!   consecutive packets more than RFC 3550 Appendix A.1's `MAX_DROPOUT` ahead / `MAX_MISORDER`
//!   behind (sender restart), restart the stream. A timestamp jump (the transit time changes by more
//!   than [`TIMESTAMP_JUMP`]) only restarts the jitter estimate: playout follows sequence numbers.
//!   An SSRC change is the caller's to see: call [`JitterBuffer::reset`].

use std::time::{Duration, Instant};

/// RFC 3550 Appendix A.1: more than this many sequence numbers ahead is a restart, not loss.
const MAX_DROPOUT: i64 = 3000;
/// RFC 3550 Appendix A.1: more than this many sequence numbers behind is a restart, not reordering.
const MAX_MISORDER: i64 = 100;
/// A change of transit time (arrival minus RTP timestamp) larger than this is a timestamp
/// discontinuity (sender restart, a mixer switching sources), not network jitter: no real path
/// varies its delay by a second between two packets.
pub const TIMESTAMP_JUMP: Duration = Duration::from_secs(1);

/// Errors from the jitter buffer. None of them is caused by packet contents: wire input is
/// classified by [`PushOutcome`] and counted in [`JitterStats`], never an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JitterError {
    /// The configuration cannot work (see the reason).
    #[error("invalid jitter buffer configuration: {reason}")]
    InvalidConfig { reason: &'static str },
    /// [`JitterBuffer::pop_into`] needs a buffer of at least `max_frame_bytes`.
    #[error("jitter buffer output needs {needed} bytes, got {got}")]
    BufferTooSmall { needed: usize, got: usize },
}

impl JitterError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            JitterError::InvalidConfig { .. } => "media.jitter_invalid_config",
            JitterError::BufferTooSmall { .. } => "media.jitter_buffer_too_small",
        }
    }
}

/// Jitter buffer settings. Start from [`JitterConfig::new`] (or [`JitterConfig::g711`] /
/// [`JitterConfig::opus`]) and adjust fields.
#[derive(Debug, Clone, PartialEq)]
pub struct JitterConfig {
    /// RTP clock rate in Hz: 8000 for G.711, 48000 for Opus (RFC 7587 §4.1, whatever the codec's
    /// internal rate).
    pub clock_rate: u32,
    /// Duration of one frame (one packet); `clock_rate * frame_duration` must be a whole number of
    /// timestamp units (160 for 20 ms of G.711, 960 for 20 ms of Opus).
    pub frame_duration: Duration,
    /// Lowest target delay (default 20 ms: one frame).
    pub min_delay: Duration,
    /// Highest target delay (default 200 ms).
    pub max_delay: Duration,
    /// Ring capacity in frames; must exceed `max_delay / frame_duration`.
    pub max_frames: usize,
    /// Largest payload kept; longer ones are dropped and counted.
    pub max_frame_bytes: usize,
    /// Target delay is at least `jitter_factor * J` (J from RFC 3550 §6.4.1). J is a mean
    /// deviation; 3 of them covers nearly all arrivals of a roughly normal delay spread.
    pub jitter_factor: f64,
    /// How fast the target comes back down once jitter and late packets stop.
    pub target_decay_per_s: Duration,
    /// At most one frame is discarded per interval to bring the real delay down to the target.
    pub shrink_interval: Duration,
}

impl JitterConfig {
    /// Defaults for the given RTP clock and frame duration: 20–200 ms target, 1 s of ring
    /// (at least 16 frames), 1500-byte frames (an Ethernet MTU; an Opus frame is at most 1275
    /// bytes, RFC 6716 §3.2.1), target decaying 20 ms per second, one frame shrunk per second.
    pub fn new(clock_rate: u32, frame_duration: Duration) -> JitterConfig {
        let frame_us = frame_duration.as_micros().max(1);
        let one_second = usize::try_from(1_000_000 / frame_us).unwrap_or(usize::MAX);
        JitterConfig {
            clock_rate,
            frame_duration,
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            max_frames: one_second.clamp(16, 1024),
            max_frame_bytes: 1500,
            jitter_factor: 3.0,
            target_decay_per_s: Duration::from_millis(20),
            shrink_interval: Duration::from_secs(1),
        }
    }

    /// G.711 (PCMU/PCMA) with 20 ms frames: 8000 Hz clock, 160 bytes per frame.
    pub fn g711() -> JitterConfig {
        JitterConfig::g711_packets(Duration::from_millis(20))
    }

    /// G.711 packets of `ptime` each (the negotiated `a=ptime`): one byte per sample, so the
    /// byte limit is the samples in one packet.
    pub fn g711_packets(ptime: Duration) -> JitterConfig {
        let bytes = usize::try_from(ptime.as_millis() * 8).unwrap_or(usize::MAX);
        JitterConfig {
            max_frame_bytes: bytes.max(1),
            ..JitterConfig::new(8000, ptime)
        }
    }

    /// Opus with 20 ms frames: 48000 Hz RTP clock, 960 timestamp units per frame.
    pub fn opus() -> JitterConfig {
        JitterConfig::new(48_000, Duration::from_millis(20))
    }

    /// Timestamp units per frame, if the configuration is consistent.
    fn timestamp_units_per_frame(&self) -> Option<u32> {
        let units = u128::from(self.clock_rate) * self.frame_duration.as_nanos();
        let whole = units / 1_000_000_000;
        if whole == 0 || whole * 1_000_000_000 != units {
            return None;
        }
        u32::try_from(whole).ok()
    }
}

/// What `pop` hands out. `P` is `&[u8]` for [`JitterBuffer::pop`] and the copied length for
/// [`JitterBuffer::pop_into`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playout<P> {
    /// The next frame, in sequence order.
    Frame {
        payload: P,
        seq: u16,
        timestamp: u32,
    },
    /// The expected frame is lost or late (or the stream underran): conceal one frame.
    Missing,
    /// Nothing has been played yet (no packet, or still priming after the first one): play
    /// silence / comfort noise.
    Empty,
}

/// How [`JitterBuffer::push`] classified a packet (for logs and tests; all are also counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Stored in order.
    Buffered,
    /// Stored, though a later sequence number had already arrived.
    Reordered,
    /// Started (or restarted) the stream with this packet.
    Started,
    /// Empty payload (e.g. Chrome's probes): skipped.
    EmptyPayload,
    /// Already stored or already played.
    Duplicate,
    /// Its frame was already skipped: too late to play.
    Late,
    /// The ring is full as far as this packet: dropped.
    Overflow,
    /// Payload longer than `max_frame_bytes`: dropped.
    Oversize,
    /// Far outside the expected sequence range: dropped unless the next packet continues from it
    /// (RFC 3550 Appendix A.1 probation), which then restarts the stream.
    Probation,
}

/// Counters since construction (kept across [`JitterBuffer::reset`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JitterStats {
    /// Every `push` call.
    pub received: u64,
    /// Frames handed out by `pop`.
    pub played: u64,
    /// Sequence numbers skipped without ever being played (each produced one `Missing`).
    pub lost: u64,
    /// All `Missing` results: `lost` plus pops that waited for a late frame or underran.
    pub concealed: u64,
    /// Packets that arrived after their frame was skipped (or far behind).
    pub late: u64,
    /// Packets already stored or played.
    pub duplicate: u64,
    /// Packets that arrived out of order but in time for playout.
    pub reordered: u64,
    /// Empty payloads skipped.
    pub empty_skipped: u64,
    /// Packets dropped because the ring was full as far as them (or far ahead).
    pub overflow_dropped: u64,
    /// Packets dropped for a payload longer than `max_frame_bytes`.
    pub oversize_dropped: u64,
    /// Frames discarded to shrink the delay toward the target.
    pub discarded: u64,
    /// Stream restarts after a sequence jump.
    pub resyncs: u64,
    /// Current target delay.
    pub target_delay_ms: u32,
    /// Current RFC 3550 interarrival jitter.
    pub jitter_ms: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Empty,
    Filled,
    Played,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    state: SlotState,
    /// Extended sequence number of the frame in (or last played from) this slot.
    ext_seq: i64,
    timestamp: u32,
    len: usize,
}

const EMPTY_SLOT: Slot = Slot {
    state: SlotState::Empty,
    ext_seq: i64::MIN,
    timestamp: 0,
    len: 0,
};

/// Sequence state of the current stream (None before the first packet / after `reset`).
#[derive(Debug, Clone, Copy)]
struct Stream {
    /// Extended sequence number of the next frame to play.
    next_seq: i64,
    /// Highest extended sequence number received.
    highest_seq: i64,
    /// Frames in `Filled` slots.
    filled: usize,
    /// Playout starts (or resumes after a long gap) at this time.
    start_at: Instant,
    started: bool,
    /// A frame of this stream was played: the pointer may no longer move back.
    played_any: bool,
    /// Pops that held at the current pointer waiting for a late frame.
    hold: u32,
    /// Consecutive pops that found nothing at all to play.
    underrun_pops: u32,
    /// A far-off packet waiting for a successor to confirm a restart.
    probation: Option<u16>,
}

/// RFC 3550 §6.4.1 / Appendix A.8 interarrival jitter estimator.
#[derive(Debug, Clone, Copy, Default)]
struct JitterEstimate {
    /// First arrival: arrival times are measured from here, in RTP timestamp units.
    epoch: Option<Instant>,
    /// Transit time (arrival minus timestamp) of the previous packet.
    last_transit: Option<i64>,
    /// Extended timestamp of the previous packet (to unwrap the next).
    last_ext_ts: Option<i64>,
    /// J scaled by 16, as in RFC 3550 Appendix A.8.
    jitter_q4: i64,
}

/// Adaptive jitter buffer for one stream. See the module documentation for the policy.
#[derive(Debug)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    frame_us: u64,
    slots: Vec<Slot>,
    storage: Vec<u8>,
    stream: Option<Stream>,
    estimate: JitterEstimate,
    /// Peak-held target in microseconds, before clamping.
    peak_us: f64,
    last_decay: Option<Instant>,
    /// Shrink window: start and lowest level seen in it (`i64::MIN` blocks shrinking).
    shrink_window_start: Option<Instant>,
    min_level: i64,
    has_played: bool,
    stats: JitterStats,
}

/// Unwraps a 16-bit sequence number to the extended value nearest `reference`.
fn extend_seq(reference: i64, seq: u16) -> i64 {
    reference + i64::from(seq.wrapping_sub(reference as u16) as i16)
}

/// Unwraps a 32-bit RTP timestamp to the extended value nearest `reference`.
fn extend_ts(reference: i64, ts: u32) -> i64 {
    reference + i64::from(ts.wrapping_sub(reference as u32) as i32)
}

enum Popped {
    Frame {
        index: usize,
        len: usize,
        seq: u16,
        timestamp: u32,
    },
    Missing,
    Empty,
}

impl JitterBuffer {
    /// Builds the buffer and allocates all of its storage.
    pub fn new(cfg: JitterConfig) -> Result<JitterBuffer, JitterError> {
        let invalid = |reason| Err(JitterError::InvalidConfig { reason });
        if cfg.timestamp_units_per_frame().is_none() {
            return invalid(
                "clock_rate * frame_duration must be a whole, non-zero number of timestamp units",
            );
        }
        if cfg.min_delay > cfg.max_delay {
            return invalid("min_delay exceeds max_delay");
        }
        if cfg.max_frame_bytes == 0 {
            return invalid("max_frame_bytes must be at least 1");
        }
        if !(cfg.jitter_factor.is_finite() && cfg.jitter_factor >= 0.0) {
            return invalid("jitter_factor must be a finite, non-negative number");
        }
        let frame_us = u64::try_from(cfg.frame_duration.as_micros()).unwrap_or(u64::MAX);
        let max_target_frames = cfg
            .max_delay
            .as_micros()
            .div_ceil(u128::from(frame_us))
            .max(1);
        if (cfg.max_frames as u128) <= max_target_frames {
            return invalid("max_frames must exceed max_delay / frame_duration");
        }
        let Some(arena) = cfg.max_frames.checked_mul(cfg.max_frame_bytes) else {
            return invalid("max_frames * max_frame_bytes overflows");
        };
        let peak_us = cfg.min_delay.as_secs_f64() * 1e6;
        Ok(JitterBuffer {
            frame_us,
            slots: vec![EMPTY_SLOT; cfg.max_frames],
            storage: vec![0; arena],
            stream: None,
            estimate: JitterEstimate::default(),
            peak_us,
            last_decay: None,
            shrink_window_start: None,
            min_level: i64::MAX,
            has_played: false,
            stats: JitterStats::default(),
            cfg,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &JitterConfig {
        &self.cfg
    }

    /// Forgets the stream (sender restart, SSRC change): buffered frames are dropped and the next
    /// packet starts playout again after the target delay. Counters and the learned target delay
    /// are kept: the network path is usually the same.
    pub fn reset(&mut self) {
        self.clear_ring();
        self.stream = None;
        self.estimate = JitterEstimate {
            epoch: self.estimate.epoch,
            ..JitterEstimate::default()
        };
        self.has_played = false;
        self.shrink_window_start = None;
    }

    /// Current target delay.
    pub fn target_delay(&self) -> Duration {
        Duration::from_micros(self.target_us())
    }

    /// Current RFC 3550 interarrival jitter estimate.
    pub fn jitter(&self) -> Duration {
        Duration::from_secs_f64(self.jitter_us() / 1e6)
    }

    /// Frames stored and not yet played.
    pub fn buffered_frames(&self) -> usize {
        self.stream.map_or(0, |s| s.filled)
    }

    /// Counters, with the current target delay and jitter.
    pub fn stats(&self) -> JitterStats {
        let mut stats = self.stats.clone();
        stats.target_delay_ms = u32::try_from(self.target_us() / 1000).unwrap_or(u32::MAX);
        stats.jitter_ms = self.jitter_us() / 1000.0;
        stats
    }

    /// Takes one received packet; the payload is copied.
    pub fn push(
        &mut self,
        now: Instant,
        seq: u16,
        rtp_timestamp: u32,
        payload: &[u8],
    ) -> PushOutcome {
        self.stats.received += 1;
        self.decay(now);
        if payload.is_empty() {
            // Browsers send empty RTP payloads as bandwidth probes (DESIGN.md, Chrome facts).
            self.stats.empty_skipped += 1;
            return PushOutcome::EmptyPayload;
        }
        if payload.len() > self.cfg.max_frame_bytes {
            self.stats.oversize_dropped += 1;
            return PushOutcome::Oversize;
        }
        let Some(mut st) = self.stream else {
            self.start(now, seq, rtp_timestamp, payload, false);
            return PushOutcome::Started;
        };
        let cap = self.slots.len() as i64;
        let ext = extend_seq(st.highest_seq, seq);

        // Before playout starts, a packet older than the first one still belongs at the front.
        if !st.played_any && ext < st.next_seq && st.highest_seq - ext < cap {
            st.next_seq = ext;
        }

        if ext < st.next_seq {
            let behind = st.next_seq - ext;
            if behind > MAX_MISORDER.max(cap) {
                if st.filled == 0 {
                    // Nothing buffered to protect: most likely a sender restart. Follow it.
                    return self.start(now, seq, rtp_timestamp, payload, true);
                }
                return self.probation(now, st, seq, rtp_timestamp, payload, false);
            }
            self.stream = Some(Stream {
                probation: None,
                ..st
            });
            let slot = self.slots[Self::index(ext, cap)];
            if slot.ext_seq == ext && slot.state == SlotState::Played {
                self.stats.duplicate += 1;
                return PushOutcome::Duplicate;
            }
            self.update_jitter(now, rtp_timestamp);
            // Its frame was concealed already: the target was too short by `behind` frames.
            self.stats.late += 1;
            let bumped = self.target_us() as f64 + behind as f64 * self.frame_us as f64;
            self.raise_peak(bumped);
            return PushOutcome::Late;
        }

        if ext >= st.next_seq + cap {
            if st.filled == 0 {
                // Nothing buffered to protect: the sender skipped ahead. Follow it.
                return self.start(now, seq, rtp_timestamp, payload, true);
            }
            if ext - st.next_seq > MAX_DROPOUT {
                return self.probation(now, st, seq, rtp_timestamp, payload, true);
            }
            self.stream = Some(Stream {
                probation: None,
                ..st
            });
            self.stats.overflow_dropped += 1;
            return PushOutcome::Overflow;
        }

        st.probation = None;
        let index = Self::index(ext, cap);
        if self.slots[index].state == SlotState::Filled {
            if self.slots[index].ext_seq == ext {
                self.stream = Some(st);
                self.stats.duplicate += 1;
                return PushOutcome::Duplicate;
            }
            // Unreachable while every filled slot lies in [next_seq, next_seq + cap); kept so a
            // broken invariant costs one frame, not a wrong count.
            st.filled = st.filled.saturating_sub(1);
        }
        self.update_jitter(now, rtp_timestamp);
        if st.started && st.filled == 0 && st.underrun_pops > 0 {
            // The underrun pops already concealed that much time: frames missing between the
            // pointer and this packet are counted lost and not concealed a second time.
            let covered = (ext - st.next_seq).min(i64::from(st.underrun_pops));
            st.next_seq += covered;
            self.stats.lost += covered as u64;
            // After a gap longer than the target (new talk spurt after DTX, an outage), prime
            // the buffer to the current target again instead of playing with no margin.
            if u64::from(st.underrun_pops) > self.target_frames().max(2) {
                st.start_at = now.checked_add(self.target_delay()).unwrap_or(now);
                st.started = false;
            }
            st.underrun_pops = 0;
        }
        self.store(index, ext, rtp_timestamp, payload);
        st.filled += 1;
        let outcome = if ext > st.highest_seq {
            st.highest_seq = ext;
            PushOutcome::Buffered
        } else {
            self.stats.reordered += 1;
            PushOutcome::Reordered
        };
        self.stream = Some(st);
        outcome
    }

    /// Called once per frame period: the next frame, `Missing` (conceal one frame) or `Empty`.
    pub fn pop(&mut self, now: Instant) -> Playout<&[u8]> {
        match self.pop_inner(now) {
            Popped::Frame {
                index,
                len,
                seq,
                timestamp,
            } => {
                let start = index * self.cfg.max_frame_bytes;
                Playout::Frame {
                    payload: &self.storage[start..start + len],
                    seq,
                    timestamp,
                }
            }
            Popped::Missing => Playout::Missing,
            Popped::Empty => Playout::Empty,
        }
    }

    /// Like [`pop`](Self::pop) but copies the frame into `out` (at least `max_frame_bytes` long,
    /// checked before anything is consumed) and reports its length.
    pub fn pop_into(
        &mut self,
        now: Instant,
        out: &mut [u8],
    ) -> Result<Playout<usize>, JitterError> {
        if out.len() < self.cfg.max_frame_bytes {
            return Err(JitterError::BufferTooSmall {
                needed: self.cfg.max_frame_bytes,
                got: out.len(),
            });
        }
        Ok(match self.pop(now) {
            Playout::Frame {
                payload,
                seq,
                timestamp,
            } => {
                out[..payload.len()].copy_from_slice(payload);
                Playout::Frame {
                    payload: payload.len(),
                    seq,
                    timestamp,
                }
            }
            Playout::Missing => Playout::Missing,
            Playout::Empty => Playout::Empty,
        })
    }

    fn pop_inner(&mut self, now: Instant) -> Popped {
        self.decay(now);
        let Some(mut st) = self.stream else {
            return Popped::Empty;
        };
        let cap = self.slots.len() as i64;
        let target_frames = i64::try_from(self.target_frames()).unwrap_or(i64::MAX);
        if !st.started {
            if now < st.start_at {
                return if self.has_played {
                    self.stats.concealed += 1;
                    Popped::Missing
                } else {
                    Popped::Empty
                };
            }
            st.started = true;
            self.shrink_window_start = Some(now);
            self.min_level = i64::MAX;
        }

        let mut index = Self::index(st.next_seq, cap);
        let present = |slots: &[Slot], i: usize, ext: i64| {
            slots[i].state == SlotState::Filled && slots[i].ext_seq == ext
        };
        if !present(&self.slots, index, st.next_seq) {
            self.stats.concealed += 1;
            self.min_level = i64::MIN; // a gap this window: no shrinking
            if st.highest_seq < st.next_seq {
                // Underrun: nothing beyond the pointer. Hold; the next packet continues here.
                st.underrun_pops = st.underrun_pops.saturating_add(1);
            } else if st.highest_seq - st.next_seq < target_frames
                && i64::from(st.hold) < target_frames
            {
                // Later frames are here but fewer than the target: wait for this one (delay +1).
                st.hold += 1;
            } else {
                st.next_seq += 1;
                st.hold = 0;
                self.stats.lost += 1;
            }
            self.stream = Some(st);
            return Popped::Missing;
        }

        // Shrink toward the target (see module docs): one frame per interval, only if the level
        // stayed above target during the whole interval.
        let level = st.highest_seq - st.next_seq;
        self.min_level = self.min_level.min(level);
        if let Some(window_start) = self.shrink_window_start {
            if now.saturating_duration_since(window_start) >= self.cfg.shrink_interval {
                let next = Self::index(st.next_seq + 1, cap);
                if self.min_level > target_frames && present(&self.slots, next, st.next_seq + 1) {
                    self.slots[index].state = SlotState::Played;
                    st.filled = st.filled.saturating_sub(1);
                    st.next_seq += 1;
                    index = next;
                    self.stats.discarded += 1;
                }
                self.shrink_window_start = Some(now);
                self.min_level = i64::MAX;
            }
        }

        let slot = &mut self.slots[index];
        slot.state = SlotState::Played;
        st.filled = st.filled.saturating_sub(1);
        st.next_seq += 1;
        st.hold = 0;
        st.underrun_pops = 0;
        st.played_any = true;
        self.stream = Some(st);
        self.has_played = true;
        self.stats.played += 1;
        Popped::Frame {
            index,
            len: slot.len,
            seq: slot.ext_seq as u16,
            timestamp: slot.timestamp,
        }
    }

    /// Starts (or, with `resync`, restarts) the stream with this packet.
    fn start(
        &mut self,
        now: Instant,
        seq: u16,
        ts: u32,
        payload: &[u8],
        resync: bool,
    ) -> PushOutcome {
        if resync {
            self.clear_ring();
            self.stats.resyncs += 1;
            self.estimate.last_transit = None;
            self.estimate.last_ext_ts = None;
        }
        let ext = i64::from(seq);
        self.update_jitter(now, ts);
        let cap = self.slots.len() as i64;
        self.store(Self::index(ext, cap), ext, ts, payload);
        self.stream = Some(Stream {
            next_seq: ext,
            highest_seq: ext,
            filled: 1,
            start_at: now.checked_add(self.target_delay()).unwrap_or(now),
            started: false,
            played_any: false,
            hold: 0,
            underrun_pops: 0,
            probation: None,
        });
        PushOutcome::Started
    }

    /// RFC 3550 Appendix A.1: a far-off packet restarts the stream only if the next packet
    /// continues from it; a single stray packet is dropped.
    fn probation(
        &mut self,
        now: Instant,
        mut st: Stream,
        seq: u16,
        ts: u32,
        payload: &[u8],
        ahead: bool,
    ) -> PushOutcome {
        if st.probation == Some(seq.wrapping_sub(1)) {
            return self.start(now, seq, ts, payload, true);
        }
        st.probation = Some(seq);
        self.stream = Some(st);
        if ahead {
            self.stats.overflow_dropped += 1;
        } else {
            self.stats.late += 1;
        }
        PushOutcome::Probation
    }

    fn store(&mut self, index: usize, ext: i64, ts: u32, payload: &[u8]) {
        let start = index * self.cfg.max_frame_bytes;
        self.storage[start..start + payload.len()].copy_from_slice(payload);
        self.slots[index] = Slot {
            state: SlotState::Filled,
            ext_seq: ext,
            timestamp: ts,
            len: payload.len(),
        };
    }

    fn clear_ring(&mut self) {
        for slot in &mut self.slots {
            *slot = EMPTY_SLOT;
        }
    }

    fn index(ext: i64, cap: i64) -> usize {
        // rem_euclid of a positive modulus is in 0..cap.
        usize::try_from(ext.rem_euclid(cap)).unwrap_or(0)
    }

    /// RFC 3550 §6.4.1, integer form of Appendix A.8: D is the change in transit time between
    /// consecutive arrivals, J += (|D| - J) / 16, all in RTP timestamp units.
    fn update_jitter(&mut self, now: Instant, ts: u32) {
        let clock = u128::from(self.cfg.clock_rate);
        let epoch = *self.estimate.epoch.get_or_insert(now);
        let arrival_units = now.saturating_duration_since(epoch).as_nanos() * clock / 1_000_000_000;
        let arrival = i64::try_from(arrival_units).unwrap_or(i64::MAX / 4);
        let ext_ts = match self.estimate.last_ext_ts {
            Some(reference) => extend_ts(reference, ts),
            None => i64::from(ts),
        };
        let transit = arrival - ext_ts;
        self.estimate.last_ext_ts = Some(ext_ts);
        let previous = self.estimate.last_transit.replace(transit);
        let Some(previous) = previous else { return };
        let d = (transit - previous).abs();
        let jump =
            i64::try_from(TIMESTAMP_JUMP.as_nanos() * clock / 1_000_000_000).unwrap_or(i64::MAX);
        if d > jump {
            // Timestamp discontinuity, not jitter: restart the estimate from this packet.
            return;
        }
        self.estimate.jitter_q4 += d - ((self.estimate.jitter_q4 + 8) >> 4);
        let wanted = self.cfg.jitter_factor * self.jitter_us();
        self.raise_peak(wanted);
    }

    fn jitter_us(&self) -> f64 {
        self.estimate.jitter_q4 as f64 / 16.0 / f64::from(self.cfg.clock_rate) * 1e6
    }

    fn raise_peak(&mut self, us: f64) {
        let max = self.cfg.max_delay.as_secs_f64() * 1e6;
        self.peak_us = self.peak_us.max(us.min(max));
    }

    /// Lowers the held peak linearly with time, never below what the current jitter asks.
    fn decay(&mut self, now: Instant) {
        let last = *self.last_decay.get_or_insert(now);
        let elapsed = now.saturating_duration_since(last).as_secs_f64();
        if elapsed <= 0.0 {
            return;
        }
        self.last_decay = Some(now);
        let floor = self.cfg.jitter_factor * self.jitter_us();
        let decayed = self.peak_us - self.cfg.target_decay_per_s.as_secs_f64() * 1e6 * elapsed;
        self.peak_us = decayed.max(floor).max(0.0);
    }

    fn target_us(&self) -> u64 {
        let min = self.cfg.min_delay.as_secs_f64() * 1e6;
        let max = self.cfg.max_delay.as_secs_f64() * 1e6;
        self.peak_us.clamp(min, max) as u64
    }

    /// Target delay in whole frames beyond the one playing (at least one).
    fn target_frames(&self) -> u64 {
        self.target_us().div_ceil(self.frame_us.max(1)).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Duration = Duration::from_millis(20);

    /// Virtual clock: milliseconds after an arbitrary origin.
    struct Clock(Instant);
    impl Clock {
        fn at(&self, ms: u64) -> Instant {
            self.0 + Duration::from_millis(ms)
        }
    }

    fn clock() -> Clock {
        Clock(Instant::now())
    }

    fn g711() -> JitterBuffer {
        JitterBuffer::new(JitterConfig::g711()).unwrap()
    }

    fn payload(i: u64) -> [u8; 160] {
        let mut p = [0u8; 160];
        p[..8].copy_from_slice(&i.to_le_bytes());
        p
    }

    fn index_of(p: &[u8]) -> u64 {
        u64::from_le_bytes(p[..8].try_into().unwrap())
    }

    /// Pops and reduces the result to the frame index it carries (`None` for Missing/Empty).
    fn pop_index(jb: &mut JitterBuffer, now: Instant) -> Option<u64> {
        match jb.pop(now) {
            Playout::Frame { payload, .. } => Some(index_of(payload)),
            _ => None,
        }
    }

    #[test]
    fn config_is_validated() {
        let bad = |cfg: JitterConfig| JitterBuffer::new(cfg).unwrap_err().code();
        assert_eq!(
            bad(JitterConfig::new(8000, Duration::from_micros(10))),
            "media.jitter_invalid_config"
        );
        assert_eq!(
            bad(JitterConfig::new(0, FRAME)),
            "media.jitter_invalid_config"
        );
        let mut cfg = JitterConfig::g711();
        cfg.min_delay = Duration::from_millis(300);
        assert!(JitterBuffer::new(cfg).is_err());
        let mut cfg = JitterConfig::g711();
        cfg.max_frames = 10; // 200 ms target would not fit
        assert!(JitterBuffer::new(cfg).is_err());
        let opus = JitterConfig::opus();
        assert_eq!(opus.timestamp_units_per_frame(), Some(960));
        assert_eq!(JitterConfig::g711().timestamp_units_per_frame(), Some(160));
        let err = JitterError::InvalidConfig { reason: "x" };
        assert_eq!(err.to_string(), "invalid jitter buffer configuration: x");
    }

    #[test]
    fn in_order_stream_plays_every_frame_with_minimum_delay() {
        let c = clock();
        let mut jb = g711();
        assert_eq!(jb.pop(c.at(0)), Playout::Empty);
        for k in 0..500u64 {
            let now = c.at(20 * k);
            assert_eq!(
                jb.push(now, 1000 + k as u16, 5000 + 160 * k as u32, &payload(k)),
                if k == 0 {
                    PushOutcome::Started
                } else {
                    PushOutcome::Buffered
                }
            );
            match jb.pop(now) {
                Playout::Empty => assert_eq!(k, 0),
                Playout::Frame {
                    payload,
                    seq,
                    timestamp,
                } => {
                    // Played exactly one frame (20 ms, the minimum) after it arrived.
                    assert_eq!(index_of(payload), k - 1);
                    assert_eq!(seq, 1000 + (k - 1) as u16);
                    assert_eq!(timestamp, 5000 + 160 * (k - 1) as u32);
                }
                Playout::Missing => panic!("missing at {k}"),
            }
        }
        let s = jb.stats();
        assert_eq!(
            (s.received, s.played, s.lost, s.concealed, s.late),
            (500, 499, 0, 0, 0)
        );
        assert_eq!(s.target_delay_ms, 20);
        assert_eq!(s.jitter_ms, 0.0);
    }

    #[test]
    fn opus_clock_and_pop_into_copy() {
        let c = clock();
        let mut jb = JitterBuffer::new(JitterConfig::opus()).unwrap();
        let mut out = [0u8; 1500];
        assert_eq!(
            jb.pop_into(c.at(0), &mut [0u8; 10]).unwrap_err().code(),
            "media.jitter_buffer_too_small"
        );
        for k in 0..50u64 {
            let now = c.at(20 * k);
            jb.push(now, k as u16, 960 * k as u32, &[k as u8; 3]);
            match jb.pop_into(now, &mut out).unwrap() {
                Playout::Frame { payload, seq, .. } => {
                    assert_eq!(payload, 3);
                    assert_eq!(out[..3], [seq as u8; 3]);
                }
                other => assert_eq!((k, other), (0, Playout::Empty)),
            }
        }
        assert_eq!(jb.stats().jitter_ms, 0.0);
    }

    #[test]
    fn reordering_within_the_delay_window_is_fixed() {
        let c = clock();
        let mut cfg = JitterConfig::g711();
        cfg.min_delay = Duration::from_millis(40);
        let mut jb = JitterBuffer::new(cfg).unwrap();
        let mut played = Vec::new();
        for slot in 0..100u64 {
            let now = c.at(20 * slot);
            // Frames 10 and 11 swap, 30 arrives two frames after 31 and 32.
            let k = match slot {
                10 => 11,
                11 => 10,
                30 => 31,
                31 => 32,
                32 => 30,
                k => k,
            };
            jb.push(now, k as u16, 160 * k as u32, &payload(k));
            if let Some(i) = pop_index(&mut jb, now) {
                played.push(i);
            }
        }
        assert_eq!(played, (0..played.len() as u64).collect::<Vec<_>>());
        let s = jb.stats();
        assert_eq!((s.reordered, s.lost, s.concealed, s.late), (2, 0, 0, 0));
    }

    #[test]
    fn a_lost_packet_yields_exactly_one_missing() {
        let c = clock();
        let mut jb = g711();
        let mut results = Vec::new();
        for k in 0..40u64 {
            let now = c.at(20 * k);
            if k != 10 {
                jb.push(now, k as u16, 160 * k as u32, &payload(k));
            }
            results.push(pop_index(&mut jb, now));
        }
        let expected: Vec<Option<u64>> = std::iter::once(None)
            .chain((0..39).map(|i| (i != 10).then_some(i)))
            .collect();
        assert_eq!(results, expected);
        let s = jb.stats();
        assert_eq!((s.lost, s.concealed, s.played), (1, 1, 38));
    }

    #[test]
    fn lost_packet_seen_as_underrun_is_concealed_once() {
        // The consumer pops just before each packet arrives: at the lost frame's turn nothing
        // is buffered yet, so the pointer holds; the next packet shows it lost.
        let c = clock();
        let mut jb = g711();
        let mut missing = 0;
        let mut played = Vec::new();
        for k in 0..40u64 {
            let now = c.at(20 * k);
            match jb.pop(now) {
                Playout::Frame { payload, .. } => played.push(index_of(payload)),
                Playout::Missing => missing += 1,
                Playout::Empty => {}
            }
            if k != 10 {
                jb.push(now, k as u16, 160 * k as u32, &payload(k));
            }
        }
        assert_eq!(missing, 1);
        assert_eq!(played, (0..39).filter(|&i| i != 10).collect::<Vec<_>>());
        assert_eq!(jb.stats().lost, 1);
    }

    #[test]
    fn duplicates_are_dropped() {
        let c = clock();
        let mut jb = g711();
        let mut played = Vec::new();
        for k in 0..30u64 {
            let now = c.at(20 * k);
            jb.push(now, k as u16, 160 * k as u32, &payload(k));
            if k > 0 {
                assert_eq!(
                    jb.push(now, k as u16, 160 * k as u32, &payload(k)),
                    PushOutcome::Duplicate
                );
            }
            if k > 5 {
                // A copy of a frame played long ago.
                assert_eq!(jb.push(now, 2, 320, &payload(2)), PushOutcome::Duplicate);
            }
            played.extend(pop_index(&mut jb, now));
        }
        assert_eq!(played, (0..29).collect::<Vec<_>>());
        let s = jb.stats();
        assert_eq!(s.duplicate, 29 + 24);
        assert_eq!(s.received, 30 + 29 + 24);
    }

    #[test]
    fn late_packet_is_dropped_and_raises_the_target() {
        let c = clock();
        let mut jb = g711();
        let mut played = Vec::new();
        for k in 0..40u64 {
            let now = c.at(20 * k);
            if k != 10 {
                jb.push(now, k as u16, 160 * k as u32, &payload(k));
            }
            if k == 15 {
                assert_eq!(jb.push(now, 10, 1600, &payload(10)), PushOutcome::Late);
            }
            played.extend(pop_index(&mut jb, now));
        }
        assert!(!played.contains(&10));
        let s = jb.stats();
        assert_eq!((s.late, s.lost), (1, 1));
        assert!(s.target_delay_ms > 20, "target {}", s.target_delay_ms);
    }

    #[test]
    fn empty_and_oversize_payloads_are_skipped() {
        let c = clock();
        let mut jb = g711();
        assert_eq!(jb.push(c.at(0), 1, 160, &[]), PushOutcome::EmptyPayload);
        assert_eq!(jb.pop(c.at(40)), Playout::Empty);
        assert_eq!(jb.push(c.at(0), 1, 160, &[0; 161]), PushOutcome::Oversize);
        let s = jb.stats();
        assert_eq!((s.received, s.empty_skipped, s.oversize_dropped), (2, 1, 1));
    }

    /// Tiny deterministic PRNG (xorshift64*): no dependency, same sequence on every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    /// Sends `n` frames from `first` with per-packet network delay from `delay_ms(k)`, popping
    /// every 20 ms; returns (pop time ms, frame index, arrival ms) for each frame played.
    fn run(
        jb: &mut JitterBuffer,
        c: &Clock,
        first: u64,
        n: u64,
        mut delay_ms: impl FnMut(u64) -> u64,
    ) -> Vec<(u64, u64, u64)> {
        let mut arrivals: Vec<(u64, u64)> = (first..first + n)
            .map(|k| (20 * k + delay_ms(k), k))
            .collect();
        arrivals.sort();
        let mut next = 0;
        let mut played = Vec::new();
        let end = 20 * (first + n) + 400;
        let mut t = 20 * first;
        while t < end {
            while next < arrivals.len() && arrivals[next].0 <= t {
                let (at, k) = arrivals[next];
                jb.push(c.at(at), k as u16, 160 * k as u32, &payload(k));
                next += 1;
            }
            if let Some(i) = pop_index(jb, c.at(t)) {
                played.push((t, i, 20 * i + delay_ms(i)));
            }
            t += 20;
        }
        played
    }

    #[test]
    fn jitter_raises_the_target_and_it_comes_back_down() {
        let c = clock();
        let mut jb = g711();
        let mut rng = Rng(7);
        let jitter: Vec<u64> = (0..250).map(|_| rng.below(80)).collect();
        // 5 s with up to 80 ms of random network delay.
        let noisy = run(&mut jb, &c, 0, 250, |k| jitter[k as usize]);
        let s = jb.stats();
        assert!(s.jitter_ms > 10.0, "jitter {}", s.jitter_ms);
        assert!(s.target_delay_ms >= 60, "target {}", s.target_delay_ms);
        assert!(noisy.windows(2).all(|w| w[0].1 < w[1].1));
        // Late in the noisy phase the buffer holds enough that few frames go missing.
        let lost_noisy = s.lost;
        // Then 40 s of a clean network.
        let clean = run(&mut jb, &c, 250, 2000, |_| 0);
        let s = jb.stats();
        assert_eq!(s.target_delay_ms, 20);
        assert!(s.jitter_ms < 1.0);
        assert_eq!(s.lost, lost_noisy, "no loss on a clean network");
        assert!(s.discarded > 0, "delay shrank by discarding frames");
        // The real delay followed the target down: the last frames play 20 ms after arrival.
        let (t, _, arrived) = *clean.last().unwrap();
        assert!(t - arrived <= 40, "delay at the end {} ms", t - arrived);
        assert!(clean.windows(2).all(|w| w[0].1 < w[1].1));
    }

    #[test]
    fn sequence_and_timestamp_wrap_around() {
        let c = clock();
        let mut cfg = JitterConfig::g711();
        cfg.min_delay = Duration::from_millis(40);
        let mut jb = JitterBuffer::new(cfg).unwrap();
        let ts0 = u32::MAX - 160 * 4 + 1;
        let mut got = Vec::new();
        for k in 0..20u64 {
            let now = c.at(20 * k);
            let seq = 65_530u16.wrapping_add(k as u16);
            let ts = ts0.wrapping_add(160 * k as u32);
            // One pair swapped across the wrap.
            let (seq, ts, k) = match k {
                5 => (seq.wrapping_add(1), ts.wrapping_add(160), k + 1),
                6 => (seq.wrapping_sub(1), ts.wrapping_sub(160), k - 1),
                _ => (seq, ts, k),
            };
            jb.push(now, seq, ts, &payload(k));
            if let Playout::Frame {
                payload,
                seq,
                timestamp,
            } = jb.pop(now + 2 * FRAME)
            {
                got.push((index_of(payload), seq, timestamp));
            }
        }
        // The swap cost one frame of delay (the pointer held for frame 5): one more pop.
        if let Playout::Frame {
            payload,
            seq,
            timestamp,
        } = jb.pop(c.at(20 * 21))
        {
            got.push((index_of(payload), seq, timestamp));
        }
        assert_eq!(got.len(), 20);
        for (i, &(k, seq, ts)) in got.iter().enumerate() {
            assert_eq!(k, i as u64);
            assert_eq!(seq, 65_530u16.wrapping_add(i as u16));
            assert_eq!(ts, ts0.wrapping_add(160 * i as u32));
        }
        let s = jb.stats();
        assert_eq!((s.lost, s.late, s.resyncs), (0, 0, 0));
        // Only the swapped pair counts as jitter (one 20 ms step / 16 each), not the wrap.
        assert!(
            s.jitter_ms < 5.0,
            "timestamp wrap is no jitter: {}",
            s.jitter_ms
        );
    }

    #[test]
    fn a_burst_of_1000_packets_stays_within_the_bound() {
        let c = clock();
        let mut jb = g711();
        let (storage, slots) = (jb.storage.capacity(), jb.slots.capacity());
        let cap = jb.config().max_frames as u64;
        for k in 0..1000u64 {
            jb.push(c.at(0), k as u16, 160 * k as u32, &payload(k));
        }
        assert_eq!(
            (jb.storage.capacity(), jb.slots.capacity()),
            (storage, slots)
        );
        assert_eq!(jb.buffered_frames() as u64, cap);
        assert_eq!(jb.stats().overflow_dropped, 1000 - cap);
        let played: Vec<u64> = (1..=cap + 5)
            .filter_map(|i| pop_index(&mut jb, c.at(20 * i)))
            .collect();
        assert_eq!(played, (0..cap).collect::<Vec<_>>());
    }

    #[test]
    fn sequence_jump_resyncs() {
        let c = clock();
        let mut jb = g711();
        for k in 0..10u64 {
            jb.push(c.at(20 * k), k as u16, 160 * k as u32, &payload(k));
            pop_index(&mut jb, c.at(20 * k));
        }
        // Sender restart: new random sequence and timestamp, once the buffer has drained.
        for i in 10..12 {
            jb.pop(c.at(20 * i));
        }
        let mut played = Vec::new();
        for k in 12..40u64 {
            let now = c.at(20 * k);
            jb.push(
                now,
                40_000 + k as u16,
                9_000_000 + 160 * k as u32,
                &payload(k),
            );
            played.extend(pop_index(&mut jb, now));
        }
        assert_eq!(jb.stats().resyncs, 1);
        assert_eq!(played, (12..played.len() as u64 + 12).collect::<Vec<_>>());
        assert!(played.len() >= 26);

        // A single stray far-off packet while frames are buffered is dropped (probation).
        let now = c.at(20 * 40);
        assert_eq!(jb.push(now, 10, 1, &payload(999)), PushOutcome::Probation);
        assert_eq!(jb.stats().resyncs, 1);
        // Two consecutive ones restart the stream (RFC 3550 Appendix A.1).
        assert_eq!(jb.push(now, 11, 161, &payload(1000)), PushOutcome::Started);
        assert_eq!(jb.stats().resyncs, 2);
    }

    #[test]
    fn reset_starts_over_and_keeps_counters() {
        let c = clock();
        let mut jb = g711();
        for k in 0..5u64 {
            jb.push(c.at(20 * k), k as u16, 160 * k as u32, &payload(k));
            jb.pop(c.at(20 * k));
        }
        jb.reset();
        assert_eq!(jb.buffered_frames(), 0);
        assert_eq!(jb.pop(c.at(100)), Playout::Empty);
        assert_eq!(jb.push(c.at(100), 7, 3, &payload(50)), PushOutcome::Started);
        assert_eq!(
            jb.pop(c.at(120)).clone(),
            Playout::Frame {
                payload: &payload(50)[..],
                seq: 7,
                timestamp: 3
            }
        );
        assert_eq!(jb.stats().received, 6);
    }

    #[test]
    fn talk_spurt_after_silence_reprimes_to_the_target() {
        let c = clock();
        let mut cfg = JitterConfig::g711();
        cfg.min_delay = Duration::from_millis(60);
        let mut jb = JitterBuffer::new(cfg).unwrap();
        for k in 0..10u64 {
            jb.push(c.at(20 * k), k as u16, 160 * k as u32, &payload(k));
        }
        let mut played = Vec::new();
        for t in 0..30u64 {
            played.extend(pop_index(&mut jb, c.at(20 * t)));
        }
        assert_eq!(played.len(), 10);
        // DTX: the next packet (next sequence number) comes 1 s later with a timestamp 1 s on.
        jb.push(c.at(1000), 10, 160 * 50, &payload(10));
        assert_eq!(pop_index(&mut jb, c.at(1000)), None);
        assert_eq!(pop_index(&mut jb, c.at(1040)), None);
        assert_eq!(pop_index(&mut jb, c.at(1060)), Some(10));
        let s = jb.stats();
        assert_eq!((s.lost, s.resyncs), (0, 0));
        assert!(s.jitter_ms < 1.0, "silence is no jitter: {}", s.jitter_ms);
    }

    #[test]
    fn seeded_random_arrivals_never_panic_nor_play_twice() {
        for seed in 1..=40u64 {
            let c = clock();
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut cfg = if seed % 2 == 0 {
                JitterConfig::g711()
            } else {
                JitterConfig::opus()
            };
            cfg.max_frame_bytes = 160;
            let ts_step = if seed % 2 == 0 { 160u32 } else { 960 };
            let mut jb = JitterBuffer::new(cfg).unwrap();
            let seq0 = rng.next() as u16;
            let ts0 = rng.next() as u32;
            let max_delay = 1 + rng.below(400);
            let mut events: Vec<(u64, u64)> = Vec::new();
            for k in 0..3000u64 {
                let r = rng.below(100);
                if r < 3 {
                    continue; // lost
                }
                let at = 20 * k + rng.below(max_delay);
                events.push((at, k));
                if r < 6 {
                    events.push((at + rng.below(300), k)); // duplicate
                }
            }
            events.sort();
            let mut next = 0;
            let mut last_played: Option<u64> = None;
            let mut t = 0;
            while next < events.len() || t < 20 * 3000 + 1000 {
                while next < events.len() && events[next].0 <= t {
                    let (at, k) = events[next];
                    let p = payload(k);
                    let body: &[u8] = match rng.below(200) {
                        0 => &[],
                        _ => &p[..1 + rng.below(160) as usize],
                    };
                    let body = if body.len() < 8 { &p[..] } else { body };
                    jb.push(
                        c.at(at),
                        seq0.wrapping_add(k as u16),
                        ts0.wrapping_add(ts_step * k as u32),
                        body,
                    );
                    next += 1;
                }
                // The consumer's clock jitters too.
                let now = c.at(t + rng.below(5));
                if let Playout::Frame {
                    payload,
                    seq,
                    timestamp,
                } = jb.pop(now)
                {
                    let k = index_of(payload);
                    assert_eq!(seq, seq0.wrapping_add(k as u16));
                    assert_eq!(timestamp, ts0.wrapping_add(ts_step * k as u32));
                    assert!(
                        last_played.is_none_or(|last| k > last),
                        "seed {seed}: {k} after {last_played:?}"
                    );
                    last_played = Some(k);
                }
                t += 20;
            }
            let s = jb.stats();
            assert!(s.played > 2000, "seed {seed}: {s:?}");
            assert!(jb.buffered_frames() <= jb.config().max_frames);
        }
    }

    #[test]
    fn garbage_sequence_numbers_never_panic() {
        let c = clock();
        let mut rng = Rng(42);
        let mut jb = g711();
        let mut seen = std::collections::HashSet::new();
        for i in 0..20_000u64 {
            let now = c.at(i * rng.below(30));
            let len = rng.below(200) as usize;
            jb.push(now, rng.next() as u16, rng.next() as u32, &[1; 200][..len]);
            if let Playout::Frame { seq, timestamp, .. } = jb.pop(now) {
                // Between resyncs a frame is never played twice; resyncs restart numbering.
                if !seen.insert((jb.stats().resyncs, seq, timestamp)) {
                    panic!("played twice: {seq}/{timestamp}");
                }
            }
            if i % 5000 == 0 {
                jb.reset();
            }
        }
    }
}
