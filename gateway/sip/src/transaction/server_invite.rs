//! Server INVITE transaction: RFC 3261 §17.2.1 (Figure 7) as updated by RFC 6026 §7.1
//! (Accepted state, Timer L).
//!
//! ```text
//!  INVITE → Proceeding --1xx--> Proceeding
//!              | 2xx                  | 300-699
//!              v                      v
//!           Accepted (L)          Completed (G, H) --ACK--> Confirmed (I)
//!              | L                    | H: Timeout{H}          | I
//!              v                      v                        v
//!                              Terminated
//! ```

use std::time::Instant;

use rsip::prelude::*;

use super::{
    check_status, Core, Outgoing, Timer, TimerConfig, Transaction, TransactionError,
    TransactionEvent, TransactionKey, TransactionState,
};

/// RFC 3261 §17.2.1 server INVITE transaction.
#[derive(Debug)]
pub struct ServerInviteTransaction {
    core: Core,
    request: rsip::Request,
    /// Last provisional response, resent when the INVITE is retransmitted in Proceeding.
    last_provisional: Option<Outgoing>,
    /// The 3xx–6xx final response, resent by Timer G and on INVITE retransmissions.
    final_response: Option<Outgoing>,
    /// To tag of our final response: with RFC 2543 peers the ACK is checked against it
    /// (§17.2.3), since the key alone cannot include it.
    final_to_tag: Option<String>,
    /// Current Timer G interval (T1 doubling, capped at T2).
    g_interval: std::time::Duration,
}

impl ServerInviteTransaction {
    /// Creates the transaction from a received INVITE, in Proceeding (§17.2.1). The TU sends
    /// the 100 Trying itself through [`Self::send_response`].
    pub fn new(
        _now: Instant,
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
        let key = TransactionKey::server_from_request(&request)?;
        Ok(Self {
            core: Core::new(key, TransactionState::Proceeding, reliable, config),
            request,
            last_provisional: None,
            final_response: None,
            final_to_tag: None,
            g_interval: config.t1,
        })
    }

    /// The INVITE that created this transaction.
    pub fn request(&self) -> &rsip::Request {
        &self.request
    }

    /// Sends a response from the TU.
    ///
    /// - Proceeding: 1xx is sent (and remembered for INVITE retransmissions); 2xx moves to
    ///   Accepted (Timer L); 3xx–6xx moves to Completed (Timers G and H).
    /// - Accepted: further 2xx (the TU's own retransmissions, or 2xx from other forks) are
    ///   passed to the transport (RFC 6026 §7.1); anything else is an error.
    /// - Completed, Confirmed, Terminated: error (§17.2.1: the final response is final).
    pub fn send_response(
        &mut self,
        now: Instant,
        response: rsip::Response,
    ) -> Result<(), TransactionError> {
        let status = check_status(&response)?;
        match (self.core.state, status) {
            (TransactionState::Proceeding, 100..=199) => {
                let out = Outgoing::new(response.into());
                self.last_provisional = Some(out.clone());
                self.core.transmit(out);
            }
            (TransactionState::Proceeding, 200..=299) => {
                // RFC 6026 §7.1: the TU owns 2xx retransmission; we only absorb INVITE
                // retransmissions and pass up ACKs until Timer L fires.
                self.core.transmit(Outgoing::new(response.into()));
                self.core.state = TransactionState::Accepted;
                self.core
                    .timers
                    .arm(Timer::L, now + self.core.config.timer_l());
            }
            (TransactionState::Proceeding, _) => {
                self.final_to_tag = to_tag(&response);
                let out = Outgoing::new(response.into());
                self.final_response = Some(out.clone());
                self.core.transmit(out);
                self.core.state = TransactionState::Completed;
                // Timer G only on unreliable transports; Timer H always (§17.2.1).
                if let Some(g) = self.core.config.timer_g(self.core.reliable) {
                    self.g_interval = g;
                    self.core.timers.arm(Timer::G, now + g);
                }
                self.core
                    .timers
                    .arm(Timer::H, now + self.core.config.timer_h());
            }
            (TransactionState::Accepted, 200..=299) => {
                self.core.transmit(Outgoing::new(response.into()));
            }
            _ => return Err(self.core.invalid_state("send a response")),
        }
        Ok(())
    }

