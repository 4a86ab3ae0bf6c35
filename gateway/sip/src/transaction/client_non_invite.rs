//! Client non-INVITE transaction: RFC 3261 §17.1.2 (Figure 6).
//!
//! ```text
//!  request sent → Trying (E, F) --1xx--> Proceeding (E every T2, F)
//!                   | final                | final
//!                   v                      v
//!                Completed (K: T4 unreliable, 0 reliable) --K--> Terminated
//!  F in Trying or Proceeding: Timeout{F} → Terminated
//! ```

use std::time::{Duration, Instant};

use super::{
    check_status, Core, Outgoing, Timer, TimerConfig, Transaction, TransactionError,
    TransactionEvent, TransactionKey, TransactionState,
};

/// RFC 3261 §17.1.2 client non-INVITE transaction.
#[derive(Debug)]
pub struct ClientNonInviteTransaction {
    core: Core,
    request: rsip::Request,
    /// The serialized request, retransmitted byte for byte by Timer E.
    request_out: Outgoing,
    /// Current Timer E interval.
    e_interval: Duration,
}

impl ClientNonInviteTransaction {
    /// Creates the transaction in Trying and queues the request for sending (§17.1.2.2).
    /// INVITE and ACK are refused (INVITE has its own machine; ACK has no transaction).
    pub fn new(
        now: Instant,
        request: rsip::Request,
        reliable: bool,
        config: TimerConfig,
    ) -> Result<Self, TransactionError> {
        if matches!(request.method, rsip::Method::Invite | rsip::Method::Ack) {
            return Err(TransactionError::MethodMismatch {
                expected: "non-INVITE, non-ACK",
                found: request.method.to_string(),
            });
        }
        let key = TransactionKey::client_from_request(&request)?;
        let mut core = Core::new(key, TransactionState::Trying, reliable, config);
        let request_out = Outgoing::new(request.clone().into());
        core.transmit(request_out.clone());
        if let Some(e) = config.timer_e(reliable) {
            core.timers.arm(Timer::E, now + e);
        }
        core.timers.arm(Timer::F, now + config.timer_f());
        Ok(Self {
            core,
            request,
            request_out,
            e_interval: config.t1,
        })
    }

    /// The request this transaction sends.
    pub fn request(&self) -> &rsip::Request {
        &self.request
    }

    /// Handles a response matched to this transaction (§17.1.2.2).
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
        match self.core.state {
            TransactionState::Trying | TransactionState::Proceeding if status < 200 => {
                // Timer E keeps running; it switches to T2 when it next fires (§17.1.2.2).
                self.core.state = TransactionState::Proceeding;
                self.core.emit(TransactionEvent::Response(response.clone()));
            }
            TransactionState::Trying | TransactionState::Proceeding => {
                self.core.timers.cancel(Timer::E);
                self.core.timers.cancel(Timer::F);
                self.core.state = TransactionState::Completed;
                self.core.emit(TransactionEvent::Response(response.clone()));
                // Timer K absorbs response retransmissions; zero on reliable transports.
                let k = self.core.config.timer_k(self.core.reliable);
                if k.is_zero() {
                    self.core.terminate();
                } else {
                    self.core.timers.arm(Timer::K, now + k);
                }
            }
            // Completed: retransmitted responses are absorbed. Terminated: ignored.
            _ => {}
        }
        Ok(())
    }

    fn on_timer(&mut self, now: Instant, timer: Timer) {
        match (self.core.state, timer) {
            (TransactionState::Trying, Timer::E) => {
                self.core.transmit(self.request_out.again());
                self.e_interval = self.core.config.backoff(Timer::E, self.e_interval);
                self.core.timers.arm(Timer::E, now + self.e_interval);
            }
            (TransactionState::Proceeding, Timer::E) => {
                // §17.1.2.2: in Proceeding, Timer E is reset to T2.
                self.core.transmit(self.request_out.again());
                self.e_interval = self.core.config.t2;
                self.core.timers.arm(Timer::E, now + self.e_interval);
            }
            (TransactionState::Trying | TransactionState::Proceeding, Timer::F) => {
                self.core
                    .emit(TransactionEvent::Timeout { timer: Timer::F });
                self.core.terminate();
            }
            (TransactionState::Completed, Timer::K) => self.core.terminate(),
            _ => {}
        }
    }
}

impl Transaction for ClientNonInviteTransaction {
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

