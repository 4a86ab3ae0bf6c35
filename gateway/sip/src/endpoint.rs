//! The transaction layer's front door (RFC 3261 §17, §18): parses what a transport received,
//! matches it to a transaction or creates one, answers what the layer itself must answer
//! (400 for malformed requests, 200/481 for CANCEL), and reports the rest to the transaction
//! user (the call layer) as [`EndpointEvent`]s. Sans-IO: the driver feeds bytes and `now`, and
//! drains [`Transmit`]s, events and the next deadline.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use crate::message::{self, Limits, ParseError};
use crate::transaction::{
    ClientInviteTransaction, ClientNonInviteTransaction, ServerInviteTransaction,
    ServerNonInviteTransaction, Timer, TimerConfig, Transaction, TransactionError,
    TransactionEvent, TransactionKey,
};

/// How a message travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    /// Reliable transports switch off retransmission timers (§17.1.1.2, §17.2.1).
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp)
    }

    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

/// The other end of a message: its address and, for streams, the connection it came on
/// (responses go back on the same connection, §18.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: Transport,
    pub addr: SocketAddr,
    pub connection: Option<u64>,
}

impl Peer {
    pub fn udp(addr: SocketAddr) -> Peer {
        Peer {
            transport: Transport::Udp,
            addr,
            connection: None,
        }
    }

    pub fn tcp(addr: SocketAddr, connection: u64) -> Peer {
        Peer {
            transport: Transport::Tcp,
            addr,
            connection: Some(connection),
        }
    }
}

/// Bytes to put on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub peer: Peer,
    pub bytes: Bytes,
}

/// What the transaction user must hear about.
#[derive(Debug, Clone)]
pub enum EndpointEvent {
    /// A new request with its own server transaction (anything but ACK and CANCEL). Answer it
    /// with [`Endpoint::respond`] using `key`.
    Request {
        key: TransactionKey,
        request: rsip::Request,
        peer: Peer,
    },
    /// An ACK that belongs to no INVITE transaction here: the ACK for a 2xx (§13.3.1.4),
    /// handled by the dialog, or a stray one.
    Ack { request: rsip::Request, peer: Peer },
    /// A CANCEL matched an INVITE still pending; the CANCEL itself has been answered 200
    /// (§9.2). The TU should now answer the INVITE `487 Request Terminated`.
    Cancelled {
        invite_key: TransactionKey,
        cancel: rsip::Request,
    },
    /// A server transaction gave up (Timer H: our final response was never ACKed).
    ServerTimeout { key: TransactionKey, timer: Timer },
    /// A response for one of our client transactions.
    Response {
        key: TransactionKey,
        response: rsip::Response,
    },
    /// A client transaction timed out (Timer B or F): treat as 408 (§8.1.3.1).
    ClientTimeout { key: TransactionKey, timer: Timer },
    /// The transport could not deliver a message of this transaction.
    TransportError { key: TransactionKey },
}

#[derive(Debug, Clone, Default)]
pub struct EndpointConfig {
    pub timers: TimerConfig,
    pub limits: Limits,
}

/// Counters for what arrived and what the layer did about it without the TU.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointStats {
    pub messages_received: u64,
    /// Malformed requests answered 400/501/505/513.
    pub malformed_answered: u64,
    /// Malformed input that could not be answered, dropped (§18.1.2, §18.2.1 spirit).
    pub malformed_dropped: u64,
    /// Retransmitted requests absorbed by their transaction.
    pub retransmissions_absorbed: u64,
    /// Responses matching no client transaction (§18.1.2: discarded).
    pub stray_responses: u64,
    /// CANCELs for unknown transactions, answered 481.
    pub cancels_unmatched: u64,
}

/// The four machines of RFC 3261 §17, named as the RFC names them.
#[allow(clippy::enum_variant_names)]
#[derive(Debug)]
enum Machine {
    ServerInvite(ServerInviteTransaction),
    ServerNonInvite(ServerNonInviteTransaction),
    ClientInvite(ClientInviteTransaction),
    ClientNonInvite(ClientNonInviteTransaction),
}

impl Machine {
    fn as_dyn(&mut self) -> &mut dyn Transaction {
        match self {
            Machine::ServerInvite(t) => t,
            Machine::ServerNonInvite(t) => t,
            Machine::ClientInvite(t) => t,
            Machine::ClientNonInvite(t) => t,
        }
    }

    fn is_server(&self) -> bool {
        matches!(self, Machine::ServerInvite(_) | Machine::ServerNonInvite(_))
    }
}