    /// Handles a request matched to this transaction: a retransmitted INVITE or an ACK.
    pub fn handle_request(
        &mut self,
        now: Instant,
        request: &rsip::Request,
    ) -> Result<(), TransactionError> {
        let key = TransactionKey::server_from_request(request)?;
        if key != self.core.key {
            return Err(TransactionError::KeyMismatch {
                expected: self.core.key.clone(),
            });
        }
        match request.method {
            rsip::Method::Invite => self.on_invite_retransmission(),
            rsip::Method::Ack => self.on_ack(now, request),
            // Unreachable through the key (it folds only ACK into INVITE), kept as an error.
            other => {
                return Err(TransactionError::MethodMismatch {
                    expected: "INVITE or ACK",
                    found: other.to_string(),
                })
            }
        }
        Ok(())
    }

    fn on_invite_retransmission(&mut self) {
        match self.core.state {
            // §17.2.1: resend the most recent provisional response (none yet: absorb).
            TransactionState::Proceeding => {
                if let Some(out) = &self.last_provisional {
                    self.core.transmit(out.again());
                }
            }
            // §17.2.1: resend the final response.
            TransactionState::Completed => {
                if let Some(out) = &self.final_response {
                    self.core.transmit(out.again());
                }
            }
            // RFC 6026 §7.1 (Accepted) and §17.2.1 (Confirmed): absorbed.
            TransactionState::Accepted
            | TransactionState::Confirmed
            | TransactionState::Terminated
            | TransactionState::Calling
            | TransactionState::Trying => {}
        }
    }

    fn on_ack(&mut self, now: Instant, ack: &rsip::Request) {
        match self.core.state {
            // RFC 6026 §7.1: ACKs that match in Accepted go to the TU (it may be the ACK of
            // the 2xx from a peer that reuses the branch).
            TransactionState::Accepted => {
                self.core.emit(TransactionEvent::Request(ack.clone()));
            }
            TransactionState::Completed => {
                // RFC 2543 peers: the key left the To tag out; check it against our response.
                if self.core.key.is_legacy() && to_tag_of_request(ack) != self.final_to_tag {
                    return;
                }
                // §17.2.1: stop G and H, absorb further ACKs for T4 (0 on reliable).
                self.core.timers.cancel(Timer::G);
                self.core.timers.cancel(Timer::H);
                self.core.state = TransactionState::Confirmed;
                let i = self.core.config.timer_i(self.core.reliable);
                if i.is_zero() {
                    self.core.terminate();
                } else {
                    self.core.timers.arm(Timer::I, now + i);
                }
            }
            // An ACK before any final response, or a retransmitted ACK in Confirmed: absorbed.
            _ => {}
        }
    }

    fn on_timer(&mut self, now: Instant, timer: Timer) {
        match (self.core.state, timer) {
            (TransactionState::Completed, Timer::G) => {
                if let Some(out) = &self.final_response {
                    self.core.transmit(out.again());
                }
                self.g_interval = self.core.config.backoff(Timer::G, self.g_interval);
                self.core.timers.arm(Timer::G, now + self.g_interval);
            }
            (TransactionState::Completed, Timer::H) => {
                // §17.2.1: no ACK ever came; tell the TU the transaction failed.
                self.core
                    .emit(TransactionEvent::Timeout { timer: Timer::H });
                self.core.terminate();
            }
            (TransactionState::Confirmed, Timer::I) | (TransactionState::Accepted, Timer::L) => {
                self.core.terminate();
            }
            _ => {}
        }
    }
}

fn to_tag(response: &rsip::Response) -> Option<String> {
    response
        .to_header()
        .ok()
        .and_then(|t| t.typed().ok())
        .and_then(|t| t.tag().map(|tag| tag.to_string()))
}

