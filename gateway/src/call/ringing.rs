//! Who rings, and when ringing ends: the pure decision core of an inbound call before answer.
//!
//! Sans-IO: the call actor feeds it what happened (a manager was claimed, declined, went away,
//! the caller cancelled, the clock passed the deadline) and carries out the actions it returns
//! (claim the next eligible manager in the database, ring a browser, stop a ring, answer the
//! carrier). Time is passed in; nothing here sleeps.

use std::time::{Duration, Instant};

use schemas::missed::MissedReason;

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingInput {
    /// Result of [`RingAction::ClaimNext`]: the manager now reserved for this call, or none.
    Claimed(Option<String>),
    /// The browser of this manager received the ring (or not, when no session was connected).
    RingDelivered {
        manager_id: String,
        delivered: bool,
    },
    Declined {
        manager_id: String,
    },
    /// The manager's last browser session closed while it rang.
    SessionGone {
        manager_id: String,
    },
    /// The carrier sent CANCEL (RFC 3261 §9.2).
    CallerCancelled,
    /// The manager being rung accepted.
    Accepted {
        manager_id: String,
    },
}

/// What to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingAction {
    /// Reserve the next eligible manager, skipping these (who declined or vanished).
    ClaimNext { exclude: Vec<String> },
    /// Send the ring event to this manager's browser sessions.
    Ring { manager_id: String },
    /// First ring delivered: tell the carrier (180 Ringing, RFC 3261 §13.3.1.1).
    SendRinging,
    /// Withdraw the ring from this manager and free their reservation.
    StopRinging {
        manager_id: String,
        reason: StopReason,
    },
    /// The call is missed: record it and send the carrier this final status.
    Missed {
        reason: MissedReason,
        sip_status: u16,
    },
    /// This manager answers: connect the call (ringing is over).
    Answer { manager_id: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Missed(MissedReason),
    DeclinedByManager,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Waiting for the result of a claim.
    Claiming,
    /// Ring sent, waiting for it to be delivered.
    Delivering(String),
    Ringing(String),
    Done,
}

#[derive(Debug)]
pub struct Ringing {
    deadline: Instant,
    state: State,
    /// Managers already tried for this call: never rung twice.
    tried: Vec<String>,
    /// Set once any manager's browser rang; decides between `declined` and `no_available_manager`.
    any_declined: bool,
    sent_ringing: bool,
    actions: std::collections::VecDeque<RingAction>,
}

impl Ringing {
    /// Starts ringing at `now`; it ends missed at `now + ring_timeout` at the latest.
    pub fn new(now: Instant, ring_timeout: Duration) -> Ringing {
        let mut r = Ringing {
            deadline: now + ring_timeout,
            state: State::Claiming,
            tried: Vec::new(),
            any_declined: false,
            sent_ringing: false,
            actions: Default::default(),
        };
        r.actions.push_back(RingAction::ClaimNext {
            exclude: Vec::new(),
        });
        r
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether 180 Ringing went out (so the caller knows our tag: the early dialog exists).
    pub fn sent_ringing(&self) -> bool {
        self.sent_ringing
    }

    /// The manager being rung now, if any.
    pub fn ringing_manager(&self) -> Option<&str> {
        match &self.state {
            State::Delivering(m) | State::Ringing(m) => Some(m),
            _ => None,
        }
    }

    pub fn poll_action(&mut self) -> Option<RingAction> {
        self.actions.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.is_done()).then_some(self.deadline)
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.deadline && !self.is_done() {
            // RFC 3261 §21.4.18: 480 Temporarily Unavailable, the callee was not reachable.
            self.finish(MissedReason::NoAnswer, 480);
        }
    }

