//! Media stages without IO: everything between a socket and another socket on the media path,
//! as plain structs driven with `now` passed in (see DESIGN.md, "Shape").
//!
//! - [`g711`]: PCMU/PCMA (ITU-T G.711) encode and decode.
//! - [`rtp`]: RTP packets (RFC 3550) parsed and built.
//! - [`dtmf`]: RFC 4733 telephone-events, both directions.
//! - [`tone`]: Goertzel tone detection (tests and DTMF checks).
//! - [`jitter`]: adaptive jitter buffer with reordering and loss concealment.
//! - [`mixer`]: N-party audio mixing (each hears all others).
//! - [`opus_codec`]: Opus at 8 kHz for phone legs.
//! - [`bridge`]: the per-call G.711 ↔ Opus bridge built from the stages above.
//! - [`wav`]: call recordings as WAV, written incrementally and repaired after a crash.

pub mod bridge;
pub mod dtmf;
pub mod g711;
pub mod jitter;
pub mod mixer;
pub mod opus_codec;
pub mod rtp;
pub mod tone;
pub mod wav;
