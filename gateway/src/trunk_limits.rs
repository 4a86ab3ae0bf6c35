//! Per-trunk admission limits: calls per second (token bucket) and concurrent calls.
//!
//! Over a limit the INVITE is refused with 503 Service Unavailable and a Retry-After
//! (RFC 3261 §21.5.4, §20.33) so the carrier can back off or fail over to another node.
//! Sans-IO: `now` is passed in.

use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitExceeded {
    CallsPerSecond { retry_after_s: u32 },
    ConcurrentCalls { retry_after_s: u32 },
}

impl LimitExceeded {
    pub fn retry_after_s(self) -> u32 {
        match self {
            LimitExceeded::CallsPerSecond { retry_after_s }
            | LimitExceeded::ConcurrentCalls { retry_after_s } => retry_after_s,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            LimitExceeded::CallsPerSecond { .. } => "trunk.calls_per_second",
            LimitExceeded::ConcurrentCalls { .. } => "trunk.concurrent_calls",
        }
    }
}

#[derive(Debug)]
pub struct TrunkLimits {
    max_calls_per_second: u32,
    max_concurrent_calls: u32,
    /// Token bucket holding up to one second of calls, refilled continuously.
    tokens: f64,
    last_refill: Option<Instant>,
    active_calls: u32,
}

impl TrunkLimits {
    pub fn new(max_calls_per_second: u32, max_concurrent_calls: u32) -> TrunkLimits {
        TrunkLimits {
            max_calls_per_second,
            max_concurrent_calls,
            tokens: f64::from(max_calls_per_second),
            last_refill: None,
            active_calls: 0,
        }
    }

    pub fn active_calls(&self) -> u32 {
        self.active_calls
    }

    /// Admits one new call, counting it as active until [`TrunkLimits::release`].
    pub fn try_admit(&mut self, now: Instant) -> Result<(), LimitExceeded> {
        let cap = f64::from(self.max_calls_per_second);
        if let Some(last) = self.last_refill {
            let elapsed_s = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed_s * cap).min(cap);
        }
        self.last_refill = Some(now);
        if self.active_calls >= self.max_concurrent_calls {
            // A slot frees only when a call ends; calls last minutes, so ask for a longer pause.
            return Err(LimitExceeded::ConcurrentCalls { retry_after_s: 10 });
        }
        if self.tokens < 1.0 {
            return Err(LimitExceeded::CallsPerSecond { retry_after_s: 1 });
        }
        self.tokens -= 1.0;
        self.active_calls += 1;
        Ok(())
    }

    pub fn release(&mut self) {
        self.active_calls = self.active_calls.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn calls_per_second_refill_over_time() {
        let t0 = Instant::now();
        let mut l = TrunkLimits::new(5, 100);
        for _ in 0..5 {
            l.try_admit(t0).unwrap();
        }
        assert_eq!(
            l.try_admit(t0),
            Err(LimitExceeded::CallsPerSecond { retry_after_s: 1 })
        );
        // 200 ms at 5/s refills exactly one token.
        l.try_admit(t0 + Duration::from_millis(200)).unwrap();
        assert!(l.try_admit(t0 + Duration::from_millis(200)).is_err());
        // The bucket never holds more than one second's worth.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..5 {
            l.try_admit(later).unwrap();
        }
        assert!(l.try_admit(later).is_err());
    }

    #[test]
    fn concurrent_calls_free_on_release() {
        let t0 = Instant::now();
        let mut l = TrunkLimits::new(100, 2);
        l.try_admit(t0).unwrap();
        l.try_admit(t0).unwrap();
        let e = l.try_admit(t0).unwrap_err();
        assert_eq!(e, LimitExceeded::ConcurrentCalls { retry_after_s: 10 });
        assert_eq!(e.code(), "trunk.concurrent_calls");
        l.release();
        assert_eq!(l.active_calls(), 1);
        l.try_admit(t0).unwrap();
        l.release();
        l.release();
        l.release();
        assert_eq!(l.active_calls(), 0);
    }
}