    pub fn handle_input(&mut self, now: Instant, input: RingInput) {
        if self.is_done() {
            return;
        }
        if now >= self.deadline {
            self.handle_timeout(now);
            return;
        }
        match input {
            RingInput::CallerCancelled => {
                // RFC 3261 §9.2: the INVITE is answered 487 Request Terminated.
                self.finish(MissedReason::CallerCancelled, 487);
            }
            RingInput::Claimed(None) if self.state == State::Claiming => {
                if self.any_declined {
                    // RFC 3261 §21.6.2: 603 Decline, the callee does not wish to take the call.
                    self.finish(MissedReason::Declined, 603);
                } else {
                    self.finish(MissedReason::NoAvailableManager, 480);
                }
            }
            RingInput::Claimed(Some(manager_id)) if self.state == State::Claiming => {
                self.tried.push(manager_id.clone());
                self.actions.push_back(RingAction::Ring {
                    manager_id: manager_id.clone(),
                });
                self.state = State::Delivering(manager_id);
            }
            RingInput::RingDelivered {
                manager_id,
                delivered,
            } if self.state == State::Delivering(manager_id.clone()) => {
                if delivered {
                    if !self.sent_ringing {
                        self.sent_ringing = true;
                        self.actions.push_back(RingAction::SendRinging);
                    }
                    self.state = State::Ringing(manager_id);
                } else {
                    self.next_manager(manager_id, None);
                }
            }
            RingInput::Declined { manager_id } if self.ringing_manager() == Some(&manager_id) => {
                self.any_declined = true;
                self.next_manager(manager_id, Some(StopReason::DeclinedByManager));
            }
            RingInput::Accepted { manager_id }
                if self.state == State::Ringing(manager_id.clone()) =>
            {
                self.actions.push_back(RingAction::Answer { manager_id });
                self.state = State::Done;
            }
            RingInput::SessionGone { manager_id }
                if self.ringing_manager() == Some(&manager_id) =>
            {
                self.next_manager(manager_id, None);
            }
            // Late or duplicate inputs (a decline from a tab that no longer rings, a claim
            // result after cancel) change nothing.
            _ => {}
        }
    }

    fn next_manager(&mut self, manager_id: String, stop: Option<StopReason>) {
        self.actions.push_back(RingAction::StopRinging {
            manager_id,
            reason: stop.unwrap_or(StopReason::Missed(MissedReason::ManagerOffline)),
        });
        self.state = State::Claiming;
        self.actions.push_back(RingAction::ClaimNext {
            exclude: self.tried.clone(),
        });
    }

