//! Answered calls: a raw carrier (SIP + G.711 RTP over UDP) and the programmatic manager
//! (WebSocket + WebRTC/Opus) hear each other's tones; BYE from either side, media timeout.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use media::g711::G711Law;
use media::rtp::{self, RtpHeader};
use media::tone::{generate_sine, ToneDetector};
use schemas::ws::{ClientMessage, ServerMessage};
use tokio::net::UdpSocket;

use crate::harness::{call_ended, ended_record, wait_for};
use crate::harness::{Gateway, GatewayOptions, Manager};
use crate::raw_sip::{header, status, RawUdp};
use crate::webrtc_manager::{sdp_rtp_addr, ManagerMedia, PendingMedia};

const WAIT: Duration = Duration::from_secs(10);

pub(crate) fn invite_with_sdp(local: SocketAddr, rtp: SocketAddr, call_id: &str) -> String {
    invite_with(local, rtp, call_id, 1, "sendrecv", "")
}

/// An INVITE (or re-INVITE, with `to` carrying our tag) offering PCMU + telephone-event at
/// 20 ms packets.
fn invite_with(
    local: SocketAddr,
    rtp: SocketAddr,
    call_id: &str,
    cseq: u32,
    direction: &str,
    extra: &str,
) -> String {
    invite_with_ptime(local, rtp, call_id, cseq, direction, extra, 20)
}

