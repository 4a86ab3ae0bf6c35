//! Client INVITE transaction: RFC 3261 §17.1.1 (Figure 5) as updated by RFC 6026 §8.4
//! (Accepted state, Timer M), plus the ACK for non-2xx (§17.1.1.3) and CANCEL (§9.1) builders.
//!
//! ```text
//!  INVITE sent → Calling (A, B) --1xx--> Proceeding --1xx--> Proceeding
//!                  | B: Timeout{B}   |  300-699: send ACK     | 2xx
//!                  v                 v                        v
//!              Terminated <--D-- Completed (D)   Accepted (M) --M--> Terminated
//! ```

use std::time::Instant;

use rsip::prelude::*;

use super::{
    check_status, Core, Outgoing, Timer, TimerConfig, Transaction, TransactionError,
    TransactionEvent, TransactionKey, TransactionState,
};

/// RFC 3261 §17.1.1 client INVITE transaction.
#[derive(Debug)]
pub struct ClientInviteTransaction {
    core: Core,
    request: rsip::Request,
    /// The serialized INVITE, retransmitted byte for byte by Timer A.
    request_out: Outgoing,
    /// The ACK for the non-2xx final response, resent on final-response retransmissions.
    ack_out: Option<Outgoing>,
    /// Current Timer A interval (T1, doubling without cap).
    a_interval: std::time::Duration,
}

impl ClientInviteTransaction {
    /// Creates the transaction in Calling and queues the INVITE for sending (§17.1.1.2).
    /// The request must carry a top Via with a branch and a CSeq.
    pub fn new(
        now: Instant,
        request: rsip::Request,
        reliable: bool,
        config: TimerConfig,
    ) -> Result<Self, TransactionError> {
        if request.method != rsip::Method::Invite {
            return Err(TransactionError::MethodMismatch {
                expected: "INVITE",
                found: request.method.to_string(),
            });
        }
        let key = TransactionKey::client_from_request(&request)?;
        let mut core = Core::new(key, TransactionState::Calling, reliable, config);
        let request_out = Outgoing::new(request.clone().into());
        core.transmit(request_out.clone());
        let a_interval = config.t1;
        if let Some(a) = config.timer_a(reliable) {
            core.timers.arm(Timer::A, now + a);
        }
        core.timers.arm(Timer::B, now + config.timer_b());
        Ok(Self {
            core,
            request,
            request_out,
            ack_out: None,
            a_interval,
        })
    }

    /// The INVITE this transaction sends.
    pub fn request(&self) -> &rsip::Request {
        &self.request
    }

    /// The ACK this transaction built for a non-2xx final response, if any.
    pub fn ack(&self) -> Option<&rsip::SipMessage> {
        self.ack_out.as_ref().map(|o| &*o.message)
    }

    /// Builds the CANCEL for this INVITE (§9.1). The TU sends it in its own client non-INVITE
    /// transaction, and per §9.1 only once a provisional response arrived (state Proceeding).
    pub fn cancel_request(&self) -> Result<rsip::Request, TransactionError> {
        build_cancel(&self.request)
    }

