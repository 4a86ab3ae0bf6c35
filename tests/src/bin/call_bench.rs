//! Concurrent bridged calls: raw carriers (SIP + PCMU RTP over UDP) ↔ programmatic managers
//! (WebSocket + WebRTC/Opus) through the release gateway, measured over a steady window.
//!
//! Usage: `cargo run --release -p integration-tests --bin call-bench -- [CALLS] [SECONDS]`
//! (default 200 calls, 20 s window). Every tenth manager decodes and checks the carrier's
//! tone; the others send pre-encoded Opus and only count frames, so the generator leaves the
//! cores to the gateway. Reports, for the window:
//! - gateway CPU per call and the bare codec cost of the same frames measured in this run
//!   (G.711 decode + Opus encode + Opus decode + G.711 encode, one thread's CPU time, right
//!   after the window while the calls still run, so both see the same load);
//! - whether the gateway lost anything: kernel drops on its sockets, its own media counters
//!   (packets in, frames out, late discards, concealment), and how late the generator was;
//! - gateway memory per call (RSS with all calls up minus RSS before the first call);
//! - frames lost end to end each way (sent by one side, not received by the other).
//!
//! The load generator runs on the same two cores as the gateway (this machine has no other).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use integration_tests::bench::{
    load_config, ports_free, process_usage, root, scrape_metrics, stat_cpu_seconds,
};
use integration_tests::programmatic_manager::{precode_tone, MediaReport, PendingMedia};
use media::g711::G711Law;
use media::opus_codec::{OpusDecoder8k, OpusEncoder8k};
use media::rtp::{self, RtpHeader};
use media::tone::generate_sine;
use schemas::ws::{ClientMessage, ServerMessage};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const SIP_PORT: u16 = 16060;
const HTTP_PORT: u16 = 19080;
const CARRIER_TONE_HZ: f32 = 1000.0;
const MANAGER_TONE_HZ: f32 = 440.0;
/// One manager in this many decodes what it receives and checks the carrier's tone.
const DETECTING_EVERY: usize = 10;

