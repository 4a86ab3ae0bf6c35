//! Session timers (RFC 4028) for a dialog we answered as UAS.
//!
//! A carrier that asks for a session timer (`Session-Expires` in its INVITE) expects the
//! session to be refreshed by a re-INVITE or UPDATE before it expires, and the side that did
//! not refresh to hang up when no refresh came (a crashed peer's calls do not bill forever).
//! We let the UAC refresh unless it asked us to; when we are the refresher we send an UPDATE
//! (RFC 3311) at half the interval (§7.4).

use std::time::{Duration, Instant};

/// RFC 4028 §4: the smallest interval a UA may ask for, and our default Min-SE.
pub const MIN_SE_S: u32 = 90;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    Uac,
    Uas,
}

impl Refresher {
    pub fn as_str(self) -> &'static str {
        match self {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        }
    }
}

/// A parsed `Session-Expires` value (RFC 4028 §4: `delta-seconds *(;se-params)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires {
    pub interval_s: u32,
    pub refresher: Option<Refresher>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionTimerError {
    #[error("Session-Expires is not a number of seconds: {0:?}")]
    Malformed(String),
    /// §6: answer 422 with `Min-SE: {min_s}`.
    #[error("Session-Expires {interval_s} s is below our minimum {min_s} s")]
    TooSmall { interval_s: u32, min_s: u32 },
}

impl SessionTimerError {
    pub fn code(&self) -> &'static str {
        match self {
            SessionTimerError::Malformed(_) => "sip.session_expires_malformed",
            SessionTimerError::TooSmall { .. } => "sip.session_interval_too_small",
        }
    }

    pub fn sip_status(&self) -> u16 {
        match self {
            SessionTimerError::Malformed(_) => 400,
            SessionTimerError::TooSmall { .. } => 422,
        }
    }
}

impl SessionExpires {
    pub fn parse(value: &str) -> Result<SessionExpires, SessionTimerError> {
        let mut parts = value.split(';');
        let interval_s = parts
            .next()
            .map(str::trim)
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|v| *v > 0)
            .ok_or_else(|| SessionTimerError::Malformed(value.to_string()))?;
        let refresher = parts.find_map(|p| {
            let (k, v) = p.split_once('=')?;
            if !k.trim().eq_ignore_ascii_case("refresher") {
                return None;
            }
            match v.trim().to_ascii_lowercase().as_str() {
                "uac" => Some(Refresher::Uac),
                "uas" => Some(Refresher::Uas),
                _ => None,
            }
        });
        Ok(SessionExpires {
            interval_s,
            refresher,
        })
    }

    /// The value for our 2xx: the interval and who refreshes.
    pub fn header_value(interval_s: u32, refresher: Refresher) -> String {
        format!("{interval_s};refresher={}", refresher.as_str())
    }
}

/// Checks a request's `Session-Expires` against our minimum (§8.1 / §9).
pub fn check_request(
    value: Option<&str>,
    min_s: u32,
) -> Result<Option<SessionExpires>, SessionTimerError> {
    let Some(value) = value else { return Ok(None) };
    let se = SessionExpires::parse(value)?;
    if se.interval_s < min_s {
        return Err(SessionTimerError::TooSmall {
            interval_s: se.interval_s,
            min_s,
        });
    }
    Ok(Some(se))
}

/// What the dialog owner must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionTimerAction {
    /// We are the refresher: send a refresh (UPDATE) now.
    SendRefresh,
    /// No refresh came in time: end the session with a BYE (§10).
    Expired,
}

/// The running timer of one dialog.
#[derive(Debug, Clone)]
pub struct SessionTimer {
    interval: Duration,
    refresher: Refresher,
    refreshed_at: Instant,
    refresh_sent: bool,
}

impl SessionTimer {
    /// Starts at `now` (the 2xx was sent) with the negotiated interval. The UAS (us) takes the
    /// refresher role only if the UAC asked for it (§9: we then must).
    pub fn new(now: Instant, requested: SessionExpires) -> SessionTimer {
        SessionTimer {
            interval: Duration::from_secs(u64::from(requested.interval_s)),
            refresher: requested.refresher.unwrap_or(Refresher::Uac),
            refreshed_at: now,
            refresh_sent: false,
        }
    }

    pub fn refresher(&self) -> Refresher {
        self.refresher
    }

    pub fn interval_s(&self) -> u32 {
        u32::try_from(self.interval.as_secs()).unwrap_or(u32::MAX)
    }

