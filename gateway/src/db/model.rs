//! Plain row structs and the enums behind the schema's CHECK constraints.
//!
//! The enums' `as_str()` values are exactly the strings the CHECK constraints in
//! `schemas/migrations/0001_initial.sql` accept; keep the two in step.

use std::fmt;
use std::str::FromStr;

use sqlx::any::AnyRow;
use sqlx::Row;

use super::DbError;

/// A value that is not one of an enum's allowed strings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} value {value:?}")]
pub struct UnknownValue {
    pub kind: &'static str,
    pub value: String,
}

macro_rules! str_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The string stored in the database (and used in the API).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue { kind: stringify!($name), value: s.to_owned() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

str_enum!(
    /// The channel's plan; phone and meets need `Paid`.
    Plan { Free => "free", Paid => "paid" }
);
str_enum!(
    /// Language hint for speech-to-text.
    TranscriptionLanguage { Auto => "auto", Ko => "ko", En => "en" }
);
str_enum!(Role { Manager => "manager", Admin => "admin" });
str_enum!(Presence { Online => "online", Offline => "offline" });
str_enum!(
    /// Where a consultation came in. Everything but `Phone`, `Web` and `Email` is an external
    /// messenger, whose consultations cannot hold meets.
    Source {
        Phone => "phone",
        Web => "web",
        Instagram => "instagram",
        Line => "line",
        Kakao => "kakao",
        Facebook => "facebook",
        Whatsapp => "whatsapp",
        Telegram => "telegram",
        Email => "email",
    }
);
str_enum!(Classification { Call => "call", Chat => "chat" });
str_enum!(ConsultationState { Open => "open", Closed => "closed", Missed => "missed" });
/// Why a call or meet was missed; rows of the `missed_reasons` table. One definition for the
/// database, the API and the WebSocket protocol.
pub use schemas::missed::MissedReason;

str_enum!(MeetKind { Phone => "phone", Voice => "voice", Video => "video" });
str_enum!(MeetScope { Customer => "customer", Internal => "internal", Team => "team" });
str_enum!(Direction { Inbound => "inbound", Outbound => "outbound" });
str_enum!(MeetState { Ringing => "ringing", Active => "active", Ended => "ended", Missed => "missed" });

impl Source {
    /// External messengers (Instagram, LINE, Kakao, ...) cannot hold meets (product rule).
    pub fn is_external_messenger(self) -> bool {
        !matches!(self, Source::Phone | Source::Web | Source::Email)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub id: String,
    pub name: String,
    pub plan: Plan,
    pub business_verified: bool,
    pub meet_voice_video_enabled: bool,
    /// Charge per started minute of an answered call, in minor units of `currency`.
    pub call_rate_per_minute_minor: i64,
    pub currency: String,
    pub ring_all_phone_team: bool,
    pub transcription_language: TranscriptionLanguage,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumber {
    pub id: String,
    pub channel_id: String,
    pub number_e164: String,
    pub label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    pub id: String,
    pub channel_id: String,
    pub name: String,
    /// Stored comma-separated; empty means "no source address allowed".
    pub allowed_cidrs: Vec<String>,
    /// `None` = the trunk is authenticated by source address only.
    pub auth_username: Option<String>,
    pub auth_password: Option<String>,
    pub auth_realm: Option<String>,
    pub max_calls_per_second: i64,
    pub max_concurrent_calls: i64,
    pub outbound_proxy: Option<String>,
    pub registrar_uri: Option<String>,
    pub register_username: Option<String>,
    pub register_password: Option<String>,
    pub register_expires_s: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manager {
    pub id: String,
    pub channel_id: String,
    pub name: String,
    pub token_sha256: String,
    pub role: Role,
    pub operator_seat: bool,
    pub presence: Presence,
    pub do_not_disturb: bool,
    pub ringing_consultation_id: Option<String>,
    pub last_assigned_at_ms: Option<i64>,
    pub created_at_ms: i64,
}

/// What the configuration file says about a manager. Seeding never touches the runtime
/// columns (presence, DND, ringing, fairness), so a restart does not reset them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerSeed {
    pub id: String,
    pub channel_id: String,
    pub name: String,
    pub token_sha256: String,
    pub role: Role,
    pub operator_seat: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    pub id: String,
    pub channel_id: String,
    pub name: String,
    pub phone_team: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub id: String,
    pub channel_id: String,
    pub name: Option<String>,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consultation {
    pub id: String,
    pub channel_id: String,
    pub customer_id: String,
    pub source: Source,
    pub classification: Classification,
    pub assignee_manager_id: Option<String>,
    pub state: ConsultationState,
    pub chat_input_open: bool,
    pub missed_reason: Option<MissedReason>,
    pub created_at_ms: i64,
    pub closed_at_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meet {
    pub id: String,
    pub consultation_id: String,
    pub kind: MeetKind,
    pub scope: MeetScope,
    pub direction: Direction,
    pub state: MeetState,
    pub missed_reason: Option<MissedReason>,
    pub started_at_ms: i64,
    pub answered_at_ms: Option<i64>,
    pub ended_at_ms: Option<i64>,
    pub ended_by: Option<String>,
}

/// A call detail record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    pub id: String,
    pub channel_id: String,
    pub consultation_id: String,
    pub meet_id: String,
    pub trunk_id: String,
    pub direction: Direction,
    pub sip_call_id: String,
    pub from_number: String,
    pub to_number: String,
    pub started_at_ms: i64,
    pub answered_at_ms: Option<i64>,
    pub ended_at_ms: Option<i64>,
    pub billable_seconds: i64,
    pub charge_minor: i64,
    pub currency: String,
    pub end_reason: Option<String>,
    pub ended_by: Option<String>,
    pub missed_reason: Option<MissedReason>,
}

// ---- decoding helpers -------------------------------------------------------------------
// Booleans are BIGINT 0/1 and enums TEXT on both backends; these turn them back into Rust
// types and report a bad value with its column instead of panicking.

pub(crate) fn get_bool(row: &AnyRow, col: &'static str) -> Result<bool, DbError> {
    Ok(row.try_get::<i64, _>(col)? != 0)
}

pub(crate) fn get_enum<T: FromStr>(row: &AnyRow, col: &'static str) -> Result<T, DbError> {
    let s: String = row.try_get(col)?;
    s.parse().map_err(|_| DbError::InvalidValue {
        column: col,
        value: s,
    })
}

pub(crate) fn get_opt_enum<T: FromStr>(
    row: &AnyRow,
    col: &'static str,
) -> Result<Option<T>, DbError> {
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| {
        s.parse().map_err(|_| DbError::InvalidValue {
            column: col,
            value: s,
        })
    })
    .transpose()
}

/// Booleans are bound as 0/1 BIGINT: binding a `bool` through `Any` would be a PostgreSQL
/// `boolean`, which a BIGINT column does not accept.
pub(crate) fn flag(b: bool) -> i64 {
    i64::from(b)
}

impl Channel {
    pub(crate) const COLUMNS: &'static str = "id, name, plan, business_verified, \
        meet_voice_video_enabled, call_rate_per_minute_minor, currency, ring_all_phone_team, \
        transcription_language, created_at_ms";

    pub(crate) fn from_row(row: &AnyRow) -> Result<Self, DbError> {
        Ok(Channel {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            plan: get_enum(row, "plan")?,
            business_verified: get_bool(row, "business_verified")?,
            meet_voice_video_enabled: get_bool(row, "meet_voice_video_enabled")?,
            call_rate_per_minute_minor: row.try_get("call_rate_per_minute_minor")?,
            currency: row.try_get("currency")?,
            ring_all_phone_team: get_bool(row, "ring_all_phone_team")?,
            transcription_language: get_enum(row, "transcription_language")?,
            created_at_ms: row.try_get("created_at_ms")?,
        })
    }
}

impl PhoneNumber {
    pub(crate) const COLUMNS: &'static str = "id, channel_id, number_e164, label";

    pub(crate) fn from_row(row: &AnyRow) -> Result<Self, DbError> {
        Ok(PhoneNumber {
            id: row.try_get("id")?,
            channel_id: row.try_get("channel_id")?,
            number_e164: row.try_get("number_e164")?,
            label: row.try_get("label")?,
        })
    }
}

impl Trunk {
    pub(crate) const COLUMNS: &'static str = "id, channel_id, name, allowed_cidrs, \
        auth_username, auth_password, auth_realm, max_calls_per_second, max_concurrent_calls, \
        outbound_proxy, registrar_uri, register_username, register_password, register_expires_s";

    pub(crate) fn from_row(row: &AnyRow) -> Result<Self, DbError> {
        let cidrs: String = row.try_get("allowed_cidrs")?;
        Ok(Trunk {
            id: row.try_get("id")?,
            channel_id: row.try_get("channel_id")?,
            name: row.try_get("name")?,
            allowed_cidrs: split_list(&cidrs),
            auth_username: row.try_get("auth_username")?,
            auth_password: row.try_get("auth_password")?,
            auth_realm: row.try_get("auth_realm")?,
            max_calls_per_second: row.try_get("max_calls_per_second")?,
            max_concurrent_calls: row.try_get("max_concurrent_calls")?,
            outbound_proxy: row.try_get("outbound_proxy")?,
            registrar_uri: row.try_get("registrar_uri")?,
            register_username: row.try_get("register_username")?,
            register_password: row.try_get("register_password")?,
            register_expires_s: row.try_get("register_expires_s")?,
        })
    }
}

/// `"10.0.0.0/8, 192.0.2.1/32"` -> `["10.0.0.0/8", "192.0.2.1/32"]`; blanks dropped.
pub(crate) fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Manager {
    pub(crate) const COLUMNS: &'static str = "id, channel_id, name, token_sha256, role, \
        operator_seat, presence, do_not_disturb, ringing_consultation_id, last_assigned_at_ms, \
        created_at_ms";

    pub(crate) fn from_row(row: &AnyRow) -> Result<Self, DbError> {
        Ok(Manager {
            id: row.try_get("id")?,
            channel_id: row.try_get("channel_id")?,
            name: row.try_get("name")?,
            token_sha256: row.try_get("token_sha256")?,
            role: get_enum(row, "role")?,
            operator_seat: get_bool(row, "operator_seat")?,
            presence: get_enum(row, "presence")?,
            do_not_disturb: get_bool(row, "do_not_disturb")?,
            ringing_consultation_id: row.try_get("ringing_consultation_id")?,
            last_assigned_at_ms: row.try_get("last_assigned_at_ms")?,
            created_at_ms: row.try_get("created_at_ms")?,
        })
    }
}

impl Customer {
    pub(crate) const COLUMNS: &'static str = "id, channel_id, name, created_at_ms";

    pub(crate) fn from_row(row: &AnyRow) -> Result<Self, DbError> {
        Ok(Customer {
            id: row.try_get("id")?,
            channel_id: row.try_get("channel_id")?,
            name: row.try_get("name")?,
            created_at_ms: row.try_get("created_at_ms")?,
        })
    }
}

impl Consultation {
    pub(crate) const COLUMNS: &'static str = "id, channel_id, customer_id, source, \
        classification, assignee_manager_id, state, chat_input_open, missed_reason, \
        created_at_ms, closed_at_ms";

    pub(crate) fn from_row(row: &AnyRow) -> Result<Self, DbError> {
        Ok(Consultation {
            id: row.try_get("id")?,
            channel_id: row.try_get("channel_id")?,
            customer_id: row.try_get("customer_id")?,
            source: get_enum(row, "source")?,
            classification: get_enum(row, "classification")?,
            assignee_manager_id: row.try_get("assignee_manager_id")?,
            state: get_enum(row, "state")?,
            chat_input_open: get_bool(row, "chat_input_open")?,
            missed_reason: get_opt_enum(row, "missed_reason")?,
            created_at_ms: row.try_get("created_at_ms")?,
            closed_at_ms: row.try_get("closed_at_ms")?,
        })
    }
}

impl Meet {
    pub(crate) const COLUMNS: &'static str = "id, consultation_id, kind, scope, direction, \
        state, missed_reason, started_at_ms, answered_at_ms, ended_at_ms, ended_by";

    pub(crate) fn from_row(row: &AnyRow) -> Result<Self, DbError> {
        Ok(Meet {
            id: row.try_get("id")?,
            consultation_id: row.try_get("consultation_id")?,
            kind: get_enum(row, "kind")?,
            scope: get_enum(row, "scope")?,
            direction: get_enum(row, "direction")?,
            state: get_enum(row, "state")?,
            missed_reason: get_opt_enum(row, "missed_reason")?,
            started_at_ms: row.try_get("started_at_ms")?,
            answered_at_ms: row.try_get("answered_at_ms")?,
            ended_at_ms: row.try_get("ended_at_ms")?,
            ended_by: row.try_get("ended_by")?,
        })
    }
}

impl CallRecord {
    pub(crate) const COLUMNS: &'static str = "id, channel_id, consultation_id, meet_id, \
        trunk_id, direction, sip_call_id, from_number, to_number, started_at_ms, answered_at_ms, \
        ended_at_ms, billable_seconds, charge_minor, currency, end_reason, ended_by, missed_reason";

    pub(crate) fn from_row(row: &AnyRow) -> Result<Self, DbError> {
        Ok(CallRecord {
            id: row.try_get("id")?,
            channel_id: row.try_get("channel_id")?,
            consultation_id: row.try_get("consultation_id")?,
            meet_id: row.try_get("meet_id")?,
            trunk_id: row.try_get("trunk_id")?,
            direction: get_enum(row, "direction")?,
            sip_call_id: row.try_get("sip_call_id")?,
            from_number: row.try_get("from_number")?,
            to_number: row.try_get("to_number")?,
            started_at_ms: row.try_get("started_at_ms")?,
            answered_at_ms: row.try_get("answered_at_ms")?,
            ended_at_ms: row.try_get("ended_at_ms")?,
            billable_seconds: row.try_get("billable_seconds")?,
            charge_minor: row.try_get("charge_minor")?,
            currency: row.try_get("currency")?,
            end_reason: row.try_get("end_reason")?,
            ended_by: row.try_get("ended_by")?,
            missed_reason: get_opt_enum(row, "missed_reason")?,
        })
    }
}
