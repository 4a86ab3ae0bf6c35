//! Two `WebRtcPeer`s in one process, connected through real loopback UDP sockets (and, in one
//! test, through an in-memory network on virtual time).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::UdpSocket;
use webrtc_peer::{PeerConfig, PeerError, PeerEvent, WebRtcPeer};

const FRAMES: usize = 50;
const TS_STEP: u32 = 960; // 20 ms at 48 kHz
const DEADLINE: Duration = Duration::from_secs(20);

/// A received frame: (payload, timestamp, sequence).
type Frame = (Bytes, u32, u16);

struct Side {
    peer: WebRtcPeer,
    socket: UdpSocket,
    connected: bool,
    frames: Vec<Frame>,
    failed: bool,
    events: Vec<String>,
}

impl Side {
    fn drain(&mut self) {
        while let Some(event) = self.peer.poll_event() {
            self.events
                .push(format!("{event:?}").chars().take(60).collect());
            match event {
                PeerEvent::Connected => self.connected = true,
                PeerEvent::Failed | PeerEvent::Closed => self.failed = true,
                PeerEvent::AudioFrame {
                    payload,
                    rtp_timestamp,
                    sequence,
                } => self.frames.push((payload, rtp_timestamp, sequence)),
                _ => {}
            }
        }
    }

    async fn flush(&mut self) {
        while let Some(t) = self.peer.poll_transmit() {
            // Loopback send errors would fail the test through missing frames.
            let _ = self.socket.send_to(&t.contents, t.destination).await;
        }
    }
}

async fn bind() -> (UdpSocket, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("local_addr");
    (socket, addr)
}

fn payload(i: usize, from: u8) -> Vec<u8> {
    // Frame 7 is empty: like Chrome's probes, it must be delivered, not filtered.
    if i == 7 {
        return Vec::new();
    }
    let len = 20 + (i * 7) % 120;
    (0..len).map(|k| from ^ (i as u8) ^ (k as u8)).collect()
}

/// One step of the driver: send what is queued, deliver events, wait for input or a deadline.
async fn step(a: &mut Side, b: &mut Side) {
    a.flush().await;
    b.flush().await;
    a.drain();
    b.drain();
    let now = Instant::now();
    let next = [a.peer.poll_timeout(), b.peer.poll_timeout()]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now + Duration::from_millis(50));
    let wait = next
        .saturating_duration_since(now)
        .min(Duration::from_millis(20));
    let mut buf_a = [0u8; 2048];
    let mut buf_b = [0u8; 2048];
    tokio::select! {
        r = a.socket.recv_from(&mut buf_a) => {
            if let Ok((n, from)) = r {
                a.peer.handle_receive(Instant::now(), from, &buf_a[..n]);
            }
        }
        r = b.socket.recv_from(&mut buf_b) => {
            if let Ok((n, from)) = r {
                b.peer.handle_receive(Instant::now(), from, &buf_b[..n]);
            }
        }
        _ = tokio::time::sleep(wait) => {}
    }
    let now = Instant::now();
    for side in [&mut *a, &mut *b] {
        if side.peer.poll_timeout().is_some_and(|t| t <= now) {
            side.peer.handle_timeout(now).expect("handle_timeout");
        }
    }
}

async fn pair(offerer_lite: bool, answerer_lite: bool) -> (Side, Side) {
    let (so, ao) = bind().await;
    let (sa, aa) = bind().await;
    let now = Instant::now();
    let mut co = PeerConfig::new(ao);
    co.ice_lite = offerer_lite;
    co.seed = Some(1);
    let mut ca = PeerConfig::new(aa);
    ca.ice_lite = answerer_lite;
    ca.seed = Some(2);
    let mut offerer = WebRtcPeer::new(now, co).expect("offerer");
    let mut answerer = WebRtcPeer::new(now, ca).expect("answerer");

    let offer = offerer.create_offer(now).expect("create_offer");
    let answer = answerer.accept_offer(now, &offer).expect("accept_offer");
    offerer.accept_answer(now, &answer).expect("accept_answer");
    println!("--- offer ---\n{offer}--- answer ---\n{answer}");

    let side = |peer, socket| Side {
        peer,
        socket,
        connected: false,
        frames: Vec::new(),
        failed: false,
        events: Vec::new(),
    };
    (side(offerer, so), side(answerer, sa))
}

