//! Sans-IO SIP core. Nothing here reads a clock, touches a socket or spawns a task:
//! callers pass `now` in and drain outputs (`poll_*`), as in `quinn-proto` and `str0m`.
//!
//! Layers, bottom up:
//! - [`message`]: framing, limits, normalisation and validation in front of `rsip`, header
//!   accessors and response building.
//! - [`transaction`]: RFC 3261 §17 client and server transactions (INVITE and non-INVITE) with
//!   timers A–K (and RFC 6026 L/M).
//! - [`sdp`]: offer/answer (RFC 3264) for G.711 and telephone-event.
//! - [`digest`]: HTTP digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760).
//! - [`dialog`] and [`endpoint`]: the user-agent core that routes messages to transactions and
//!   dialogs and reports events to the call layer.

pub mod dialog;
pub mod digest;
pub mod endpoint;
pub mod message;
pub mod sdp;
pub mod session_timer;
pub mod transaction;
pub mod uas_2xx;
