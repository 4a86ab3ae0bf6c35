//! Why a call or meet was missed. Shown to managers and admins only; customers see an ended meet.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissedReason {
    /// The caller hung up (CANCEL) while it rang.
    CallerCancelled,
    /// Nobody answered before the ring timeout (at most 120 s).
    NoAnswer,
    /// Every manager who was rung declined.
    Declined,
    /// No manager was eligible: seat, online, not do-not-disturb, not in a meet, not ringing.
    NoAvailableManager,
    /// The manager went offline while it rang (meets).
    ManagerOffline,
}

impl MissedReason {
    pub const ALL: &'static [MissedReason] = &[
        MissedReason::CallerCancelled,
        MissedReason::NoAnswer,
        MissedReason::Declined,
        MissedReason::NoAvailableManager,
        MissedReason::ManagerOffline,
    ];

    /// The stable code stored in the database and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            MissedReason::CallerCancelled => "caller_cancelled",
            MissedReason::NoAnswer => "no_answer",
            MissedReason::Declined => "declined",
            MissedReason::NoAvailableManager => "no_available_manager",
            MissedReason::ManagerOffline => "manager_offline",
        }
    }

    pub fn parse(code: &str) -> Option<MissedReason> {
        MissedReason::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == code)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown missed reason {0:?}")]
pub struct UnknownMissedReason(pub String);

impl std::str::FromStr for MissedReason {
    type Err = UnknownMissedReason;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MissedReason::parse(s).ok_or_else(|| UnknownMissedReason(s.to_string()))
    }
}

impl std::fmt::Display for MissedReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_match_serde() {
        for &r in MissedReason::ALL {
            assert_eq!(MissedReason::parse(r.as_str()), Some(r));
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
        }
        assert_eq!(MissedReason::parse("nope"), None);
    }
}
