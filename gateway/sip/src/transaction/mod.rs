//! RFC 3261 §17 transactions, sans-IO.
//!
//! Four state machines, one per file: [`ServerInviteTransaction`] (§17.2.1 + RFC 6026 §7.1),
//! [`ServerNonInviteTransaction`] (§17.2.2), [`ClientInviteTransaction`] (§17.1.1 + RFC 6026
//! §8.4) and [`ClientNonInviteTransaction`] (§17.1.2). Each is a plain struct: inputs are
//! `handle_*(now, ..)` calls, outputs are drained with [`Transaction::poll_transmit`],
//! [`Transaction::poll_event`] and [`Transaction::poll_timeout`]. Nothing reads the clock or
//! touches a socket, so tests run on virtual time.
//!
//! Driver contract (same for all four):
//! 1. after any `handle_*` / constructor call, drain `poll_transmit` (send the bytes as they are)
//!    and `poll_event` (give them to the TU);
//! 2. sleep until `poll_timeout`, then call `handle_timeout(now)` and drain again;
//! 3. drop the transaction once `is_terminated()` (after draining its last events).
//!
//! Matching incoming messages to transactions uses [`TransactionKey`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

mod client_invite;
mod client_non_invite;
mod key;
mod server_invite;
mod server_non_invite;
mod timers;

pub use client_invite::{build_ack_for_non_2xx, build_cancel, ClientInviteTransaction};
pub use client_non_invite::ClientNonInviteTransaction;
pub use key::{top_branch, Role, TransactionKey, MAGIC_COOKIE};
pub use server_invite::ServerInviteTransaction;
pub use server_non_invite::ServerNonInviteTransaction;
pub use timers::{Timer, TimerConfig, TimerSet};

/// Transaction states of RFC 3261 §17 (Figures 5–8) and RFC 6026 (Accepted).
///
/// One enum for all four machines so logs and metrics read the same; each machine uses a subset:
/// client INVITE: Calling, Proceeding, Completed, Accepted, Terminated;
/// client non-INVITE: Trying, Proceeding, Completed, Terminated;
/// server INVITE: Proceeding, Completed, Confirmed, Accepted, Terminated;
/// server non-INVITE: Trying, Proceeding, Completed, Terminated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionState {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

impl TransactionState {
    /// Lower-case name for logs and errors.
    pub fn name(self) -> &'static str {
        match self {
            TransactionState::Calling => "calling",
            TransactionState::Trying => "trying",
            TransactionState::Proceeding => "proceeding",
            TransactionState::Completed => "completed",
            TransactionState::Confirmed => "confirmed",
            TransactionState::Accepted => "accepted",
            TransactionState::Terminated => "terminated",
        }
    }
}

/// What a transaction reports to its transaction user (TU).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionEvent {
    /// Client transactions: a provisional or final response to pass up (§17.1).
    Response(rsip::Response),
    /// Server INVITE in Accepted: an ACK that matched this transaction (RFC 6026 §7.1).
    Request(rsip::Request),
    /// Timer B, F or H fired: the transaction failed (client: treat as 408, §8.1.3.1).
    Timeout { timer: Timer },
    /// The transport reported a fatal error while sending (§17.1.4, §17.2.4).
    TransportError,
    /// The transaction reached Terminated; emitted exactly once, always last.
    Terminated,
}

/// One message to hand to the transport, byte-identical across retransmissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The serialized message; retransmissions reuse the same buffer.
    pub bytes: Bytes,
    /// The message itself, for logging and routing (destination, transport).
    pub message: Arc<rsip::SipMessage>,
    /// True when this is a retransmission (timer-driven or triggered by a retransmitted request).
    pub retransmission: bool,
}

impl Outgoing {
    fn new(message: rsip::SipMessage) -> Self {
        // Our own serializer: rsip garbles binary bodies and prints enum names as reasons.
        let bytes = Bytes::from(crate::message::to_bytes(&message));
        Self {
            bytes,
            message: Arc::new(message),
            retransmission: false,
        }
    }

    fn again(&self) -> Self {
        Self {
            retransmission: true,
            ..self.clone()
        }
    }
}