    /// Handles a response matched to this transaction (§17.1.1.2, RFC 6026 §8.4).
    pub fn handle_response(
        &mut self,
        now: Instant,
        response: &rsip::Response,
    ) -> Result<(), TransactionError> {
        let key = TransactionKey::client_from_response(response)?;
        if key != self.core.key {
            return Err(TransactionError::KeyMismatch {
                expected: self.core.key.clone(),
            });
        }
        let status = check_status(response)?;
        match (self.core.state, status) {
            (TransactionState::Calling | TransactionState::Proceeding, 100..=199) => {
                // §17.1.1.2: stop retransmitting; Timer B only guards Calling.
                self.core.timers.cancel(Timer::A);
                self.core.timers.cancel(Timer::B);
                self.core.state = TransactionState::Proceeding;
                self.core.emit(TransactionEvent::Response(response.clone()));
            }
            (TransactionState::Calling | TransactionState::Proceeding, 200..=299) => {
                // RFC 6026 §8.4: Accepted, so 2xx retransmissions and 2xx from other forks
                // still reach the TU, which sends the ACK itself.
                self.core.timers.cancel(Timer::A);
                self.core.timers.cancel(Timer::B);
                self.core.state = TransactionState::Accepted;
                self.core
                    .timers
                    .arm(Timer::M, now + self.core.config.timer_m());
                self.core.emit(TransactionEvent::Response(response.clone()));
            }
            (TransactionState::Calling | TransactionState::Proceeding, _) => {
                self.core.timers.cancel(Timer::A);
                self.core.timers.cancel(Timer::B);
                let ack = build_ack_for_non_2xx(&self.request, response)?;
                let ack_out = Outgoing::new(ack.into());
                self.core.transmit(ack_out.clone());
                self.ack_out = Some(ack_out);
                self.core.state = TransactionState::Completed;
                self.core.emit(TransactionEvent::Response(response.clone()));
                let d = self.core.config.timer_d(self.core.reliable);
                if d.is_zero() {
                    self.core.terminate();
                } else {
                    self.core.timers.arm(Timer::D, now + d);
                }
            }
            (TransactionState::Accepted, 200..=299) => {
                // RFC 6026 §8.4: every 2xx, retransmission or not, goes to the TU.
                self.core.emit(TransactionEvent::Response(response.clone()));
            }
            (TransactionState::Completed, 300..=699) => {
                // §17.1.1.2: a retransmitted final response gets the same ACK again and is
                // not passed up.
                if let Some(ack) = &self.ack_out {
                    self.core.transmit(ack.again());
                }
            }
            // Late 1xx after a final, non-2xx in Accepted, anything once Terminated: dropped.
            _ => {}
        }
        Ok(())
    }

    fn on_timer(&mut self, now: Instant, timer: Timer) {
        match (self.core.state, timer) {
            (TransactionState::Calling, Timer::A) => {
                self.core.transmit(self.request_out.again());
                self.a_interval = self.core.config.backoff(Timer::A, self.a_interval);
                self.core.timers.arm(Timer::A, now + self.a_interval);
            }
            (TransactionState::Calling, Timer::B) => {
                // §17.1.1.2: inform the TU of the timeout (it treats it as a 408).
                self.core
                    .emit(TransactionEvent::Timeout { timer: Timer::B });
                self.core.terminate();
            }
            (TransactionState::Completed, Timer::D) | (TransactionState::Accepted, Timer::M) => {
                self.core.terminate();
            }
            _ => {}
        }
    }
}

impl Transaction for ClientInviteTransaction {
    fn key(&self) -> &TransactionKey {
        &self.core.key
    }

    fn state(&self) -> TransactionState {
        self.core.state
    }

    fn poll_transmit(&mut self) -> Option<Outgoing> {
        self.core.poll_transmit()
    }

    fn poll_event(&mut self) -> Option<TransactionEvent> {
        self.core.poll_event()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.core.timers.pop_due(now) {
            self.on_timer(now, timer);
        }
    }

    /// §17.1.1.2 / §17.1.4: a transport error in Calling (or while sending the ACK in
    /// Completed) ends the transaction and informs the TU. In Accepted the TU owns the ACK,
    /// so it is only informed.
    fn handle_transport_error(&mut self, _now: Instant) {
        match self.core.state {
            TransactionState::Accepted => self.core.emit(TransactionEvent::TransportError),
            _ => self.core.transport_failed(),
        }
    }
}

fn missing(header: &'static str) -> impl FnOnce(rsip::Error) -> TransactionError {
    move |_| TransactionError::MissingHeader { header }
}