#[derive(Debug)]
struct Entry {
    machine: Machine,
    /// Where this transaction's messages go.
    peer: Peer,
    /// Deadline already in the heap, to avoid pushing duplicates.
    scheduled: Option<Instant>,
}

pub struct Endpoint {
    config: EndpointConfig,
    transactions: HashMap<TransactionKey, Entry>,
    /// Deadlines by transaction; stale entries are skipped when popped.
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    deadline_keys: HashMap<u64, TransactionKey>,
    next_deadline_id: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<EndpointEvent>,
    stats: EndpointStats,
}

impl Endpoint {
    pub fn new(config: EndpointConfig) -> Endpoint {
        Endpoint {
            config,
            transactions: HashMap::new(),
            deadlines: BinaryHeap::new(),
            deadline_keys: HashMap::new(),
            next_deadline_id: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: EndpointStats::default(),
        }
    }

    pub fn stats(&self) -> &EndpointStats {
        &self.stats
    }

    pub fn transaction_count(&self) -> usize {
        self.transactions.len()
    }

    pub fn timer_config(&self) -> TimerConfig {
        self.config.timers
    }

    /// A datagram arrived (UDP).
    pub fn handle_datagram(&mut self, now: Instant, peer: Peer, bytes: &[u8]) {
        self.stats.messages_received += 1;
        match message::parse_datagram(bytes, &self.config.limits) {
            Ok(msg) => self.handle_message(now, peer, msg),
            Err(e) => self.reject_malformed(peer, &e),
        }
    }

    /// A whole message arrived on a stream (already cut by `StreamFramer`).
    pub fn handle_stream_message(&mut self, now: Instant, peer: Peer, bytes: &[u8]) {
        self.stats.messages_received += 1;
        match message::parse_stream_message(bytes, &self.config.limits) {
            Ok(msg) => self.handle_message(now, peer, msg),
            Err(e) => self.reject_malformed(peer, &e),
        }
    }

    fn reject_malformed(&mut self, peer: Peer, error: &ParseError) {
        match error.bad_request_response() {
            Some(response) => {
                self.stats.malformed_answered += 1;
                let to = reply_peer(&response.headers, peer);
                self.transmits.push_back(Transmit {
                    peer: to,
                    bytes: Bytes::from(message::response_to_bytes(&response)),
                });
            }
            None => self.stats.malformed_dropped += 1,
        }
    }

    fn handle_message(&mut self, now: Instant, peer: Peer, msg: rsip::SipMessage) {
        match msg {
            rsip::SipMessage::Request(req) => self.handle_request(now, peer, req),
            rsip::SipMessage::Response(resp) => self.handle_response(now, resp),
        }
    }

    fn handle_request(&mut self, now: Instant, peer: Peer, req: rsip::Request) {
        let key = match TransactionKey::server_from_request(&req) {
            Ok(k) => k,
            Err(e) => {
                // Validation ran before, so this is rare; answer like any malformed request.
                self.answer_stateless(peer, &req, e.sip_status().unwrap_or(400), None);
                return;
            }
        };
        if let Some(entry) = self.transactions.get_mut(&key) {
            // A retransmission, or the ACK of a non-2xx final response (§17.2.1, §17.2.3).
            let is_ack = req.method == rsip::Method::Ack;
            let result = match &mut entry.machine {
                Machine::ServerInvite(t) => t.handle_request(now, &req),
                Machine::ServerNonInvite(t) => t.handle_request(now, &req),
                _ => Ok(()),
            };
            if result.is_ok() && !is_ack {
                self.stats.retransmissions_absorbed += 1;
            }
            self.service(now, &key);
            return;
        }
        match req.method {
            rsip::Method::Ack => {
                // ACK for a 2xx is its own transaction-less request (§17.1.1.3, §13.3.1.4).
                self.events
                    .push_back(EndpointEvent::Ack { request: req, peer });
            }
            rsip::Method::Cancel => self.handle_cancel(now, peer, key, req),
            _ => {
                let reliable = peer.transport.is_reliable();
                let timers = self.config.timers;
                let machine = if req.method == rsip::Method::Invite {
                    ServerInviteTransaction::new(now, req.clone(), reliable, timers)
                        .map(Machine::ServerInvite)
                } else {
                    ServerNonInviteTransaction::new(now, req.clone(), reliable, timers)
                        .map(Machine::ServerNonInvite)
                };
                match machine {
                    Ok(machine) => {
                        self.insert(now, key.clone(), machine, reply_peer(&req.headers, peer));
                        self.events.push_back(EndpointEvent::Request {
                            key,
                            request: req,
                            peer,
                        });
                    }
                    Err(e) => {
                        self.answer_stateless(peer, &req, e.sip_status().unwrap_or(400), None)
                    }
                }
            }
        }
    }