/// Errors of this module. Wire input never panics; it ends up here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    #[error("missing {header} header")]
    MissingHeader { header: &'static str },
    #[error("invalid {header} header: {reason}")]
    InvalidHeader {
        header: &'static str,
        reason: String,
    },
    #[error("top Via has no branch parameter")]
    MissingBranch,
    #[error("expected a {expected} request, got {found}")]
    MethodMismatch {
        expected: &'static str,
        found: String,
    },
    #[error("status code {status} is out of range 100..=699")]
    InvalidStatus { status: u16 },
    #[error("cannot {action} in state {state:?}")]
    InvalidState {
        state: TransactionState,
        action: &'static str,
    },
    #[error("message does not belong to transaction {expected}")]
    KeyMismatch { expected: TransactionKey },
}

impl TransactionError {
    /// Stable machine-readable code (DESIGN.md: errors say their stable code).
    pub fn code(&self) -> &'static str {
        match self {
            TransactionError::MissingHeader { .. } => "transaction.missing_header",
            TransactionError::InvalidHeader { .. } => "transaction.invalid_header",
            TransactionError::MissingBranch => "transaction.missing_branch",
            TransactionError::MethodMismatch { .. } => "transaction.method_mismatch",
            TransactionError::InvalidStatus { .. } => "transaction.invalid_status",
            TransactionError::InvalidState { .. } => "transaction.invalid_state",
            TransactionError::KeyMismatch { .. } => "transaction.key_mismatch",
        }
    }

    /// The SIP status to answer a request with when this error came from it, if any (400 for
    /// malformed requests, §8.2); `None` for local misuse by the TU.
    pub fn sip_status(&self) -> Option<u16> {
        match self {
            TransactionError::MissingHeader { .. }
            | TransactionError::InvalidHeader { .. }
            | TransactionError::MissingBranch => Some(400),
            _ => None,
        }
    }
}

/// The interface common to all four transaction machines.
pub trait Transaction {
    /// The key this transaction is matched by.
    fn key(&self) -> &TransactionKey;
    /// Current state.
    fn state(&self) -> TransactionState;
    /// Next message to send, if any. Call until `None`.
    fn poll_transmit(&mut self) -> Option<Outgoing>;
    /// Next event for the TU, if any. Call until `None`.
    fn poll_event(&mut self) -> Option<TransactionEvent>;
    /// Earliest armed timer deadline.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Fires every timer due at `now`, in deadline order.
    fn handle_timeout(&mut self, now: Instant);
    /// The transport failed to send our message (§17.1.4 / §17.2.4).
    fn handle_transport_error(&mut self, now: Instant);
    /// True once Terminated.
    fn is_terminated(&self) -> bool {
        self.state() == TransactionState::Terminated
    }
}

/// State shared by the four machines: key, state, timers and output queues.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) key: TransactionKey,
    pub(crate) reliable: bool,
    pub(crate) config: TimerConfig,
    pub(crate) state: TransactionState,
    pub(crate) timers: TimerSet,
    transmits: VecDeque<Outgoing>,
    events: VecDeque<TransactionEvent>,
}

