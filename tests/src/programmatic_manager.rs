//! The programmatic manager's media: the same WebRTC as the browser (offerer, full ICE, Opus),
//! sending a tone and listening for one. Integration tests and the load benchmark drive calls
//! with it; the WebSocket side is the console protocol in `schemas::ws`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use media::opus_codec::{OpusDecoder8k, OpusEncoder8k, RTP_TIMESTAMP_INCREMENT_20MS};
use media::tone::{generate_sine, ToneDetector};
use tokio::net::UdpSocket;
use webrtc_peer::{PeerConfig, PeerEvent, WebRtcPeer};

/// What the media task observed, readable while it runs.
#[derive(Default)]
pub struct MediaReport {
    pub connected: AtomicBool,
    pub frames_received: AtomicU64,
    pub frames_sent: AtomicU64,
    /// Frames sent more than 20 ms after they were due (the sender itself was starved).
    pub frames_sent_late: AtomicU64,
    /// Received 20 ms frames in which the expected tone dominates.
    pub tone_frames: AtomicU64,
}

pub struct ManagerMedia {
    pub report: Arc<MediaReport>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ManagerMedia {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Creates the offer; `start` runs the media once the gateway's answer is known.
pub struct PendingMedia {
    peer: WebRtcPeer,
    socket: UdpSocket,
}

impl PendingMedia {
    pub async fn new() -> anyhow::Result<(PendingMedia, String)> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let now = Instant::now();
        let mut peer = WebRtcPeer::new(now, PeerConfig::new(socket.local_addr()?))?;
        let offer = peer.create_offer(now)?;
        Ok((PendingMedia { peer, socket }, offer))
    }

    /// Accepts the answer and runs: sends `send_hz` as Opus every 20 ms once connected and
    /// counts received frames carrying `expect_hz`.
    pub fn start(self, answer: &str, send_hz: f32, expect_hz: f32) -> anyhow::Result<ManagerMedia> {
        self.start_with_threshold(answer, send_hz, expect_hz, 0.5)
    }

    /// As [`PendingMedia::start`], counting frames where `expect_hz` carries at least
    /// `threshold` of the energy (a conference mixes several tones into one frame).
    pub fn start_with_threshold(
        self,
        answer: &str,
        send_hz: f32,
        expect_hz: f32,
        threshold: f32,
    ) -> anyhow::Result<ManagerMedia> {
        let listen = Listen::Detect {
            hz: expect_hz,
            threshold,
        };
        self.run(answer, Send::Tone(send_hz), listen)
    }

    /// For load: sends the same pre-encoded Opus frames over and over (see [`precode_tone`])
    /// and, unless `detect_hz` is given, only counts what arrives instead of decoding it, so
    /// that many managers fit on the machine next to the gateway they load.
    pub fn start_precoded(
        self,
        answer: &str,
        frames: Arc<Vec<Vec<u8>>>,
        detect_hz: Option<f32>,
    ) -> anyhow::Result<ManagerMedia> {
        let listen = match detect_hz {
            Some(hz) => Listen::Detect { hz, threshold: 0.5 },
            None => Listen::Count,
        };
        self.run(answer, Send::Precoded(frames), listen)
    }

    fn run(mut self, answer: &str, send: Send, listen: Listen) -> anyhow::Result<ManagerMedia> {
        self.peer.accept_answer(Instant::now(), answer)?;
        let report = Arc::new(MediaReport::default());
        let r = report.clone();
        let task = tokio::spawn(async move {
            let _ = run_media(self.peer, self.socket, r, send, listen).await;
        });
        Ok(ManagerMedia { report, task })
    }
}

/// What a manager sends every 20 ms.
enum Send {
    /// A sine at this frequency, encoded frame by frame.
    Tone(f32),
    /// These Opus frames in a loop.
    Precoded(Arc<Vec<Vec<u8>>>),
}

/// What a manager does with what it receives.
enum Listen {
    /// Decode, and count frames where `hz` carries at least `threshold` of the energy.
    Detect { hz: f32, threshold: f32 },
    /// Count frames only.
    Count,
}

/// `seconds` of a sine at `hz` as 20 ms Opus frames (24 kb/s, complexity 5, 8 kHz). With a
/// whole number of cycles per second, looping the frames keeps the tone continuous.
pub fn precode_tone(hz: f32, seconds: u32) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut encoder = OpusEncoder8k::new(24_000, 5)?;
    let mut opus = vec![0u8; 1275];
    let mut frames = Vec::new();
    for frame in 0..u64::from(seconds) * 50 {
        let mut tone = [0i16; 160];
        generate_sine(hz, 8000.0, 8000, frame * 160, &mut tone);
        let n = encoder.encode(&tone, &mut opus)?;
        frames.push(opus[..n].to_vec());
    }
    Ok(frames)
}

