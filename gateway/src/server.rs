//! Starting a gateway node: database, seeding from the config, sockets and tasks.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

use crate::api;
use crate::api::auth::token_sha256;
use crate::config::Config;
use crate::db::{self, Db};
use crate::hub::ManagerHub;
use crate::media_metrics::MediaMetrics;
use crate::number_directory::NumberDirectory;
use crate::rtp_ports::RtpPorts;
use crate::sip_service::service::{ServiceParts, COMMAND_QUEUE_LEN};
use crate::sip_service::transport::{self, TransportStats};
use crate::sip_service::{SipService, SipStats};
use crate::state::{AppState, CallRegistry};

/// Datagrams and framed messages waiting for the SIP service.
const INBOUND_QUEUE_LEN: usize = 8192;

/// Knobs tests set; production uses the defaults.
#[derive(Debug, Default, Clone)]
pub struct StartOptions {
    /// Seed for tags and nonces, for reproducible runs; random when `None`.
    pub rng_seed: Option<u64>,
}

pub struct RunningServer {
    pub sip_udp: Option<SocketAddr>,
    pub sip_tcp: Option<SocketAddr>,
    pub http: SocketAddr,
    pub state: Arc<AppState>,
    pub sip_stats: Arc<SipStats>,
    pub transport_stats: Arc<TransportStats>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningServer {
    /// Stops every task of this node (tests start and stop many).
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Writes the configuration's channels, numbers, trunks and managers into the database.
pub async fn seed(db: &Db, config: &Config, now_ms: i64) -> anyhow::Result<()> {
    for ch in &config.channels {
        db.upsert_channel(&db::Channel {
            id: ch.id.clone(),
            name: ch.name.clone(),
            plan: if ch.plan_paid {
                db::Plan::Paid
            } else {
                db::Plan::Free
            },
            business_verified: ch.business_verified,
            meet_voice_video_enabled: ch.meet_voice_video_enabled,
            call_rate_per_minute_minor: ch.call_rate_per_minute_minor,
            currency: ch.currency.clone(),
            ring_all_phone_team: false,
            transcription_language: ch
                .transcription_language
                .parse()
                .unwrap_or(db::TranscriptionLanguage::Auto),
            created_at_ms: now_ms,
        })
        .await
        .with_context(|| format!("seeding channel {}", ch.id))?;
        for n in &ch.numbers {
            db.upsert_phone_number(&db::PhoneNumber {
                id: n.clone(),
                channel_id: ch.id.clone(),
                number_e164: n.clone(),
                label: None,
            })
            .await
            .with_context(|| format!("seeding number {n}"))?;
        }
        for t in &ch.trunks {
            db.upsert_trunk(&db::Trunk {
                id: t.id.clone(),
                channel_id: ch.id.clone(),
                name: t.name.clone(),
                allowed_cidrs: t.allowed_cidrs.iter().map(ToString::to_string).collect(),
                auth_username: t.digest.as_ref().map(|d| d.username.clone()),
                // The password stays in the configuration (or its environment variable).
                auth_password: None,
                auth_realm: t.digest.as_ref().map(|d| d.realm.clone()),
                max_calls_per_second: i64::from(t.max_calls_per_second),
                max_concurrent_calls: i64::from(t.max_concurrent_calls),
                outbound_proxy: None,
                registrar_uri: None,
                register_username: None,
                register_password: None,
                register_expires_s: None,
            })
            .await
            .with_context(|| format!("seeding trunk {}", t.id))?;
        }
        for m in &ch.managers {
            db.upsert_manager(
                &db::ManagerSeed {
                    id: m.id.clone(),
                    channel_id: ch.id.clone(),
                    name: m.name.clone(),
                    token_sha256: token_sha256(&m.token),
                    role: if m.admin {
                        db::Role::Admin
                    } else {
                        db::Role::Manager
                    },
                    operator_seat: m.operator_seat,
                },
                now_ms,
            )
            .await
            .with_context(|| format!("seeding manager {}", m.id))?;
        }
    }
    Ok(())
}

pub async fn start(config: Config, options: StartOptions) -> anyhow::Result<RunningServer> {
    if let Some(path) = config.database_url.strip_prefix("sqlite:") {
        let path = path.trim_start_matches("//");
        if let Some(dir) = std::path::Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    let db = Db::connect(&config.database_url).await.with_context(|| {
        format!(
            "connecting to the database ({})",
            redact(&config.database_url)
        )
    })?;
    db.migrate().await.context("running migrations")?;
    let now_ms = crate::sip_service::service::unix_ms();
    seed(&db, &config, now_ms).await?;
    // Sessions and rings do not survive a restart of this node.
    db.reset_live_state()
        .await
        .context("resetting presence and rings")?;

    let (udp, tcp) = bind_sip(config.sip.udp_listen, config.sip.tcp_listen).await?;
    let udp_addr = udp.as_ref().map(|s| s.local_addr()).transpose()?;
    let tcp_addr = tcp.as_ref().map(|s| s.local_addr()).transpose()?;
    let http = TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("binding HTTP on {}", config.http_listen))?;
    let http_addr = http.local_addr()?;

    let rtp_ports = RtpPorts::new(
        config.media.bind_address,
        config.media.rtp_port_min,
        config.media.rtp_port_max,
    );
    let webrtc_certificate =
        webrtc_peer::generate_certificate_pem().context("making the WebRTC DTLS certificate")?;
    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE_LEN);
    let recordings = crate::recording::RecordingStore::from_config(&config.recordings)
        .context("recordings storage")?;
    let state = Arc::new(AppState {
        config,
        db,
        hub: ManagerHub::default(),
        calls: CallRegistry::default(),
        numbers: NumberDirectory::default(),
        rtp_ports,
        webrtc_certificate,
        sip: cmd_tx.clone(),
        media: MediaMetrics::default(),
        recordings,
        media_tick_origin: std::time::Instant::now(),
    });
    // Before taking calls: recordings a crash left behind are finished and stored.
    let recovered = crate::recording::recover::recover(&state)
        .await
        .context("recovering recordings from the spool")?;
    for (file, why) in &recovered.skipped {
        tracing::warn!(file = %file, why = %why, "recording left in the spool");
    }
    if !recovered.stored.is_empty() {
        tracing::info!(
            repaired = recovered.repaired.len(),
            stored = recovered.stored.len(),
            "recordings recovered from the spool"
        );
    }
    let sip_stats = Arc::new(SipStats::default());
    let transport_stats = Arc::new(TransportStats::default());
    let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE_LEN);
    let registrar_commands = cmd_tx.clone();
    let service = SipService::new(
        ServiceParts {
            state: state.clone(),
            udp: udp.clone(),
            udp_addr,
            tcp_addr,
            stats: sip_stats.clone(),
            rng_seed: options.rng_seed,
        },
        cmd_tx,
    );
    let mut tasks = vec![
        tokio::spawn(service.run(inbound_rx, cmd_rx)),
        tokio::spawn(crate::webhooks::dispatcher::run(state.clone())),
    ];
    tasks.extend(start_registrations(
        &state,
        udp_addr,
        &registrar_commands,
        &sip_stats,
        options.rng_seed,
    ));
    if let Some(sock) = udp {
        tasks.push(tokio::spawn(transport::run_udp(
            sock,
            inbound_tx.clone(),
            transport_stats.clone(),
        )));
    }
    if let Some(listener) = tcp {
        tasks.push(tokio::spawn(transport::run_tcp_listener(
            listener,
            inbound_tx.clone(),
            sip::message::Limits::default(),
            transport_stats.clone(),
        )));
    }
    let router = api::router(state.clone(), sip_stats.clone());
    tasks.push(tokio::spawn(async move {
        if let Err(e) = axum::serve(http, router).await {
            tracing::error!(error = %e, "http server stopped");
        }
    }));
    tracing::info!(sip_udp = ?udp_addr, sip_tcp = ?tcp_addr, http = %http_addr, "gateway started");
    Ok(RunningServer {
        sip_udp: udp_addr,
        sip_tcp: tcp_addr,
        http: http_addr,
        state,
        sip_stats,
        transport_stats,
        tasks,
    })
}