impl Core {
    pub(crate) fn new(
        key: TransactionKey,
        state: TransactionState,
        reliable: bool,
        config: TimerConfig,
    ) -> Self {
        Self {
            key,
            reliable,
            config,
            state,
            timers: TimerSet::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub(crate) fn transmit(&mut self, out: Outgoing) {
        self.transmits.push_back(out);
    }

    pub(crate) fn emit(&mut self, event: TransactionEvent) {
        self.events.push_back(event);
    }

    /// Enters Terminated once: disarms every timer and tells the TU.
    pub(crate) fn terminate(&mut self) {
        if self.state != TransactionState::Terminated {
            self.state = TransactionState::Terminated;
            self.timers.clear();
            self.emit(TransactionEvent::Terminated);
        }
    }

    /// §17.1.4 / §17.2.4: a fatal transport error is reported to the TU and ends the
    /// transaction.
    pub(crate) fn transport_failed(&mut self) {
        if self.state != TransactionState::Terminated {
            self.emit(TransactionEvent::TransportError);
            self.terminate();
        }
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Outgoing> {
        self.transmits.pop_front()
    }

    pub(crate) fn poll_event(&mut self) -> Option<TransactionEvent> {
        self.events.pop_front()
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.earliest()
    }

    pub(crate) fn invalid_state(&self, action: &'static str) -> TransactionError {
        TransactionError::InvalidState {
            state: self.state,
            action,
        }
    }
}

/// Status code of a response as a number.
pub(crate) fn status_of(resp: &rsip::Response) -> u16 {
    resp.status_code.code()
}

/// Rejects status codes outside 100..=699 (§7.2, §21) before any state change.
pub(crate) fn check_status(resp: &rsip::Response) -> Result<u16, TransactionError> {
    let status = status_of(resp);
    if (100..=699).contains(&status) {
        Ok(status)
    } else {
        Err(TransactionError::InvalidStatus { status })
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Builds messages from literal SIP text and drives transactions on virtual time.

    use std::time::{Duration, Instant};

    use super::{Outgoing, Transaction, TransactionEvent};

    /// Parses a literal SIP request. Test input only; panicking here is a test failure.
    pub(crate) fn req(text: &str) -> rsip::Request {
        match rsip::SipMessage::try_from(text) {
            Ok(rsip::SipMessage::Request(r)) => r,
            other => panic!("not a request: {other:?}"),
        }
    }

    /// Parses a literal SIP response.
    pub(crate) fn resp(text: &str) -> rsip::Response {
        match rsip::SipMessage::try_from(text) {
            Ok(rsip::SipMessage::Response(r)) => r,
            other => panic!("not a response: {other:?}"),
        }
    }

    /// Parses bytes a transaction sent.
    pub(crate) fn parse(out: &Outgoing) -> rsip::SipMessage {
        rsip::SipMessage::try_from(out.bytes.clone()).expect("transaction sent unparsable bytes")
    }

    pub(crate) fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    pub(crate) const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\r\n\
        Route: <sip:proxy1.example.com;lr>\r\n\
        Route: <sip:proxy2.example.com;lr>\r\n\
        Max-Forwards: 70\r\n\
        From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
        To: Bob <sip:bob@biloxi.example.com>\r\n\
        Call-ID: 3848276298220188511@atlanta.example.com\r\n\
        CSeq: 2 INVITE\r\n\
        Contact: <sip:alice@client.atlanta.example.com>\r\n\
        Content-Length: 0\r\n\r\n";

    pub(crate) const OPTIONS: &str = "OPTIONS sip:carol@chicago.example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKhjhs8ass877\r\n\
        Max-Forwards: 70\r\n\
        To: <sip:carol@chicago.example.com>\r\n\
        From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
        Call-ID: a84b4c76e66710\r\n\
        CSeq: 63104 OPTIONS\r\n\
        Content-Length: 0\r\n\r\n";

    /// A response to [`INVITE`] with the given status line tail (e.g. `"180 Ringing"`).
    pub(crate) fn invite_response(status: &str) -> rsip::Response {
        let to_tag = if status.starts_with("100") {
            ""
        } else {
            ";tag=8321234356"
        };
        resp(&format!(
            "SIP/2.0 {status}\r\n\
             Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;received=192.0.2.101\r\n\
             From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
             To: Bob <sip:bob@biloxi.example.com>{to_tag}\r\n\
             Call-ID: 3848276298220188511@atlanta.example.com\r\n\
             CSeq: 2 INVITE\r\n\
             Content-Length: 0\r\n\r\n"
        ))
    }

    /// A response to [`OPTIONS`].
    pub(crate) fn options_response(status: &str) -> rsip::Response {
        resp(&format!(
            "SIP/2.0 {status}\r\n\
             Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKhjhs8ass877\r\n\
             To: <sip:carol@chicago.example.com>;tag=93810874\r\n\
             From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
             Call-ID: a84b4c76e66710\r\n\
             CSeq: 63104 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n"
        ))
    }

    /// The ACK a UAC sends for a non-2xx final response to [`INVITE`].
    pub(crate) fn invite_ack() -> rsip::Request {
        req("ACK sip:bob@biloxi.example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\r\n\
             Max-Forwards: 70\r\n\
             From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
             To: Bob <sip:bob@biloxi.example.com>;tag=8321234356\r\n\
             Call-ID: 3848276298220188511@atlanta.example.com\r\n\
             CSeq: 2 ACK\r\n\
             Content-Length: 0\r\n\r\n")
    }

    /// Builds a response to `request` (§8.2.6.2: Via, From, Call-ID and CSeq copied, To with
    /// `to_tag` added).
    pub(crate) fn response_to(
        request: &rsip::Request,
        status: &str,
        to_tag: &str,
    ) -> rsip::Response {
        let mut text = format!("SIP/2.0 {status}\r\n");
        for h in request.headers.iter() {
            match h {
                rsip::Header::Via(_)
                | rsip::Header::From(_)
                | rsip::Header::CallId(_)
                | rsip::Header::CSeq(_) => text.push_str(&format!("{h}\r\n")),
                rsip::Header::To(_) => text.push_str(&format!("{h};tag={to_tag}\r\n")),
                _ => {}
            }
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        resp(&text)
    }

    /// Runs timers until `until`, recording the offset from `t0` (in ms) of every
    /// transmission. Events are collected too.
    pub(crate) fn run_until<T: Transaction>(
        tx: &mut T,
        t0: Instant,
        until: Instant,
    ) -> (Vec<u128>, Vec<TransactionEvent>) {
        let mut sent = vec![];
        let mut events = vec![];
        while let Some(at) = tx.poll_timeout() {
            if at > until {
                break;
            }
            tx.handle_timeout(at);
            while let Some(out) = tx.poll_transmit() {
                assert!(out.retransmission);
                sent.push((at - t0).as_millis());
            }
            while let Some(ev) = tx.poll_event() {
                events.push(ev);
            }
        }
        (sent, events)
    }

    /// Drains everything a transaction has queued.
    pub(crate) fn drain<T: Transaction>(tx: &mut T) -> (Vec<Outgoing>, Vec<TransactionEvent>) {
        let mut sent = vec![];
        let mut events = vec![];
        while let Some(out) = tx.poll_transmit() {
            sent.push(out);
        }
        while let Some(ev) = tx.poll_event() {
            events.push(ev);
        }
        (sent, events)
    }
}

#[cfg(test)]
mod tests {
    //! Client and server transactions paired through a lossy virtual channel.

    use std::time::{Duration, Instant};

    use super::test_support::*;
    use super::*;

    /// A datagram channel with a fixed one-way delay that drops the n-th packets chosen by the
    /// test (counted per direction, 1-based), deterministically.
    struct Lossy {
        delay: Duration,
        drop: Vec<usize>,
        sent: usize,
        in_flight: Vec<(Instant, Bytes)>,
    }

    impl Lossy {
        fn new(delay: Duration, drop: &[usize]) -> Self {
            Self {
                delay,
                drop: drop.to_vec(),
                sent: 0,
                in_flight: vec![],
            }
        }

        fn send(&mut self, now: Instant, bytes: Bytes) {
            self.sent += 1;
            if !self.drop.contains(&self.sent) {
                self.in_flight.push((now + self.delay, bytes));
            }
        }

        fn next_arrival(&self) -> Option<Instant> {
            self.in_flight.iter().map(|(at, _)| *at).min()
        }

        fn deliver(&mut self, now: Instant) -> Vec<rsip::SipMessage> {
            let (due, later): (Vec<_>, Vec<_>) =
                self.in_flight.drain(..).partition(|(at, _)| *at <= now);
            self.in_flight = later;
            due.into_iter()
                .map(|(_, b)| rsip::SipMessage::try_from(b).expect("parsable"))
                .collect()
        }
    }

    fn earliest(xs: &[Option<Instant>]) -> Option<Instant> {
        xs.iter().flatten().min().copied()
    }

    /// INVITE over UDP, where the first INVITE, the first 486 and the first ACK are lost. The
    /// client retransmits on Timer A, the server on Timer G, and both still end cleanly.
    #[test]
    fn invite_rejected_survives_loss() {
        let t0 = Instant::now();
        let cfg = TimerConfig::default();
        let delay = Duration::from_millis(50);
        let mut up = Lossy::new(delay, &[1, 3]); // client → server: drop INVITE #1 and ACK #1
        let mut down = Lossy::new(delay, &[2]); // server → client: drop the first 486

        let mut client = ClientInviteTransaction::new(t0, req(INVITE), false, cfg).expect("tx");
        let mut server: Option<ServerInviteTransaction> = None;
        let mut client_events = vec![];
        let mut server_events = vec![];
        let mut now = t0;
        for _ in 0..1000 {
            while let Some(out) = client.poll_transmit() {
                up.send(now, out.bytes);
            }
            if let Some(s) = server.as_mut() {
                while let Some(out) = s.poll_transmit() {
                    down.send(now, out.bytes);
                }
                while let Some(ev) = s.poll_event() {
                    server_events.push(ev);
                }
            }
            while let Some(ev) = client.poll_event() {
                client_events.push(ev);
            }
            let next = earliest(&[
                client.poll_timeout(),
                server.as_ref().and_then(|s| s.poll_timeout()),
                up.next_arrival(),
                down.next_arrival(),
            ]);
            let Some(next) = next else { break };
            now = next;
            for msg in up.deliver(now) {
                let rsip::SipMessage::Request(r) = msg else {
                    panic!("requests go up")
                };
                match server.as_mut() {
                    Some(s) => s.handle_request(now, &r).expect("matches"),
                    None => {
                        // The TU answers at once: 100 Trying, then 486 Busy Here.
                        let mut s =
                            ServerInviteTransaction::new(now, r, false, cfg).expect("server");
                        s.send_response(now, invite_response("100 Trying"))
                            .expect("100");
                        s.send_response(now, invite_response("486 Busy Here"))
                            .expect("486");
                        server = Some(s);
                    }
                }
            }
            for msg in down.deliver(now) {
                let rsip::SipMessage::Response(r) = msg else {
                    panic!("responses go down")
                };
                client.handle_response(now, &r).expect("matches");
            }
            client.handle_timeout(now);
            if let Some(s) = server.as_mut() {
                s.handle_timeout(now);
            }
            if client.is_terminated() && server.as_ref().is_some_and(|s| s.is_terminated()) {
                break;
            }
        }
        let mut server = server.expect("the INVITE got through");
        while let Some(ev) = client.poll_event() {
            client_events.push(ev);
        }
        while let Some(ev) = server.poll_event() {
            server_events.push(ev);
        }
        assert!(client.is_terminated());
        assert!(server.is_terminated());
        // The client saw the 100 and the 486 exactly once each, then terminated on Timer D.
        let statuses: Vec<u16> = client_events
            .iter()
            .filter_map(|e| match e {
                TransactionEvent::Response(r) => Some(r.status_code.code()),
                _ => None,
            })
            .collect();
        assert_eq!(statuses, [100, 486]);
        assert_eq!(client_events.last(), Some(&TransactionEvent::Terminated));
        // The server never timed out: the retransmitted ACK reached it.
        assert!(!server_events
            .iter()
            .any(|e| matches!(e, TransactionEvent::Timeout { .. })));
        assert_eq!(server_events.last(), Some(&TransactionEvent::Terminated));
        // Up: INVITE (lost), INVITE, ACK (lost), ACK.
        assert_eq!(up.sent, 4);
    }

    /// OPTIONS over UDP with the first two requests and the first 200 lost: Timer E recovers.
    #[test]
    fn non_invite_survives_loss() {
        let t0 = Instant::now();
        let cfg = TimerConfig::default();
        let delay = Duration::from_millis(30);
        let mut up = Lossy::new(delay, &[1, 2]);
        let mut down = Lossy::new(delay, &[1]);
        let mut client = ClientNonInviteTransaction::new(t0, req(OPTIONS), false, cfg).expect("tx");
        let mut server: Option<ServerNonInviteTransaction> = None;
        let mut finals = 0;
        let mut now = t0;
        for _ in 0..1000 {
            while let Some(out) = client.poll_transmit() {
                up.send(now, out.bytes);
            }
            if let Some(s) = server.as_mut() {
                while let Some(out) = s.poll_transmit() {
                    down.send(now, out.bytes);
                }
                while s.poll_event().is_some() {}
            }
            while let Some(ev) = client.poll_event() {
                if matches!(ev, TransactionEvent::Response(_)) {
                    finals += 1;
                }
                assert!(!matches!(ev, TransactionEvent::Timeout { .. }));
            }
            let Some(next) = earliest(&[
                client.poll_timeout(),
                server.as_ref().and_then(|s| s.poll_timeout()),
                up.next_arrival(),
                down.next_arrival(),
            ]) else {
                break;
            };
            now = next;
            for msg in up.deliver(now) {
                let rsip::SipMessage::Request(r) = msg else {
                    panic!("requests go up")
                };
                match server.as_mut() {
                    Some(s) => s.handle_request(now, &r).expect("matches"),
                    None => {
                        let mut s =
                            ServerNonInviteTransaction::new(now, r, false, cfg).expect("server");
                        s.send_response(now, options_response("200 OK"))
                            .expect("200");
                        server = Some(s);
                    }
                }
            }
            for msg in down.deliver(now) {
                let rsip::SipMessage::Response(r) = msg else {
                    panic!("responses go down")
                };
                client.handle_response(now, &r).expect("matches");
            }
            client.handle_timeout(now);
            if let Some(s) = server.as_mut() {
                s.handle_timeout(now);
            }
        }
        assert_eq!(finals, 1);
        assert!(client.is_terminated());
        assert!(server.expect("server").is_terminated());
        // Requests at 0, 0.5 (both lost), 1.5 (arrives; its 200 lost), 3.5 (answered again).
        assert_eq!(up.sent, 4);
        assert_eq!(down.sent, 2);
    }

    /// CANCEL of a ringing call (§9): the UAC builds the CANCEL from its INVITE transaction,
    /// the UAS finds the INVITE transaction through `invite_for_cancel`, answers the CANCEL with
    /// 200 in its own transaction and the INVITE with 487; the UAC's automatic ACK lands on the
    /// UAS's INVITE transaction through the server key map.
    #[test]
    fn cancel_then_487_and_ack_match_through_keys() {
        use std::collections::HashMap;

        let t0 = Instant::now();
        let cfg = TimerConfig::default();
        let mut uac = ClientInviteTransaction::new(t0, req(INVITE), false, cfg).expect("tx");
        let invite_bytes = uac.poll_transmit().expect("INVITE").bytes;
        let rsip::SipMessage::Request(invite) =
            rsip::SipMessage::try_from(invite_bytes).expect("parse")
        else {
            panic!("request")
        };
        let mut uas = ServerInviteTransaction::new(t0, invite.clone(), false, cfg).expect("server");
        let mut server_keys: HashMap<TransactionKey, &str> = HashMap::new();
        server_keys.insert(uas.key().clone(), "invite");

        uas.send_response(t0, response_to(&invite, "180 Ringing", "uas1"))
            .expect("180");
        let ringing = uas.poll_transmit().expect("180").bytes;
        let rsip::SipMessage::Response(ringing) =
            rsip::SipMessage::try_from(ringing).expect("parse")
        else {
            panic!("response")
        };
        uac.handle_response(t0, &ringing).expect("match");
        assert_eq!(uac.state(), TransactionState::Proceeding);

        // UAC side: the CANCEL runs in its own client non-INVITE transaction.
        let cancel = uac.cancel_request().expect("cancel");
        let mut uac_cancel =
            ClientNonInviteTransaction::new(t0, cancel, false, cfg).expect("cancel tx");
        let cancel_bytes = uac_cancel.poll_transmit().expect("CANCEL").bytes;
        let rsip::SipMessage::Request(cancel) =
            rsip::SipMessage::try_from(cancel_bytes).expect("parse")
        else {
            panic!("request")
        };

        // UAS side: the CANCEL is not the INVITE's transaction but targets it.
        let cancel_key = TransactionKey::server_from_request(&cancel).expect("key");
        assert!(!server_keys.contains_key(&cancel_key));
        let target = TransactionKey::invite_for_cancel(&cancel).expect("key");
        assert_eq!(server_keys.get(&target), Some(&"invite"));
        let mut uas_cancel =
            ServerNonInviteTransaction::new(t0, cancel.clone(), false, cfg).expect("server");
        uas_cancel
            .send_response(t0, response_to(&cancel, "200 OK", "uas1"))
            .expect("200");
        uas.send_response(t0, response_to(&invite, "487 Request Terminated", "uas1"))
            .expect("487");

        // UAC receives both; the 200 (CANCEL) must not touch the INVITE transaction.
        let cancel_ok = match parse(&uas_cancel.poll_transmit().expect("200")) {
            rsip::SipMessage::Response(r) => r,
            _ => panic!("response"),
        };
        assert!(uac.handle_response(t0, &cancel_ok).is_err());
        uac_cancel.handle_response(t0, &cancel_ok).expect("match");
        assert_eq!(uac_cancel.state(), TransactionState::Completed);
        let terminated = match parse(&uas.poll_transmit().expect("487")) {
            rsip::SipMessage::Response(r) => r,
            _ => panic!("response"),
        };
        uac.handle_response(t0, &terminated).expect("match");
        assert_eq!(uac.state(), TransactionState::Completed);
        let ack = match parse(&uac.poll_transmit().expect("ACK")) {
            rsip::SipMessage::Request(r) => r,
            _ => panic!("request"),
        };
        let ack_key = TransactionKey::server_from_request(&ack).expect("key");
        assert_eq!(server_keys.get(&ack_key), Some(&"invite"));
        uas.handle_request(t0, &ack).expect("match");
        assert_eq!(uas.state(), TransactionState::Confirmed);
    }

    #[test]
    fn errors_have_stable_codes() {
        let e = TransactionError::MissingHeader { header: "Via" };
        assert_eq!(e.code(), "transaction.missing_header");
        assert_eq!(e.sip_status(), Some(400));
        let e = TransactionError::InvalidState {
            state: TransactionState::Completed,
            action: "send a response",
        };
        assert_eq!(e.sip_status(), None);
        assert!(e.to_string().contains("Completed"));
    }
}
