//! Call actors: one task owns each call. Inputs arrive on its bounded queue.

pub mod answered;
pub mod inbound;
mod media_socket;
pub mod outbound;
pub mod ringing;

use sip::transaction::TransactionKey;

/// What can happen to a live call from outside its actor.
#[derive(Debug)]
pub enum CallInput {
    /// The carrier cancelled the INVITE (the CANCEL itself was answered 200, RFC 3261 §9.2).
    CallerCancelled,
    /// A request inside the call's dialog (has our To tag).
    InDialog {
        key: TransactionKey,
        request: Box<rsip::Request>,
    },
    /// An ACK for a 2xx of this call (RFC 3261 §13.3.1.4).
    Ack(Box<rsip::Request>),
    /// A manager declined the ring in the console.
    Declined { manager_id: String },
    /// The manager's last console session closed while it rang.
    SessionGone { manager_id: String },
    /// The manager accepted, with their browser's WebRTC offer.
    Accepted {
        manager_id: String,
        sdp_offer: String,
    },
    /// A trickled ICE candidate from the manager's browser.
    IceCandidate {
        manager_id: String,
        candidate: String,
    },
    /// The manager pressed a key on the console's keypad.
    Dtmf { manager_id: String, digit: char },
    /// The manager ended the call for everyone.
    Hangup { manager_id: String },
    /// The manager leaves only themselves; the call goes on while a manager remains.
    Leave { manager_id: String },
    /// A manager in the call invites another manager of the channel.
    InviteManager {
        manager_id: String,
        invitee_id: String,
    },
    /// An invited manager joins with their browser's WebRTC offer.
    Join {
        manager_id: String,
        sdp_offer: String,
    },
    /// A response to a request this call sent (BYE, re-INVITE, outgoing INVITE).
    Response {
        key: TransactionKey,
        response: Box<rsip::Response>,
    },
    /// A request this call sent got no final response (Timer B/F, §8.1.3.1: as 408) or could
    /// not be sent; `None` when it never left.
    RequestFailed { key: Option<TransactionKey> },
}