async fn connect(o: &mut Side, a: &mut Side) -> Duration {
    let start = Instant::now();
    while !(o.connected && a.connected) {
        assert!(
            start.elapsed() < DEADLINE,
            "no Connected: offerer {:?} answerer {:?}",
            o.events,
            a.events
        );
        assert!(
            !o.failed && !a.failed,
            "failed: {:?} {:?}",
            o.events,
            a.events
        );
        step(o, a).await;
    }
    start.elapsed()
}

fn check_frames(frames: &[Frame], from: u8, ts0: u32) {
    assert_eq!(frames.len(), FRAMES, "frames received");
    for (i, (p, ts, seq)) in frames.iter().enumerate() {
        assert_eq!(p.as_ref(), payload(i, from).as_slice(), "payload {i}");
        assert_eq!(*ts, ts0.wrapping_add(TS_STEP * i as u32), "timestamp {i}");
        assert_eq!(*seq, frames[0].2.wrapping_add(i as u16), "sequence {i}");
    }
}

async fn exchange_audio(o: &mut Side, a: &mut Side) {
    let ts_o = 1_000u32;
    let ts_a = u32::MAX - 960 * 10; // wraps during the run
    let start = Instant::now();
    let mut sent = 0;
    while o.frames.len() < FRAMES || a.frames.len() < FRAMES {
        assert!(
            start.elapsed() < DEADLINE,
            "audio incomplete: offerer got {}, answerer got {}",
            o.frames.len(),
            a.frames.len()
        );
        if sent < FRAMES {
            let now = Instant::now();
            o.peer
                .send_audio(now, &payload(sent, 0x0f), ts_o + TS_STEP * sent as u32)
                .expect("offerer send_audio");
            a.peer
                .send_audio(
                    now,
                    &payload(sent, 0xa0),
                    ts_a.wrapping_add(TS_STEP * sent as u32),
                )
                .expect("answerer send_audio");
            sent += 1;
        }
        step(o, a).await;
    }
    check_frames(&a.frames, 0x0f, ts_o);
    check_frames(&o.frames, 0xa0, ts_a);
}

async fn run_pair(offerer_lite: bool, answerer_lite: bool) {
    let (mut o, mut a) = pair(offerer_lite, answerer_lite).await;
    let took = connect(&mut o, &mut a).await;
    println!("connected in {took:?}");
    exchange_audio(&mut o, &mut a).await;
    assert_eq!(o.peer.stats().audio_frames_sent, FRAMES as u64);
    assert_eq!(a.peer.stats().audio_frames_received, FRAMES as u64);
    o.peer.close();
    a.peer.close();
    o.flush().await;
    a.flush().await;
}

#[tokio::test]
async fn full_ice_offerer_and_answerer_exchange_50_frames_each_way() {
    run_pair(false, false).await;
}

#[tokio::test]
async fn lite_answerer_gateway_with_full_ice_offerer() {
    // The browser offers; the gateway answers with ICE-lite.
    run_pair(false, true).await;
}

#[tokio::test]
async fn lite_offerer_gateway_with_full_ice_answerer() {
    // The gateway offers with ICE-lite; the browser (full ICE) answers.
    run_pair(true, false).await;
}

#[tokio::test]
async fn send_before_connected_is_a_clean_error() {
    let (mut o, _a) = pair(false, false).await;
    let err = o
        .peer
        .send_audio(Instant::now(), &[1, 2, 3], 0)
        .expect_err("not connected yet");
    assert_eq!(err, PeerError::NotConnected);
    assert_eq!(err.code(), "webrtc.not_connected");
}

