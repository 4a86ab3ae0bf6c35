//! Starting gateways, managers and sipp for the integration tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use gateway::config::Config;
use gateway::server::{RunningServer, StartOptions};
use schemas::ws::{ClientMessage, ServerMessage};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const DEMO_NUMBER: &str = "07012345678";

/// The workspace root (tests run with the crate directory as cwd).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

pub fn scenario(name: &str) -> PathBuf {
    workspace_root().join("tests/sipp").join(name)
}

pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    )
}

pub struct GatewayOptions {
    pub ring_timeout_ms: u64,
    /// Applied to the example configuration text before parsing.
    pub edit: Box<dyn Fn(String) -> String + Send>,
    /// A database URL; a fresh SQLite file when `None`.
    pub database_url: Option<String>,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            ring_timeout_ms: 10_000,
            edit: Box::new(|s| s),
            database_url: None,
        }
    }
}

/// The demo configuration for a test: every listener on a free loopback port (port 0), the
/// database at `db_url`, recordings under `dir/recordings`.
pub fn config_text(dir: &Path, db_url: &str) -> anyhow::Result<String> {
    let example = std::fs::read_to_string(workspace_root().join("deploy/gateway.example.toml"))?;
    Ok(example
        .replace(
            "udp_listen = \"127.0.0.1:5060\"",
            "udp_listen = \"127.0.0.1:0\"",
        )
        .replace(
            "tcp_listen = \"127.0.0.1:5060\"",
            "tcp_listen = \"127.0.0.1:0\"",
        )
        .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
        .replace(
            "dir = \"var/recordings\"",
            &format!("dir = \"{}\"", dir.join("recordings").display()),
        )
        .replace(
            "url = \"sqlite:var/gateway.db\"",
            &format!("url = \"{db_url}\""),
        ))
}

pub struct Gateway {
    pub server: RunningServer,
    pub sip: SocketAddr,
    pub http: SocketAddr,
    dir: PathBuf,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Gateway {
    /// The demo configuration on free loopback ports and a private database.
    pub async fn start(opts: GatewayOptions) -> anyhow::Result<Gateway> {
        let dir = std::env::temp_dir().join(unique_name("gw-test"));
        std::fs::create_dir_all(&dir)?;
        let db_url = opts
            .database_url
            .unwrap_or_else(|| format!("sqlite:{}", dir.join("gateway.db").display()));
        let text = config_text(&dir, &db_url)?.replace(
            "ring_timeout_ms = 120000",
            &format!("ring_timeout_ms = {}", opts.ring_timeout_ms),
        );
        let text = (opts.edit)(text);
        let config = Config::parse(&text).context("test configuration")?;
        let server = gateway::server::start(config, StartOptions { rng_seed: Some(7) }).await?;
        let sip = server.sip_udp.context("udp")?;
        let http = server.http;
        Ok(Gateway {
            server,
            sip,
            http,
            dir,
        })
    }

    /// Where this gateway keeps recordings (`[recordings] dir`).
    pub fn recordings_dir(&self) -> PathBuf {
        self.dir.join("recordings")
    }

    pub fn db(&self) -> &gateway::db::Db {
        &self.server.state.db
    }

    pub async fn manager(&self, token: &str) -> anyhow::Result<Manager> {
        Manager::connect(self.http, token).await
    }
}

/// A programmatic manager console: the same WebSocket as the browser.
pub struct Manager {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub id: String,
}

impl Manager {
    pub async fn connect(http: SocketAddr, token: &str) -> anyhow::Result<Manager> {
        let mut req = format!("ws://{http}/v1/ws").into_client_request()?;
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .context("ws connect")?;
        let mut m = Manager {
            ws,
            id: String::new(),
        };
        match m.next(Duration::from_secs(5)).await? {
            ServerMessage::Hello { manager_id, .. } => m.id = manager_id,
            other => bail!("expected hello, got {other:?}"),
        }
        Ok(m)
    }

    pub async fn next(&mut self, within: Duration) -> anyhow::Result<ServerMessage> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .context("no message in time")?
                .context("socket closed")??;
            if let Message::Text(text) = msg {
                return Ok(serde_json::from_str(text.as_str())?);
            }
        }
    }

    /// Waits for a ring, skipping other messages.
    pub async fn ring(&mut self, within: Duration) -> anyhow::Result<ServerMessage> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let m = self.next(left).await?;
            if matches!(m, ServerMessage::Ring { .. }) {
                return Ok(m);
            }
        }
    }

    pub async fn send(&mut self, msg: &ClientMessage) -> anyhow::Result<()> {
        self.ws
            .send(Message::Text(serde_json::to_string(msg)?.into()))
            .await?;
        Ok(())
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// A free local port for sipp, with the three above it free too: sipp binds its media port
/// and media port + 2 (video), RTCP next to each. Handed out from 10000–19999, below the
/// kernel's ephemeral range (so no socket bound to port 0 can take it meanwhile), in blocks of
/// four never handed out twice in one test process (so parallel tests cannot collide).
pub fn free_port(ip: &str) -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT_BLOCK: AtomicU16 = AtomicU16::new(0);
    let first_block = (std::process::id() % 50) as u16 * 50;
    loop {
        let block = (first_block + NEXT_BLOCK.fetch_add(1, Ordering::Relaxed)) % 2_500;
        let port = 10_000 + block * 4;
        let free = (port..port + 4).all(|p| {
            std::net::UdpSocket::bind((ip, p)).is_ok()
                && std::net::TcpListener::bind((ip, p)).is_ok()
        });
        if free {
            return port;
        }
    }
}