    /// §17.1.2.2 / §17.1.4: informs the TU and terminates.
    fn handle_transport_error(&mut self, _now: Instant) {
        self.core.transport_failed();
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn client(t0: Instant, reliable: bool) -> ClientNonInviteTransaction {
        ClientNonInviteTransaction::new(t0, req(OPTIONS), reliable, TimerConfig::default())
            .expect("valid OPTIONS")
    }

    #[test]
    fn request_goes_out_at_creation() {
        let t0 = Instant::now();
        let mut tx = client(t0, false);
        assert_eq!(tx.state(), TransactionState::Trying);
        let (sent, _) = drain(&mut tx);
        assert_eq!(sent.len(), 1);
        assert_eq!(parse(&sent[0]), rsip::SipMessage::Request(req(OPTIONS)));
    }

    #[test]
    fn timer_e_caps_at_t2_and_timer_f_times_out() {
        let t0 = Instant::now();
        let mut tx = client(t0, false);
        let (first, _) = drain(&mut tx);
        let (sent, events) = run_until(&mut tx, t0, t0 + secs(40.0));
        // E: 0.5, 1.5, 3.5, 7.5, then every T2 = 4 s; F at 32 s.
        assert_eq!(
            sent,
            [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
        );
        assert_eq!(
            events,
            [
                TransactionEvent::Timeout { timer: Timer::F },
                TransactionEvent::Terminated
            ]
        );
        let mut tx = client(t0, false);
        drain(&mut tx);
        tx.handle_timeout(t0 + secs(0.5));
        assert_eq!(drain(&mut tx).0[0].bytes, first[0].bytes, "byte-identical");
    }

    #[test]
    fn timer_e_fires_every_t2_in_proceeding() {
        let t0 = Instant::now();
        let mut tx = client(t0, false);
        drain(&mut tx);
        // A 100 Trying at 0.2 s: E keeps its 0.5 s deadline, then runs at T2.
        tx.handle_response(t0 + secs(0.2), &options_response("100 Trying"))
            .expect("match");
        assert_eq!(tx.state(), TransactionState::Proceeding);
        assert_eq!(drain(&mut tx).1.len(), 1, "1xx passed up");
        let (sent, events) = run_until(&mut tx, t0, t0 + secs(40.0));
        assert_eq!(sent, [500, 4500, 8500, 12500, 16500, 20500, 24500, 28500]);
        assert_eq!(
            events,
            [
                TransactionEvent::Timeout { timer: Timer::F },
                TransactionEvent::Terminated
            ]
        );
    }

    #[test]
    fn reliable_has_no_timer_e_but_keeps_timer_f() {
        let t0 = Instant::now();
        let mut tx = client(t0, true);
        drain(&mut tx);
        assert_eq!(tx.poll_timeout(), Some(t0 + secs(32.0)));
        let (sent, events) = run_until(&mut tx, t0, t0 + secs(40.0));
        assert!(sent.is_empty());
        assert_eq!(events[0], TransactionEvent::Timeout { timer: Timer::F });
    }

    #[test]
    fn final_completes_and_timer_k_is_t4_absorbing_retransmissions() {
        let t0 = Instant::now();
        let mut tx = client(t0, false);
        drain(&mut tx);
        let ok = options_response("200 OK");
        tx.handle_response(t0 + secs(1.0), &ok).expect("match");
        assert_eq!(tx.state(), TransactionState::Completed);
        assert_eq!(drain(&mut tx).1, [TransactionEvent::Response(ok.clone())]);
        assert_eq!(tx.poll_timeout(), Some(t0 + secs(6.0)), "K = T4 = 5 s");
        // Retransmitted final (and stray 1xx): absorbed.
        tx.handle_response(t0 + secs(2.0), &ok).expect("match");
        tx.handle_response(t0 + secs(2.0), &options_response("100 Trying"))
            .expect("match");
        assert_eq!(drain(&mut tx), (vec![], vec![]));
        tx.handle_timeout(t0 + secs(6.0));
        assert!(tx.is_terminated());
        assert_eq!(drain(&mut tx).1, [TransactionEvent::Terminated]);
    }

    #[test]
    fn responses_after_termination_are_ignored() {
        let t0 = Instant::now();
        let mut tx = client(t0, false);
        tx.handle_response(t0, &options_response("200 OK"))
            .expect("match");
        tx.handle_timeout(t0 + secs(5.0));
        assert!(tx.is_terminated());
        drain(&mut tx);
        tx.handle_response(t0 + secs(6.0), &options_response("200 OK"))
            .expect("match");
        tx.handle_timeout(t0 + secs(100.0));
        tx.handle_transport_error(t0 + secs(100.0));
        assert_eq!(drain(&mut tx), (vec![], vec![]));
    }

    #[test]
    fn timer_k_is_zero_on_reliable_transports() {
        let t0 = Instant::now();
        let mut tx = client(t0, true);
        drain(&mut tx);
        tx.handle_response(t0, &options_response("404 Not Found"))
            .expect("match");
        assert!(tx.is_terminated());
        let events = drain(&mut tx).1;
        assert!(matches!(events[0], TransactionEvent::Response(_)));
        assert_eq!(events[1], TransactionEvent::Terminated);
    }

    #[test]
    fn invite_ack_and_foreign_responses_are_refused() {
        let t0 = Instant::now();
        let cfg = TimerConfig::default();
        assert!(ClientNonInviteTransaction::new(t0, req(INVITE), false, cfg).is_err());
        assert!(ClientNonInviteTransaction::new(t0, invite_ack(), false, cfg).is_err());
        let mut tx = client(t0, false);
        assert!(matches!(
            tx.handle_response(t0, &invite_response("200 OK")),
            Err(TransactionError::KeyMismatch { .. })
        ));
        let mut bad = options_response("200 OK");
        bad.status_code = rsip::StatusCode::from(700);
        assert!(matches!(
            tx.handle_response(t0, &bad),
            Err(TransactionError::InvalidStatus { status: 700 })
        ));
        assert_eq!(tx.state(), TransactionState::Trying);
    }

    #[test]
    fn transport_error_terminates() {
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
        assert_eq!(tx.poll_timeout(), None);
    }
}
