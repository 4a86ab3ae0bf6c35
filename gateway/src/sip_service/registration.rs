//! REGISTER of a channel's numbers to the carrier (RFC 3261 §10), where a trunk asks for it.
//!
//! [`RegistrationSchedule`] is the sans-IO core: when to (re)register, given the outcome of
//! each attempt and the time (injected). It refreshes at half the lifetime the registrar
//! granted and, after a failure, retries with exponential backoff (`retry_min` doubling up to
//! `retry_max`) shortened by an injected jitter (up to 20 %), so many gateways restarted
//! together do not hammer the registrar in step.
//!
//! [`run`] is the thin driver: one task per address-of-record, requests through the SIP
//! service (`SendRequest`, responses back as `CallInput::Response`), digest on 401/407
//! (RFC 3261 §22.2, credentials reused with a growing nonce count on refreshes).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sip::endpoint::Peer;
use sip::message;
use sip::transaction::TransactionKey;
use tokio::sync::mpsc;

use crate::call::CallInput;
use crate::config::RegisterConfig;

use super::SipCommand;

/// Shortest refresh interval, whatever the registrar grants.
const MIN_REFRESH: Duration = Duration::from_secs(1);
/// Largest fraction by which jitter shortens a retry delay.
const JITTER_FRACTION: f64 = 0.2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationState {
    /// Never registered yet (the first REGISTER is due or in flight).
    Unregistered,
    /// A REGISTER is in flight.
    Registering,
    /// The registrar accepted the binding until `expires_at`.
    Registered { expires_at: Instant },
    /// The last attempt failed; the next one is scheduled with backoff.
    Failed,
}

/// When to register: pure, time injected.
#[derive(Debug, Clone)]
pub struct RegistrationSchedule {
    retry_min: Duration,
    retry_max: Duration,
    state: RegistrationState,
    /// When the next REGISTER is due; `None` while one is in flight.
    next_at: Option<Instant>,
    /// Consecutive failures (backoff exponent).
    failures: u32,
}

impl RegistrationSchedule {
    /// The first REGISTER is due at `now`.
    pub fn new(now: Instant, retry_min: Duration, retry_max: Duration) -> RegistrationSchedule {
        RegistrationSchedule {
            retry_min,
            retry_max: retry_max.max(retry_min),
            state: RegistrationState::Unregistered,
            next_at: Some(now),
            failures: 0,
        }
    }

    pub fn state(&self) -> RegistrationState {
        self.state
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_at
    }

    /// True when a REGISTER must go out now (the schedule then waits for its outcome).
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        match self.next_at {
            Some(at) if now >= at => {
                self.next_at = None;
                if !matches!(self.state, RegistrationState::Registered { .. }) {
                    self.state = RegistrationState::Registering;
                }
                true
            }
            _ => false,
        }
    }

    /// The registrar accepted, granting `granted`: refresh at half of it.
    pub fn handle_success(&mut self, now: Instant, granted: Duration) -> Instant {
        self.failures = 0;
        self.state = RegistrationState::Registered {
            expires_at: now + granted,
        };
        let at = now + (granted / 2).max(MIN_REFRESH);
        self.next_at = Some(at);
        at
    }

    /// The attempt failed (final error, challenge we cannot answer, timeout). `jitter` in
    /// `[0, 1)` shortens the delay by up to 20 %. Returns the delay until the next attempt.
    pub fn handle_failure(&mut self, now: Instant, jitter: f64) -> Duration {
        let exp = self.failures.min(20);
        self.failures = self.failures.saturating_add(1);
        let base = self
            .retry_min
            .checked_mul(1u32 << exp)
            .unwrap_or(self.retry_max)
            .min(self.retry_max);
        let jitter = jitter.clamp(0.0, 1.0);
        let delay = base.mul_f64(1.0 - JITTER_FRACTION * jitter);
        // A binding still valid stays registered until it expires; otherwise failed.
        self.state = match self.state {
            RegistrationState::Registered { expires_at } if expires_at > now => self.state,
            _ => RegistrationState::Failed,
        };
        self.next_at = Some(now + delay);
        delay
    }
}

/// Registration state per trunk and address-of-record, for `/metrics`.
#[derive(Debug, Default)]
pub struct RegistrationMetrics {
    rows: Mutex<BTreeMap<(String, String), AorMetrics>>,
}

#[derive(Debug, Default, Clone)]
struct AorMetrics {
    registered: bool,
    successes: u64,
    failures: u64,
}

impl RegistrationMetrics {
    fn update(&self, trunk: &str, aor: &str, f: impl FnOnce(&mut AorMetrics)) {
        let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        f(rows
            .entry((trunk.to_string(), aor.to_string()))
            .or_default());
    }

