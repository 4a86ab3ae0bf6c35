//! Transaction timers: RFC 3261 §17 and Table 4 (§A), plus RFC 6026 §7.1 (Timer L) and
//! §8.4 (Timer M).
//!
//! Timers are values, not tasks: a transaction keeps a [`TimerSet`] of deadlines and the driver
//! asks for the earliest one (`poll_timeout`) and calls `handle_timeout(now)` when it is due.
//! Nothing here reads the clock.

use std::fmt;
use std::time::{Duration, Instant};

/// The base timer values of RFC 3261 §17.1.1.1 and Table 4.
///
/// T1 is the RTT estimate, T2 the cap on non-INVITE and final-response retransmission
/// intervals, T4 the time a message may stay in the network. RFC 3261 allows raising T1 on
/// high-latency links; everything derived from it (B, F, H, J, L, M) scales with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate, 500 ms by default (§17.1.1.1).
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses, 4 s.
    pub t2: Duration,
    /// Maximum duration a message remains in the network, 5 s.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// The named transaction timers, so tests, events and logs can say which one fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// INVITE request retransmit interval (client, unreliable only): T1, doubling, no cap.
    A,
    /// INVITE transaction timeout (client, Calling): 64·T1.
    B,
    /// Wait time for response retransmits (client INVITE, Completed): ≥ 32 s unreliable, 0 reliable.
    D,
    /// Non-INVITE request retransmit interval (client, unreliable only): T1 doubling, cap T2.
    E,
    /// Non-INVITE transaction timeout (client): 64·T1.
    F,
    /// INVITE final response retransmit interval (server, unreliable only): T1 doubling, cap T2.
    G,
    /// Wait time for ACK receipt (server INVITE, Completed): 64·T1.
    H,
    /// Wait time for ACK retransmits (server INVITE, Confirmed): T4 unreliable, 0 reliable.
    I,
    /// Wait time for non-INVITE request retransmits (server, Completed): 64·T1 unreliable, 0 reliable.
    J,
    /// Wait time for response retransmits (client non-INVITE, Completed): T4 unreliable, 0 reliable.
    K,
    /// RFC 6026 §7.1: wait time for accepted INVITE request retransmits (server, Accepted): 64·T1.
    L,
    /// RFC 6026 §8.4: wait time for 2xx retransmissions (client INVITE, Accepted): 64·T1.
    M,
}

impl Timer {
    /// Every timer, in a stable order (used for deterministic tie-breaking).
    pub const ALL: [Timer; 12] = [
        Timer::A,
        Timer::B,
        Timer::D,
        Timer::E,
        Timer::F,
        Timer::G,
        Timer::H,
        Timer::I,
        Timer::J,
        Timer::K,
        Timer::L,
        Timer::M,
    ];

    /// The timer's RFC name, e.g. `"B"`.
    pub fn name(self) -> &'static str {
        match self {
            Timer::A => "A",
            Timer::B => "B",
            Timer::D => "D",
            Timer::E => "E",
            Timer::F => "F",
            Timer::G => "G",
            Timer::H => "H",
            Timer::I => "I",
            Timer::J => "J",
            Timer::K => "K",
            Timer::L => "L",
            Timer::M => "M",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timer {}", self.name())
    }
}

impl TimerConfig {
    /// 64·T1: the common transaction lifetime bound of §17 (B, F, H, J, L, M).
    pub fn t1x64(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    /// Timer A initial value (§17.1.1.2): T1; `None` on a reliable transport, where the
    /// transport layer does the retransmitting.
    pub fn timer_a(&self, reliable: bool) -> Option<Duration> {
        (!reliable).then_some(self.t1)
    }

    /// Timer B (§17.1.1.2): 64·T1.
    pub fn timer_b(&self) -> Duration {
        self.t1x64()
    }

    /// Timer D (§17.1.1.2): "at least 32 seconds for unreliable transports, zero for reliable".
    /// The 32 s covers the server's Timer H (64·T1) with the default T1; if T1 is raised we keep
    /// covering it so a late final-response retransmission still finds us and gets its ACK.
    pub fn timer_d(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            Duration::from_secs(32).max(self.t1x64())
        }
    }

    /// Timer E initial value (§17.1.2.2): T1; `None` on a reliable transport.
    pub fn timer_e(&self, reliable: bool) -> Option<Duration> {
        (!reliable).then_some(self.t1)
    }

    /// Timer F (§17.1.2.2): 64·T1.
    pub fn timer_f(&self) -> Duration {
        self.t1x64()
    }

    /// Timer G initial value (§17.2.1): T1; `None` on a reliable transport.
    pub fn timer_g(&self, reliable: bool) -> Option<Duration> {
        (!reliable).then_some(self.t1)
    }

    /// Timer H (§17.2.1): 64·T1.
    pub fn timer_h(&self) -> Duration {
        self.t1x64()
    }