    /// A refresh succeeded (a re-INVITE/UPDATE from the peer, or a 2xx to ours).
    pub fn refreshed(&mut self, now: Instant, interval_s: Option<u32>) {
        if let Some(s) = interval_s {
            self.interval = Duration::from_secs(u64::from(s));
        }
        self.refreshed_at = now;
        self.refresh_sent = false;
    }

    pub fn poll_timeout(&self) -> Instant {
        match self.refresher {
            // §7.4: the refresher refreshes at half the interval.
            Refresher::Uas if !self.refresh_sent => self.refreshed_at + self.interval / 2,
            _ => self.expiry(),
        }
    }

    /// §10: the side that does not refresh sends BYE "at least the minimum of 32 seconds and
    /// one third of the session interval" before expiry — i.e. it waits that long past the
    /// refresher's deadline before deciding the session is dead.
    fn expiry(&self) -> Instant {
        let margin = (self.interval / 3).min(Duration::from_secs(32));
        self.refreshed_at + self.interval - margin
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Option<SessionTimerAction> {
        if now >= self.expiry() {
            return Some(SessionTimerAction::Expired);
        }
        if self.refresher == Refresher::Uas
            && !self.refresh_sent
            && now >= self.refreshed_at + self.interval / 2
        {
            self.refresh_sent = true;
            return Some(SessionTimerAction::SendRefresh);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks_the_header() {
        assert_eq!(
            SessionExpires::parse("1800;refresher=uac"),
            Ok(SessionExpires {
                interval_s: 1800,
                refresher: Some(Refresher::Uac)
            })
        );
        assert_eq!(
            SessionExpires::parse(" 600 ; Refresher = UAS "),
            Ok(SessionExpires {
                interval_s: 600,
                refresher: Some(Refresher::Uas)
            })
        );
        assert_eq!(SessionExpires::parse("900").unwrap().refresher, None);
        assert!(matches!(
            SessionExpires::parse("soon"),
            Err(SessionTimerError::Malformed(_))
        ));
        assert!(matches!(
            SessionExpires::parse("0"),
            Err(SessionTimerError::Malformed(_))
        ));
        let e = check_request(Some("60"), MIN_SE_S).unwrap_err();
        assert_eq!(e.sip_status(), 422);
        assert_eq!(check_request(None, MIN_SE_S), Ok(None));
        assert_eq!(
            SessionExpires::header_value(1800, Refresher::Uac),
            "1800;refresher=uac"
        );
    }

    #[test]
    fn uac_refresher_missing_refresh_expires_before_the_interval() {
        let t0 = Instant::now();
        let mut t = SessionTimer::new(
            t0,
            SessionExpires {
                interval_s: 1800,
                refresher: None,
            },
        );
        assert_eq!(t.refresher(), Refresher::Uac);
        // 1800 s interval: margin min(32 s, 600 s) = 32 s.
        assert_eq!(t.poll_timeout(), t0 + Duration::from_secs(1768));
        assert_eq!(t.handle_timeout(t0 + Duration::from_secs(1767)), None);
        t.refreshed(t0 + Duration::from_secs(900), None);
        assert_eq!(t.poll_timeout(), t0 + Duration::from_secs(900 + 1768));
        assert_eq!(
            t.handle_timeout(t0 + Duration::from_secs(2668)),
            Some(SessionTimerAction::Expired)
        );
    }

    #[test]
    fn uas_refresher_refreshes_at_half_then_expires_without_answer() {
        let t0 = Instant::now();
        let mut t = SessionTimer::new(
            t0,
            SessionExpires {
                interval_s: 90,
                refresher: Some(Refresher::Uas),
            },
        );
        assert_eq!(t.poll_timeout(), t0 + Duration::from_secs(45));
        assert_eq!(
            t.handle_timeout(t0 + Duration::from_secs(45)),
            Some(SessionTimerAction::SendRefresh)
        );
        // Short interval: the margin is a third (30 s), not 32 s.
        assert_eq!(t.poll_timeout(), t0 + Duration::from_secs(60));
        assert_eq!(t.handle_timeout(t0 + Duration::from_secs(50)), None);
        t.refreshed(t0 + Duration::from_secs(46), Some(120));
        assert_eq!(t.poll_timeout(), t0 + Duration::from_secs(46 + 60));
        assert_eq!(
            t.handle_timeout(t0 + Duration::from_secs(46 + 60)),
            Some(SessionTimerAction::SendRefresh)
        );
        // 120 s interval: margin min(40 s, 32 s) = 32 s, so expiry at 46 + 88.
        assert_eq!(t.handle_timeout(t0 + Duration::from_secs(46 + 87)), None);
        assert_eq!(
            t.handle_timeout(t0 + Duration::from_secs(46 + 88)),
            Some(SessionTimerAction::Expired)
        );
    }
}