    pub fn render_prometheus(&self) -> String {
        let rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        for ((trunk, aor), m) in rows.iter() {
            let labels = format!("trunk=\"{trunk}\",aor=\"{aor}\"");
            out.push_str(&format!(
                "sip_registration_registered{{{labels}}} {}\n",
                u8::from(m.registered)
            ));
            out.push_str(&format!(
                "sip_registration_success_total{{{labels}}} {}\n",
                m.successes
            ));
            out.push_str(&format!(
                "sip_registration_failures_total{{{labels}}} {}\n",
                m.failures
            ));
        }
        out
    }
}

/// One address-of-record to keep registered.
pub struct Binding {
    pub trunk_id: String,
    /// The number, already in the trunk's format (user part of the AOR).
    pub user: String,
    pub config: RegisterConfig,
    /// Our Contact (name-addr) and Via sent-by.
    pub contact: String,
    pub via_host_port: String,
}

/// Our Contact and Via sent-by for UDP, as the SIP service writes them.
pub fn local_addresses(udp: SocketAddr, advertised_host: Option<&str>) -> (String, String) {
    let host = advertised_host.map_or_else(|| udp.ip().to_string(), str::to_string);
    let host_port = format!("{host}:{}", udp.port());
    (format!("<sip:gateway@{host_port}>"), host_port)
}

/// Keeps one binding registered until the task is aborted.
pub async fn run(
    binding: Binding,
    sip: mpsc::Sender<SipCommand>,
    stats: std::sync::Arc<super::SipStats>,
    rng_seed: Option<u64>,
) {
    let mut rng = match rng_seed {
        Some(s) => StdRng::seed_from_u64(s),
        None => StdRng::from_entropy(),
    };
    let cfg = &binding.config;
    let aor = format!("sip:{}@{}", binding.user, cfg.domain);
    let registrar_uri = format!("sip:{}", cfg.domain);
    let call_id = format!("{:032x}@gateway", rng.gen::<u128>());
    let from_tag = format!("{:016x}", rng.gen::<u64>());
    let peer = Peer::udp(cfg.registrar);
    let (tx, mut rx) = mpsc::channel::<CallInput>(16);
    let mut schedule = RegistrationSchedule::new(Instant::now(), cfg.retry_min, cfg.retry_max);
    let mut cseq: u32 = 0;
    let mut current: Option<TransactionKey> = None;
    // The last challenge answered, reused on refreshes (nonce count grows).
    let mut challenge: Option<(sip::digest::Challenge, &'static str, u32)> = None;
    let mut challenged_this_round = 0u32;
    let metrics = &stats.registrations;
    metrics.update(&binding.trunk_id, &aor, |_| {});
    loop {
        let deadline = schedule.poll_timeout();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending::<()>().await,
            }
        };
        let mut failed = false;
        tokio::select! {
            () = sleep => {
                if schedule.handle_timeout(Instant::now()) {
                    challenged_this_round = 0;
                    let auth = challenge.as_mut().and_then(|(c, header, nc)| {
                        *nc += 1;
                        credentials(c, *nc, &registrar_uri, cfg, &mut rng).map(|v| (*header, v))
                    });
                    cseq += 1;
                    current = send_register(&binding, &sip, peer, &tx, &aor, &registrar_uri,
                        &call_id, &from_tag, cseq, auth, &mut rng).await;
                    if current.is_none() { failed = true; }
                }
            }
            input = rx.recv() => {
                let Some(input) = input else { return };
                match input {
                    CallInput::Response { key, response } if Some(&key) == current.as_ref() => {
                        let status = response.status_code.code();
                        match status {
                            100..=199 => {}
                            200..=299 => {
                                current = None;
                                let granted = granted_expiry(&response, &binding.contact)
                                    .unwrap_or(cfg.expires_s);
                                let now = Instant::now();
                                let refresh = schedule.handle_success(now, Duration::from_secs(u64::from(granted)));
                                metrics.update(&binding.trunk_id, &aor, |m| { m.registered = true; m.successes += 1; });
                                tracing::info!(trunk = %binding.trunk_id, aor = %aor, granted_s = granted,
                                    refresh_in_ms = refresh.saturating_duration_since(now).as_millis() as u64,
                                    "registered");
                            }
                            401 | 407 => {
                                let (ch_header, cred_header) = if status == 401 {
                                    ("WWW-Authenticate", "Authorization")
                                } else {
                                    ("Proxy-Authenticate", "Proxy-Authorization")
                                };
                                let values = sip::message::headers::all_values(&response.headers, ch_header);
                                let picked = sip::digest::pick_challenge(values.iter().map(String::as_str));
                                challenged_this_round += 1;
                                match picked {
                                    Some(c) if challenged_this_round == 1 || (challenged_this_round <= 3 && c.stale) => {
                                        let auth = credentials(&c, 1, &registrar_uri, cfg, &mut rng);
                                        if auth.is_none() {
                                            failed = true;
                                        } else {
                                            challenge = Some((c, cred_header, 1));
                                            cseq += 1;
                                            current = send_register(&binding, &sip, peer, &tx, &aor,
                                                &registrar_uri, &call_id, &from_tag, cseq,
                                                auth.map(|v| (cred_header, v)), &mut rng).await;
                                            if current.is_none() { failed = true; }
                                        }
                                    }
                                    _ => {
                                        tracing::warn!(trunk = %binding.trunk_id, aor = %aor, status, "registrar refused our credentials");
                                        challenge = None;
                                        failed = true;
                                    }
                                }
                            }
                            _ => {
                                tracing::warn!(trunk = %binding.trunk_id, aor = %aor, status, "registration refused");
                                failed = true;
                            }
                        }
                    }
                    CallInput::RequestFailed { key } if key.is_none() || key == current => {
                        tracing::warn!(trunk = %binding.trunk_id, aor = %aor, "registration got no answer");
                        failed = true;
                    }
                    _ => {}
                }
            }
        }
        if failed {
            current = None;
            let now = Instant::now();
            let delay = schedule.handle_failure(now, rng.gen::<f64>());
            let still = matches!(schedule.state(), RegistrationState::Registered { .. });
            metrics.update(&binding.trunk_id, &aor, |m| {
                m.failures += 1;
                m.registered = still;
            });
            tracing::warn!(trunk = %binding.trunk_id, aor = %aor, failures = schedule.failures(),
                retry_in_s = delay.as_secs(), "registration failed; retrying with backoff");
        }
    }
}

