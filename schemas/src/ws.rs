//! The manager console's WebSocket protocol (`GET /v1/ws`, bearer token of the manager).
//! JSON text frames, one message each, tagged by `type`.

use serde::{Deserialize, Serialize};

use crate::missed::MissedReason;

/// Gateway → manager browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Sent once after the socket is authenticated.
    Hello {
        manager_id: String,
        channel_id: String,
        presence: Presence,
        do_not_disturb: bool,
    },
    /// An incoming phone call rings this manager.
    Ring {
        consultation_id: String,
        call_id: String,
        /// Caller number in E.164, or `None` when the caller withheld it.
        caller: Option<String>,
        customer_id: String,
        customer_name: Option<String>,
        /// Dialled number (the channel's 070 number) in E.164.
        dialled: String,
        /// Unix ms after which the ring stops by itself.
        ring_expires_at_ms: i64,
    },
    /// The ring for this consultation stopped for this manager.
    RingStopped {
        consultation_id: String,
        reason: RingStopReason,
    },
    /// The call this manager accepted is connected: the WebRTC answer to their offer. The
    /// carrier gets its 200 OK once the WebRTC path is up.
    CallAnswered {
        consultation_id: String,
        sdp_answer: String,
    },
    /// A DTMF digit the caller pressed (RFC 4733 from the carrier).
    DtmfReceived {
        consultation_id: String,
        digit: char,
    },
    /// The call ended.
    CallEnded {
        consultation_id: String,
        /// `customer_hung_up`, `manager_hung_up`, `media_timeout`, `media_failed`, `ack_timeout`;
        /// for outgoing calls not answered: `busy`, `declined`, `no_answer`, `cancelled`, `failed`.
        reason: String,
    },
    /// The outgoing call this manager asked for (`call_customer`) has its consultation; the
    /// WebRTC answer to their offer. The INVITE goes to the carrier once the WebRTC path is up.
    OutboundStarted {
        consultation_id: String,
        /// The call record's id.
        call_id: String,
        customer_id: String,
        /// The dialled customer number in E.164.
        customer_number: String,
        sdp_answer: String,
    },
    /// The customer's phone rings (180/183). With `early_media` the carrier's ringback (or
    /// announcement) already plays through the WebRTC path.
    OutboundRinging {
        consultation_id: String,
        early_media: bool,
    },
    /// The customer picked up (200 OK): the call is connected.
    OutboundAnswered { consultation_id: String },
    /// Presence or do-not-disturb changed (echo of the manager's own request, or another tab).
    Presence {
        presence: Presence,
        do_not_disturb: bool,
    },
    /// A manager in a phone call invites this manager into it (at most 10 participants in
    /// the meet, the customer included). Join with `join` and a WebRTC offer; the answer comes
    /// as `call_answered`.
    MeetInvite {
        consultation_id: String,
        /// The caller's number (E.164) when known.
        caller: Option<String>,
        /// The inviting manager's id.
        invited_by: String,
    },
    /// An invite was not taken up in time and is no longer valid (a `join` would fail).
    MeetInviteExpired { consultation_id: String },
    /// Someone joined or left the meet: the managers now in it (sent to every manager in it).
    MeetParticipants {
        consultation_id: String,
        manager_ids: Vec<String>,
    },
    /// A request from the browser could not be carried out.
    Error { code: String, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Online,
    Offline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RingStopReason {
    /// The call ended as missed with this reason.
    Missed(MissedReason),
    /// This manager declined; the call may ring someone else.
    DeclinedByYou,
    /// Answered (on another tab or by another manager).
    Answered,
}

/// Manager browser → gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    Decline {
        consultation_id: String,
    },
    /// Accept the ringing call with the browser's WebRTC offer (audio, Opus); candidates in the
    /// offer or trickled with `ice_candidate`.
    Accept {
        consultation_id: String,
        sdp_offer: String,
    },
    /// A trickled ICE candidate of the browser (`candidate:...`; empty = end of candidates).
    IceCandidate {
        consultation_id: String,
        candidate: String,
    },
    /// Send a DTMF digit to the caller (the console keypad).
    Dtmf {
        consultation_id: String,
        digit: char,
    },
    /// Leave for everyone: end the call (BYE to the carrier).
    Hangup {
        consultation_id: String,
    },
    /// Leave only me: the call goes on for the others; the last manager leaving ends it.
    Leave {
        consultation_id: String,
    },
    /// Invite another manager of the channel into the call this manager is in (`meet_invite`
    /// on their consoles). `meet.full` when the meet already has 10 participants.
    InviteManager {
        consultation_id: String,
        manager_id: String,
    },
    /// Join a call this manager was invited into, with the browser's WebRTC offer (audio,
    /// Opus); answered with `call_answered`.
    Join {
        consultation_id: String,
        sdp_offer: String,
    },
    /// Call a customer's phone from their profile: a new call consultation with an outgoing
    /// phone meet. Give the number (national or E.164) or a customer with a phone number,
    /// and the browser's WebRTC offer (audio, Opus). Hang up (also before the answer: CANCEL)
    /// with `hangup` on the consultation of `outbound_started`.
    CallCustomer {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        customer_number: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        customer_id: Option<String>,
        sdp_offer: String,
    },
    SetPresence {
        presence: Presence,
    },
    SetDoNotDisturb {
        enabled: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_is_tagged_snake_case() {
        let m = ClientMessage::Decline {
            consultation_id: "c1".into(),
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"type":"decline","consultation_id":"c1"}"#
        );
        let stop = ServerMessage::RingStopped {
            consultation_id: "c1".into(),
            reason: RingStopReason::Missed(MissedReason::CallerCancelled),
        };
        let json = serde_json::to_string(&stop).unwrap();
        assert_eq!(
            json,
            r#"{"type":"ring_stopped","consultation_id":"c1","reason":{"missed":"caller_cancelled"}}"#
        );
        assert_eq!(serde_json::from_str::<ServerMessage>(&json).unwrap(), stop);
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"dance"}"#).is_err());
        let call: ClientMessage = serde_json::from_str(
            r#"{"type":"call_customer","customer_number":"010-5555-6666","sdp_offer":"v=0"}"#,
        )
        .unwrap();
        assert_eq!(
            call,
            ClientMessage::CallCustomer {
                customer_number: Some("010-5555-6666".into()),
                customer_id: None,
                sdp_offer: "v=0".into(),
            }
        );
    }
}