fn to_tag_of_request(request: &rsip::Request) -> Option<String> {
    request
        .to_header()
        .ok()
        .and_then(|t| t.typed().ok())
        .and_then(|t| t.tag().map(|tag| tag.to_string()))
}

impl Transaction for ServerInviteTransaction {
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

    /// §17.2.4 / Figure 7: a transport error while sending a response ends the transaction,
    /// except in Accepted, where the TU owns the 2xx and decides (it is only informed).
    fn handle_transport_error(&mut self, _now: Instant) {
        match self.core.state {
            TransactionState::Accepted => self.core.emit(TransactionEvent::TransportError),
            _ => self.core.transport_failed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::test_support::*;
    use super::*;

    fn server(t0: Instant, reliable: bool) -> ServerInviteTransaction {
        ServerInviteTransaction::new(t0, req(INVITE), reliable, TimerConfig::default())
            .expect("valid INVITE")
    }

    #[test]
    fn provisional_is_resent_on_invite_retransmission_and_not_passed_up() {
        let t0 = Instant::now();
        let mut tx = server(t0, false);
        assert_eq!(tx.state(), TransactionState::Proceeding);
        // Before any provisional: retransmission absorbed, nothing to send.
        tx.handle_request(t0, &req(INVITE)).expect("match");
        assert!(tx.poll_transmit().is_none());
        tx.send_response(t0, invite_response("100 Trying"))
            .expect("100");
        tx.send_response(t0, invite_response("180 Ringing"))
            .expect("180");
        let (sent, events) = drain(&mut tx);
        assert_eq!(sent.len(), 2);
        assert!(events.is_empty());
        tx.handle_request(t0 + secs(0.5), &req(INVITE))
            .expect("match");
        let (again, events) = drain(&mut tx);
        assert_eq!(again.len(), 1);
        assert!(again[0].retransmission);
        assert_eq!(again[0].bytes, sent[1].bytes, "byte-identical 180");
        assert!(
            events.is_empty(),
            "retransmitted INVITE not passed to the TU"
        );
        // No timers in Proceeding.
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn timer_g_retransmits_capped_at_t2_and_timer_h_times_out() {
        let t0 = Instant::now();
        let mut tx = server(t0, false);
        tx.send_response(t0, invite_response("486 Busy Here"))
            .expect("486");
        assert_eq!(tx.state(), TransactionState::Completed);
        let (first, _) = drain(&mut tx);
        assert_eq!(first.len(), 1);
        let (sent, events) = run_until(&mut tx, t0, t0 + secs(40.0));
        // G: 0.5, 1.5, 3.5, 7.5, then every T2 = 4 s; H at 32 s.
        assert_eq!(
            sent,
            [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
        );
        assert_eq!(
            events,
            [
                TransactionEvent::Timeout { timer: Timer::H },
                TransactionEvent::Terminated
            ]
        );
        assert!(tx.is_terminated());
    }

    #[test]
    fn timer_g_retransmissions_are_byte_identical() {
        let t0 = Instant::now();
        let mut tx = server(t0, false);
        tx.send_response(t0, invite_response("603 Decline"))
            .expect("603");
        let (first, _) = drain(&mut tx);
        tx.handle_timeout(t0 + secs(0.5));
        let (again, _) = drain(&mut tx);
        assert_eq!(first[0].bytes, again[0].bytes);
    }

    #[test]
    fn reliable_has_no_timer_g_but_keeps_timer_h() {
        let t0 = Instant::now();
        let mut tx = server(t0, true);
        tx.send_response(t0, invite_response("486 Busy Here"))
            .expect("486");
        drain(&mut tx);
        assert_eq!(tx.poll_timeout(), Some(t0 + secs(32.0)));
        let (sent, events) = run_until(&mut tx, t0, t0 + secs(40.0));
        assert!(sent.is_empty());
        assert_eq!(events[0], TransactionEvent::Timeout { timer: Timer::H });
    }

    #[test]
    fn ack_confirms_and_timer_i_terminates_after_t4() {
        let t0 = Instant::now();
        let mut tx = server(t0, false);
        tx.send_response(t0, invite_response("486 Busy Here"))
            .expect("486");
        drain(&mut tx);
        tx.handle_request(t0 + secs(0.2), &invite_ack())
            .expect("ACK matches the INVITE transaction");
        assert_eq!(tx.state(), TransactionState::Confirmed);
        let (sent, events) = drain(&mut tx);
        assert!(sent.is_empty());
        assert!(events.is_empty(), "ACK for a non-2xx is not passed up");
        // G and H stopped; only I (T4 = 5 s) remains.
        assert_eq!(tx.poll_timeout(), Some(t0 + secs(5.2)));
        // ACK and INVITE retransmissions in Confirmed are absorbed.
        tx.handle_request(t0 + secs(1.0), &invite_ack())
            .expect("match");
        tx.handle_request(t0 + secs(1.0), &req(INVITE))
            .expect("match");
        assert_eq!(drain(&mut tx), (vec![], vec![]));
        tx.handle_timeout(t0 + secs(5.1));
        assert_eq!(tx.state(), TransactionState::Confirmed);
        tx.handle_timeout(t0 + secs(5.2));
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_event(), Some(TransactionEvent::Terminated));
    }

    #[test]
    fn everything_is_absorbed_once_terminated() {
        let t0 = Instant::now();
        let mut tx = server(t0, false);
        tx.send_response(t0, invite_response("486 Busy Here"))
            .expect("486");
        tx.handle_request(t0, &invite_ack()).expect("match");
        tx.handle_timeout(t0 + secs(5.0));
        assert!(tx.is_terminated());
        drain(&mut tx);
        tx.handle_request(t0 + secs(6.0), &req(INVITE))
            .expect("match");
        tx.handle_request(t0 + secs(6.0), &invite_ack())
            .expect("match");
        tx.handle_timeout(t0 + secs(100.0));
        tx.handle_transport_error(t0 + secs(100.0));
        assert_eq!(drain(&mut tx), (vec![], vec![]));
        assert!(tx.send_response(t0, invite_response("200 OK")).is_err());
    }

    #[test]
    fn reliable_ack_terminates_at_once() {
        let t0 = Instant::now();
        let mut tx = server(t0, true);
        tx.send_response(t0, invite_response("486 Busy Here"))
            .expect("486");
        tx.handle_request(t0 + secs(0.1), &invite_ack())
            .expect("match");
        assert!(tx.is_terminated(), "Timer I is zero on reliable transports");
    }

    #[test]
    fn invite_retransmission_in_completed_resends_final() {
        let t0 = Instant::now();
        let mut tx = server(t0, false);
        tx.send_response(t0, invite_response("180 Ringing"))
            .expect("180");
        tx.send_response(t0, invite_response("404 Not Found"))
            .expect("404");
        let (sent, _) = drain(&mut tx);
        tx.handle_request(t0 + secs(0.1), &req(INVITE))
            .expect("match");
        let (again, events) = drain(&mut tx);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].bytes, sent[1].bytes, "the 404, not the 180");
        assert!(events.is_empty());
    }

    #[test]
    fn accepted_absorbs_invites_passes_acks_and_timer_l_terminates() {
        let t0 = Instant::now();
        let mut tx = server(t0, false);
        tx.send_response(t0, invite_response("200 OK"))
            .expect("200");
        assert_eq!(tx.state(), TransactionState::Accepted);
        let (sent, _) = drain(&mut tx);
        assert_eq!(sent.len(), 1);
        assert_eq!(tx.poll_timeout(), Some(t0 + secs(32.0)), "Timer L = 64·T1");
        // No 2xx retransmission of our own (RFC 6026: the TU does it).
        tx.handle_timeout(t0 + secs(31.0));
        assert!(tx.poll_transmit().is_none());
        // Retransmitted INVITE: absorbed.
        tx.handle_request(t0 + secs(1.0), &req(INVITE))
            .expect("match");
        assert_eq!(drain(&mut tx), (vec![], vec![]));
        // The TU's own 2xx retransmission goes out.
        tx.send_response(t0 + secs(1.0), invite_response("200 OK"))
            .expect("2xx retransmission in Accepted");
        assert_eq!(drain(&mut tx).0.len(), 1);
        // A non-2xx now is an error, not a panic.
        assert!(matches!(
            tx.send_response(t0, invite_response("500 Server Error")),
            Err(TransactionError::InvalidState {
                state: TransactionState::Accepted,
                ..
            })
        ));
        // A matching ACK goes to the TU.
        tx.handle_request(t0 + secs(2.0), &invite_ack())
            .expect("match");
        assert_eq!(
            tx.poll_event(),
            Some(TransactionEvent::Request(invite_ack()))
        );
        tx.handle_timeout(t0 + secs(32.0));
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_event(), Some(TransactionEvent::Terminated));
        assert_eq!(tx.poll_event(), None);
    }