async fn run_media(
    mut peer: WebRtcPeer,
    socket: UdpSocket,
    report: Arc<MediaReport>,
    send: Send,
    listen: Listen,
) -> anyhow::Result<()> {
    let mut encoder = OpusEncoder8k::new(24_000, 5)?;
    let mut decoder = OpusDecoder8k::new()?;
    let detector = match listen {
        Listen::Detect { hz, threshold } => {
            Some(ToneDetector::new(hz, 8000, 160).with_threshold(threshold))
        }
        Listen::Count => None,
    };
    let mut buf = vec![0u8; 2048];
    let mut opus = vec![0u8; 1275];
    let mut pcm = [0i16; 960];
    let mut frame: u64 = 0;
    let mut next_frame = Instant::now();
    loop {
        while let Some(t) = peer.poll_transmit() {
            let _ = socket.send_to(&t.contents, t.destination).await;
        }
        while let Some(ev) = peer.poll_event() {
            match ev {
                PeerEvent::Connected => report.connected.store(true, Ordering::Relaxed),
                PeerEvent::AudioFrame { payload, .. } if !payload.is_empty() => {
                    report.frames_received.fetch_add(1, Ordering::Relaxed);
                    let Some(detector) = &detector else { continue };
                    if let Ok(n) = decoder.decode(&payload, &mut pcm) {
                        if n >= 160 && detector.detect(&pcm[..160]) {
                            report.tone_frames.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                PeerEvent::Failed | PeerEvent::Closed => return Ok(()),
                _ => {}
            }
        }
        let now = Instant::now();
        if report.connected.load(Ordering::Relaxed) && now >= next_frame {
            let payload = match &send {
                Send::Tone(hz) => {
                    let mut tone = [0i16; 160];
                    generate_sine(*hz, 8000.0, 8000, frame * 160, &mut tone);
                    let n = encoder.encode(&tone, &mut opus)?;
                    &opus[..n]
                }
                Send::Precoded(frames) => &frames[frame as usize % frames.len()][..],
            };
            let ts = (frame as u32).wrapping_mul(RTP_TIMESTAMP_INCREMENT_20MS);
            if peer.send_audio(now, payload, ts).is_ok() {
                report.frames_sent.fetch_add(1, Ordering::Relaxed);
                if now.saturating_duration_since(next_frame) > Duration::from_millis(20) {
                    report.frames_sent_late.fetch_add(1, Ordering::Relaxed);
                }
            }
            frame += 1;
            next_frame += Duration::from_millis(20);
            continue;
        }
        let mut deadline = now + Duration::from_millis(20);
        if let Some(t) = peer.poll_timeout() {
            deadline = deadline.min(t);
        }
        if report.connected.load(Ordering::Relaxed) {
            deadline = deadline.min(next_frame);
        } else {
            next_frame = now;
        }
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                if let Ok((n, from)) = r {
                    peer.handle_receive(Instant::now(), from, &buf[..n]);
                }
            }
            () = tokio::time::sleep_until(deadline.into()) => {
                peer.handle_timeout(Instant::now()).ok();
            }
        }
    }
}

/// The address a gateway socket advertises in SDP (`c=` and `m=`), for the raw carrier.
pub fn sdp_rtp_addr(sdp: &str) -> Option<SocketAddr> {
    let ip = sdp
        .lines()
        .find_map(|l| l.trim().strip_prefix("c=IN IP4 "))?
        .trim()
        .to_string();
    let port = sdp
        .lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))?
        .split_whitespace()
        .next()?
        .parse::<u16>()
        .ok()?;
    format!("{ip}:{port}").parse().ok()
}
