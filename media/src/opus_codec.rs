//! Opus (RFC 6716) at 8 kHz for phone legs: a sans-IO wrapper over libopus.
//!
//! The phone side of a call is narrowband G.711 (8 kHz), so both directions of the browser leg
//! run libopus **at 8 kHz**: the encoder takes 20 ms frames of 160 samples, the decoder hands
//! back 160 samples per 20 ms. Resampling to 48 kHz first would cost about 2.2× the CPU for no
//! audible gain (DESIGN.md, stack table). Opus carried over RTP still uses a 48 kHz RTP clock
//! whatever the codec's internal rate, so the RTP timestamp advances by
//! [`RTP_TIMESTAMP_INCREMENT_20MS`] (960) per 20 ms frame, not by 160 (RFC 7587 §4.1).
//!
//! No sockets, no clock, no tokio: the caller (a call actor) moves bytes and timestamps.
//! Nothing here panics on input from the wire: every payload is bounded and checked, and
//! libopus reports corrupt packets as [`OpusError::InvalidPacket`].
//!
//! Built on the `opus` crate 0.4.0, which links libopus **1.6.1** built from source by
//! `opusic-sys` 0.7 (needs `cmake`); [`libopus_version`] reports the linked version at run time.
//!
//! # Receiving from a browser
//!
//! - Chrome sends **empty RTP payloads** as bandwidth probes. [`OpusDecoder8k::decode`] refuses
//!   them with [`OpusError::EmptyPayload`] instead of handing them to libopus (an empty packet
//!   means "lost" to libopus, which would then invent up to 120 ms of concealment). Callers should
//!   skip such packets before they reach the jitter buffer; the error is the safety net.
//! - A lost 20 ms frame is filled by [`OpusDecoder8k::conceal`] (packet-loss concealment) or,
//!   when the *next* packet has already arrived, by [`OpusDecoder8k::decode_fec`], which decodes
//!   the low-bitrate redundant copy of the previous frame that the sender embedded in it
//!   (in-band FEC, RFC 6716 §2.1.7). After `decode_fec`, decode that next packet normally too.
//! - Decode buffers need at most [`MAX_DECODE_SAMPLES`] (960) samples: 120 ms, the longest Opus
//!   packet, at 8 kHz.
//!
//! # Cost
//!
//! Measured once on this project's 2-core machine, release build, libopus 1.6.1, 10 s of a
//! 1 kHz tone at -12 dBFS, 24 kb/s, complexity 5, in-band FEC on at 10 % expected loss, best of
//! 5 runs: **encode ≈ 60 µs, decode ≈ 9 µs per 20 ms frame** (0.3 % and 0.05 % of one core per
//! call direction). DESIGN.md's 44 µs encode figure was taken with another setup (FEC settings
//! and signal not recorded); the difference is not investigated. Reproduce with
//! `cargo test -p media --release opus_codec::tests::opus_timing -- --ignored --nocapture`.
//!
//! Other facts the tests measured: encoder look-ahead 52 samples (6.5 ms) and a tone onset that
//! lags the input by 53 samples; a 1 kHz tone comes back within 0.2 dB with > 99 % of its energy
//! at 1 kHz; digital silence decodes to RMS < 1 in ~6-byte packets.

use opus::{Application, Bitrate, Channels, ErrorCode, Signal};

/// Internal sample rate of both directions on a phone leg: narrowband, like G.711.
pub const SAMPLE_RATE_HZ: u32 = 8_000;

/// Samples in one 20 ms frame at 8 kHz: the only frame size [`OpusEncoder8k::encode`] takes and
/// what [`OpusDecoder8k::conceal`] / [`OpusDecoder8k::decode_fec`] produce.
pub const FRAME_SAMPLES_8K: usize = 160;

/// Frame duration, in milliseconds, used on phone legs.
pub const FRAME_MS: u32 = 20;

/// RTP clock rate for Opus: always 48 kHz, whatever rate the codec runs at internally
/// (RFC 7587 §4.1: "the RTP timestamp is incremented with a 48000 Hz clock rate for all modes
/// of Opus and all sampling rates"; the SDP says `a=rtpmap:<pt> opus/48000/2`, §7).
pub const RTP_CLOCK_RATE_HZ: u32 = 48_000;

/// RTP timestamp increment for one 20 ms Opus frame: 48 000 Hz × 20 ms = 960 (RFC 7587 §4.1).
/// Not [`FRAME_SAMPLES_8K`]: the 8 kHz sample count and the 48 kHz RTP clock differ by 6×.
pub const RTP_TIMESTAMP_INCREMENT_20MS: u32 = RTP_CLOCK_RATE_HZ / 1000 * FRAME_MS;