    /// RFC 3261 §9.2: a CANCEL gets its own server transaction; if it matches a pending
    /// INVITE it is answered 200 and the TU told, else 481.
    fn handle_cancel(&mut self, now: Instant, peer: Peer, key: TransactionKey, req: rsip::Request) {
        let reply_to = reply_peer(&req.headers, peer);
        let t = match ServerNonInviteTransaction::new(
            now,
            req.clone(),
            peer.transport.is_reliable(),
            self.config.timers,
        ) {
            Ok(t) => t,
            Err(e) => {
                self.answer_stateless(peer, &req, e.sip_status().unwrap_or(400), None);
                return;
            }
        };
        self.insert(now, key.clone(), Machine::ServerNonInvite(t), reply_to);
        let invite_key = TransactionKey::invite_for_cancel(&req).ok();
        let pending = invite_key
            .as_ref()
            .and_then(|k| self.transactions.get(k))
            .map(|e| matches!(&e.machine, Machine::ServerInvite(t) if t.state() == crate::transaction::TransactionState::Proceeding));
        let status = match pending {
            Some(_) => 200,
            None => {
                self.stats.cancels_unmatched += 1;
                481
            }
        };
        let response = message::build_response(&req, status, None, None);
        let _ = self.respond(now, &key, response);
        if let (Some(true), Some(invite_key)) = (pending, invite_key) {
            self.events.push_back(EndpointEvent::Cancelled {
                invite_key,
                cancel: req,
            });
        }
    }

    fn handle_response(&mut self, now: Instant, resp: rsip::Response) {
        let Ok(key) = TransactionKey::client_from_response(&resp) else {
            self.stats.stray_responses += 1;
            return;
        };
        let Some(entry) = self.transactions.get_mut(&key) else {
            // §18.1.2: a response matching no transaction is discarded.
            self.stats.stray_responses += 1;
            return;
        };
        let result = match &mut entry.machine {
            Machine::ClientInvite(t) => t.handle_response(now, &resp),
            Machine::ClientNonInvite(t) => t.handle_response(now, &resp),
            _ => Ok(()),
        };
        if result.is_err() {
            self.stats.stray_responses += 1;
        }
        self.service(now, &key);
    }

    /// Sends a response on a server transaction created by an [`EndpointEvent::Request`].
    pub fn respond(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        response: rsip::Response,
    ) -> Result<(), EndpointError> {
        let entry = self
            .transactions
            .get_mut(key)
            .ok_or(EndpointError::NoSuchTransaction)?;
        let result = match &mut entry.machine {
            Machine::ServerInvite(t) => t.send_response(now, response),
            Machine::ServerNonInvite(t) => t.send_response(now, response),
            _ => return Err(EndpointError::NotAServerTransaction),
        };
        self.service(now, key);
        result.map_err(EndpointError::Transaction)
    }

    /// Answers a server INVITE transaction with `status` if it has no final response yet; the
    /// safety net for a call layer that ended (or failed) without answering, so the carrier
    /// is never left waiting and the transaction never leaks. Returns whether it answered.
    pub fn fail_if_pending(&mut self, now: Instant, key: &TransactionKey, status: u16) -> bool {
        let response = match self.transactions.get(key).map(|e| &e.machine) {
            Some(Machine::ServerInvite(t))
                if t.state() == crate::transaction::TransactionState::Proceeding =>
            {
                // §8.2.6.2: a final response needs a To tag; this one ends the dialog attempt.
                message::build_response(t.request(), status, None, Some("gw-failed"))
            }
            _ => return false,
        };
        self.respond(now, key, response).is_ok()
    }