#[tokio::test]
async fn bad_remote_sdp_is_a_clean_error() {
    let (_s, addr) = bind().await;
    let now = Instant::now();
    let mut peer = WebRtcPeer::new(now, PeerConfig::new(addr)).expect("peer");

    let err = peer
        .accept_answer(now, "v=0\r\n")
        .expect_err("no offer sent");
    assert_eq!(err.code(), "webrtc.wrong_state");

    for garbage in [
        "",
        "garbage",
        "v=0\r\nm=audio\r\n",
        "\u{0}\u{ff}v=1",
        "v=0\r\no=- x\r\n",
    ] {
        let err = peer.accept_offer(now, garbage).expect_err("garbage offer");
        println!("{garbage:?} -> {err} ({})", err.code());
        assert!(
            matches!(err.code(), "webrtc.invalid_sdp" | "webrtc.no_common_codec"),
            "{err:?}"
        );
    }

    // A well-formed offer with only PCMU: nothing to talk Opus with.
    let pcmu = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\n\
        a=rtcp-mux\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
        a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
        a=setup:actpass\r\na=rtpmap:0 PCMU/8000\r\n";
    let err = peer.accept_offer(now, pcmu).expect_err("pcmu only");
    assert_eq!(err.code(), "webrtc.no_common_codec");

    // After all that, the peer still answers a real offer.
    let (_s2, addr2) = bind().await;
    let mut other = WebRtcPeer::new(now, PeerConfig::new(addr2)).expect("other");
    let offer = other.create_offer(now).expect("offer");
    // An offer with a broken fingerprint is refused by the stack, not by a panic.
    let broken = offer.replace("a=fingerprint:sha-256 ", "a=fingerprint:sha-256 ZZ");
    let _ = peer.accept_offer(now, &broken);
    let mut fresh = WebRtcPeer::new(now, PeerConfig::new(addr)).expect("fresh");
    let answer = fresh.accept_offer(now, &offer).expect("answer");
    assert!(answer.contains("opus/48000/2"), "{answer}");

    assert_eq!(
        fresh
            .add_remote_candidate("candidate:garbage")
            .map_err(|e| e.code()),
        Err("webrtc.invalid_candidate")
    );
    assert_eq!(fresh.add_remote_candidate(""), Ok(()));

    let err = WebRtcPeer::new(now, PeerConfig::new("0.0.0.0:5000".parse().expect("addr")))
        .expect_err("unspecified address");
    assert_eq!(err.code(), "webrtc.invalid_config");
    let mut bad_cert = PeerConfig::new(addr);
    bad_cert.certificate_pem = Some("-----BEGIN NONSENSE-----".to_owned());
    assert_eq!(
        WebRtcPeer::new(now, bad_cert)
            .map(|_| ())
            .map_err(|e| e.code()),
        Err("webrtc.invalid_config")
    );
}

/// Datagrams shaped like each protocol that shares the socket (STUN, DTLS, RTP, RTCP), plus
/// random bytes and mangled copies of real traffic.
fn garbage(seed: u64, real: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut x = seed;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = vec![
        vec![0x00],
        vec![0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42],
        vec![0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff],
        vec![0x17, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4],
        vec![0x80, 0x6f, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4],
        vec![0x80, 0xc8, 0, 6, 1, 2, 3, 4],
        vec![0xff; 1500],
    ];
    for _ in 0..200 {
        let len = (rnd() % 300) as usize + 1;
        let mut d: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
        d[0] = [0x00, 0x01, 0x14, 0x16, 0x17, 0x80, 0x90, 0xbf][(rnd() % 8) as usize];
        out.push(d);
    }
    for r in real {
        if r.is_empty() {
            continue;
        }
        let mut m = r.clone();
        let i = (rnd() as usize) % m.len();
        m[i] ^= 0x5a;
        out.push(m);
        out.push(r[..r.len() / 2].to_vec());
        let mut tail = r.clone();
        tail.truncate((rnd() as usize) % r.len());
        out.push(tail);
    }
    out
}

#[tokio::test]
async fn garbage_datagrams_are_ignored_without_panic() {
    let (mut o, mut a) = pair(false, true).await;
    let stranger: SocketAddr = "127.0.0.1:9".parse().expect("addr");

    // Before ICE: garbage from the right and from a wrong address.
    let now = Instant::now();
    let a_addr = a.peer.local_addr();
    for g in garbage(42, &[]) {
        o.peer.handle_receive(now, stranger, &g);
        o.peer.handle_receive(now, a_addr, &g);
    }
    o.peer.handle_receive(now, a_addr, &[]);
    connect(&mut o, &mut a).await;

    // Capture a few real datagrams after connecting, to mangle them.
    o.peer
        .send_audio(Instant::now(), &payload(1, 1), 960)
        .expect("send");
    let mut real = Vec::new();
    while let Some(t) = o.peer.poll_transmit() {
        real.push(t.contents.to_vec());
        let _ = o.socket.send_to(&t.contents, t.destination).await;
    }
    let o_addr = o.peer.local_addr();
    let now = Instant::now();
    for g in garbage(7, &real) {
        a.peer.handle_receive(now, o_addr, &g);
        a.peer.handle_receive(now, stranger, &g);
    }
    let stats = a.peer.stats();
    println!("answerer stats after garbage: {stats:?}");
    assert_eq!(stats.stack_panics, 0);
    assert!(a.peer.is_connected(), "garbage must not tear the call down");

    // Mangled SRTP (bit flips, truncation) fails authentication: no audio came out of it.
    assert_eq!(stats.audio_frames_received, 0);

    // The genuine packet (sent on the socket above) still arrives, exactly once.
    let start = Instant::now();
    while a.frames.is_empty() {
        assert!(start.elapsed() < DEADLINE, "genuine frame lost");
        step(&mut o, &mut a).await;
    }
    assert_eq!(a.frames.len(), 1);
    assert_eq!(a.frames[0].0.as_ref(), payload(1, 1).as_slice());

    // Audio still flows both ways afterwards.
    a.frames.clear();
    o.frames.clear();
    exchange_audio(&mut o, &mut a).await;
}