/// The topmost Via value: the first Via header line, cut at its first comma (a Via header may
/// carry several comma-separated values, §7.3.1). The raw text is kept so IPv6 sent-by and
/// unknown parameters survive untouched.
fn top_via_value(request: &rsip::Request) -> Result<String, TransactionError> {
    let via = request.via_header().map_err(missing("Via"))?;
    let value = via.value();
    let top = value.split(',').next().unwrap_or(value).trim();
    if top.is_empty() {
        return Err(TransactionError::InvalidHeader {
            header: "Via",
            reason: "empty".into(),
        });
    }
    Ok(top.to_string())
}

fn route_headers(request: &rsip::Request) -> Vec<rsip::Header> {
    request
        .headers
        .iter()
        .filter(|h| matches!(h, rsip::Header::Route(_)))
        .cloned()
        .collect()
}

fn cseq_number(request: &rsip::Request) -> Result<u32, TransactionError> {
    let cseq = request.cseq_header().map_err(missing("CSeq"))?;
    cseq.typed()
        .map(|c| c.seq)
        .map_err(|e| TransactionError::InvalidHeader {
            header: "CSeq",
            reason: e.to_string(),
        })
}

/// Headers shared by the ACK (§17.1.1.3) and the CANCEL (§9.1), in RFC example order.
fn hop_request(
    invite: &rsip::Request,
    method: rsip::Method,
    to: rsip::headers::To,
) -> Result<rsip::Request, TransactionError> {
    let mut headers = rsip::Headers::default();
    headers.push(rsip::headers::Via::new(top_via_value(invite)?).into());
    headers.extend(route_headers(invite));
    headers.push(rsip::headers::MaxForwards::from(70u32).into());
    headers.push(
        invite
            .from_header()
            .map_err(missing("From"))?
            .clone()
            .into(),
    );
    headers.push(to.into());
    headers.push(
        invite
            .call_id_header()
            .map_err(missing("Call-ID"))?
            .clone()
            .into(),
    );
    headers.push(rsip::headers::CSeq::new(format!("{} {}", cseq_number(invite)?, method)).into());
    headers.push(rsip::headers::ContentLength::from(0u32).into());
    Ok(rsip::Request {
        method,
        uri: invite.uri.clone(),
        version: invite.version.clone(),
        headers,
        body: vec![],
    })
}

/// Builds the ACK for a non-2xx final response (§17.1.1.3): the INVITE's Request-URI, Call-ID,
/// From and CSeq number (method ACK), the response's To (with its tag), only the INVITE's top
/// Via, the INVITE's Route headers, Max-Forwards 70 and no body.
pub fn build_ack_for_non_2xx(
    invite: &rsip::Request,
    response: &rsip::Response,
) -> Result<rsip::Request, TransactionError> {
    let to = response.to_header().map_err(missing("To"))?.clone();
    hop_request(invite, rsip::Method::Ack, to)
}