    /// Starts a client transaction for `request` toward `peer` (INVITE or non-INVITE).
    pub fn send_request(
        &mut self,
        now: Instant,
        peer: Peer,
        request: rsip::Request,
    ) -> Result<TransactionKey, EndpointError> {
        let key =
            TransactionKey::client_from_request(&request).map_err(EndpointError::Transaction)?;
        if self.transactions.contains_key(&key) {
            return Err(EndpointError::DuplicateTransaction);
        }
        let reliable = peer.transport.is_reliable();
        let machine = if request.method == rsip::Method::Invite {
            Machine::ClientInvite(
                ClientInviteTransaction::new(now, request, reliable, self.config.timers)
                    .map_err(EndpointError::Transaction)?,
            )
        } else {
            Machine::ClientNonInvite(
                ClientNonInviteTransaction::new(now, request, reliable, self.config.timers)
                    .map_err(EndpointError::Transaction)?,
            )
        };
        self.insert(now, key.clone(), machine, peer);
        Ok(key)
    }

    /// Sends a message outside any transaction: a 2xx retransmission or the ACK for a 2xx
    /// (both belong to the TU, §13.3.1.4, §13.2.2.4).
    pub fn send_raw(&mut self, peer: Peer, message: rsip::SipMessage) {
        self.transmits.push_back(Transmit {
            peer,
            bytes: Bytes::from(message::to_bytes(&message)),
        });
    }

    /// Already serialized bytes outside any transaction (a 2xx retransmission).
    pub fn send_bytes(&mut self, peer: Peer, bytes: Bytes) {
        self.transmits.push_back(Transmit { peer, bytes });
    }

    /// The transport failed to deliver for this peer: every transaction toward it fails.
    pub fn handle_transport_error(&mut self, now: Instant, peer: Peer) {
        let keys: Vec<_> = self
            .transactions
            .iter()
            .filter(|(_, e)| e.peer == peer)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            if let Some(e) = self.transactions.get_mut(&key) {
                e.machine.as_dyn().handle_transport_error(now);
            }
            self.service(now, &key);
        }
    }

    pub fn poll_timeout(&mut self) -> Option<Instant> {
        // Drop heap entries whose transaction is gone, so the deadline reported is real.
        while let Some(Reverse((at, id))) = self.deadlines.peek().copied() {
            let live = self
                .deadline_keys
                .get(&id)
                .and_then(|k| self.transactions.get(k))
                .is_some_and(|e| e.scheduled == Some(at));
            if live {
                return Some(at);
            }
            self.deadlines.pop();
            self.deadline_keys.remove(&id);
        }
        None
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, id))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            let Some(key) = self.deadline_keys.remove(&id) else {
                continue;
            };
            let Some(entry) = self.transactions.get_mut(&key) else {
                continue;
            };
            if entry.scheduled != Some(at) {
                continue;
            }
            entry.scheduled = None;
            entry.machine.as_dyn().handle_timeout(now);
            self.service(now, &key);
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<EndpointEvent> {
        self.events.pop_front()
    }

    fn insert(&mut self, now: Instant, key: TransactionKey, machine: Machine, peer: Peer) {
        self.transactions.insert(
            key.clone(),
            Entry {
                machine,
                peer,
                scheduled: None,
            },
        );
        self.service(now, &key);
    }

    /// Drains a transaction's outputs into ours, reschedules it, and drops it once terminated.
    fn service(&mut self, _now: Instant, key: &TransactionKey) {
        let Some(entry) = self.transactions.get_mut(key) else {
            return;
        };
        let peer = entry.peer;
        let is_server = entry.machine.is_server();
        let t = entry.machine.as_dyn();
        while let Some(out) = t.poll_transmit() {
            self.transmits.push_back(Transmit {
                peer,
                bytes: out.bytes,
            });
        }
        while let Some(ev) = t.poll_event() {
            let event = match ev {
                TransactionEvent::Response(response) => Some(EndpointEvent::Response {
                    key: key.clone(),
                    response,
                }),
                TransactionEvent::Request(request) => Some(EndpointEvent::Ack { request, peer }),
                TransactionEvent::Timeout { timer } if is_server => {
                    Some(EndpointEvent::ServerTimeout {
                        key: key.clone(),
                        timer,
                    })
                }
                TransactionEvent::Timeout { timer } => Some(EndpointEvent::ClientTimeout {
                    key: key.clone(),
                    timer,
                }),
                TransactionEvent::TransportError => {
                    Some(EndpointEvent::TransportError { key: key.clone() })
                }
                TransactionEvent::Terminated => None,
            };
            self.events.extend(event);
        }
        if t.is_terminated() {
            self.transactions.remove(key);
            return;
        }
        let next = t.poll_timeout();
        if next != entry.scheduled {
            entry.scheduled = next;
            if let Some(at) = next {
                let id = self.next_deadline_id;
                self.next_deadline_id += 1;
                self.deadlines.push(Reverse((at, id)));
                self.deadline_keys.insert(id, key.clone());
            }
        }
    }

    fn answer_stateless(
        &mut self,
        peer: Peer,
        req: &rsip::Request,
        status: u16,
        reason: Option<&str>,
    ) {
        if req.method == rsip::Method::Ack {
            return; // §17: ACK is never answered.
        }
        let response = message::build_response(req, status, reason, None);
        self.transmits.push_back(Transmit {
            peer: reply_peer(&req.headers, peer),
            bytes: Bytes::from(message::response_to_bytes(&response)),
        });
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("no such transaction")]
    NoSuchTransaction,
    #[error("a response can only be sent on a server transaction")]
    NotAServerTransaction,
    #[error("a transaction with this key already exists")]
    DuplicateTransaction,
    #[error(transparent)]
    Transaction(TransactionError),
}