    /// Timer I (§17.2.1): T4 unreliable, zero reliable (no ACK retransmissions to absorb).
    pub fn timer_i(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t4
        }
    }

    /// Timer J (§17.2.2): 64·T1 unreliable, zero reliable.
    pub fn timer_j(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t1x64()
        }
    }

    /// Timer K (§17.1.2.2): T4 unreliable, zero reliable.
    pub fn timer_k(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t4
        }
    }

    /// Timer L (RFC 6026 §7.1): 64·T1 regardless of transport, so retransmitted INVITEs are
    /// absorbed instead of creating a new transaction while the 2xx is in flight.
    pub fn timer_l(&self) -> Duration {
        self.t1x64()
    }

    /// Timer M (RFC 6026 §8.4): 64·T1 regardless of transport, so 2xx retransmissions from
    /// other forks still reach the TU through this transaction.
    pub fn timer_m(&self) -> Duration {
        self.t1x64()
    }

    /// Next interval of a retransmission timer after it fired with interval `previous`.
    ///
    /// - A (§17.1.1.2): doubles with no cap (0.5, 1, 2, 4, 8, 16 s …).
    /// - E (§17.1.2.2, Trying) and G (§17.2.1): `min(2·previous, T2)`.
    ///
    /// In Proceeding, Timer E is reset to T2 instead; the caller handles that state rule.
    /// Other timers do not repeat; for them this returns `previous` unchanged.
    pub fn backoff(&self, timer: Timer, previous: Duration) -> Duration {
        match timer {
            Timer::A => previous.saturating_mul(2),
            Timer::E | Timer::G => previous.saturating_mul(2).min(self.t2),
            _ => previous,
        }
    }
}

/// A set of armed timer deadlines, at most one per [`Timer`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimerSet {
    deadlines: [Option<Instant>; 12],
}

impl TimerSet {
    /// Arms (or re-arms) `timer` to fire at `at`.
    pub fn arm(&mut self, timer: Timer, at: Instant) {
        self.deadlines[timer.index()] = Some(at);
    }

    /// Disarms `timer`; a no-op if it was not armed.
    pub fn cancel(&mut self, timer: Timer) {
        self.deadlines[timer.index()] = None;
    }

    /// Disarms every timer.
    pub fn clear(&mut self) {
        self.deadlines = [None; 12];
    }

    /// The deadline of `timer`, if armed.
    pub fn deadline(&self, timer: Timer) -> Option<Instant> {
        self.deadlines[timer.index()]
    }

    /// The earliest armed deadline.
    pub fn earliest(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Removes and returns the earliest timer due at `now` (ties broken by RFC letter order),
    /// so callers can loop until nothing is due.
    pub fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        let mut best: Option<(Instant, Timer)> = None;
        for timer in Timer::ALL {
            if let Some(at) = self.deadlines[timer.index()] {
                if at <= now && best.is_none_or(|(b, _)| at < b) {
                    best = Some((at, timer));
                }
            }
        }
        let (_, timer) = best?;
        self.cancel(timer);
        Some(timer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_rfc_table_4() {
        let c = TimerConfig::default();
        assert_eq!(c.t1, Duration::from_millis(500));
        assert_eq!(c.t2, Duration::from_secs(4));
        assert_eq!(c.t4, Duration::from_secs(5));
        assert_eq!(c.timer_b(), Duration::from_secs(32));
        assert_eq!(c.timer_f(), Duration::from_secs(32));
        assert_eq!(c.timer_h(), Duration::from_secs(32));
        assert_eq!(c.timer_l(), Duration::from_secs(32));
        assert_eq!(c.timer_m(), Duration::from_secs(32));
    }

    #[test]
    fn reliable_transports_drop_retransmit_and_wait_timers() {
        let c = TimerConfig::default();
        assert_eq!(c.timer_a(true), None);
        assert_eq!(c.timer_e(true), None);
        assert_eq!(c.timer_g(true), None);
        assert_eq!(c.timer_a(false), Some(c.t1));
        assert_eq!(c.timer_d(true), Duration::ZERO);
        assert_eq!(c.timer_d(false), Duration::from_secs(32));
        assert_eq!(c.timer_i(true), Duration::ZERO);
        assert_eq!(c.timer_i(false), c.t4);
        assert_eq!(c.timer_j(true), Duration::ZERO);
        assert_eq!(c.timer_j(false), Duration::from_secs(32));
        assert_eq!(c.timer_k(true), Duration::ZERO);
        assert_eq!(c.timer_k(false), c.t4);
    }

    #[test]
    fn timer_d_covers_server_timer_h_when_t1_is_raised() {
        let c = TimerConfig {
            t1: Duration::from_secs(1),
            ..TimerConfig::default()
        };
        assert_eq!(c.timer_d(false), Duration::from_secs(64));
    }

    #[test]
    fn backoff_a_doubles_without_cap_e_and_g_cap_at_t2() {
        let c = TimerConfig::default();
        let mut a = c.t1;
        let mut seen = vec![];
        for _ in 0..6 {
            seen.push(a.as_millis());
            a = c.backoff(Timer::A, a);
        }
        assert_eq!(seen, [500, 1000, 2000, 4000, 8000, 16000]);
        for timer in [Timer::E, Timer::G] {
            let mut e = c.t1;
            let mut seen = vec![];
            for _ in 0..6 {
                seen.push(e.as_millis());
                e = c.backoff(timer, e);
            }
            assert_eq!(seen, [500, 1000, 2000, 4000, 4000, 4000]);
        }
    }

    #[test]
    fn timer_set_pops_in_deadline_order_then_letter_order() {
        let t0 = Instant::now();
        let mut s = TimerSet::default();
        s.arm(Timer::B, t0 + Duration::from_secs(2));
        s.arm(Timer::A, t0 + Duration::from_secs(2));
        s.arm(Timer::D, t0 + Duration::from_secs(1));
        assert_eq!(s.earliest(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(s.pop_due(t0), None);
        let now = t0 + Duration::from_secs(5);
        assert_eq!(s.pop_due(now), Some(Timer::D));
        assert_eq!(s.pop_due(now), Some(Timer::A));
        assert_eq!(s.pop_due(now), Some(Timer::B));
        assert_eq!(s.pop_due(now), None);
        assert_eq!(s.earliest(), None);
    }

    #[test]
    fn timer_names_are_visible() {
        assert_eq!(Timer::H.to_string(), "Timer H");
        assert_eq!(Timer::M.name(), "M");
    }
}
