//! Errors of the WebRTC peer, each with a stable machine-readable code.

/// What went wrong in a [`crate::WebRtcPeer`] call.
///
/// The `reason` strings carry the underlying stack's message for logs; callers that talk to
/// users or to the HTTP layer should use [`PeerError::code`] only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// The configuration cannot work (unspecified local address, bad certificate, ...).
    #[error("invalid peer configuration: {reason}")]
    InvalidConfig {
        /// Why.
        reason: String,
    },
    /// The remote SDP does not parse, or the stack refused to apply it.
    #[error("invalid remote SDP ({kind}): {reason}")]
    InvalidSdp {
        /// `offer` or `answer`.
        kind: &'static str,
        /// Why.
        reason: String,
    },
    /// The remote SDP parsed, but offers no Opus audio we can use.
    #[error("remote SDP has no usable Opus audio section")]
    NoCommonCodec,
    /// An offer/answer step was called in a state where it is not allowed
    /// (e.g. `accept_answer` without a pending local offer).
    #[error("{operation} not allowed now: {reason}")]
    WrongState {
        /// The method called.
        operation: &'static str,
        /// Why.
        reason: String,
    },
    /// Creating or applying our own description failed inside the stack.
    #[error("negotiation failed at {stage}: {reason}")]
    Negotiation {
        /// The step that failed.
        stage: &'static str,
        /// Why.
        reason: String,
    },
    /// A trickled remote ICE candidate could not be parsed or added.
    #[error("invalid remote ICE candidate: {reason}")]
    InvalidCandidate {
        /// Why.
        reason: String,
    },
    /// `send_audio` before the peer is connected (ICE + DTLS done) or after it closed.
    #[error("peer is not connected")]
    NotConnected,
    /// The stack refused an outgoing RTP packet.
    #[error("sending audio failed: {reason}")]
    Send {
        /// Why.
        reason: String,
    },
    /// The stack failed while handling a timer.
    #[error("internal WebRTC stack error: {reason}")]
    Stack {
        /// Why.
        reason: String,
    },
}

impl PeerError {
    /// A stable code for logs, metrics and API responses.
    pub fn code(&self) -> &'static str {
        match self {
            PeerError::InvalidConfig { .. } => "webrtc.invalid_config",
            PeerError::InvalidSdp { .. } => "webrtc.invalid_sdp",
            PeerError::NoCommonCodec => "webrtc.no_common_codec",
            PeerError::WrongState { .. } => "webrtc.wrong_state",
            PeerError::Negotiation { .. } => "webrtc.negotiation_failed",
            PeerError::InvalidCandidate { .. } => "webrtc.invalid_candidate",
            PeerError::NotConnected => "webrtc.not_connected",
            PeerError::Send { .. } => "webrtc.send_failed",
            PeerError::Stack { .. } => "webrtc.stack_error",
        }
    }
}