/// Largest decode output one packet can need: 120 ms (the longest Opus packet, RFC 6716 §3.2.5)
/// at 8 kHz. Decode buffers never need to be longer; [`OpusDecoder8k`] uses at most this much of
/// the buffer it is given.
pub const MAX_DECODE_SAMPLES: usize = 960;

/// Largest encoded 20 ms packet: one TOC byte plus a frame of at most 1275 bytes (RFC 6716
/// §3.2.1, code 0). An [`OpusEncoder8k::encode`] output buffer this long never fails for size.
pub const MAX_PACKET_BYTES: usize = 1276;

/// Largest payload [`OpusDecoder8k`] accepts: the largest UDP payload. Anything longer cannot
/// have come from the network and is refused before libopus sees it.
pub const MAX_PAYLOAD_BYTES: usize = u16::MAX as usize;

/// Lowest and highest bitrate accepted by [`OpusEncoder8k`] (RFC 6716 §1: 6 kb/s to 510 kb/s).
pub const BITRATE_RANGE_BPS: std::ops::RangeInclusive<u32> = 6_000..=510_000;

/// Default expected packet loss, in percent, told to the encoder so that it spends bits on
/// in-band FEC. Update it at run time from RTCP receiver reports with
/// [`OpusEncoder8k::set_expected_packet_loss`].
pub const DEFAULT_EXPECTED_LOSS_PERCENT: u8 = 10;

/// The libopus version linked in, e.g. `"libopus 1.6.1"`.
pub fn libopus_version() -> &'static str {
    opus::version()
}

/// Errors from the Opus wrapper. Each has a stable [`code`](Self::code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpusError {
    /// The encoder was handed a frame that is not 20 ms at 8 kHz.
    #[error("Opus encoder input must be {expected} samples (20 ms at 8 kHz), got {got}")]
    WrongFrameSize { expected: usize, got: usize },
    /// An empty RTP payload (Chrome's probe packets); it is not decoded.
    #[error("empty Opus payload (probe packet); not decoded")]
    EmptyPayload,
    /// A payload longer than any UDP datagram.
    #[error("Opus payload of {len} bytes exceeds the {max}-byte limit")]
    PayloadTooLarge { len: usize, max: usize },
    /// libopus could not parse the payload (RFC 6716 §3.4 requirements violated).
    #[error("invalid Opus packet of {len} bytes")]
    InvalidPacket { len: usize },
    /// The caller's output buffer is too short.
    #[error("output buffer holds {got} but {needed} are needed")]
    OutputTooSmall { needed: usize, got: usize },
    /// A configuration value outside its range.
    #[error("invalid Opus {what}: {value}")]
    InvalidConfig { what: &'static str, value: u32 },
    /// Any other libopus failure (internal error, allocation failure).
    #[error("libopus {function} failed: {reason}")]
    Codec {
        function: &'static str,
        reason: &'static str,
    },
}

impl OpusError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            OpusError::WrongFrameSize { .. } => "opus.wrong_frame_size",
            OpusError::EmptyPayload => "opus.empty_payload",
            OpusError::PayloadTooLarge { .. } => "opus.payload_too_large",
            OpusError::InvalidPacket { .. } => "opus.invalid_packet",
            OpusError::OutputTooSmall { .. } => "opus.output_too_small",
            OpusError::InvalidConfig { .. } => "opus.invalid_config",
            OpusError::Codec { .. } => "opus.codec_failure",
        }
    }

    /// Whether the error was caused by the packet from the wire (count and drop it) rather than
    /// by the caller or libopus itself.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            OpusError::EmptyPayload
                | OpusError::PayloadTooLarge { .. }
                | OpusError::InvalidPacket { .. }
        )
    }

    fn from_libopus(err: opus::Error, payload_len: usize, needed: usize, got: usize) -> Self {
        match err.code() {
            ErrorCode::InvalidPacket => OpusError::InvalidPacket { len: payload_len },
            ErrorCode::BufferTooSmall => OpusError::OutputTooSmall { needed, got },
            _ => OpusError::Codec {
                function: err.function(),
                reason: err.description(),
            },
        }
    }
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, OpusError>;

/// Number of 8 kHz samples a payload decodes to (e.g. 160 for a 20 ms packet), read from its
/// TOC and frame count without decoding. Multiply by 6 for the 48 kHz RTP timestamp span.
pub fn packet_samples_8k(payload: &[u8]) -> Result<usize> {
    check_payload(payload)?;
    opus::packet::get_nb_samples(payload, SAMPLE_RATE_HZ)
        .map_err(|e| OpusError::from_libopus(e, payload.len(), 0, 0))
}

