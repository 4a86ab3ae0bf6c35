//! Server non-INVITE transaction: RFC 3261 §17.2.2 (Figure 8).
//!
//! ```text
//!  request → Trying --1xx--> Proceeding --1xx--> Proceeding
//!               | final          | final
//!               v                v
//!            Completed (J: 64·T1 unreliable, 0 reliable) --J--> Terminated
//! ```

use std::time::Instant;

use super::{
    check_status, Core, Outgoing, Timer, TimerConfig, Transaction, TransactionError,
    TransactionEvent, TransactionKey, TransactionState,
};

/// RFC 3261 §17.2.2 server non-INVITE transaction.
#[derive(Debug)]
pub struct ServerNonInviteTransaction {
    core: Core,
    request: rsip::Request,
    /// The most recent response sent, resent when the request is retransmitted.
    last_response: Option<Outgoing>,
}

impl ServerNonInviteTransaction {
    /// Creates the transaction from a received non-INVITE request, in Trying (§17.2.2).
    /// INVITE and ACK are refused: INVITE has its own machine, ACK creates no transaction.
    pub fn new(
        _now: Instant,
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
        let key = TransactionKey::server_from_request(&request)?;
        Ok(Self {
            core: Core::new(key, TransactionState::Trying, reliable, config),
            request,
            last_response: None,
        })
    }

    /// The request that created this transaction.
    pub fn request(&self) -> &rsip::Request {
        &self.request
    }

    /// Sends a response from the TU: 1xx in Trying/Proceeding → Proceeding; 200–699 →
    /// Completed with Timer J. In Completed and Terminated any response is an error
    /// (§17.2.2: further final responses MUST be discarded).
    pub fn send_response(
        &mut self,
        now: Instant,
        response: rsip::Response,
    ) -> Result<(), TransactionError> {
        let status = check_status(&response)?;
        match self.core.state {
            TransactionState::Trying | TransactionState::Proceeding => {
                let out = Outgoing::new(response.into());
                self.last_response = Some(out.clone());
                self.core.transmit(out);
                if status < 200 {
                    self.core.state = TransactionState::Proceeding;
                } else {
                    self.core.state = TransactionState::Completed;
                    let j = self.core.config.timer_j(self.core.reliable);
                    if j.is_zero() {
                        // Reliable: no request retransmissions to absorb.
                        self.core.terminate();
                    } else {
                        self.core.timers.arm(Timer::J, now + j);
                    }
                }
                Ok(())
            }
            _ => Err(self.core.invalid_state("send a response")),
        }
    }

    /// Handles a retransmission of the request: absorbed in Trying, answered with the last
    /// response in Proceeding and Completed (§17.2.2).
    pub fn handle_request(
        &mut self,
        _now: Instant,
        request: &rsip::Request,
    ) -> Result<(), TransactionError> {
        let key = TransactionKey::server_from_request(request)?;
        if key != self.core.key {
            return Err(TransactionError::KeyMismatch {
                expected: self.core.key.clone(),
            });
        }
        if matches!(
            self.core.state,
            TransactionState::Proceeding | TransactionState::Completed
        ) {
            if let Some(out) = &self.last_response {
                self.core.transmit(out.again());
            }
        }
        Ok(())
    }
}

impl Transaction for ServerNonInviteTransaction {
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
            if timer == Timer::J && self.core.state == TransactionState::Completed {
                self.core.terminate();
            }
        }
    }

    /// §17.2.4: the TU is informed and the transaction ends.
    fn handle_transport_error(&mut self, _now: Instant) {
        self.core.transport_failed();
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn server(t0: Instant, reliable: bool) -> ServerNonInviteTransaction {
        ServerNonInviteTransaction::new(t0, req(OPTIONS), reliable, TimerConfig::default())
            .expect("valid OPTIONS")
    }

    #[test]
    fn retransmissions_absorbed_in_trying_answered_later() {
        let t0 = Instant::now();
        let mut tx = server(t0, false);
        assert_eq!(tx.state(), TransactionState::Trying);
        tx.handle_request(t0, &req(OPTIONS)).expect("match");
        assert_eq!(
            drain(&mut tx),
            (vec![], vec![]),
            "nothing to resend in Trying"
        );

        tx.send_response(t0, options_response("100 Trying"))
            .expect("1xx");
        assert_eq!(tx.state(), TransactionState::Proceeding);
        let (sent, _) = drain(&mut tx);
        tx.handle_request(t0, &req(OPTIONS)).expect("match");
        let (again, _) = drain(&mut tx);
        assert_eq!(again[0].bytes, sent[0].bytes);

        tx.send_response(t0, options_response("200 OK"))
            .expect("200");
        assert_eq!(tx.state(), TransactionState::Completed);
        let (sent, _) = drain(&mut tx);
        tx.handle_request(t0 + secs(3.0), &req(OPTIONS))
            .expect("match");
        let (again, events) = drain(&mut tx);
        assert_eq!(again.len(), 1);
        assert!(again[0].retransmission);
        assert_eq!(again[0].bytes, sent[0].bytes, "byte-identical 200");
        assert!(events.is_empty());
    }

    #[test]
    fn timer_j_is_64_t1_unreliable() {
        let t0 = Instant::now();
        let mut tx = server(t0, false);
        tx.send_response(t0 + secs(1.0), options_response("200 OK"))
            .expect("200");
        drain(&mut tx);
        assert_eq!(tx.poll_timeout(), Some(t0 + secs(33.0)));
        tx.handle_timeout(t0 + secs(32.9));
        assert_eq!(tx.state(), TransactionState::Completed);
        tx.handle_timeout(t0 + secs(33.0));
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_event(), Some(TransactionEvent::Terminated));
    }

    #[test]
    fn timer_j_is_zero_reliable() {
        let t0 = Instant::now();
        let mut tx = server(t0, true);
        tx.send_response(t0, options_response("200 OK"))
            .expect("200");
        assert!(tx.is_terminated());
        // The response was still queued for sending.
        let (sent, events) = drain(&mut tx);
        assert_eq!(sent.len(), 1);
        assert_eq!(events, [TransactionEvent::Terminated]);
    }

    #[test]
    fn final_response_after_final_is_an_error() {
        let t0 = Instant::now();
        let mut tx = server(t0, false);
        tx.send_response(t0, options_response("200 OK"))
            .expect("200");
        assert!(matches!(
            tx.send_response(t0, options_response("500 Oops")),
            Err(TransactionError::InvalidState {
                state: TransactionState::Completed,
                ..
            })
        ));
        assert!(matches!(
            tx.send_response(t0, options_response("180 Ringing")),
            Err(TransactionError::InvalidState { .. })
        ));
    }

    #[test]
    fn invite_and_ack_are_refused() {
        let t0 = Instant::now();
        let cfg = TimerConfig::default();
        assert!(ServerNonInviteTransaction::new(t0, req(INVITE), false, cfg).is_err());
        assert!(ServerNonInviteTransaction::new(t0, invite_ack(), false, cfg).is_err());
    }

    #[test]
    fn transport_error_terminates() {
        let t0 = Instant::now();
        let mut tx = server(t0, false);
        tx.send_response(t0, options_response("200 OK"))
            .expect("200");
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
