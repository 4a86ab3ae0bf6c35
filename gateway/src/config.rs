//! The gateway's configuration file (TOML), validated at start.
//!
//! Every error names the field it is about (`channels[0].trunks[0].allowed_cidrs[1]: ...`) so an
//! operator can fix a bad file without reading code. Secrets (tokens, trunk passwords, the
//! database URL) can come from the environment instead of the file.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::net::Cidr;
use crate::phone_number::{normalize_e164, PhoneNumberError};

/// The longest a call may ring: a fixed product rule (PRODUCT.md, "Phone").
pub const MAX_RING_TIMEOUT_MS: u64 = 120_000;
/// An invite into a call lasts at most an hour.
pub const MAX_MEET_INVITE_TIMEOUT_MS: u64 = 3_600_000;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: String, message: String },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// The file as written. Unknown fields are errors so a typo is never silently ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    sip: RawSip,
    http: RawHttp,
    database: RawDatabase,
    #[serde(default)]
    calls: RawCalls,
    #[serde(default)]
    media: RawMedia,
    #[serde(default)]
    recordings: RawRecordings,
    #[serde(default)]
    channels: Vec<RawChannel>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecordings {
    #[serde(default = "default_recordings_dir")]
    dir: String,
    s3: Option<RawS3>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawS3 {
    bucket: String,
    /// Unset: AWS itself (by region).
    endpoint: Option<String>,
    #[serde(default = "default_s3_region")]
    region: String,
    access_key_id: Option<String>,
    access_key_id_env: Option<String>,
    secret_access_key: Option<String>,
    secret_access_key_env: Option<String>,
}

fn default_s3_region() -> String {
    "us-east-1".to_string()
}

impl Default for RawRecordings {
    fn default() -> Self {
        RawRecordings {
            dir: default_recordings_dir(),
            s3: None,
        }
    }
}

fn default_recordings_dir() -> String {
    "var/recordings".to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMedia {
    #[serde(default = "default_rtp_port_min")]
    rtp_port_min: u16,
    #[serde(default = "default_rtp_port_max")]
    rtp_port_max: u16,
    #[serde(default = "default_media_bind")]
    bind_address: String,
    advertised_address: Option<String>,
    #[serde(default = "default_media_timeout_ms")]
    inactivity_timeout_ms: u64,
}

impl Default for RawMedia {
    fn default() -> Self {
        RawMedia {
            rtp_port_min: default_rtp_port_min(),
            rtp_port_max: default_rtp_port_max(),
            bind_address: default_media_bind(),
            advertised_address: None,
            inactivity_timeout_ms: default_media_timeout_ms(),
        }
    }
}

fn default_rtp_port_min() -> u16 {
    20_000
}

fn default_rtp_port_max() -> u16 {
    29_999
}

fn default_media_bind() -> String {
    "127.0.0.1".to_string()
}

fn default_media_timeout_ms() -> u64 {
    30_000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSip {
    udp_listen: Option<String>,
    tcp_listen: Option<String>,
    advertised_host: Option<String>,
    #[serde(default = "default_t1_ms")]
    t1_ms: u64,
    #[serde(default)]
    digest_secret: Option<String>,
    #[serde(default)]
    digest_secret_env: Option<String>,
}

fn default_t1_ms() -> u64 {
    500
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: Option<String>,
    url_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalls {
    #[serde(default = "default_ring_timeout_ms")]
    ring_timeout_ms: u64,
    #[serde(default = "default_meet_invite_timeout_ms")]
    meet_invite_timeout_ms: u64,
}

impl Default for RawCalls {
    fn default() -> Self {
        RawCalls {
            ring_timeout_ms: default_ring_timeout_ms(),
            meet_invite_timeout_ms: default_meet_invite_timeout_ms(),
        }
    }
}

fn default_meet_invite_timeout_ms() -> u64 {
    60_000
}

fn default_ring_timeout_ms() -> u64 {
    MAX_RING_TIMEOUT_MS
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    id: String,
    name: String,
    plan: String,
    business_verified: bool,
    #[serde(default)]
    meet_voice_video_enabled: bool,
    #[serde(default)]
    call_rate_per_minute_minor: i64,
    #[serde(default = "default_currency")]
    currency: String,
    #[serde(default = "default_language")]
    transcription_language: String,
    #[serde(default)]
    numbers: Vec<String>,
    #[serde(default)]
    trunks: Vec<RawTrunk>,
    #[serde(default)]
    managers: Vec<RawManager>,
    webhook: Option<RawWebhook>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: String,
    secret: Option<String>,
    secret_env: Option<String>,
    #[serde(default = "default_webhook_retry_ms")]
    first_retry_ms: u64,
}

fn default_webhook_retry_ms() -> u64 {
    5_000
}

fn default_currency() -> String {
    "KRW".to_string()
}

fn default_language() -> String {
    "auto".to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrunk {
    id: String,
    name: Option<String>,
    allowed_cidrs: Vec<String>,
    #[serde(default = "default_max_cps")]
    max_calls_per_second: u32,
    #[serde(default = "default_max_concurrent")]
    max_concurrent_calls: u32,
    digest: Option<RawDigest>,
    /// Outgoing calls through this trunk (manager calls a customer).
    outbound: Option<RawOutbound>,
    /// REGISTER the channel's numbers to the carrier (RFC 3261 §10).
    register: Option<RawRegister>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutbound {
    /// The carrier's outbound proxy (UDP `ip:port`).
    proxy: String,
    /// Host part of the Request-URI and To; the proxy's IP when unset.
    domain: Option<String>,
    /// Caller ID: one of the channel's numbers; the channel's first number when unset.
    from_number: Option<String>,
    /// `"national"` (`01012345678`), `"e164"` (`+821012345678`) or `"e164_no_plus"`.
    #[serde(default = "default_number_format")]
    number_format: String,
    #[serde(default = "default_ring_timeout_ms")]
    ring_timeout_ms: u64,
    /// Credentials for the carrier's 401/407 challenges (RFC 3261 §22.2).
    auth_username: Option<String>,
    auth_password: Option<String>,
    auth_password_env: Option<String>,
}

fn default_number_format() -> String {
    "national".to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegister {
    #[serde(default = "default_true")]
    enabled: bool,
    /// Registrar address (UDP `ip:port`); the outbound proxy when unset.
    registrar: Option<String>,
    /// Requested registration lifetime in seconds (RFC 3261 §10.2.1.1).
    #[serde(default = "default_register_expires_s")]
    expires_s: u32,
    /// First retry delay after a failure; doubles up to `retry_max_s`.
    #[serde(default = "default_retry_min_s")]
    retry_min_s: u64,
    #[serde(default = "default_retry_max_s")]
    retry_max_s: u64,
}

fn default_true() -> bool {
    true
}

fn default_register_expires_s() -> u32 {
    3600
}

fn default_retry_min_s() -> u64 {
    30
}

fn default_retry_max_s() -> u64 {
    1800
}

fn default_max_cps() -> u32 {
    100
}

fn default_max_concurrent() -> u32 {
    500
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDigest {
    username: String,
    password: Option<String>,
    password_env: Option<String>,
    realm: Option<String>,
    #[serde(default = "default_algorithms")]
    algorithms: Vec<String>,
}

fn default_algorithms() -> Vec<String> {
    vec!["SHA-256".to_string(), "MD5".to_string()]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManager {
    id: String,
    name: String,
    token: Option<String>,
    token_env: Option<String>,
    #[serde(default = "default_role")]
    role: String,
    #[serde(default)]
    operator_seat: bool,
}

fn default_role() -> String {
    "manager".to_string()
}

/// The validated configuration the gateway runs on.
#[derive(Debug, Clone)]
pub struct Config {
    pub sip: SipConfig,
    pub http_listen: SocketAddr,
    pub database_url: String,
    pub ring_timeout: Duration,
    /// How long a manager invited into a call has to join before the invite lapses.
    pub meet_invite_timeout: Duration,
    pub media: MediaConfig,
    pub recordings: RecordingsConfig,
    pub channels: Vec<ChannelConfig>,
}

#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Even ports from this range carry RTP, the next odd one RTCP.
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
    pub bind_address: std::net::IpAddr,
    /// The address written in SDP (`c=`); the bind address when unset.
    pub advertised_address: std::net::IpAddr,
    /// No RTP from the carrier for this long ends the call (BYE, reason `media_timeout`).
    pub inactivity_timeout: Duration,
}

/// Where phone-call recordings go.
#[derive(Debug, Clone)]
pub struct RecordingsConfig {
    /// Local storage: finished recordings under `<dir>/<channel>/`, calls in progress in
    /// `<dir>/spool/` (also with S3: calls are written locally first).
    pub dir: std::path::PathBuf,
    /// Finished recordings go to this S3-compatible bucket instead of `dir`.
    pub s3: Option<S3Config>,
}

#[derive(Debug, Clone)]
pub struct S3Config {
    pub bucket: String,
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

#[derive(Debug, Clone)]
pub struct SipConfig {
    pub udp_listen: Option<SocketAddr>,
    pub tcp_listen: Option<SocketAddr>,
    /// Host written into Via/Contact; defaults to the listen address.
    pub advertised_host: Option<String>,
    pub t1: Duration,
    /// Key for stateless digest nonces; random per start when not configured.
    pub digest_secret: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct ChannelConfig {
    pub id: String,
    pub name: String,
    pub plan_paid: bool,
    pub business_verified: bool,
    pub meet_voice_video_enabled: bool,
    pub call_rate_per_minute_minor: i64,
    pub currency: String,
    pub transcription_language: String,
    /// E.164 numbers owned by the channel.
    pub numbers: Vec<String>,
    pub trunks: Vec<TrunkConfig>,
    pub managers: Vec<ManagerConfig>,
    /// Where the channel's events (`recording.ready`, `transcript.ready`, `summary.ready`)
    /// are POSTed.
    pub webhook: Option<WebhookConfig>,
}

/// A channel's webhook endpoint. Deliveries are signed per Standard Webhooks: HMAC-SHA256 of
/// `id.timestamp.body` with `secret`.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: String,
    pub secret: Vec<u8>,
    /// The wait before the first retry; each next one waits 6 times longer (at most 4 h).
    pub first_retry: Duration,
}

#[derive(Debug, Clone)]
pub struct TrunkConfig {
    pub id: String,
    pub name: String,
    pub allowed_cidrs: Vec<Cidr>,
    pub max_calls_per_second: u32,
    pub max_concurrent_calls: u32,
    pub digest: Option<DigestConfig>,
    pub outbound: Option<OutboundConfig>,
    pub register: Option<RegisterConfig>,
}

/// How numbers are written in the Request-URI, To and From of outgoing requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberFormat {
    /// Korean national form with the trunk prefix: `01012345678`.
    National,
    /// `+821012345678`.
    E164,
    /// `821012345678`.
    E164NoPlus,
}

impl NumberFormat {
    /// Writes an E.164 number (`+82…`) in this format.
    pub fn format(self, e164: &str) -> String {
        let digits = e164.trim_start_matches('+');
        match self {
            NumberFormat::E164 => format!("+{digits}"),
            NumberFormat::E164NoPlus => digits.to_string(),
            NumberFormat::National => match digits.strip_prefix("82") {
                Some(rest) => format!("0{rest}"),
                // Not a Korean number: international form is the only unambiguous one.
                None => format!("+{digits}"),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct OutboundConfig {
    pub proxy: SocketAddr,
    pub domain: String,
    /// E.164 caller ID.
    pub from_number: String,
    pub number_format: NumberFormat,
    /// Ringing longer than this is cancelled (CANCEL, §9.1): at most 120 s.
    pub ring_timeout: Duration,
    /// (username, password) for digest challenges.
    pub credentials: Option<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct RegisterConfig {
    pub registrar: SocketAddr,
    /// Host of the address-of-record (`sip:<number>@<domain>`) and the Request-URI.
    pub domain: String,
    /// E.164 numbers registered (the channel's numbers).
    pub numbers: Vec<String>,
    pub expires_s: u32,
    pub retry_min: Duration,
    pub retry_max: Duration,
    pub credentials: Option<(String, String)>,
    pub number_format: NumberFormat,
}

#[derive(Debug, Clone)]
pub struct DigestConfig {
    pub username: String,
    pub password: String,
    pub realm: String,
    /// In the order challenges are offered (RFC 8760 §2.4: strongest first).
    pub algorithms: Vec<sip::digest::Algorithm>,
}

#[derive(Debug, Clone)]
pub struct ManagerConfig {
    pub id: String,
    pub name: String,
    pub token: String,
    pub admin: bool,
    pub operator_seat: bool,
}

/// Reads an environment variable for a secret, naming the field when it is missing.
fn secret_from_env(field: &str, var: &str) -> Result<String, ConfigError> {
    std::env::var(var).map_err(|_| invalid(field, format!("environment variable {var} is not set")))
}

/// Exactly one of an inline value and an `_env` indirection.
fn one_secret(
    field: &str,
    inline: Option<String>,
    env: Option<String>,
) -> Result<String, ConfigError> {
    match (inline, env) {
        (Some(v), None) => Ok(v),
        (None, Some(var)) => secret_from_env(&format!("{field}_env"), &var),
        (Some(_), Some(_)) => Err(invalid(
            field,
            format!("give {field} or {field}_env, not both"),
        )),
        (None, None) => Err(invalid(
            field,
            format!("missing: give {field} or {field}_env"),
        )),
    }
}

fn parse_addr(field: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value
        .parse()
        .map_err(|_| invalid(field, format!("not an address:port: {value:?}")))
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text).map_err(|e| match e {
            ConfigError::Syntax { message, .. } => ConfigError::Syntax {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: "<config>".to_string(),
            message: e.to_string(),
        })?;
        Config::validate(raw)
    }

    fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
        let udp_listen = raw
            .sip
            .udp_listen
            .as_deref()
            .map(|v| parse_addr("sip.udp_listen", v))
            .transpose()?;
        let tcp_listen = raw
            .sip
            .tcp_listen
            .as_deref()
            .map(|v| parse_addr("sip.tcp_listen", v))
            .transpose()?;
        if udp_listen.is_none() && tcp_listen.is_none() {
            return Err(invalid(
                "sip",
                "set sip.udp_listen and/or sip.tcp_listen: the gateway needs a SIP transport",
            ));
        }
        if !(50..=10_000).contains(&raw.sip.t1_ms) {
            return Err(invalid(
                "sip.t1_ms",
                "must be between 50 and 10000 (RFC 3261 default 500)",
            ));
        }
        let digest_secret = match (raw.sip.digest_secret, raw.sip.digest_secret_env) {
            (None, None) => None,
            (inline, env) => Some(one_secret("sip.digest_secret", inline, env)?.into_bytes()),
        };
        let http_listen = parse_addr("http.listen", &raw.http.listen)?;
        let database_url = match (raw.database.url, raw.database.url_env) {
            (Some(url), None) => url,
            (inline, env) => one_secret("database.url", inline, env)?,
        };
        if !(database_url.starts_with("sqlite:") || database_url.starts_with("postgres")) {
            return Err(invalid(
                "database.url",
                "must start with sqlite: or postgres:// (postgresql://)",
            ));
        }
        let ring_timeout_ms = raw.calls.ring_timeout_ms;
        if ring_timeout_ms == 0 || ring_timeout_ms > MAX_RING_TIMEOUT_MS {
            return Err(invalid(
                "calls.ring_timeout_ms",
                format!(
                    "must be between 1 and {MAX_RING_TIMEOUT_MS} (ringing lasts at most 120 s)"
                ),
            ));
        }

        let meet_invite_timeout_ms = raw.calls.meet_invite_timeout_ms;
        if meet_invite_timeout_ms == 0 || meet_invite_timeout_ms > MAX_MEET_INVITE_TIMEOUT_MS {
            return Err(invalid(
                "calls.meet_invite_timeout_ms",
                format!("must be between 1 and {MAX_MEET_INVITE_TIMEOUT_MS} (one hour)"),
            ));
        }

        let media = validate_media(raw.media)?;
        if raw.recordings.dir.trim().is_empty() {
            return Err(invalid("recordings.dir", "must not be empty"));
        }
        let s3 = raw
            .recordings
            .s3
            .map(|s3| -> Result<S3Config, ConfigError> {
                if s3.bucket.trim().is_empty() {
                    return Err(invalid("recordings.s3.bucket", "must not be empty"));
                }
                if let Some(e) = &s3.endpoint {
                    if !(e.starts_with("http://") || e.starts_with("https://")) {
                        return Err(invalid(
                            "recordings.s3.endpoint",
                            "must be an http:// or https:// URL",
                        ));
                    }
                }
                Ok(S3Config {
                    access_key_id: one_secret(
                        "recordings.s3.access_key_id",
                        s3.access_key_id,
                        s3.access_key_id_env,
                    )?,
                    secret_access_key: one_secret(
                        "recordings.s3.secret_access_key",
                        s3.secret_access_key,
                        s3.secret_access_key_env,
                    )?,
                    bucket: s3.bucket,
                    endpoint: s3.endpoint,
                    region: s3.region,
                })
            })
            .transpose()?;
        let recordings = RecordingsConfig {
            dir: raw.recordings.dir.into(),
            s3,
        };
        let mut channels = Vec::new();
        let mut seen_numbers = std::collections::HashSet::new();
        let mut seen_tokens = std::collections::HashSet::new();
        for (ci, ch) in raw.channels.into_iter().enumerate() {
            let at = format!("channels[{ci}]");
            if ch.id.trim().is_empty() {
                return Err(invalid(format!("{at}.id"), "must not be empty"));
            }
            let plan_paid = match ch.plan.as_str() {
                "paid" => true,
                "free" => false,
                other => {
                    return Err(invalid(
                        format!("{at}.plan"),
                        format!("must be \"paid\" or \"free\", not {other:?}"),
                    ))
                }
            };
            if ch.call_rate_per_minute_minor < 0 {
                return Err(invalid(
                    format!("{at}.call_rate_per_minute_minor"),
                    "must be >= 0",
                ));
            }
            if !matches!(ch.transcription_language.as_str(), "auto" | "ko" | "en") {
                return Err(invalid(
                    format!("{at}.transcription_language"),
                    "must be \"auto\", \"ko\" or \"en\"",
                ));
            }
            let mut numbers = Vec::new();
            for (ni, n) in ch.numbers.iter().enumerate() {
                let field = format!("{at}.numbers[{ni}]");
                let e164 = normalize_e164(n)
                    .map_err(|e: PhoneNumberError| invalid(&field, e.to_string()))?;
                if !seen_numbers.insert(e164.clone()) {
                    return Err(invalid(field, format!("{n} is configured twice")));
                }
                numbers.push(e164);
            }
            let mut trunks = Vec::new();
            for (ti, t) in ch.trunks.into_iter().enumerate() {
                let tat = format!("{at}.trunks[{ti}]");
                if t.allowed_cidrs.is_empty() {
                    return Err(invalid(
                        format!("{tat}.allowed_cidrs"),
                        "list at least one carrier address or CIDR",
                    ));
                }
                let mut cidrs = Vec::new();
                for (i, c) in t.allowed_cidrs.iter().enumerate() {
                    cidrs.push(c.parse::<Cidr>().map_err(|e| {
                        invalid(format!("{tat}.allowed_cidrs[{i}]"), e.to_string())
                    })?);
                }
                if t.max_calls_per_second == 0 {
                    return Err(invalid(
                        format!("{tat}.max_calls_per_second"),
                        "must be > 0",
                    ));
                }
                if t.max_concurrent_calls == 0 {
                    return Err(invalid(
                        format!("{tat}.max_concurrent_calls"),
                        "must be > 0",
                    ));
                }
                let digest = match t.digest {
                    None => None,
                    Some(d) => {
                        let dat = format!("{tat}.digest");
                        let password =
                            one_secret(&format!("{dat}.password"), d.password, d.password_env)?;
                        let mut algorithms = Vec::new();
                        for (ai, a) in d.algorithms.iter().enumerate() {
                            algorithms.push(sip::digest::Algorithm::parse(a).ok_or_else(|| {
                                invalid(
                                    format!("{dat}.algorithms[{ai}]"),
                                    format!("{a:?} is not \"SHA-256\" or \"MD5\""),
                                )
                            })?);
                        }
                        if algorithms.is_empty() {
                            return Err(invalid(format!("{dat}.algorithms"), "list at least one"));
                        }
                        Some(DigestConfig {
                            username: d.username,
                            password,
                            realm: d.realm.unwrap_or_else(|| ch.id.clone()),
                            algorithms,
                        })
                    }
                };
                let outbound = t
                    .outbound
                    .map(|o| validate_outbound(&format!("{tat}.outbound"), o, &numbers))
                    .transpose()?;
                let register = match t.register {
                    Some(r) if r.enabled => Some(validate_register(
                        &format!("{tat}.register"),
                        r,
                        outbound.as_ref(),
                        &numbers,
                    )?),
                    _ => None,
                };
                trunks.push(TrunkConfig {
                    name: t.name.unwrap_or_else(|| t.id.clone()),
                    id: t.id,
                    allowed_cidrs: cidrs,
                    max_calls_per_second: t.max_calls_per_second,
                    max_concurrent_calls: t.max_concurrent_calls,
                    digest,
                    outbound,
                    register,
                });
            }
            let mut managers = Vec::new();
            for (mi, m) in ch.managers.into_iter().enumerate() {
                let mat = format!("{at}.managers[{mi}]");
                let token = one_secret(&format!("{mat}.token"), m.token, m.token_env)?;
                if token.len() < 8 {
                    return Err(invalid(
                        format!("{mat}.token"),
                        "must be at least 8 characters",
                    ));
                }
                if !seen_tokens.insert(token.clone()) {
                    return Err(invalid(
                        format!("{mat}.token"),
                        "is used by another manager",
                    ));
                }
                let admin = match m.role.as_str() {
                    "manager" => false,
                    "admin" => true,
                    other => {
                        return Err(invalid(
                            format!("{mat}.role"),
                            format!("must be \"manager\" or \"admin\", not {other:?}"),
                        ))
                    }
                };
                managers.push(ManagerConfig {
                    id: m.id,
                    name: m.name,
                    token,
                    admin,
                    operator_seat: m.operator_seat,
                });
            }
            let webhook = ch
                .webhook
                .map(|w| -> Result<WebhookConfig, ConfigError> {
                    let field = format!("{at}.webhook");
                    if !(w.url.starts_with("https://") || w.url.starts_with("http://")) {
                        return Err(invalid(
                            format!("{field}.url"),
                            "must be an http:// or https:// URL",
                        ));
                    }
                    let secret = one_secret(&format!("{field}.secret"), w.secret, w.secret_env)?;
                    if secret.len() < 16 {
                        return Err(invalid(
                            format!("{field}.secret"),
                            "must be at least 16 characters (it signs every delivery)",
                        ));
                    }
                    if w.first_retry_ms == 0 {
                        return Err(invalid(
                            format!("{field}.first_retry_ms"),
                            "must be above 0",
                        ));
                    }
                    Ok(WebhookConfig {
                        url: w.url,
                        secret: secret.into_bytes(),
                        first_retry: Duration::from_millis(w.first_retry_ms),
                    })
                })
                .transpose()?;
            channels.push(ChannelConfig {
                webhook,
                id: ch.id,
                name: ch.name,
                plan_paid,
                business_verified: ch.business_verified,
                meet_voice_video_enabled: ch.meet_voice_video_enabled,
                call_rate_per_minute_minor: ch.call_rate_per_minute_minor,
                currency: ch.currency,
                transcription_language: ch.transcription_language,
                numbers,
                trunks,
                managers,
            });
        }

        Ok(Config {
            sip: SipConfig {
                udp_listen,
                tcp_listen,
                advertised_host: raw.sip.advertised_host,
                t1: Duration::from_millis(raw.sip.t1_ms),
                digest_secret,
            },
            http_listen,
            database_url,
            ring_timeout: Duration::from_millis(ring_timeout_ms),
            meet_invite_timeout: Duration::from_millis(meet_invite_timeout_ms),
            media,
            recordings,
            channels,
        })
    }
}

fn validate_outbound(
    at: &str,
    o: RawOutbound,
    numbers: &[String],
) -> Result<OutboundConfig, ConfigError> {
    let proxy = parse_addr(&format!("{at}.proxy"), &o.proxy)?;
    let from_number = match o.from_number {
        Some(n) => {
            let e164 = normalize_e164(&n)
                .map_err(|e| invalid(format!("{at}.from_number"), e.to_string()))?;
            if !numbers.contains(&e164) {
                return Err(invalid(
                    format!("{at}.from_number"),
                    format!("{n} is not one of the channel's numbers"),
                ));
            }
            e164
        }
        None => numbers.first().cloned().ok_or_else(|| {
            invalid(
                format!("{at}.from_number"),
                "the channel has no number to call from",
            )
        })?,
    };
    let number_format = match o.number_format.as_str() {
        "national" => NumberFormat::National,
        "e164" => NumberFormat::E164,
        "e164_no_plus" => NumberFormat::E164NoPlus,
        other => {
            return Err(invalid(
                format!("{at}.number_format"),
                format!("must be \"national\", \"e164\" or \"e164_no_plus\", not {other:?}"),
            ))
        }
    };
    if o.ring_timeout_ms == 0 || o.ring_timeout_ms > MAX_RING_TIMEOUT_MS {
        return Err(invalid(
            format!("{at}.ring_timeout_ms"),
            format!("must be between 1 and {MAX_RING_TIMEOUT_MS} (ringing lasts at most 120 s)"),
        ));
    }
    let credentials = match o.auth_username {
        None if o.auth_password.is_none() && o.auth_password_env.is_none() => None,
        None => {
            return Err(invalid(
                format!("{at}.auth_username"),
                "missing: a password needs a username",
            ))
        }
        Some(user) => Some((
            user,
            one_secret(
                &format!("{at}.auth_password"),
                o.auth_password,
                o.auth_password_env,
            )?,
        )),
    };
    Ok(OutboundConfig {
        proxy,
        domain: o.domain.unwrap_or_else(|| proxy.ip().to_string()),
        from_number,
        number_format,
        ring_timeout: Duration::from_millis(o.ring_timeout_ms),
        credentials,
    })
}

fn validate_register(
    at: &str,
    r: RawRegister,
    outbound: Option<&OutboundConfig>,
    numbers: &[String],
) -> Result<RegisterConfig, ConfigError> {
    let Some(outbound) = outbound else {
        return Err(invalid(
            at,
            "registration needs the trunk's [outbound] section (proxy, credentials)",
        ));
    };
    let registrar = match r.registrar {
        Some(v) => parse_addr(&format!("{at}.registrar"), &v)?,
        None => outbound.proxy,
    };
    if !(60..=86_400).contains(&r.expires_s) {
        return Err(invalid(
            format!("{at}.expires_s"),
            "must be between 60 and 86400",
        ));
    }
    if r.retry_min_s == 0 || r.retry_min_s > r.retry_max_s {
        return Err(invalid(
            format!("{at}.retry_min_s"),
            "must be > 0 and at most retry_max_s",
        ));
    }
    if numbers.is_empty() {
        return Err(invalid(at, "the channel has no number to register"));
    }
    Ok(RegisterConfig {
        registrar,
        domain: outbound.domain.clone(),
        numbers: numbers.to_vec(),
        expires_s: r.expires_s,
        retry_min: Duration::from_secs(r.retry_min_s),
        retry_max: Duration::from_secs(r.retry_max_s),
        credentials: outbound.credentials.clone(),
        number_format: outbound.number_format,
    })
}

fn validate_media(raw: RawMedia) -> Result<MediaConfig, ConfigError> {
    let parse_ip = |field: &str, v: &str| {
        v.parse::<std::net::IpAddr>()
            .map_err(|_| invalid(field, format!("not an IP address: {v:?}")))
    };
    let bind_address = parse_ip("media.bind_address", &raw.bind_address)?;
    let advertised_address = match raw.advertised_address {
        Some(a) => parse_ip("media.advertised_address", &a)?,
        None => bind_address,
    };
    if raw.rtp_port_min < 1024 || raw.rtp_port_min >= raw.rtp_port_max {
        return Err(invalid(
            "media.rtp_port_min",
            "must be at least 1024 and below media.rtp_port_max",
        ));
    }
    if raw.rtp_port_max - raw.rtp_port_min < 3 {
        return Err(invalid(
            "media.rtp_port_max",
            "the range must hold at least two RTP/RTCP pairs",
        ));
    }
    if raw.inactivity_timeout_ms < 1_000 {
        return Err(invalid(
            "media.inactivity_timeout_ms",
            "must be at least 1000",
        ));
    }
    Ok(MediaConfig {
        rtp_port_min: raw.rtp_port_min,
        rtp_port_max: raw.rtp_port_max,
        bind_address,
        advertised_address,
        inactivity_timeout: Duration::from_millis(raw.inactivity_timeout_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../deploy/gateway.example.toml");

    #[test]
    fn example_config_is_valid_and_has_the_demo_channel() {
        let cfg = Config::parse(EXAMPLE).expect("example config parses");
        assert_eq!(
            cfg.sip.udp_listen,
            Some("127.0.0.1:5060".parse::<SocketAddr>().unwrap())
        );
        assert_eq!(
            cfg.sip.tcp_listen,
            Some("127.0.0.1:5060".parse::<SocketAddr>().unwrap())
        );
        assert_eq!(
            cfg.http_listen,
            "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
        );
        let demo = &cfg.channels[0];
        assert_eq!(demo.id, "demo");
        assert!(demo.plan_paid && demo.business_verified);
        assert_eq!(demo.numbers, vec!["+827012345678".to_string()]);
        assert_eq!(demo.trunks.len(), 1);
        assert!(demo.trunks[0].allowed_cidrs[0].contains("127.0.0.1".parse().unwrap()));
        assert!(!demo.trunks[0].allowed_cidrs[0].contains("127.0.0.2".parse().unwrap()));
        let tokens: Vec<_> = demo.managers.iter().map(|m| m.token.as_str()).collect();
        assert!(tokens.contains(&"demo-manager-1") && tokens.contains(&"demo-manager-2"));
        assert!(demo
            .managers
            .iter()
            .any(|m| m.admin && m.token == "demo-admin"));
        assert_eq!(cfg.ring_timeout, Duration::from_secs(120));
        assert_eq!(cfg.meet_invite_timeout, Duration::from_secs(60));
        assert_eq!(
            (cfg.media.rtp_port_min, cfg.media.rtp_port_max),
            (20_000, 29_999)
        );
        assert_eq!(cfg.media.inactivity_timeout, Duration::from_secs(30));
    }

    fn error_for(edit: impl Fn(&str) -> String) -> String {
        Config::parse(&edit(EXAMPLE))
            .expect_err("must fail")
            .to_string()
    }

    #[test]
    fn bad_fields_are_named() {
        let e = error_for(|s| s.replace("127.0.0.1/32", "127.0.0.1/33"));
        assert!(e.contains("channels[0].trunks[0].allowed_cidrs[0]"), "{e}");
        let e = error_for(|s| s.replace("plan = \"paid\"", "plan = \"gold\""));
        assert!(e.contains("channels[0].plan"), "{e}");
        let e = error_for(|s| s.replace("ring_timeout_ms = 120000", "ring_timeout_ms = 120001"));
        assert!(e.contains("calls.ring_timeout_ms"), "{e}");
        let with_webhook = |hook: &'static str| {
            move |s: &str| {
                s.replacen(
                    "numbers = [\"07012345678\"]",
                    &format!("numbers = [\"07012345678\"]\n{hook}"),
                    1,
                )
            }
        };
        let e = error_for(with_webhook(
            "webhook = { url = \"ftp://x\", secret = \"0123456789abcdef\" }",
        ));
        assert!(e.contains("channels[0].webhook.url"), "{e}");
        let e = error_for(with_webhook(
            "webhook = { url = \"https://x\", secret = \"short\" }",
        ));
        assert!(e.contains("channels[0].webhook.secret"), "{e}");
        let e = error_for(|s| {
            s.replace(
                "meet_invite_timeout_ms = 60000",
                "meet_invite_timeout_ms = 0",
            )
        });
        assert!(e.contains("calls.meet_invite_timeout_ms"), "{e}");
        let e = error_for(|s| s.replace("\"07012345678\"", "\"12\""));
        assert!(e.contains("channels[0].numbers[0]"), "{e}");
        let e = error_for(|s| s.replace("[http]", "[http]\nlisten_typo = 1"));
        assert!(e.contains("listen_typo"), "{e}");
        let e = error_for(|s| s.replace("listen = \"127.0.0.1:8080\"", "listen = \"nowhere\""));
        assert!(e.contains("http.listen"), "{e}");
        let e = error_for(|s| s.replace("rtp_port_max = 29999", "rtp_port_max = 100"));
        assert!(e.contains("media.rtp_port_min"), "{e}");
        let e =
            error_for(|s| s.replace("inactivity_timeout_ms = 30000", "inactivity_timeout_ms = 5"));
        assert!(e.contains("media.inactivity_timeout_ms"), "{e}");
    }

    #[test]
    fn secrets_can_come_from_the_environment() {
        let text = EXAMPLE.replace(
            "token = \"demo-manager-1\"",
            "token_env = \"GATEWAY_TEST_SECRET_TOKEN_UNSET\"",
        );
        let e = Config::parse(&text)
            .expect_err("unset variable")
            .to_string();
        assert!(e.contains("GATEWAY_TEST_SECRET_TOKEN_UNSET"), "{e}");
        assert!(e.contains("channels[0].managers[0].token_env"), "{e}");
        // PATH is always set; long enough to pass the token length rule.
        let text = EXAMPLE.replace("token = \"demo-manager-1\"", "token_env = \"PATH\"");
        let cfg = Config::parse(&text).expect("env token");
        assert_eq!(
            cfg.channels[0].managers[0].token,
            std::env::var("PATH").unwrap()
        );
    }
}