pub struct Sipp {
    pub scenario: &'static str,
    pub local_ip: &'static str,
    pub tcp: bool,
    pub calls: u32,
    pub rate_per_s: u32,
    pub pause_ms: u32,
    pub service: String,
}

impl Sipp {
    pub fn new(scenario: &'static str) -> Sipp {
        Sipp {
            scenario,
            local_ip: "127.0.0.1",
            tcp: false,
            calls: 1,
            rate_per_s: 10,
            pause_ms: 300,
            service: DEMO_NUMBER.to_string(),
        }
    }

    /// Runs sipp to completion; Ok when every call followed the scenario.
    pub async fn run(&self, target: SocketAddr) -> anyhow::Result<()> {
        let out = self.output(target).await?;
        if !out.status.success() {
            bail!(
                "sipp {} failed ({}):\n{}\n{}",
                self.scenario,
                out.status,
                String::from_utf8_lossy(&out.stdout)
                    .chars()
                    .rev()
                    .take(3000)
                    .collect::<String>()
                    .chars()
                    .rev()
                    .collect::<String>(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    pub async fn output(&self, target: SocketAddr) -> anyhow::Result<std::process::Output> {
        let port = free_port(self.local_ip);
        let media_port = free_port(self.local_ip);
        let mut cmd = tokio::process::Command::new("sipp");
        cmd.arg(target.to_string())
            .arg("-sf")
            .arg(scenario(self.scenario))
            .args(["-s", &self.service])
            .args(["-i", self.local_ip, "-mi", self.local_ip])
            .args(["-p", &port.to_string(), "-mp", &media_port.to_string()])
            .args([
                "-m",
                &self.calls.to_string(),
                "-r",
                &self.rate_per_s.to_string(),
            ])
            .args(["-d", &self.pause_ms.to_string()])
            .args(["-timeout", "60s", "-timeout_error", "-nostdin"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if self.tcp {
            cmd.args(["-t", "t1"]);
        }
        cmd.output()
            .await
            .context("running sipp (Debian package sip-tester)")
    }
}

/// Waits for a ring, failing early with sipp's own report if sipp ends first (a scenario that
/// failed at once would otherwise look like a missing ring).
pub async fn ring_during(
    m: &mut Manager,
    sipp: &mut tokio::task::JoinHandle<anyhow::Result<()>>,
    within: Duration,
) -> anyhow::Result<ServerMessage> {
    tokio::select! {
        r = m.ring(within) => r,
        done = sipp => bail!("sipp ended before the ring: {done:?}"),
    }
}

/// A fresh private directory under the system temp dir, removed on drop (for files a test
/// generates, such as the pcaps sipp plays).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> anyhow::Result<TempDir> {
        let dir = std::env::temp_dir().join(unique_name(prefix));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Sipp {
    /// Like [`Sipp::output`], but sipp runs with `dir` as its working directory (sipp 3.6
    /// resolves `play_pcap_audio="file.pcap"` there, when the scenario is loaded, with no
    /// keyword substitution) and with `extra` arguments appended (e.g. `-rtp_echo`).
    pub async fn output_in(
        &self,
        target: SocketAddr,
        dir: &Path,
        extra: &[&str],
    ) -> anyhow::Result<std::process::Output> {
        let port = free_port(self.local_ip);
        let media_port = free_port(self.local_ip);
        let mut cmd = tokio::process::Command::new("sipp");
        cmd.current_dir(dir)
            .arg(target.to_string())
            .arg("-sf")
            .arg(scenario(self.scenario))
            .args(["-s", &self.service])
            .args(["-i", self.local_ip, "-mi", self.local_ip])
            .args(["-p", &port.to_string(), "-mp", &media_port.to_string()])
            .args([
                "-m",
                &self.calls.to_string(),
                "-r",
                &self.rate_per_s.to_string(),
            ])
            .args(["-d", &self.pause_ms.to_string()])
            .args(["-timeout", "60s", "-timeout_error", "-nostdin"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if self.tcp {
            cmd.args(["-t", "t1"]);
        }
        cmd.output()
            .await
            .context("running sipp (Debian package sip-tester)")
    }

    /// [`Sipp::output_in`] to completion; Ok when every call followed the scenario.
    pub async fn run_in(
        &self,
        target: SocketAddr,
        dir: &Path,
        extra: &[&str],
    ) -> anyhow::Result<()> {
        let out = self.output_in(target, dir, extra).await?;
        if !out.status.success() {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let tail: String = stdout
                .chars()
                .rev()
                .take(3000)
                .collect::<String>()
                .chars()
                .rev()
                .collect();
            bail!(
                "sipp {} failed ({}):\n{tail}\n{}",
                self.scenario,
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

/// Polls `cond` every 50 ms for up to 10 s.
pub async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for this manager's `call_ended` and returns its reason.
pub async fn call_ended(m: &mut Manager) -> String {
    loop {
        if let ServerMessage::CallEnded { reason, .. } =
            m.next(Duration::from_secs(10)).await.expect("call_ended")
        {
            return reason;
        }
    }
}

/// The consultation's call record once it has ended (the actor writes after answering SIP).
pub async fn ended_record(gw: &Gateway, consultation_id: &str) -> gateway::db::CallRecord {
    for _ in 0..100 {
        let calls = gw
            .db()
            .calls_for_consultation(consultation_id)
            .await
            .expect("calls");
        if calls.first().is_some_and(|c| c.ended_at_ms.is_some()) {
            return calls.into_iter().next().expect("a call");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("call record never ended");
}