/// No sockets, no sleeps: the two peers exchange datagrams in memory on a virtual clock.
#[test]
fn connects_and_exchanges_audio_on_virtual_time() {
    let pem = webrtc_peer::generate_certificate_pem().expect("certificate");
    let ao: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
    let aa: SocketAddr = "127.0.0.1:40002".parse().expect("addr");
    let t0 = Instant::now();
    let mut now = t0;
    let mut co = PeerConfig::new(ao);
    co.seed = Some(11);
    co.certificate_pem = Some(pem.clone());
    let mut ca = PeerConfig::new(aa);
    ca.seed = Some(12);
    ca.ice_lite = true;
    ca.certificate_pem = Some(pem);
    let mut o = WebRtcPeer::new(now, co).expect("offerer");
    let mut a = WebRtcPeer::new(now, ca).expect("answerer");
    let offer = o.create_offer(now).expect("offer");
    let answer = a.accept_offer(now, &offer).expect("answer");
    o.accept_answer(now, &answer).expect("accept_answer");

    let mut connected = (false, false);
    let mut got_a: Vec<Frame> = Vec::new();
    let mut got_o: Vec<Frame> = Vec::new();
    let mut sent = 0usize;
    let mut steps = 0;
    while got_a.len() < FRAMES || got_o.len() < FRAMES {
        steps += 1;
        assert!(steps < 100_000, "stuck at {:?}", now - t0);
        assert!(now - t0 < Duration::from_secs(30), "virtual deadline");
        let mut moved = false;
        while let Some(t) = o.poll_transmit() {
            assert_eq!(t.destination, aa);
            a.handle_receive(now, ao, &t.contents);
            moved = true;
        }
        while let Some(t) = a.poll_transmit() {
            assert_eq!(t.destination, ao);
            o.handle_receive(now, aa, &t.contents);
            moved = true;
        }
        for (peer, conn, got) in [
            (&mut o, &mut connected.0, &mut got_o),
            (&mut a, &mut connected.1, &mut got_a),
        ] {
            while let Some(e) = peer.poll_event() {
                match e {
                    PeerEvent::Connected => *conn = true,
                    PeerEvent::Failed => panic!("failed"),
                    PeerEvent::AudioFrame {
                        payload,
                        rtp_timestamp,
                        sequence,
                    } => got.push((payload, rtp_timestamp, sequence)),
                    _ => {}
                }
            }
        }
        if connected.0 && connected.1 && sent < FRAMES {
            o.send_audio(now, &payload(sent, 0x0f), 1_000 + TS_STEP * sent as u32)
                .expect("send o");
            a.send_audio(
                now,
                &payload(sent, 0xa0),
                (u32::MAX - 960 * 10).wrapping_add(TS_STEP * sent as u32),
            )
            .expect("send a");
            sent += 1;
            now += Duration::from_millis(20);
            moved = true;
        }
        if !moved {
            let next = [o.poll_timeout(), a.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(now + Duration::from_millis(20));
            now = next.max(now + Duration::from_micros(100));
            o.handle_timeout(now).expect("timeout o");
            a.handle_timeout(now).expect("timeout a");
        }
    }
    println!("virtual time used: {:?} in {steps} steps", now - t0);
    check_frames(&got_a, 0x0f, 1_000);
    check_frames(&got_o, 0xa0, u32::MAX - 960 * 10);
}

/// In-memory pair on virtual time, for lifecycle tests.
struct VirtualPair {
    o: WebRtcPeer,
    a: WebRtcPeer,
    ao: SocketAddr,
    aa: SocketAddr,
    now: Instant,
    t0: Instant,
    events_o: Vec<PeerEvent>,
    events_a: Vec<PeerEvent>,
}

impl VirtualPair {
    fn new() -> Self {
        Self::with_timeouts(None, None)
    }

    fn with_timeouts(disconnected: Option<Duration>, failed: Option<Duration>) -> Self {
        let ao: SocketAddr = "127.0.0.1:41000".parse().expect("addr");
        let aa: SocketAddr = "127.0.0.1:41002".parse().expect("addr");
        let now = Instant::now();
        let mut co = PeerConfig::new(ao);
        co.seed = Some(21);
        let mut ca = PeerConfig::new(aa);
        ca.seed = Some(22);
        ca.ice_lite = true;
        for c in [&mut co, &mut ca] {
            c.ice_disconnected_timeout = disconnected;
            c.ice_failed_timeout = failed;
        }
        let mut o = WebRtcPeer::new(now, co).expect("offerer");
        let mut a = WebRtcPeer::new(now, ca).expect("answerer");
        let offer = o.create_offer(now).expect("offer");
        let answer = a.accept_offer(now, &offer).expect("answer");
        o.accept_answer(now, &answer).expect("accept_answer");
        VirtualPair {
            o,
            a,
            ao,
            aa,
            now,
            t0: now,
            events_o: Vec::new(),
            events_a: Vec::new(),
        }
    }

    fn log(&self, offerer: bool, e: &PeerEvent) {
        if !matches!(e, PeerEvent::AudioFrame { .. }) {
            let who = if offerer { "offerer" } else { "answerer" };
            println!("{:>8.3?} {who}: {e:?}", self.now - self.t0);
        }
    }

    /// Runs until `until` (virtual), delivering datagrams when `deliver` is true.
    fn run(&mut self, until: Duration, deliver: bool) {
        let end = self.now + until;
        while self.now < end {
            let mut moved = false;
            while let Some(t) = self.o.poll_transmit() {
                if deliver {
                    self.a.handle_receive(self.now, self.ao, &t.contents);
                }
                moved = true;
            }
            while let Some(t) = self.a.poll_transmit() {
                if deliver {
                    self.o.handle_receive(self.now, self.aa, &t.contents);
                }
                moved = true;
            }
            while let Some(e) = self.o.poll_event() {
                self.log(true, &e);
                self.events_o.push(e);
            }
            while let Some(e) = self.a.poll_event() {
                self.log(false, &e);
                self.events_a.push(e);
            }
            if !moved {
                let next = [self.o.poll_timeout(), self.a.poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min()
                    .unwrap_or(end);
                self.now = next.max(self.now + Duration::from_micros(100)).min(end);
                self.o.handle_timeout(self.now).expect("timeout o");
                self.a.handle_timeout(self.now).expect("timeout a");
            }
        }
    }
}

fn states(events: &[PeerEvent]) -> Vec<&PeerEvent> {
    events
        .iter()
        .filter(|e| !matches!(e, PeerEvent::AudioFrame { .. } | PeerEvent::IceCandidate(_)))
        .collect()
}

#[test]
fn lost_connectivity_reports_disconnected_then_failed() {
    let mut p = VirtualPair::new();
    p.run(Duration::from_secs(2), true);
    assert_eq!(states(&p.events_o), [&PeerEvent::Connected]);
    assert_eq!(states(&p.events_a), [&PeerEvent::Connected]);
    // The network goes dark (browser tab killed, Wi-Fi gone).
    p.run(Duration::from_secs(60), false);
    println!(
        "offerer: {:?}\nanswerer: {:?}",
        states(&p.events_o),
        states(&p.events_a)
    );
    for events in [&p.events_o, &p.events_a] {
        let s = states(events);
        assert!(s.contains(&&PeerEvent::Disconnected), "{s:?}");
        assert!(s.contains(&&PeerEvent::Failed), "{s:?}");
    }
    assert!(!p.o.is_connected());
    assert_eq!(
        p.o.send_audio(p.now, &[1], 0).map_err(|e| e.code()),
        Err("webrtc.not_connected")
    );
    assert_eq!(p.o.poll_timeout(), None, "a failed peer has no timers");
}

#[test]
fn ice_timeouts_are_configurable() {
    let mut p =
        VirtualPair::with_timeouts(Some(Duration::from_secs(2)), Some(Duration::from_secs(3)));
    p.run(Duration::from_secs(1), true);
    p.run(Duration::from_millis(5_500), false);
    // Dark from t=1 s: disconnected by ~3 s, failed by ~6 s.
    let s = states(&p.events_o);
    assert_eq!(
        s,
        [
            &PeerEvent::Connected,
            &PeerEvent::Disconnected,
            &PeerEvent::Failed
        ]
    );
}

#[test]
fn close_reaches_the_remote_only_through_the_ice_timeout() {
    let mut p = VirtualPair::new();
    p.run(Duration::from_secs(2), true);
    p.o.close();
    p.run(Duration::from_secs(40), true);
    println!(
        "offerer: {:?}\nanswerer: {:?}",
        states(&p.events_o),
        states(&p.events_a)
    );
    assert_eq!(states(&p.events_o).last(), Some(&&PeerEvent::Closed));
    let s = states(&p.events_a);
    assert!(
        s.contains(&&PeerEvent::Closed) || s.contains(&&PeerEvent::Failed),
        "remote must learn the call ended: {s:?}"
    );
}

/// An offer shaped like Chrome's for an audio-only call (several codecs, header extensions,
/// an mDNS host candidate and a plain one, trickle and extmap-allow-mixed).
const CHROME_LIKE_OFFER: &str = "v=0\r\n\
o=- 4215775240449105457 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0\r\n\
a=extmap-allow-mixed\r\n\
a=msid-semantic: WMS 5f6b1f1e-1a2b-4c3d-9e8f-0a1b2c3d4e5f\r\n\
m=audio 54321 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
c=IN IP4 127.0.0.1\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=candidate:1467250027 1 udp 2122260223 127.0.0.1 54321 typ host generation 0 network-id 1\r\n\
a=candidate:3000000000 1 udp 2122194687 2f1e4b3c-1111-2222-3333-444455556666.local 54322 typ host generation 0 network-id 2\r\n\
a=ice-ufrag:Chr0\r\n\
a=ice-pwd:ChromePasswordIs22Chars+\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 8B:87:09:8A:5D:C2:F3:33:EF:C5:B1:F6:84:3A:3D:D6:A3:E2:9C:17:4C:E7:46:3B:1B:CE:84:98:DD:8E:AF:7B\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n\
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
a=sendrecv\r\n\
a=msid:5f6b1f1e-1a2b-4c3d-9e8f-0a1b2c3d4e5f 9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d\r\n\
a=rtcp-mux\r\n\
a=rtcp-rsize\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=rtcp-fb:111 transport-cc\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:63 red/48000/2\r\n\
a=fmtp:63 111/111\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:13 CN/8000\r\n\
a=rtpmap:110 telephone-event/48000\r\n\
a=rtpmap:126 telephone-event/8000\r\n\
a=ssrc:3735928559 cname:ChromeCnameXyz\r\n\
a=ssrc:3735928559 msid:5f6b1f1e-1a2b-4c3d-9e8f-0a1b2c3d4e5f 9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d\r\n";

#[test]
fn answers_a_chrome_shaped_offer_with_opus_passive_bundle() {
    let addr: SocketAddr = "127.0.0.1:42000".parse().expect("addr");
    let mut cfg = PeerConfig::new(addr);
    cfg.ice_lite = true;
    cfg.seed = Some(3);
    let now = Instant::now();
    let mut peer = WebRtcPeer::new(now, cfg).expect("peer");
    let answer = peer.accept_offer(now, CHROME_LIKE_OFFER).expect("answer");
    println!("{answer}");
    for needle in [
        "a=group:BUNDLE 0",
        "a=mid:0",
        "a=setup:passive",
        "a=rtcp-mux",
        "a=ice-lite",
        "a=rtpmap:111 opus/48000/2",
        "typ host",
        "a=end-of-candidates",
        "a=sendrecv",
    ] {
        assert!(
            answer.contains(needle),
            "answer lacks {needle:?}:\n{answer}"
        );
    }
    assert!(!answer.contains("PCMU"), "only Opus is answered:\n{answer}");
    // A trickled candidate after the offer, in the forms a browser sends.
    peer.add_remote_candidate(
        "candidate:1467250028 1 udp 2122260223 127.0.0.1 54323 typ host generation 0",
    )
    .expect("trickled candidate");
    peer.add_remote_candidate("a=candidate:1467250029 1 udp 2122260223 127.0.0.1 54324 typ host")
        .expect("a= candidate");
    // Our checks (if any: we are lite) go to the offer's plain host candidate.
    while let Some(t) = peer.poll_transmit() {
        assert_ne!(t.destination.port(), 0);
    }
}
