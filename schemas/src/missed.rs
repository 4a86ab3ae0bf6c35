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
    pub const ALL: [MissedReason; 5] = [
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
        MissedReason::ALL.into_iter().find(|r| r.as_str() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_match_serde() {
        for r in MissedReason::ALL {
            assert_eq!(MissedReason::parse(r.as_str()), Some(r));
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
        }
        assert_eq!(MissedReason::parse("nope"), None);
    }
}
