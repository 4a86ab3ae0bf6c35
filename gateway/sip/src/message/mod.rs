//! Framing, limits, normalisation and validation in front of rsip.
//!
//! rsip 0.4 is a lenient tokenizer (see `shared/notes/rsip.md`): it never checks
//! Content-Length, accepts messages missing mandatory headers, and rejects some valid
//! RFC 3261 syntax (compact names, folding, whitespace before the colon, `tel:` URIs).
//! This module sits in front of it:
//!
//! 1. [`StreamFramer`] cuts a TCP byte stream into messages (RFC 3261 §18.3) and
//!    CRLF keep-alives (RFC 5626 §3.5.1).
//! 2. [`parse_datagram`] / [`parse_stream_message`] enforce [`Limits`], run the
//!    pre-normaliser (`normalize.rs`), validate (`validate.rs`, RFC 3261 §8.1.1 / §8.2)
//!    and only then hand canonical bytes to rsip.
//! 3. A failure is a [`ParseError`] that can say its stable code and, where the request
//!    can still be answered (§8.2, §18.2.2), build the `400`/`416`/`501`/`505`/`513`.
//! 4. [`headers`] reads header values tolerantly (our own string parsing, IPv6-safe);
//!    [`response`] builds responses per §8.2.6 and picks their destination (§18.2.2,
//!    RFC 3581).
//! 5. [`to_bytes`] serialises byte-exactly (rsip's `Display` mangles binary bodies).

mod error;
mod frame;
pub mod headers;
mod normalize;
mod parse;
pub mod response;
mod validate;
mod wire;

#[cfg(test)]
mod corpus_tests;

pub use error::{ParseError, ParseErrorKind};
pub use frame::{Frame, FramingError, StreamFramer};
pub use headers::{is_rfc3261_branch, CSeqValue, HeaderError, ViaInfo};
pub use parse::{parse_datagram, parse_stream_message};
pub use response::{
    build_response, response_destination, with_body, with_header, ResponseTransport,
};
pub use wire::{request_to_bytes, response_to_bytes, to_bytes};

/// Resource limits applied before any parsing, so a hostile peer cannot make us
/// allocate or scan without bound. rsip has no limits of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Whole message (start line + headers + body). 65,535 is the largest UDP payload
    /// (RFC 3261 §18.1.1 talks about MTU-sized messages; this is the hard ceiling).
    pub max_message_bytes: usize,
    /// Header lines after unfolding (one `Via: a, b` line counts once; the Via values
    /// are bounded separately by `max_via`).
    pub max_header_lines: usize,
    /// Via values, counting every comma-separated element (RFC 3261 §7.3.1).
    pub max_via: usize,
    /// Body bytes (Content-Length).
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 65_535,
            max_header_lines: 256,
            max_via: 64,
            max_body_bytes: 16_384,
        }
    }
}