/// Where responses go (§18.2.2, RFC 3581): the same connection for streams; for datagrams
/// the top Via's `received`/`rport` (the packet's source) or its sent-by.
fn reply_peer(headers: &rsip::Headers, peer: Peer) -> Peer {
    if peer.transport.is_reliable() {
        return peer;
    }
    match message::headers::top_via(headers) {
        Ok(via) => Peer::udp(message::response_destination(
            &via,
            peer.addr,
            message::ResponseTransport::Unreliable,
        )),
        Err(_) => peer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn carrier() -> Peer {
        Peer::udp("192.0.2.10:5060".parse().unwrap())
    }

    fn invite(branch: &str) -> String {
        format!(
            "INVITE sip:07012345678@gw.example SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK{branch}\r\n\
             From: <sip:0212345678@carrier.example>;tag=abc\r\n\
             To: <sip:07012345678@gw.example>\r\n\
             Call-ID: call-{branch}\r\n\
             CSeq: 1 INVITE\r\n\
             Max-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n"
        )
    }

    fn cancel(branch: &str) -> String {
        invite(branch)
            .replace("INVITE sip:", "CANCEL sip:")
            .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL")
    }

    fn ack(branch: &str, to_tag: &str) -> String {
        invite(branch)
            .replace("INVITE sip:", "ACK sip:")
            .replace("CSeq: 1 INVITE", "CSeq: 1 ACK")
            .replace(
                "To: <sip:07012345678@gw.example>",
                &format!("To: <sip:07012345678@gw.example>;tag={to_tag}"),
            )
    }

    fn statuses(ep: &mut Endpoint) -> Vec<u16> {
        std::iter::from_fn(|| ep.poll_transmit())
            .map(|t| {
                let text = String::from_utf8_lossy(&t.bytes).into_owned();
                text.get(8..11).and_then(|s| s.parse().ok()).unwrap_or(0)
            })
            .collect()
    }

    fn new_request(ep: &mut Endpoint) -> (TransactionKey, rsip::Request) {
        match ep.poll_event() {
            Some(EndpointEvent::Request { key, request, .. }) => (key, request),
            other => panic!("expected a request event, got {other:?}"),
        }
    }

    #[test]
    fn cancel_gets_200_and_the_invite_487_then_ack_ends_it() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        ep.handle_datagram(t0, carrier(), invite("c1").as_bytes());
        let (key, req) = new_request(&mut ep);
        ep.respond(
            t0,
            &key,
            message::build_response(&req, 180, None, Some("gw1")),
        )
        .unwrap();
        assert_eq!(statuses(&mut ep), [180]);
        ep.handle_datagram(t0, carrier(), cancel("c1").as_bytes());
        assert_eq!(statuses(&mut ep), [200]);
        assert!(
            matches!(ep.poll_event(), Some(EndpointEvent::Cancelled { invite_key, .. }) if invite_key == key)
        );
        ep.respond(
            t0,
            &key,
            message::build_response(&req, 487, None, Some("gw1")),
        )
        .unwrap();
        assert_eq!(statuses(&mut ep), [487]);
        // Lost ACK: Timer G resends the 487 at T1.
        ep.handle_timeout(t0 + Duration::from_millis(500));
        assert_eq!(statuses(&mut ep), [487]);
        ep.handle_datagram(
            t0 + Duration::from_millis(600),
            carrier(),
            ack("c1", "gw1").as_bytes(),
        );
        // The ACK of a non-2xx is absorbed by the transaction (§17.2.1), not passed up.
        assert!(ep.poll_event().is_none());
        // Timer I (T4) and the CANCEL's Timer J (64·T1) clean everything up.
        ep.handle_timeout(t0 + Duration::from_secs(40));
        assert_eq!(ep.transaction_count(), 0);
        assert_eq!(ep.poll_timeout(), None);
    }

    #[test]
    fn an_unanswered_invite_can_be_failed_once() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        ep.handle_datagram(t0, carrier(), invite("f1").as_bytes());
        let (key, _) = new_request(&mut ep);
        assert!(ep.fail_if_pending(t0, &key, 500));
        assert_eq!(statuses(&mut ep), [500]);
        // Already final: nothing more to do.
        assert!(!ep.fail_if_pending(t0, &key, 500));
        assert!(statuses(&mut ep).is_empty());
    }

    #[test]
    fn cancel_for_an_unknown_invite_is_481() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        ep.handle_datagram(t0, carrier(), cancel("nope").as_bytes());
        assert_eq!(statuses(&mut ep), [481]);
        assert!(ep.poll_event().is_none());
        assert_eq!(ep.stats().cancels_unmatched, 1);
    }

    #[test]
    fn retransmitted_invite_resends_the_last_provisional_only() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        ep.handle_datagram(t0, carrier(), invite("r1").as_bytes());
        let (key, req) = new_request(&mut ep);
        ep.handle_datagram(t0, carrier(), invite("r1").as_bytes());
        // Nothing sent yet, so nothing to resend; no second request event.
        assert!(statuses(&mut ep).is_empty());
        assert!(ep.poll_event().is_none());
        ep.respond(t0, &key, message::build_response(&req, 100, None, None))
            .unwrap();
        ep.handle_datagram(t0, carrier(), invite("r1").as_bytes());
        assert_eq!(statuses(&mut ep), [100, 100]);
        assert_eq!(ep.stats().retransmissions_absorbed, 2);
    }

    #[test]
    fn malformed_requests_are_answered_or_dropped_and_counted() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let no_cseq = invite("m1").replace("CSeq: 1 INVITE\r\n", "");
        ep.handle_datagram(t0, carrier(), no_cseq.as_bytes());
        let answered = statuses(&mut ep);
        assert_eq!(answered.len(), 1);
        assert!((400..500).contains(&answered[0]), "{answered:?}");
        ep.handle_datagram(t0, carrier(), b"\x00\x01garbage");
        assert!(statuses(&mut ep).is_empty());
        assert_eq!(ep.stats().malformed_answered, 1);
        assert_eq!(ep.stats().malformed_dropped, 1);
        assert_eq!(ep.transaction_count(), 0);
    }

    #[test]
    fn ack_for_2xx_and_stray_responses() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        // An ACK matching no transaction (the ACK of a 2xx has its own branch): up to the TU.
        ep.handle_datagram(t0, carrier(), ack("other", "x").as_bytes());
        assert!(matches!(ep.poll_event(), Some(EndpointEvent::Ack { .. })));
        let stray = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKzz\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: s\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        ep.handle_datagram(t0, carrier(), stray.as_bytes());
        assert_eq!(ep.stats().stray_responses, 1);
        assert!(ep.poll_event().is_none());
    }

    #[test]
    fn client_transaction_times_out_on_virtual_time() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let options = "OPTIONS sip:carrier.example SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKopt1\r\nFrom: <sip:gw@gw.example>;tag=g\r\nTo: <sip:carrier.example>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
        let rsip::SipMessage::Request(req) = rsip::SipMessage::try_from(options).unwrap() else {
            panic!()
        };
        let key = ep.send_request(t0, carrier(), req).unwrap();
        assert_eq!(std::iter::from_fn(|| ep.poll_transmit()).count(), 1);
        // Timer E retransmits at 0.5 s, 1.5 s, …; Timer F gives up at 32 s.
        let mut sent = 0;
        let mut now = t0;
        while let Some(at) = ep.poll_timeout() {
            now = at;
            ep.handle_timeout(now);
            sent += std::iter::from_fn(|| ep.poll_transmit()).count();
        }
        assert_eq!(now, t0 + Duration::from_secs(32));
        assert_eq!(
            sent, 10,
            "E at 0.5,1.5,3.5,7.5,11.5,15.5,19.5,23.5,27.5,31.5 s"
        );
        assert!(
            matches!(ep.poll_event(), Some(EndpointEvent::ClientTimeout { key: k, timer: Timer::F }) if k == key)
        );
        assert_eq!(ep.transaction_count(), 0);
    }
}