    #[test]
    fn timer_l_also_applies_on_reliable_transports() {
        let t0 = Instant::now();
        let mut tx = server(t0, true);
        tx.send_response(t0, invite_response("200 OK"))
            .expect("200");
        assert_eq!(tx.poll_timeout(), Some(t0 + secs(32.0)));
    }

    #[test]
    fn responses_in_wrong_states_are_errors() {
        let t0 = Instant::now();
        let mut tx = server(t0, false);
        tx.send_response(t0, invite_response("486 Busy Here"))
            .expect("486");
        for status in ["180 Ringing", "200 OK", "500 Server Error"] {
            assert!(matches!(
                tx.send_response(t0, invite_response(status)),
                Err(TransactionError::InvalidState {
                    state: TransactionState::Completed,
                    ..
                })
            ));
        }
        let mut bad = invite_response("486 Busy Here");
        bad.status_code = rsip::StatusCode::from(99);
        assert!(matches!(
            server(t0, false).send_response(t0, bad),
            Err(TransactionError::InvalidStatus { status: 99 })
        ));
    }

    #[test]
    fn foreign_requests_are_rejected() {
        let t0 = Instant::now();
        assert!(matches!(
            ServerInviteTransaction::new(t0, req(OPTIONS), false, TimerConfig::default()),
            Err(TransactionError::MethodMismatch { .. })
        ));
        let mut tx = server(t0, false);
        let other = req(&INVITE.replace("z9hG4bK74bf9", "z9hG4bK74bfa"));
        assert!(matches!(
            tx.handle_request(t0, &other),
            Err(TransactionError::KeyMismatch { .. })
        ));
    }