fn check_payload(payload: &[u8]) -> Result<()> {
    if payload.is_empty() {
        return Err(OpusError::EmptyPayload);
    }
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(OpusError::PayloadTooLarge {
            len: payload.len(),
            max: MAX_PAYLOAD_BYTES,
        });
    }
    Ok(())
}

fn codec_err(err: opus::Error) -> OpusError {
    OpusError::Codec {
        function: err.function(),
        reason: err.description(),
    }
}

/// Opus encoder for one phone-leg direction: mono, 8 kHz, VoIP application, in-band FEC on,
/// DTX off, 20 ms frames.
#[derive(Debug)]
pub struct OpusEncoder8k {
    inner: opus::Encoder,
    bitrate_bps: u32,
    complexity: u8,
    expected_loss_percent: u8,
}

impl OpusEncoder8k {
    /// A new encoder at `bitrate_bps` (6 000–510 000; 16 000–24 000 is plenty for narrowband
    /// speech) and `complexity` (0–10; 5 is what the cost figures assume), expecting
    /// [`DEFAULT_EXPECTED_LOSS_PERCENT`] packet loss.
    pub fn new(bitrate_bps: u32, complexity: u8) -> Result<Self> {
        Self::with_expected_loss(bitrate_bps, complexity, DEFAULT_EXPECTED_LOSS_PERCENT)
    }

    /// Like [`new`](Self::new), with the expected packet loss in percent (0–100). With 0 the
    /// encoder emits no FEC data even though FEC is enabled.
    pub fn with_expected_loss(
        bitrate_bps: u32,
        complexity: u8,
        expected_loss_percent: u8,
    ) -> Result<Self> {
        check_bitrate(bitrate_bps)?;
        if complexity > 10 {
            return Err(OpusError::InvalidConfig {
                what: "complexity",
                value: u32::from(complexity),
            });
        }
        check_loss(expected_loss_percent)?;
        let mut inner = opus::Encoder::new(SAMPLE_RATE_HZ, Channels::Mono, Application::Voip)
            .map_err(codec_err)?;
        inner
            .set_bitrate(Bitrate::Bits(bitrate_as_i32(bitrate_bps)))
            .map_err(codec_err)?;
        inner
            .set_complexity(i32::from(complexity))
            .map_err(codec_err)?;
        inner.set_signal(Signal::Voice).map_err(codec_err)?;
        inner.set_inband_fec(true).map_err(codec_err)?;
        inner
            .set_packet_loss_perc(i32::from(expected_loss_percent))
            .map_err(codec_err)?;
        inner.set_dtx(false).map_err(codec_err)?;
        Ok(Self {
            inner,
            bitrate_bps,
            complexity,
            expected_loss_percent,
        })
    }

    /// Encode one 20 ms frame ([`FRAME_SAMPLES_8K`] samples of 8 kHz mono PCM) into `out`,
    /// returning the payload length. `out` of [`MAX_PACKET_BYTES`] always suffices.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize> {
        if pcm.len() != FRAME_SAMPLES_8K {
            return Err(OpusError::WrongFrameSize {
                expected: FRAME_SAMPLES_8K,
                got: pcm.len(),
            });
        }
        if out.is_empty() {
            return Err(OpusError::OutputTooSmall { needed: 1, got: 0 });
        }
        let got = out.len();
        let usable = got.min(MAX_PACKET_BYTES);
        self.inner
            .encode(pcm, &mut out[..usable])
            .map_err(|e| OpusError::from_libopus(e, 0, MAX_PACKET_BYTES, got))
    }

    /// Change the target bitrate (6 000–510 000 b/s), e.g. after REMB/TWCC feedback.
    pub fn set_bitrate(&mut self, bitrate_bps: u32) -> Result<()> {
        check_bitrate(bitrate_bps)?;
        self.inner
            .set_bitrate(Bitrate::Bits(bitrate_as_i32(bitrate_bps)))
            .map_err(codec_err)?;
        self.bitrate_bps = bitrate_bps;
        Ok(())
    }

    /// Change the expected packet loss (0–100 %), e.g. from RTCP receiver reports; more loss
    /// makes the encoder spend more on in-band FEC.
    pub fn set_expected_packet_loss(&mut self, percent: u8) -> Result<()> {
        check_loss(percent)?;
        self.inner
            .set_packet_loss_perc(i32::from(percent))
            .map_err(codec_err)?;
        self.expected_loss_percent = percent;
        Ok(())
    }

    /// Target bitrate in bits per second.
    pub fn bitrate_bps(&self) -> u32 {
        self.bitrate_bps
    }

    /// Complexity (0–10).
    pub fn complexity(&self) -> u8 {
        self.complexity
    }

    /// Expected packet loss in percent.
    pub fn expected_loss_percent(&self) -> u8 {
        self.expected_loss_percent
    }

    /// The encoder's look-ahead in 8 kHz samples (part of the codec's algorithmic delay).
    pub fn lookahead_samples(&mut self) -> Result<usize> {
        let n = self.inner.get_lookahead().map_err(codec_err)?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Forget all history (start of a new stream); the configuration is kept.
    pub fn reset(&mut self) -> Result<()> {
        self.inner.reset_state().map_err(codec_err)
    }
}