fn credentials(
    challenge: &sip::digest::Challenge,
    nc: u32,
    uri: &str,
    cfg: &RegisterConfig,
    rng: &mut StdRng,
) -> Option<String> {
    let (user, password) = cfg.credentials.as_ref()?;
    let cnonce = format!("{:016x}", rng.gen::<u64>());
    sip::digest::respond(challenge, "REGISTER", uri, user, password, &cnonce, nc).ok()
}

#[allow(clippy::too_many_arguments)]
async fn send_register(
    binding: &Binding,
    sip: &mpsc::Sender<SipCommand>,
    peer: Peer,
    reply_to: &mpsc::Sender<CallInput>,
    aor: &str,
    registrar_uri: &str,
    call_id: &str,
    from_tag: &str,
    cseq: u32,
    auth: Option<(&str, String)>,
    rng: &mut StdRng,
) -> Option<TransactionKey> {
    let branch = format!("z9hG4bK{:016x}", rng.gen::<u64>());
    let auth_line = auth.map_or_else(String::new, |(n, v)| format!("{n}: {v}\r\n"));
    let text = format!(
        "REGISTER {registrar_uri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {via};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <{aor}>;tag={from_tag}\r\n\
         To: <{aor}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: {contact}\r\n\
         Expires: {expires}\r\n\
         {auth_line}\
         Content-Length: 0\r\n\r\n",
        via = binding.via_host_port,
        contact = binding.contact,
        expires = binding.config.expires_s,
    );
    let request = match message::parse_datagram(text.as_bytes(), &message::Limits::default()) {
        Ok(rsip::SipMessage::Request(r)) => r,
        _ => {
            tracing::error!("could not build a REGISTER");
            return None;
        }
    };
    let key = TransactionKey::client_from_request(&request).ok()?;
    sip.send(SipCommand::SendRequest {
        peer,
        request,
        reply_to: reply_to.clone(),
    })
    .await
    .ok()?;
    Some(key)
}