    fn finish(&mut self, reason: MissedReason, sip_status: u16) {
        if let Some(m) = self.ringing_manager().map(str::to_string) {
            self.actions.push_back(RingAction::StopRinging {
                manager_id: m,
                reason: StopReason::Missed(reason),
            });
        }
        self.actions
            .push_back(RingAction::Missed { reason, sip_status });
        self.state = State::Done;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(r: &mut Ringing) -> Vec<RingAction> {
        std::iter::from_fn(|| r.poll_action()).collect()
    }

    fn claim(exclude: &[&str]) -> RingAction {
        RingAction::ClaimNext {
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn ring_m1(r: &mut Ringing, t: Instant) {
        assert_eq!(drain(r), vec![claim(&[])]);
        r.handle_input(t, RingInput::Claimed(Some("m1".into())));
        assert_eq!(
            drain(r),
            vec![RingAction::Ring {
                manager_id: "m1".into()
            }]
        );
        r.handle_input(
            t,
            RingInput::RingDelivered {
                manager_id: "m1".into(),
                delivered: true,
            },
        );
        assert_eq!(drain(r), vec![RingAction::SendRinging]);
    }

    #[test]
    fn caller_cancel_stops_the_ring_and_answers_487() {
        let t0 = Instant::now();
        let mut r = Ringing::new(t0, Duration::from_secs(120));
        ring_m1(&mut r, t0);
        r.handle_input(t0 + Duration::from_secs(3), RingInput::CallerCancelled);
        assert_eq!(
            drain(&mut r),
            vec![
                RingAction::StopRinging {
                    manager_id: "m1".into(),
                    reason: StopReason::Missed(MissedReason::CallerCancelled)
                },
                RingAction::Missed {
                    reason: MissedReason::CallerCancelled,
                    sip_status: 487
                },
            ]
        );
        assert!(r.is_done() && r.poll_timeout().is_none());
    }

    #[test]
    fn timeout_at_the_deadline_is_no_answer_480() {
        let t0 = Instant::now();
        let mut r = Ringing::new(t0, Duration::from_secs(120));
        ring_m1(&mut r, t0);
        assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(120)));
        r.handle_timeout(t0 + Duration::from_millis(119_999));
        assert!(drain(&mut r).is_empty());
        r.handle_timeout(t0 + Duration::from_secs(120));
        let actions = drain(&mut r);
        assert_eq!(
            actions.last(),
            Some(&RingAction::Missed {
                reason: MissedReason::NoAnswer,
                sip_status: 480
            })
        );
    }

    #[test]
    fn decline_rings_the_next_then_ends_declined_603() {
        let t0 = Instant::now();
        let mut r = Ringing::new(t0, Duration::from_secs(120));
        ring_m1(&mut r, t0);
        r.handle_input(
            t0,
            RingInput::Declined {
                manager_id: "m1".into(),
            },
        );
        assert_eq!(
            drain(&mut r),
            vec![
                RingAction::StopRinging {
                    manager_id: "m1".into(),
                    reason: StopReason::DeclinedByManager
                },
                claim(&["m1"]),
            ]
        );
        r.handle_input(t0, RingInput::Claimed(Some("m2".into())));
        r.handle_input(
            t0,
            RingInput::RingDelivered {
                manager_id: "m2".into(),
                delivered: true,
            },
        );
        // 180 already went out for m1: not again.
        assert_eq!(
            drain(&mut r),
            vec![RingAction::Ring {
                manager_id: "m2".into()
            }]
        );
        r.handle_input(
            t0,
            RingInput::Declined {
                manager_id: "m2".into(),
            },
        );
        assert_eq!(drain(&mut r).last(), Some(&claim(&["m1", "m2"])));
        r.handle_input(t0, RingInput::Claimed(None));
        assert_eq!(
            drain(&mut r),
            vec![RingAction::Missed {
                reason: MissedReason::Declined,
                sip_status: 603
            }]
        );
    }

    #[test]
    fn nobody_eligible_is_no_available_manager() {
        let t0 = Instant::now();
        let mut r = Ringing::new(t0, Duration::from_secs(120));
        drain(&mut r);
        r.handle_input(t0, RingInput::Claimed(None));
        assert_eq!(
            drain(&mut r),
            vec![RingAction::Missed {
                reason: MissedReason::NoAvailableManager,
                sip_status: 480
            }]
        );
    }

    #[test]
    fn undelivered_ring_or_vanished_session_moves_on() {
        let t0 = Instant::now();
        let mut r = Ringing::new(t0, Duration::from_secs(120));
        drain(&mut r);
        r.handle_input(t0, RingInput::Claimed(Some("m1".into())));
        r.handle_input(
            t0,
            RingInput::RingDelivered {
                manager_id: "m1".into(),
                delivered: false,
            },
        );
        let actions = drain(&mut r);
        assert_eq!(actions.last(), Some(&claim(&["m1"])));
        r.handle_input(t0, RingInput::Claimed(Some("m2".into())));
        r.handle_input(
            t0,
            RingInput::RingDelivered {
                manager_id: "m2".into(),
                delivered: true,
            },
        );
        drain(&mut r);
        r.handle_input(
            t0,
            RingInput::SessionGone {
                manager_id: "m2".into(),
            },
        );
        assert_eq!(drain(&mut r).last(), Some(&claim(&["m1", "m2"])));
        r.handle_input(t0, RingInput::Claimed(None));
        // Nobody declined: the reason is that nobody could take it.
        assert_eq!(
            drain(&mut r),
            vec![RingAction::Missed {
                reason: MissedReason::NoAvailableManager,
                sip_status: 480
            }]
        );
    }

    #[test]
    fn the_rung_manager_accepts_once() {
        let t0 = Instant::now();
        let mut r = Ringing::new(t0, Duration::from_secs(120));
        ring_m1(&mut r, t0);
        r.handle_input(
            t0,
            RingInput::Accepted {
                manager_id: "m2".into(),
            },
        );
        assert!(
            drain(&mut r).is_empty(),
            "only the manager being rung can accept"
        );
        r.handle_input(
            t0,
            RingInput::Accepted {
                manager_id: "m1".into(),
            },
        );
        assert_eq!(
            drain(&mut r),
            vec![RingAction::Answer {
                manager_id: "m1".into()
            }]
        );
        assert!(r.is_done() && r.poll_timeout().is_none());
        r.handle_input(t0, RingInput::CallerCancelled);
        assert!(
            drain(&mut r).is_empty(),
            "after the answer, CANCEL is too late for the ring"
        );
    }

    #[test]
    fn stale_inputs_change_nothing() {
        let t0 = Instant::now();
        let mut r = Ringing::new(t0, Duration::from_secs(120));
        ring_m1(&mut r, t0);
        r.handle_input(
            t0,
            RingInput::Declined {
                manager_id: "someone-else".into(),
            },
        );
        r.handle_input(t0, RingInput::Claimed(Some("m9".into())));
        assert!(drain(&mut r).is_empty());
        assert_eq!(r.ringing_manager(), Some("m1"));
        r.handle_input(t0, RingInput::CallerCancelled);
        drain(&mut r);
        r.handle_input(t0, RingInput::CallerCancelled);
        r.handle_timeout(t0 + Duration::from_secs(500));
        assert!(drain(&mut r).is_empty());
    }

    #[test]
    fn inputs_after_the_deadline_end_as_no_answer() {
        let t0 = Instant::now();
        let mut r = Ringing::new(t0, Duration::from_secs(10));
        drain(&mut r);
        r.handle_input(
            t0 + Duration::from_secs(11),
            RingInput::Claimed(Some("m1".into())),
        );
        assert_eq!(
            drain(&mut r),
            vec![RingAction::Missed {
                reason: MissedReason::NoAnswer,
                sip_status: 480
            }]
        );
    }
}
