//! Retransmission of a 2xx to INVITE until its ACK arrives (RFC 3261 §13.3.1.4).
//!
//! The INVITE server transaction ends (or, with RFC 6026, only absorbs retransmissions) once a
//! 2xx is sent; keeping the 2xx alive end to end is the UAS core's job. The interval starts at
//! T1 and doubles up to T2, over any transport (a proxy on the way may use UDP). Without an ACK
//! for 64·T1 the dialog is confirmed but the session should be ended with a BYE.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::transaction::TimerConfig;

/// What the caller must do after [`TwoXxRetransmitter::handle_timeout`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwoXxAction {
    /// Send these bytes again (byte-identical 2xx).
    Retransmit(Bytes),
    /// No ACK within 64·T1: end the session with a BYE.
    GiveUp,
}

#[derive(Debug)]
pub struct TwoXxRetransmitter {
    response: Bytes,
    interval: Duration,
    next_at: Option<Instant>,
    give_up_at: Instant,
    t2: Duration,
    acked: bool,
}

impl TwoXxRetransmitter {
    /// `response` is the serialized 2xx, already sent once at `now`.
    pub fn new(now: Instant, response: Bytes, timers: TimerConfig) -> TwoXxRetransmitter {
        TwoXxRetransmitter {
            response,
            interval: timers.t1,
            next_at: Some(now + timers.t1),
            give_up_at: now + timers.t1x64(),
            t2: timers.t2,
            acked: false,
        }
    }

    /// The ACK for this 2xx arrived: stop (the caller matches it to the dialog and CSeq).
    pub fn handle_ack(&mut self) {
        self.acked = true;
        self.next_at = None;
    }

    pub fn is_acked(&self) -> bool {
        self.acked
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_at.map(|at| at.min(self.give_up_at))
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Option<TwoXxAction> {
        let at = self.next_at?;
        if now >= self.give_up_at {
            self.next_at = None;
            return Some(TwoXxAction::GiveUp);
        }
        if now < at {
            return None;
        }
        self.interval = (self.interval * 2).min(self.t2);
        self.next_at = Some(now + self.interval);
        Some(TwoXxAction::Retransmit(self.response.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retransmits_at_t1_doubling_to_t2_then_gives_up_at_64_t1() {
        let t0 = Instant::now();
        let mut r = TwoXxRetransmitter::new(
            t0,
            Bytes::from_static(b"SIP/2.0 200 OK"),
            TimerConfig::default(),
        );
        let mut sent_at_ms = Vec::new();
        let mut gave_up_at = None;
        while let Some(at) = r.poll_timeout() {
            match r.handle_timeout(at) {
                Some(TwoXxAction::Retransmit(b)) => {
                    assert_eq!(&b[..], b"SIP/2.0 200 OK");
                    sent_at_ms.push(at.duration_since(t0).as_millis());
                }
                Some(TwoXxAction::GiveUp) => gave_up_at = Some(at.duration_since(t0).as_millis()),
                None => panic!("woken for nothing at {at:?}"),
            }
        }
        assert_eq!(
            sent_at_ms,
            [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
        );
        assert_eq!(gave_up_at, Some(32_000));
    }

    #[test]
    fn ack_stops_everything() {
        let t0 = Instant::now();
        let mut r = TwoXxRetransmitter::new(t0, Bytes::from_static(b"x"), TimerConfig::default());
        assert!(matches!(
            r.handle_timeout(t0 + Duration::from_millis(500)),
            Some(TwoXxAction::Retransmit(_))
        ));
        r.handle_ack();
        assert!(r.is_acked());
        assert_eq!(r.poll_timeout(), None);
        assert_eq!(r.handle_timeout(t0 + Duration::from_secs(60)), None);
    }

    #[test]
    fn early_wakeups_do_nothing() {
        let t0 = Instant::now();
        let mut r = TwoXxRetransmitter::new(t0, Bytes::from_static(b"x"), TimerConfig::default());
        assert_eq!(r.handle_timeout(t0 + Duration::from_millis(499)), None);
        assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_millis(500)));
    }
}