fn check_bitrate(bitrate_bps: u32) -> Result<()> {
    if BITRATE_RANGE_BPS.contains(&bitrate_bps) {
        Ok(())
    } else {
        Err(OpusError::InvalidConfig {
            what: "bitrate",
            value: bitrate_bps,
        })
    }
}

fn check_loss(percent: u8) -> Result<()> {
    if percent <= 100 {
        Ok(())
    } else {
        Err(OpusError::InvalidConfig {
            what: "expected packet loss percent",
            value: u32::from(percent),
        })
    }
}

fn bitrate_as_i32(bitrate_bps: u32) -> i32 {
    // Checked against BITRATE_RANGE_BPS first, so it always fits.
    i32::try_from(bitrate_bps).unwrap_or(i32::MAX)
}

/// Opus decoder for one phone-leg direction: mono output at 8 kHz, whatever bandwidth, mode or
/// channel count the sender used.
#[derive(Debug)]
pub struct OpusDecoder8k {
    inner: opus::Decoder,
}

impl OpusDecoder8k {
    /// A new decoder (mono, 8 kHz output).
    pub fn new() -> Result<Self> {
        let inner = opus::Decoder::new(SAMPLE_RATE_HZ, Channels::Mono).map_err(codec_err)?;
        Ok(Self { inner })
    }

    /// Decode one received payload into `out`, returning the number of samples written
    /// (160 for a 20 ms packet; up to [`MAX_DECODE_SAMPLES`] for a 120 ms one).
    ///
    /// An empty payload is refused with [`OpusError::EmptyPayload`] and leaves the decoder
    /// untouched; corrupt payloads give [`OpusError::InvalidPacket`]; a short `out` gives
    /// [`OpusError::OutputTooSmall`] with the length needed.
    pub fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize> {
        let needed = packet_samples_8k(payload)?;
        if needed > out.len() {
            return Err(OpusError::OutputTooSmall {
                needed,
                got: out.len(),
            });
        }
        let got = out.len();
        let usable = got.min(MAX_DECODE_SAMPLES);
        self.inner
            .decode(payload, &mut out[..usable], false)
            .map_err(|e| OpusError::from_libopus(e, payload.len(), needed, got))
    }

    /// Packet-loss concealment for one missing 20 ms frame: writes [`FRAME_SAMPLES_8K`] samples
    /// extrapolated from the audio decoded so far and returns that count.
    pub fn conceal(&mut self, out: &mut [i16]) -> Result<usize> {
        let got = out.len();
        if got < FRAME_SAMPLES_8K {
            return Err(OpusError::OutputTooSmall {
                needed: FRAME_SAMPLES_8K,
                got,
            });
        }
        self.inner
            .decode(&[], &mut out[..FRAME_SAMPLES_8K], false)
            .map_err(|e| OpusError::from_libopus(e, 0, FRAME_SAMPLES_8K, got))
    }

    /// Recover the lost 20 ms frame *before* `next_payload` from the in-band FEC data that
    /// `next_payload` carries (RFC 6716 §2.1.7), writing [`FRAME_SAMPLES_8K`] samples. When the
    /// packet carries no FEC data (sender expected no loss, or a CELT-only packet), libopus falls
    /// back to concealment, so the output is always usable. Afterwards, decode `next_payload`
    /// itself with [`decode`](Self::decode) as usual.
    pub fn decode_fec(&mut self, next_payload: &[u8], out: &mut [i16]) -> Result<usize> {
        packet_samples_8k(next_payload)?;
        let got = out.len();
        if got < FRAME_SAMPLES_8K {
            return Err(OpusError::OutputTooSmall {
                needed: FRAME_SAMPLES_8K,
                got,
            });
        }
        self.inner
            .decode(next_payload, &mut out[..FRAME_SAMPLES_8K], true)
            .map_err(|e| OpusError::from_libopus(e, next_payload.len(), FRAME_SAMPLES_8K, got))
    }

    /// Forget all history (start of a new stream, e.g. after an SSRC change).
    pub fn reset(&mut self) -> Result<()> {
        self.inner.reset_state().map_err(codec_err)
    }
}

#[cfg(test)]
mod tests;