/// One REGISTER task per number of every trunk configured to register (RFC 3261 §10).
fn start_registrations(
    state: &AppState,
    udp_addr: Option<SocketAddr>,
    commands: &mpsc::Sender<crate::sip_service::SipCommand>,
    stats: &Arc<SipStats>,
    rng_seed: Option<u64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    use crate::sip_service::registration;
    let mut tasks = Vec::new();
    for ch in &state.config.channels {
        for t in &ch.trunks {
            let Some(reg) = &t.register else { continue };
            let Some(udp) = udp_addr else {
                tracing::warn!(trunk = %t.id, "registration needs a SIP UDP socket; not registering");
                continue;
            };
            let (contact, via_host_port) =
                registration::local_addresses(udp, state.config.sip.advertised_host.as_deref());
            for (i, number) in reg.numbers.iter().enumerate() {
                let binding = registration::Binding {
                    trunk_id: t.id.clone(),
                    user: reg.number_format.format(number),
                    config: reg.clone(),
                    contact: contact.clone(),
                    via_host_port: via_host_port.clone(),
                };
                tracing::info!(trunk = %t.id, number = %number, registrar = %reg.registrar, "registering");
                tasks.push(tokio::spawn(registration::run(
                    binding,
                    commands.clone(),
                    stats.clone(),
                    rng_seed.map(|s| s.wrapping_add(i as u64 + 1)),
                )));
            }
        }
    }
    tasks
}

/// Binds the SIP sockets. Port 0 for both on one address means "one free port for both" (tests):
/// carriers expect UDP and TCP on the same port, and a free UDP port may be taken for TCP, so
/// that case retries with another port.
async fn bind_sip(
    udp_listen: Option<SocketAddr>,
    tcp_listen: Option<SocketAddr>,
) -> anyhow::Result<(Option<Arc<UdpSocket>>, Option<TcpListener>)> {
    const SAME_PORT_ATTEMPTS: usize = 20;
    if let (Some(u), Some(t)) = (udp_listen, tcp_listen) {
        if u.port() == 0 && t.port() == 0 && u.ip() == t.ip() {
            for _ in 0..SAME_PORT_ATTEMPTS {
                let udp = UdpSocket::bind(u)
                    .await
                    .with_context(|| format!("binding SIP UDP on {u}"))?;
                let port_addr = udp.local_addr()?;
                if let Ok(tcp) = TcpListener::bind(port_addr).await {
                    return Ok((Some(Arc::new(udp)), Some(tcp)));
                }
            }
            anyhow::bail!("no free port for SIP on {} for both UDP and TCP", u.ip());
        }
    }
    let udp = match udp_listen {
        Some(addr) => Some(Arc::new(
            UdpSocket::bind(addr)
                .await
                .with_context(|| format!("binding SIP UDP on {addr}"))?,
        )),
        None => None,
    };
    let tcp = match tcp_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding SIP TCP on {addr}"))?,
        ),
        None => None,
    };
    Ok((udp, tcp))
}

/// Hides the password of a database URL in messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact("sqlite:var/g.db"), "sqlite:var/g.db");
    }
}