fn invite_with_ptime(
    local: SocketAddr,
    rtp: SocketAddr,
    call_id: &str,
    cseq: u32,
    direction: &str,
    extra: &str,
    ptime_ms: u32,
) -> String {
    let to = extra
        .lines()
        .find_map(|l| l.strip_prefix("To: "))
        .map_or_else(|| "<sip:07012345678@127.0.0.1>".to_string(), str::to_string);
    let extra: String = extra
        .lines()
        .filter(|l| !l.starts_with("To: "))
        .map(|l| format!("{l}\r\n"))
        .collect();
    let sdp = format!(
        "v=0\r\no=carrier 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 {}\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-16\r\na=ptime:{ptime_ms}\r\na={direction}\r\n",
        rtp.ip(),
        rtp.port()
    );
    format!(
        "INVITE sip:07012345678@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bKinv-{call_id}-{cseq};rport\r\n\
         From: <sip:01055556666@127.0.0.1>;tag=c-{call_id}\r\n\
         To: {to}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} INVITE\r\n\
         Contact: <sip:carrier@{local}>\r\n\
         Max-Forwards: 70\r\n\
         {extra}\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

pub(crate) fn in_dialog(
    method: &str,
    local: SocketAddr,
    call_id: &str,
    cseq: u32,
    to: &str,
    branch: &str,
) -> String {
    format!(
        "{method} sip:gateway@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\n\
         From: <sip:01055556666@127.0.0.1>;tag=c-{call_id}\r\n\
         To: {to}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// The carrier's RTP: sends a 1 kHz tone (unless `silent`) and counts received 440 Hz frames.
pub(crate) struct CarrierRtp {
    pub(crate) heard: Arc<AtomicU64>,
    /// Every RTP packet received from the gateway.
    packets: Arc<AtomicU64>,
    /// G.711 payload bytes of the last audio packet received from the gateway.
    last_payload_len: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CarrierRtp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) fn carrier_rtp(socket: UdpSocket, gateway: SocketAddr, silent: bool) -> CarrierRtp {
    carrier_rtp_with_ptime(socket, gateway, silent, 20)
}

/// As [`carrier_rtp`], sending a packet of `ptime_ms` of audio every `ptime_ms`.
fn carrier_rtp_with_ptime(
    socket: UdpSocket,
    gateway: SocketAddr,
    silent: bool,
    ptime_ms: u32,
) -> CarrierRtp {
    let samples = ptime_ms * 8;
    let last_payload_len = Arc::new(AtomicU64::new(0));
    let last_len = last_payload_len.clone();
    let heard = Arc::new(AtomicU64::new(0));
    let h = heard.clone();
    let packets = Arc::new(AtomicU64::new(0));
    let pk = packets.clone();
    let task = tokio::spawn(async move {
        let detector = ToneDetector::new(440.0, 8000, 160);
        let mut tick = tokio::time::interval(Duration::from_millis(u64::from(ptime_ms)));
        let mut buf = vec![0u8; 2048];
        for packet in 0u32.. {
            tokio::select! {
                _ = tick.tick() => {
                    if silent { continue; }
                    let mut pcm = vec![0i16; samples as usize];
                    generate_sine(1000.0, 8000.0, 8000, u64::from(packet * samples), &mut pcm);
                    let mut g711 = vec![0u8; samples as usize];
                    G711Law::Ulaw.encode(&pcm, &mut g711).unwrap();
                    let hdr = RtpHeader { payload_type: 0, marker: packet == 0, sequence: packet as u16, timestamp: packet * samples, ssrc: 99, csrc_count: 0 };
                    let mut pkt = vec![0u8; 12 + g711.len()];
                    let n = rtp::write_packet(&hdr, &g711, &mut pkt).unwrap();
                    let _ = socket.send_to(&pkt[..n], gateway).await;
                }
                r = socket.recv_from(&mut buf) => {
                    let Ok((n, _)) = r else { continue };
                    let Ok(p) = rtp::parse(&buf[..n]) else { continue };
                    pk.fetch_add(1, Ordering::Relaxed);
                    if p.header().payload_type != 0 { continue; }
                    last_len.store(p.payload().len() as u64, Ordering::Relaxed);
                    // The tone is checked in the packet's first 20 ms.
                    let mut pcm = [0i16; 160];
                    let first = &p.payload()[..p.payload().len().min(160)];
                    if G711Law::Ulaw.decode(first, &mut pcm[..first.len()]).is_ok() && detector.detect(&pcm) {
                        h.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    });
    CarrierRtp {
        heard,
        packets,
        last_payload_len,
        task,
    }
}

pub(crate) struct Connected {
    pub(crate) sip: RawUdp,
    rtp_addr: SocketAddr,
    pub(crate) to: String,
    pub(crate) consultation_id: String,
    pub(crate) manager: Manager,
    pub(crate) media: ManagerMedia,
    pub(crate) rtp: CarrierRtp,
    pub(crate) call_id: String,
}

/// INVITE → ring → accept with a WebRTC offer → 200 OK with SDP → ACK → media both ways.
async fn connect(gw: &Gateway, call_id: &str, silent_carrier: bool) -> Connected {
    connect_with_ptime(gw, call_id, silent_carrier, 20).await
}

/// As [`connect`], the carrier offering and sending `ptime_ms` packets.
async fn connect_with_ptime(
    gw: &Gateway,
    call_id: &str,
    silent_carrier: bool,
    ptime_ms: u32,
) -> Connected {
    connect_to(gw.sip, gw.http, call_id, silent_carrier, ptime_ms).await
}

/// A connected call to the gateway at these SIP and HTTP addresses (manager 1 answers).
pub(crate) async fn connect_to(
    gateway_sip: SocketAddr,
    gateway_http: SocketAddr,
    call_id: &str,
    silent_carrier: bool,
    ptime_ms: u32,
) -> Connected {
    let mut manager = Manager::connect(gateway_http, "demo-manager-1")
        .await
        .expect("manager");
    let sip = RawUdp::new(gateway_sip).await;
    let rtp_socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let rtp_addr = rtp_socket.local_addr().unwrap();
    sip.send(&invite_with_ptime(
        sip.local(),
        rtp_socket.local_addr().unwrap(),
        call_id,
        1,
        "sendrecv",
        "",
        ptime_ms,
    ))
    .await;
    let ServerMessage::Ring {
        consultation_id, ..
    } = manager.ring(WAIT).await.expect("ring")
    else {
        unreachable!()
    };
    let (pending, offer) = PendingMedia::new().await.expect("webrtc offer");
    manager
        .send(&ClientMessage::Accept {
            consultation_id: consultation_id.clone(),
            sdp_offer: offer,
        })
        .await
        .unwrap();
    let answer = loop {
        match manager.next(WAIT).await.expect("answer") {
            ServerMessage::CallAnswered { sdp_answer, .. } => break sdp_answer,
            ServerMessage::Error { code, message } => panic!("{code}: {message}"),
            _ => {}
        }
    };
    let media = pending.start(&answer, 440.0, 1000.0).expect("media");
    let ok = sip.final_response(WAIT).await.expect("200 OK");
    assert_eq!(status(&ok), Some(200), "{ok}");
    assert_eq!(header(&ok, "Content-Type"), ["application/sdp"]);
    let body = ok.split("\r\n\r\n").nth(1).unwrap_or_default();
    let gateway_rtp = sdp_rtp_addr(body).expect("gateway RTP address in the SDP answer");
    assert!(
        body.contains("RTP/AVP 0 101") || body.contains("RTP/AVP 0"),
        "{body}"
    );
    let to = header(&ok, "To")[0].to_string();
    sip.send(&in_dialog("ACK", sip.local(), call_id, 1, &to, "ack1"))
        .await;
    let rtp = carrier_rtp_with_ptime(rtp_socket, gateway_rtp, silent_carrier, ptime_ms);
    Connected {
        sip,
        rtp_addr,
        to,
        consultation_id,
        manager,
        media,
        rtp,
        call_id: call_id.to_string(),
    }
}

#[tokio::test]
async fn tones_cross_both_ways_and_the_carrier_hangs_up() {
    let gw = Gateway::start(GatewayOptions::default())
        .await
        .expect("gateway");
    let mut c = connect(&gw, "ans-1", false).await;
    let (media, heard) = (c.media.report.clone(), c.rtp.heard.clone());
    wait_for("the manager to hear the caller's 1 kHz", || {
        media.tone_frames.load(Ordering::Relaxed) >= 25
    })
    .await;
    wait_for("the caller to hear the manager's 440 Hz", || {
        heard.load(Ordering::Relaxed) >= 25
    })
    .await;
    c.sip
        .send(&in_dialog(
            "BYE",
            c.sip.local(),
            &c.call_id,
            2,
            &c.to,
            "bye1",
        ))
        .await;
    let r = c.sip.final_response(WAIT).await.unwrap();
    assert_eq!(status(&r), Some(200), "{r}");
    assert!(header(&r, "CSeq")[0].ends_with("BYE"));
    assert_eq!(call_ended(&mut c.manager).await, "customer_hung_up");
    let rec = ended_record(&gw, &c.consultation_id).await;
    assert!(rec.answered_at_ms.is_some());
    assert_eq!(rec.end_reason.as_deref(), Some("customer_hung_up"));
    assert_eq!(rec.ended_by.as_deref(), Some("customer"));
    // Answered for a second or two: one started minute at the demo rate of 50.
    assert!(rec.billable_seconds >= 1, "{rec:?}");
    assert_eq!(rec.charge_minor, 50);
    // The call added its media counters to /metrics when it ended.
    let metrics = integration_tests::bench::scrape_metrics(gw.http.port())
        .await
        .expect("metrics");
    for name in [
        "media_carrier_packets_total",
        "media_frames_to_browser_total",
        "media_browser_packets_total",
        "media_packets_to_carrier_total",
    ] {
        let value = metrics.get(name).copied().unwrap_or(0.0);
        assert!(value >= 25.0, "{name} = {value}");
    }
    assert_eq!(metrics.get("media_carrier_discarded_total"), Some(&0.0));
    // The call was recorded: stereo, the caller left and the manager right, stored with its
    // SHA-256 and a queued transcription job.
    let stored = gw
        .db()
        .recording_for_call(&rec.id)
        .await
        .unwrap()
        .expect("a recording row");
    let bytes = std::fs::read(gw.recordings_dir().join(&stored.storage_key)).expect("the file");
    assert_eq!(bytes.len() as i64, stored.size_bytes);
    assert_eq!(stored.sha256, sha256_hex(&bytes));
    assert_eq!((stored.sample_rate_hz, stored.channels), (8000, 2));
    // From the answer to the BYE: at least the half second of tones heard both ways.
    assert!(stored.duration_ms >= 400, "{stored:?}");
    assert!(!stored.repaired);
    let (customer, managers) = stereo_frames(&bytes);
    assert_eq!(customer.len() as i64, stored.duration_ms / 20);
    let count = |frames: &[Vec<i16>], hz: f32| {
        let d = ToneDetector::new(hz, 8000, 160);
        frames.iter().filter(|f| d.detect(f)).count()
    };
    assert!(
        count(&customer, 1000.0) >= 25,
        "the caller's 1 kHz on the left"
    );
    assert!(
        count(&managers, 440.0) >= 25,
        "the manager's 440 Hz on the right"
    );
    assert_eq!(
        count(&customer, 440.0),
        0,
        "the manager leaked into the left"
    );
    assert_eq!(
        gw.db().transcription_job_state(&stored.id).await.unwrap(),
        Some(("queued".to_string(), 0))
    );
    let spool: Vec<_> = std::fs::read_dir(gw.recordings_dir().join("spool"))
        .unwrap()
        .collect();
    assert!(spool.is_empty(), "spool not emptied: {spool:?}");
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A stereo 16-bit WAV's 20 ms frames per channel (after the 44-byte header).
pub(crate) fn stereo_frames(wav: &[u8]) -> (Vec<Vec<i16>>, Vec<Vec<i16>>) {
    assert_eq!(&wav[..4], b"RIFF");
    assert_eq!(
        u32::from_le_bytes(wav[40..44].try_into().unwrap()) as usize,
        wav.len() - 44
    );
    let samples: Vec<i16> = wav[44..]
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    let (left, right): (Vec<i16>, Vec<i16>) = samples.chunks_exact(2).map(|f| (f[0], f[1])).unzip();
    let frames = |ch: Vec<i16>| ch.chunks_exact(160).map(<[i16]>::to_vec).collect();
    (frames(left), frames(right))
}

#[tokio::test]
async fn a_carrier_packetizing_at_30_ms_is_heard_and_gets_30_ms_packets() {
    let gw = Gateway::start(GatewayOptions::default())
        .await
        .expect("gateway");
    let c = connect_with_ptime(&gw, "ptime-30", false, 30).await;
    let (media, heard) = (c.media.report.clone(), c.rtp.heard.clone());
    wait_for("the manager to hear the caller's 1 kHz", || {
        media.tone_frames.load(Ordering::Relaxed) >= 25
    })
    .await;
    wait_for("the caller to hear the manager's 440 Hz", || {
        heard.load(Ordering::Relaxed) >= 25
    })
    .await;
    // The answer kept the carrier's ptime (RFC 3264 §6.1) and our packets follow it.
    assert_eq!(c.rtp.last_payload_len.load(Ordering::Relaxed), 240);
}

#[tokio::test]
async fn the_manager_hangs_up_with_a_bye_to_the_carrier() {
    let gw = Gateway::start(GatewayOptions::default())
        .await
        .expect("gateway");
    let mut c = connect(&gw, "ans-2", false).await;
    let media = c.media.report.clone();
    wait_for("media", || media.tone_frames.load(Ordering::Relaxed) >= 5).await;
    c.manager
        .send(&ClientMessage::Hangup {
            consultation_id: c.consultation_id.clone(),
        })
        .await
        .unwrap();
    let bye = loop {
        let msg = c.sip.recv(WAIT).await.expect("BYE from the gateway");
        if msg.starts_with("BYE ") {
            break msg;
        }
    };
    assert!(bye.contains("Call-ID: ans-2"), "{bye}");
    assert!(header(&bye, "From")[0].contains(";tag="), "{bye}");
    assert!(header(&bye, "To")[0].contains("tag=c-ans-2"), "{bye}");
    assert_eq!(call_ended(&mut c.manager).await, "manager_hung_up");
    let rec = ended_record(&gw, &c.consultation_id).await;
    assert_eq!(rec.ended_by.as_deref(), Some("manager-1"));
}

#[tokio::test]
async fn carrier_media_silence_ends_the_call_with_media_timeout() {
    let gw = Gateway::start(GatewayOptions {
        edit: Box::new(|s| {
            s.replace(
                "inactivity_timeout_ms = 30000",
                "inactivity_timeout_ms = 1500",
            )
        }),
        ..Default::default()
    })
    .await
    .expect("gateway");
    let mut c = connect(&gw, "ans-3", true).await;
    let bye = loop {
        let msg = c.sip.recv(WAIT).await.expect("BYE after the media timeout");
        if msg.starts_with("BYE ") {
            break msg;
        }
    };
    assert!(header(&bye, "Reason")[0].contains("media_timeout"), "{bye}");
    assert_eq!(call_ended(&mut c.manager).await, "media_timeout");
    let rec = ended_record(&gw, &c.consultation_id).await;
    assert_eq!(rec.end_reason.as_deref(), Some("media_timeout"));
}

/// Waits for a 200 to `method`, answering nothing else.
async fn ok_to(c: &Connected, method: &str) -> String {
    loop {
        let msg = c
            .sip
            .recv(WAIT)
            .await
            .unwrap_or_else(|| panic!("no 200 to {method}"));
        if status(&msg) == Some(200)
            && header(&msg, "CSeq")
                .first()
                .is_some_and(|v| v.ends_with(method))
        {
            return msg;
        }
    }
}

#[tokio::test]
async fn hold_and_resume_by_re_invite_per_rfc_3264() {
    let gw = Gateway::start(GatewayOptions::default())
        .await
        .expect("gateway");
    let c = connect(&gw, "hold-1", false).await;
    let packets = c.rtp.packets.clone();
    wait_for("RTP from the gateway", || {
        packets.load(Ordering::Relaxed) >= 10
    })
    .await;
    // Hold: the carrier will only send (music on hold); we must answer recvonly and stop sending.
    let to = format!("To: {}", c.to);
    c.sip
        .send(&invite_with(
            c.sip.local(),
            c.rtp_addr,
            &c.call_id,
            2,
            "sendonly",
            &to,
        ))
        .await;
    let ok = ok_to(&c, "INVITE").await;
    assert!(ok.contains("a=recvonly"), "{ok}");
    assert!(ok.contains("o=gateway"), "{ok}");
    c.sip
        .send(&in_dialog(
            "ACK",
            c.sip.local(),
            &c.call_id,
            2,
            &c.to,
            "ack2",
        ))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let during_hold = packets.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        packets.load(Ordering::Relaxed) - during_hold <= 1,
        "no RTP to the carrier while held"
    );
    // Resume.
    c.sip
        .send(&invite_with(
            c.sip.local(),
            c.rtp_addr,
            &c.call_id,
            3,
            "sendrecv",
            &to,
        ))
        .await;
    let ok = ok_to(&c, "INVITE").await;
    assert!(ok.contains("a=sendrecv"), "{ok}");
    c.sip
        .send(&in_dialog(
            "ACK",
            c.sip.local(),
            &c.call_id,
            3,
            &c.to,
            "ack3",
        ))
        .await;
    let resumed = packets.load(Ordering::Relaxed);
    wait_for("RTP again after resume", || {
        packets.load(Ordering::Relaxed) >= resumed + 10
    })
    .await;
}

#[tokio::test]
async fn session_timers_per_rfc_4028() {
    let gw = Gateway::start(GatewayOptions::default())
        .await
        .expect("gateway");
    let _m = gw.manager("demo-manager-2").await.expect("manager");
    // Below Min-SE: 422 with our minimum.
    let sip = RawUdp::new(gw.sip).await;
    let rtp: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    sip.send(&invite_with(
        sip.local(),
        rtp,
        "st-1",
        1,
        "sendrecv",
        "Session-Expires: 60\nSupported: timer",
    ))
    .await;
    let r = sip.final_response(WAIT).await.unwrap();
    assert_eq!(status(&r), Some(422), "{r}");
    assert_eq!(header(&r, "Min-SE"), ["90"]);
    // Accepted interval: echoed in the 200 with the refresher, and Require: timer.
    let mut manager = gw.manager("demo-manager-1").await.expect("manager");
    let rtp_socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let sip = RawUdp::new(gw.sip).await;
    sip.send(&invite_with(
        sip.local(),
        rtp_socket.local_addr().unwrap(),
        "st-2",
        1,
        "sendrecv",
        "Session-Expires: 1800\nSupported: timer",
    ))
    .await;
    let ServerMessage::Ring {
        consultation_id, ..
    } = manager.ring(WAIT).await.expect("ring")
    else {
        unreachable!()
    };
    let (pending, offer) = PendingMedia::new().await.unwrap();
    manager
        .send(&ClientMessage::Accept {
            consultation_id,
            sdp_offer: offer,
        })
        .await
        .unwrap();
    let answer = loop {
        if let ServerMessage::CallAnswered { sdp_answer, .. } = manager.next(WAIT).await.unwrap() {
            break sdp_answer;
        }
    };
    let _media = pending.start(&answer, 440.0, 1000.0).unwrap();
    let ok = sip.final_response(WAIT).await.unwrap();
    assert_eq!(status(&ok), Some(200), "{ok}");
    assert_eq!(header(&ok, "Session-Expires"), ["1800;refresher=uac"]);
    assert_eq!(header(&ok, "Require"), ["timer"]);
}

#[tokio::test]
async fn a_closed_console_leaves_the_call_and_the_carrier_gets_a_bye() {
    let gw = Gateway::start(GatewayOptions::default())
        .await
        .expect("gateway");
    let c = connect(&gw, "gone-1", false).await;
    let media = c.media.report.clone();
    wait_for("media", || media.tone_frames.load(Ordering::Relaxed) >= 5).await;
    // The manager's only console goes away (tab closed): the last manager is gone, so is the call.
    c.manager.close().await;
    let bye = loop {
        let msg = c
            .sip
            .recv(WAIT)
            .await
            .expect("BYE after the console closed");
        if msg.starts_with("BYE ") {
            break msg;
        }
    };
    assert!(bye.contains("Call-ID: gone-1"), "{bye}");
    let rec = ended_record(&gw, &c.consultation_id).await;
    assert!(
        rec.answered_at_ms.is_some() && rec.ended_at_ms.is_some(),
        "{rec:?}"
    );
}