/// One manager console: accepts whatever rings it and runs the media until the end.
async fn manager(
    i: usize,
    frames: Arc<Vec<Vec<u8>>>,
    reports: tokio::sync::mpsc::Sender<(usize, Arc<MediaReport>)>,
) -> anyhow::Result<()> {
    let mut req = format!("ws://127.0.0.1:{HTTP_PORT}/v1/ws").into_client_request()?;
    req.headers_mut().insert(
        "authorization",
        format!("Bearer load-token-{i:04}").parse()?,
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    let mut pending = None;
    let mut media = Vec::new();
    while let Some(msg) = ws.next().await {
        let Message::Text(text) = msg? else { continue };
        match serde_json::from_str::<ServerMessage>(text.as_str())? {
            ServerMessage::Ring {
                consultation_id, ..
            } => {
                let (p, offer) = PendingMedia::new().await?;
                pending = Some(p);
                let accept = ClientMessage::Accept {
                    consultation_id,
                    sdp_offer: offer,
                };
                ws.send(Message::Text(serde_json::to_string(&accept)?.into()))
                    .await?;
            }
            ServerMessage::CallAnswered { sdp_answer, .. } => {
                if let Some(p) = pending.take() {
                    // Every tenth manager decodes and listens for the carrier's tone; the others
                    // only count frames, so the generator leaves the CPU to the gateway.
                    let detect = i.is_multiple_of(DETECTING_EVERY).then_some(CARRIER_TONE_HZ);
                    let m = p.start_precoded(&sdp_answer, frames.clone(), detect)?;
                    reports.send((i, m.report.clone())).await.ok();
                    media.push(m);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[derive(Default)]
struct CarrierCounts {
    answered: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    /// RTP packets sent more than 20 ms after they were due (the generator was starved).
    sent_late: AtomicU64,
}

/// One carrier call: INVITE, ACK the 200, then PCMU every 20 ms until `stop`.
async fn carrier(
    i: usize,
    pcmu: Arc<Vec<[u8; 160]>>,
    counts: Arc<CarrierCounts>,
    stop: Instant,
) -> anyhow::Result<()> {
    let sip = UdpSocket::bind("127.0.0.1:0").await?;
    let rtp_sock = UdpSocket::bind("127.0.0.1:0").await?;
    let (local, rtp_addr) = (sip.local_addr()?, rtp_sock.local_addr()?);
    let gw: SocketAddr = format!("127.0.0.1:{SIP_PORT}").parse()?;
    let call_id = format!("load-{i}-{}", std::process::id());
    let sdp = format!(
        "v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        rtp_addr.port()
    );
    let invite = format!(
        "INVITE sip:07012345678@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{call_id};rport\r\nFrom: <sip:0101234{i:04}@127.0.0.1>;tag=t{i}\r\nTo: <sip:07012345678@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:c@{local}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    sip.send_to(invite.as_bytes(), gw).await?;
    let mut buf = vec![0u8; 65_535];
    let (ok, gw_rtp) = loop {
        let (n, _) =
            tokio::time::timeout(Duration::from_secs(60), sip.recv_from(&mut buf)).await??;
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        if msg.starts_with("SIP/2.0 1") {
            continue;
        }
        if !msg.starts_with("SIP/2.0 200") {
            bail!("call {i}: {}", msg.lines().next().unwrap_or(""));
        }
        let port: u16 = msg
            .lines()
            .find_map(|l| l.strip_prefix("m=audio "))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .context("m= port")?;
        break (msg, SocketAddr::from(([127, 0, 0, 1], port)));
    };
    let to = ok
        .lines()
        .find_map(|l| l.strip_prefix("To: "))
        .context("To")?
        .to_string();
    let ack = format!(
        "ACK sip:gateway@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKack{call_id};rport\r\nFrom: <sip:0101234{i:04}@127.0.0.1>;tag=t{i}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sip.send_to(ack.as_bytes(), gw).await?;
    counts.answered.fetch_add(1, Ordering::Relaxed);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut rbuf = vec![0u8; 2048];
    let mut frame = 0u32;
    while Instant::now() < stop {
        tokio::select! {
            due = tick.tick() => {
                if due.elapsed() > Duration::from_millis(20) {
                    counts.sent_late.fetch_add(1, Ordering::Relaxed);
                }
                let g711 = &pcmu[frame as usize % pcmu.len()];
                let hdr = RtpHeader { payload_type: 0, marker: frame == 0, sequence: frame as u16, timestamp: frame * 160, ssrc: i as u32, csrc_count: 0 };
                let mut pkt = [0u8; 200];
                let n = rtp::write_packet(&hdr, g711, &mut pkt)?;
                if rtp_sock.send_to(&pkt[..n], gw_rtp).await.is_ok() {
                    counts.sent.fetch_add(1, Ordering::Relaxed);
                }
                frame += 1;
            }
            r = rtp_sock.recv_from(&mut rbuf) => {
                if r.is_ok() {
                    counts.received.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    let bye = format!(
        "BYE sip:gateway@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKbye{call_id};rport\r\nFrom: <sip:0101234{i:04}@127.0.0.1>;tag=t{i}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sip.send_to(bye.as_bytes(), gw).await?;
    Ok(())
}

/// CPU seconds of the bare codec work for `frames` frames, each direction once, on the very
/// frames the peers send: G.711 decode + Opus encode of the carrier's tone, Opus decode +
/// G.711 encode of the managers' Opus.
fn bare_codec_seconds(
    frames: u64,
    pcmu: &[[u8; 160]],
    opus_frames: &[Vec<u8>],
) -> anyhow::Result<f64> {
    let mut enc = OpusEncoder8k::new(24_000, 5)?;
    let mut dec = OpusDecoder8k::new()?;
    let mut pcm = [0i16; 960];
    let mut opus = vec![0u8; 1275];
    let mut g711 = [0u8; 160];
    let started = thread_cpu_seconds()?;
    for i in 0..frames as usize {
        G711Law::Ulaw.decode(&pcmu[i % pcmu.len()], &mut pcm[..160])?;
        enc.encode(&pcm[..160], &mut opus)?;
        dec.decode(&opus_frames[i % opus_frames.len()], &mut pcm)?;
        G711Law::Ulaw.encode(&pcm[..160], &mut g711)?;
    }
    Ok(thread_cpu_seconds()? - started)
}

/// CPU time of the calling thread: with the load still running, wall time would count the
/// time the thread waited for a core.
fn thread_cpu_seconds() -> anyhow::Result<f64> {
    stat_cpu_seconds("/proc/thread-self/stat")
}

/// One second of the carrier's tone as PCMU payloads (a whole number of cycles, so it loops).
fn carrier_pcmu() -> anyhow::Result<Vec<[u8; 160]>> {
    let mut frames = Vec::new();
    for frame in 0..50u64 {
        let mut pcm = [0i16; 160];
        generate_sine(CARRIER_TONE_HZ, 8000.0, 8000, frame * 160, &mut pcm);
        let mut g711 = [0u8; 160];
        G711Law::Ulaw.encode(&pcm, &mut g711)?;
        frames.push(g711);
    }
    Ok(frames)
}

/// Datagrams the kernel dropped on the gateway's UDP sockets because the gateway did not read
/// them in time (the `drops` column of /proc/net/udp for the sockets the process holds).
fn gateway_udp_drops(pid: u32) -> anyhow::Result<u64> {
    let mut inodes = std::collections::HashSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let Ok(link) = std::fs::read_link(fd?.path()) else {
            continue;
        };
        let link = link.to_string_lossy().into_owned();
        if let Some(inode) = link
            .strip_prefix("socket:[")
            .and_then(|l| l.strip_suffix(']'))
        {
            inodes.insert(inode.to_string());
        }
    }
    let mut drops = 0;
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
            if fields.len() >= 13 && inodes.contains(fields[9]) {
                drops += fields[12].parse::<u64>().unwrap_or(0);
            }
        }
    }
    Ok(drops)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let calls: usize = std::env::args().nth(1).map_or(Ok(200), |s| s.parse())?;
    let seconds: u64 = std::env::args().nth(2).map_or(Ok(20), |s| s.parse())?;
    let bin = root().join("target/release/gateway");
    if !bin.exists() {
        bail!("build it first: cargo build --release -p gateway");
    }
    ports_free(&[SIP_PORT, HTTP_PORT])?;
    let dir = std::env::temp_dir().join(format!("call-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut gw = tokio::process::Command::new(&bin)
        .args(["serve", "--config"])
        .arg(load_config(&dir, SIP_PORT, HTTP_PORT, calls, "load")?)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()?;
    let pid = gw.id().context("pid")?;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", HTTP_PORT))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let opus_frames = Arc::new(precode_tone(MANAGER_TONE_HZ, 1)?);
    let pcmu = Arc::new(carrier_pcmu()?);
    let finished = Arc::new(AtomicBool::new(false));
    let (report_tx, mut report_rx) = tokio::sync::mpsc::channel(calls.max(1));
    for i in 0..calls {
        let (tx, frames, finished) = (report_tx.clone(), opus_frames.clone(), finished.clone());
        tokio::spawn(async move {
            let result = manager(i, frames, tx).await;
            if let (Err(e), false) = (result, finished.load(Ordering::Relaxed)) {
                eprintln!("manager {i}: {e:#}");
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, idle_rss_kb) = process_usage(pid)?;

    // Calls start at 25/s (each accept sets up WebRTC), then all run through the window.
    let counts = Arc::new(CarrierCounts::default());
    let ramp = Duration::from_millis(40) * calls as u32;
    let settle = Duration::from_secs(5);
    // The calls go on after the window while the bare codec work is measured, so that it
    // runs under the same load as the gateway did; the process exits right after.
    let stop =
        Instant::now() + ramp + settle + Duration::from_secs(seconds) * 3 + Duration::from_secs(60);
    for i in 0..calls {
        let (c, pcmu) = (counts.clone(), pcmu.clone());
        tokio::spawn(async move {
            if let Err(e) = carrier(i, pcmu, c, stop).await {
                eprintln!("carrier {i}: {e:#}");
            }
        });
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    tokio::time::sleep(settle).await;
    let mut reports = Vec::new();
    while let Ok(r) = report_rx.try_recv() {
        reports.push(r);
    }
    let answered = counts.answered.load(Ordering::Relaxed);
    // Steady window.
    let snapshot = |reports: &[(usize, Arc<MediaReport>)]| {
        let late: u64 = reports
            .iter()
            .map(|(_, r)| r.frames_sent_late.load(Ordering::Relaxed))
            .sum();
        let sent: u64 = reports
            .iter()
            .map(|(_, r)| r.frames_sent.load(Ordering::Relaxed))
            .sum();
        let recv: u64 = reports
            .iter()
            .map(|(_, r)| r.frames_received.load(Ordering::Relaxed))
            .sum();
        (sent, recv, late)
    };
    let (cpu_a, rss_a) = process_usage(pid)?;
    let drops_a = gateway_udp_drops(pid)?;
    let metrics_a = scrape_metrics(HTTP_PORT).await?;
    let (m_sent_a, m_recv_a, m_late_a) = snapshot(&reports);
    let (c_sent_a, c_recv_a, c_late_a) = (
        counts.sent.load(Ordering::Relaxed),
        counts.received.load(Ordering::Relaxed),
        counts.sent_late.load(Ordering::Relaxed),
    );
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (cpu_b, rss_b) = process_usage(pid)?;
    let drops_b = gateway_udp_drops(pid)?;
    // Calls add their counters once a second: wait for the last second of the window.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let metrics_b = scrape_metrics(HTTP_PORT).await?;
    let metric = |name: &str| {
        metrics_b.get(name).copied().unwrap_or(0.0) - metrics_a.get(name).copied().unwrap_or(0.0)
    };
    let (m_sent_b, m_recv_b, m_late_b) = snapshot(&reports);
    let (c_sent_b, c_recv_b, c_late_b) = (
        counts.sent.load(Ordering::Relaxed),
        counts.received.load(Ordering::Relaxed),
        counts.sent_late.load(Ordering::Relaxed),
    );

    let gw_cpu = cpu_b - cpu_a;
    let frames = answered * 50 * seconds;
    // On a blocking thread: a long computation must not hold one of the runtime's workers
    // away from the load generator's tasks.
    let bare = {
        let (pcmu, opus_frames) = (pcmu.clone(), opus_frames.clone());
        tokio::task::spawn_blocking(move || bare_codec_seconds(frames, &pcmu, &opus_frames))
            .await??
    };
    let loss = |sent: u64, recv: u64| {
        if sent == 0 {
            0.0
        } else {
            100.0 * (sent.saturating_sub(recv)) as f64 / sent as f64
        }
    };
    println!(
        "calls requested {calls}, answered {answered}, media reports {}",
        reports.len()
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!("| window | {seconds} s with {answered} calls up |");
    println!(
        "| gateway CPU | {:.2} core ({:.2} ms CPU per call-second) |",
        gw_cpu / seconds as f64,
        1000.0 * gw_cpu / (seconds as f64 * answered.max(1) as f64)
    );
    println!(
        "| bare codec work for the same frames | {:.2} core ({:.2} ms per call-second) |",
        bare / seconds as f64,
        1000.0 * bare / (seconds as f64 * answered.max(1) as f64)
    );
    println!("| whole gateway / bare codec | {:.2} |", gw_cpu / bare);
    println!(
        "| gateway RSS idle → loaded | {} → {} MiB |",
        idle_rss_kb / 1024,
        rss_b / 1024
    );
    println!(
        "| memory per call | {:.2} MiB |",
        (rss_b.saturating_sub(idle_rss_kb)) as f64 / 1024.0 / answered.max(1) as f64
    );
    println!(
        "| carrier → manager frames lost | {:.2} % ({} sent, {} received) |",
        loss(c_sent_b - c_sent_a, m_recv_b - m_recv_a),
        c_sent_b - c_sent_a,
        m_recv_b - m_recv_a
    );
    println!(
        "| manager → carrier frames lost | {:.2} % ({} sent, {} received) |",
        loss(m_sent_b - m_sent_a, c_recv_b - c_recv_a),
        m_sent_b - m_sent_a,
        c_recv_b - c_recv_a
    );
    println!(
        "| load generator sent > 20 ms late: carriers / managers | {} / {} |",
        c_late_b - c_late_a,
        m_late_b - m_late_a
    );
    println!(
        "| datagrams dropped at the gateway's sockets | {} |",
        drops_b.saturating_sub(drops_a)
    );
    println!(
        "| gateway, carrier → browser: packets in / frames out / discarded late / concealed | {} / {} / {} / {} |",
        metric("media_carrier_packets_total"),
        metric("media_frames_to_browser_total"),
        metric("media_carrier_discarded_total"),
        metric("media_carrier_concealed_total"),
    );
    println!(
        "| gateway, browser → carrier: packets in / packets out / discarded late / concealed | {} / {} / {} / {} |",
        metric("media_browser_packets_total"),
        metric("media_packets_to_carrier_total"),
        metric("media_browser_discarded_total"),
        metric("media_browser_concealed_total"),
    );
    let detecting: Vec<_> = reports
        .iter()
        .filter(|(i, _)| i.is_multiple_of(DETECTING_EVERY))
        .collect();
    let heard = detecting
        .iter()
        .filter(|(_, r)| r.tone_frames.load(Ordering::Relaxed) > 0)
        .count();
    println!(
        "| managers that decoded and heard the carrier's tone | {heard} of {} checked |",
        detecting.len()
    );
    let _ = rss_a;
    finished.store(true, Ordering::Relaxed);
    gw.kill().await.ok();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