/// Builds the CANCEL for an INVITE (§9.1): same Request-URI, Call-ID, To, From and CSeq
/// number (method CANCEL), a single Via equal to the INVITE's top Via (so it reaches the same
/// server transaction, §9.2), the INVITE's Route headers, Max-Forwards 70 and no body.
pub fn build_cancel(invite: &rsip::Request) -> Result<rsip::Request, TransactionError> {
    if invite.method != rsip::Method::Invite {
        return Err(TransactionError::MethodMismatch {
            expected: "INVITE",
            found: invite.method.to_string(),
        });
    }
    let to = invite.to_header().map_err(missing("To"))?.clone();
    hop_request(invite, rsip::Method::Cancel, to)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::TransactionKey;
    use super::*;

    fn client(t0: Instant, reliable: bool) -> ClientInviteTransaction {
        ClientInviteTransaction::new(t0, req(INVITE), reliable, TimerConfig::default())
            .expect("valid INVITE")
    }

    fn header_values(r: &rsip::Request, name: &str) -> Vec<String> {
        r.headers
            .iter()
            .filter_map(|h| {
                let s = h.to_string();
                let (n, v) = s.split_once(':')?;
                (n.trim().eq_ignore_ascii_case(name)).then(|| v.trim().to_string())
            })
            .collect()
    }

    #[test]
    fn invite_goes_out_at_creation() {
        let t0 = Instant::now();
        let mut tx = client(t0, false);
        assert_eq!(tx.state(), TransactionState::Calling);
        let (sent, events) = drain(&mut tx);
        assert_eq!(sent.len(), 1);
        assert!(!sent[0].retransmission);
        assert_eq!(parse(&sent[0]), rsip::SipMessage::Request(req(INVITE)));
        assert!(events.is_empty());
    }

    #[test]
    fn timer_a_doubles_without_cap_and_timer_b_times_out() {
        let t0 = Instant::now();
        let mut tx = client(t0, false);
        let (first, _) = drain(&mut tx);
        let (sent, events) = run_until(&mut tx, t0, t0 + secs(40.0));
        // A: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 (intervals 0.5, 1, 2, 4, 8, 16); B at 32.
        assert_eq!(sent, [500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!(
            events,
            [
                TransactionEvent::Timeout { timer: Timer::B },
                TransactionEvent::Terminated
            ]
        );
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_timeout(), None);
        // Retransmissions are the same bytes.
        let mut tx = client(t0, false);
        drain(&mut tx);
        tx.handle_timeout(t0 + secs(0.5));
        assert_eq!(drain(&mut tx).0[0].bytes, first[0].bytes);
    }

    #[test]
    fn reliable_has_no_timer_a_but_keeps_timer_b() {
        let t0 = Instant::now();
        let mut tx = client(t0, true);
        drain(&mut tx);
        assert_eq!(tx.poll_timeout(), Some(t0 + secs(32.0)));
        let (sent, events) = run_until(&mut tx, t0, t0 + secs(40.0));
        assert!(sent.is_empty());
        assert_eq!(events[0], TransactionEvent::Timeout { timer: Timer::B });
    }

    #[test]
    fn provisional_stops_retransmissions_and_is_passed_up() {
        let t0 = Instant::now();
        let mut tx = client(t0, false);
        drain(&mut tx);
        tx.handle_timeout(t0 + secs(0.5));
        drain(&mut tx);
        let ringing = invite_response("180 Ringing");
        tx.handle_response(t0 + secs(0.7), &ringing).expect("match");
        assert_eq!(tx.state(), TransactionState::Proceeding);
        assert_eq!(
            drain(&mut tx),
            (vec![], vec![TransactionEvent::Response(ringing.clone())])
        );
        assert_eq!(tx.poll_timeout(), None, "A and B stopped in Proceeding");
        // Further provisionals also go up.
        tx.handle_response(t0 + secs(1.0), &ringing).expect("match");
        assert_eq!(drain(&mut tx).1.len(), 1);
    }

    #[test]
    fn non_2xx_final_builds_ack_and_timer_d_is_32s() {
        let t0 = Instant::now();
        let mut tx = client(t0, false);
        drain(&mut tx);
        let busy = invite_response("486 Busy Here");
        tx.handle_response(t0 + secs(1.0), &busy).expect("match");
        assert_eq!(tx.state(), TransactionState::Completed);
        let (sent, events) = drain(&mut tx);
        assert_eq!(events, [TransactionEvent::Response(busy.clone())]);
        assert_eq!(sent.len(), 1);
        let rsip::SipMessage::Request(ack) = parse(&sent[0]) else {
            panic!("ACK is a request")
        };
        assert_eq!(ack.method, rsip::Method::Ack);
        assert_eq!(tx.poll_timeout(), Some(t0 + secs(33.0)), "Timer D = 32 s");

        // A retransmitted 486: the same ACK again, nothing passed up.
        tx.handle_response(t0 + secs(2.0), &busy).expect("match");
        let (again, events) = drain(&mut tx);
        assert_eq!(again.len(), 1);
        assert!(again[0].retransmission);
        assert_eq!(again[0].bytes, sent[0].bytes);
        assert!(events.is_empty());
        // Late 1xx / 2xx in Completed are dropped.
        tx.handle_response(t0 + secs(2.0), &invite_response("180 Ringing"))
            .expect("match");
        assert_eq!(drain(&mut tx), (vec![], vec![]));

        tx.handle_timeout(t0 + secs(32.9));
        assert_eq!(tx.state(), TransactionState::Completed);
        tx.handle_timeout(t0 + secs(33.0));
        assert!(tx.is_terminated());
        assert_eq!(drain(&mut tx).1, [TransactionEvent::Terminated]);
    }

    #[test]
    fn timer_d_is_zero_on_reliable_transports() {
        let t0 = Instant::now();
        let mut tx = client(t0, true);
        drain(&mut tx);
        tx.handle_response(t0, &invite_response("404 Not Found"))
            .expect("match");
        let (sent, events) = drain(&mut tx);
        assert_eq!(sent.len(), 1, "the ACK still goes out");
        assert_eq!(events.len(), 2);
        assert_eq!(events[1], TransactionEvent::Terminated);
    }

    #[test]
    fn ack_for_non_2xx_header_by_header() {
        let invite = req(INVITE);
        let busy = invite_response("486 Busy Here");
        let ack = build_ack_for_non_2xx(&invite, &busy).expect("ack");
        assert_eq!(ack.method, rsip::Method::Ack);
        assert_eq!(ack.uri, invite.uri, "same Request-URI");
        assert_eq!(
            header_values(&ack, "Via"),
            ["SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9"],
            "only the INVITE's top Via, not the response's (no received=)"
        );
        assert_eq!(
            header_values(&ack, "Route"),
            ["<sip:proxy1.example.com;lr>", "<sip:proxy2.example.com;lr>"]
        );
        assert_eq!(header_values(&ack, "Max-Forwards"), ["70"]);
        assert_eq!(header_values(&ack, "From"), header_values(&invite, "From"));
        assert_eq!(
            header_values(&ack, "To"),
            ["Bob <sip:bob@biloxi.example.com>;tag=8321234356"],
            "To from the response, with its tag"
        );
        assert_eq!(
            header_values(&ack, "Call-ID"),
            header_values(&invite, "Call-ID")
        );
        assert_eq!(header_values(&ack, "CSeq"), ["2 ACK"]);
        assert_eq!(header_values(&ack, "Content-Length"), ["0"]);
        assert!(header_values(&ack, "Contact").is_empty());
        assert!(ack.body.is_empty());
        // The ACK matches the server INVITE transaction of the original INVITE (§17.2.3).
        assert_eq!(
            TransactionKey::server_from_request(&ack).expect("key"),
            TransactionKey::server_from_request(&invite).expect("key")
        );
        // It round-trips through the parser.
        let text = ack.to_string();
        assert_eq!(req(&text), ack);
    }

    #[test]
    fn ack_keeps_only_the_first_of_comma_separated_vias() {
        let invite = req(&INVITE.replace(
            "branch=z9hG4bK74bf9\r\n",
            "branch=z9hG4bK74bf9, SIP/2.0/UDP other.example.com;branch=z9hG4bKx\r\n",
        ));
        let ack = build_ack_for_non_2xx(&invite, &invite_response("486 Busy Here")).expect("ack");
        assert_eq!(
            header_values(&ack, "Via"),
            ["SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9"]
        );
    }

    #[test]
    fn cancel_request_per_section_9_1() {
        let t0 = Instant::now();
        let tx = client(t0, false);
        let invite = req(INVITE);
        let cancel = tx.cancel_request().expect("cancel");
        assert_eq!(cancel.method, rsip::Method::Cancel);
        assert_eq!(cancel.uri, invite.uri);
        assert_eq!(header_values(&cancel, "Via"), header_values(&invite, "Via"));
        assert_eq!(
            header_values(&cancel, "Route"),
            header_values(&invite, "Route")
        );
        for h in ["From", "To", "Call-ID"] {
            assert_eq!(header_values(&cancel, h), header_values(&invite, h), "{h}");
        }
        assert_eq!(header_values(&cancel, "CSeq"), ["2 CANCEL"]);
        assert_eq!(header_values(&cancel, "Max-Forwards"), ["70"]);
        assert_eq!(header_values(&cancel, "Content-Length"), ["0"]);
        // The server maps it to the INVITE's transaction, but it is its own client transaction.
        assert_eq!(
            TransactionKey::invite_for_cancel(&cancel).expect("key"),
            TransactionKey::server_from_request(&invite).expect("key")
        );
        assert_ne!(
            TransactionKey::client_from_request(&cancel).expect("key"),
            *tx.key()
        );
        assert!(build_cancel(&req(OPTIONS)).is_err());
    }

    #[test]
    fn two_xx_enters_accepted_passes_every_2xx_and_timer_m_terminates() {
        let t0 = Instant::now();
        let mut tx = client(t0, false);
        drain(&mut tx);
        let ok = invite_response("200 OK");
        tx.handle_response(t0 + secs(1.0), &ok).expect("match");
        assert_eq!(tx.state(), TransactionState::Accepted);
        let (sent, events) = drain(&mut tx);
        assert!(sent.is_empty(), "the TU sends the ACK for a 2xx");
        assert_eq!(events, [TransactionEvent::Response(ok.clone())]);
        assert_eq!(tx.poll_timeout(), Some(t0 + secs(33.0)), "Timer M = 64·T1");
        // Retransmitted 2xx: passed up again (RFC 6026 §8.4).
        tx.handle_response(t0 + secs(1.5), &ok).expect("match");
        assert_eq!(drain(&mut tx).1, [TransactionEvent::Response(ok.clone())]);
        // Non-2xx in Accepted: dropped.
        tx.handle_response(t0 + secs(1.5), &invite_response("486 Busy Here"))
            .expect("match");
        assert_eq!(drain(&mut tx), (vec![], vec![]));
        tx.handle_timeout(t0 + secs(33.0));
        assert!(tx.is_terminated());
        assert_eq!(drain(&mut tx).1, [TransactionEvent::Terminated]);
    }

    #[test]
    fn timer_m_applies_on_reliable_transports_too() {
        let t0 = Instant::now();
        let mut tx = client(t0, true);
        tx.handle_response(t0, &invite_response("200 OK"))
            .expect("match");
        assert_eq!(tx.poll_timeout(), Some(t0 + secs(32.0)));
    }

    #[test]
    fn foreign_responses_and_bad_input_are_errors() {
        let t0 = Instant::now();
        assert!(
            ClientInviteTransaction::new(t0, req(OPTIONS), false, TimerConfig::default()).is_err()
        );
        let no_branch = INVITE.replace(";branch=z9hG4bK74bf9", "");
        assert!(matches!(
            ClientInviteTransaction::new(t0, req(&no_branch), false, TimerConfig::default()),
            Err(TransactionError::MissingBranch)
        ));
        let mut tx = client(t0, false);
        let other = options_response("200 OK");
        assert!(matches!(
            tx.handle_response(t0, &other),
            Err(TransactionError::KeyMismatch { .. })
        ));
        assert_eq!(tx.state(), TransactionState::Calling);
    }

    #[test]
    fn transport_error_in_calling_terminates() {
        let t0 = Instant::now();
        let mut tx = client(t0, false);
        drain(&mut tx);
        tx.handle_transport_error(t0);
        assert_eq!(
            drain(&mut tx).1,
            [
                TransactionEvent::TransportError,
                TransactionEvent::Terminated
            ]
        );
    }
}