    #[test]
    fn transport_error_terminates_and_informs_tu() {
        let t0 = Instant::now();
        let mut tx = server(t0, false);
        tx.send_response(t0, invite_response("486 Busy Here"))
            .expect("486");
        drain(&mut tx);
        tx.handle_transport_error(t0);
        assert_eq!(
            drain(&mut tx).1,
            [
                TransactionEvent::TransportError,
                TransactionEvent::Terminated
            ]
        );
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn rfc2543_ack_must_carry_our_to_tag() {
        let t0 = Instant::now();
        let legacy = INVITE.replace("branch=z9hG4bK74bf9", "branch=74bf9");
        let mut tx = ServerInviteTransaction::new(t0, req(&legacy), false, TimerConfig::default())
            .expect("tx");
        tx.send_response(t0, invite_response("486 Busy Here"))
            .expect("486");
        let ack = invite_ack().to_string().replace("z9hG4bK74bf9", "74bf9");
        let wrong_tag = req(&ack.replace("tag=8321234356", "tag=other"));
        tx.handle_request(t0, &wrong_tag).expect("key matches");
        assert_eq!(tx.state(), TransactionState::Completed);
        tx.handle_request(t0, &req(&ack)).expect("key matches");
        assert_eq!(tx.state(), TransactionState::Confirmed);
    }
}