/// The lifetime the registrar granted (RFC 3261 §10.2.4): our Contact's `expires` parameter,
/// else the Expires header.
fn granted_expiry(response: &rsip::Response, our_contact: &str) -> Option<u32> {
    let ours = our_contact.trim_start_matches('<').trim_end_matches('>');
    let contacts = sip::message::headers::all_values(&response.headers, "Contact");
    let from_contact = contacts
        .iter()
        .flat_map(|v| v.split(','))
        .filter(|c| contacts.len() == 1 || c.contains(ours))
        .find_map(|c| {
            c.split(';').find_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("expires")
                    .then(|| v.trim().parse::<u32>().ok())?
            })
        });
    from_contact.or_else(|| {
        sip::message::headers::all_values(&response.headers, "Expires")
            .first()
            .and_then(|v| v.trim().parse().ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(30);
    const MAX: Duration = Duration::from_secs(1800);

    #[test]
    fn registers_at_once_then_refreshes_at_half_the_granted_expiry() {
        let t0 = Instant::now();
        let mut s = RegistrationSchedule::new(t0, MIN, MAX);
        assert_eq!(s.poll_timeout(), Some(t0));
        assert!(s.handle_timeout(t0));
        assert_eq!(s.state(), RegistrationState::Registering);
        assert_eq!(
            s.poll_timeout(),
            None,
            "nothing due while the REGISTER is in flight"
        );
        assert!(!s.handle_timeout(t0 + Duration::from_secs(10)));
        let t1 = t0 + Duration::from_millis(40);
        let refresh = s.handle_success(t1, Duration::from_secs(3600));
        assert_eq!(refresh, t1 + Duration::from_secs(1800));
        assert_eq!(
            s.state(),
            RegistrationState::Registered {
                expires_at: t1 + Duration::from_secs(3600)
            }
        );
        assert!(!s.handle_timeout(refresh - Duration::from_millis(1)));
        assert!(s.handle_timeout(refresh));
        // A registrar granting less than asked wins (§10.2.4).
        let refresh2 = s.handle_success(refresh, Duration::from_secs(4));
        assert_eq!(refresh2, refresh + Duration::from_secs(2));
    }

    #[test]
    fn failures_back_off_exponentially_up_to_the_cap() {
        let mut now = Instant::now();
        let mut s = RegistrationSchedule::new(now, MIN, MAX);
        let mut delays = Vec::new();
        for _ in 0..10 {
            assert!(s.handle_timeout(now));
            let d = s.handle_failure(now, 0.0);
            delays.push(d.as_secs());
            now += d;
            assert_eq!(s.poll_timeout(), Some(now));
        }
        assert_eq!(delays, [30, 60, 120, 240, 480, 960, 1800, 1800, 1800, 1800]);
        assert_eq!(s.state(), RegistrationState::Failed);
        // Success resets the backoff.
        assert!(s.handle_timeout(now));
        s.handle_success(now, Duration::from_secs(600));
        assert_eq!(s.failures(), 0);
        assert!(s.handle_timeout(now + Duration::from_secs(300)));
        assert_eq!(s.handle_failure(now, 0.0), MIN);
    }

    #[test]
    fn jitter_shortens_the_delay_by_at_most_a_fifth() {
        let now = Instant::now();
        let mut s = RegistrationSchedule::new(now, MIN, MAX);
        assert!(s.handle_timeout(now));
        assert_eq!(s.handle_failure(now, 0.5), Duration::from_secs(27));
        let mut s = RegistrationSchedule::new(now, MIN, MAX);
        assert!(s.handle_timeout(now));
        let d = s.handle_failure(now, 0.999_999);
        assert!(d > Duration::from_secs(24) && d <= MIN, "{d:?}");
    }

    #[test]
    fn a_failed_refresh_keeps_a_valid_binding_registered() {
        let now = Instant::now();
        let mut s = RegistrationSchedule::new(now, MIN, MAX);
        assert!(s.handle_timeout(now));
        s.handle_success(now, Duration::from_secs(3600));
        let refresh = now + Duration::from_secs(1800);
        assert!(s.handle_timeout(refresh));
        s.handle_failure(refresh, 0.0);
        assert!(matches!(s.state(), RegistrationState::Registered { .. }));
        // After expiry a failure shows as failed.
        let late = now + Duration::from_secs(4000);
        assert!(s.handle_timeout(late));
        s.handle_failure(late, 0.0);
        assert_eq!(s.state(), RegistrationState::Failed);
    }

    #[test]
    fn granted_expiry_prefers_our_contact_parameter() {
        let text = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\n\
            From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: c\r\nCSeq: 2 REGISTER\r\n\
            Contact: <sip:gateway@127.0.0.1:5060>;expires=120\r\nExpires: 300\r\nContent-Length: 0\r\n\r\n";
        let rsip::SipMessage::Response(r) =
            message::parse_datagram(text.as_bytes(), &message::Limits::default()).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            granted_expiry(&r, "<sip:gateway@127.0.0.1:5060>"),
            Some(120)
        );
        let text = text.replace(";expires=120", "");
        let rsip::SipMessage::Response(r) =
            message::parse_datagram(text.as_bytes(), &message::Limits::default()).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            granted_expiry(&r, "<sip:gateway@127.0.0.1:5060>"),
            Some(300)
        );
    }
}
