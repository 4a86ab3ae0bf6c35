//! A phone call as a meet of several managers: manager 1 answers and invites manager 2, who
//! joins; the carrier hears both managers mixed, each manager hears the carrier (and the
//! other manager); "leave only me" keeps the call up, "leave for everyone" ends it with a BYE.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use media::g711::G711Law;
use media::rtp::{self, RtpHeader};
use media::tone::{generate_sine, ToneDetector};
use schemas::ws::{ClientMessage, ServerMessage};
use tokio::net::UdpSocket;

use crate::answered::{in_dialog, invite_with_sdp};
use crate::harness::{call_ended, ended_record, wait_for};
use crate::harness::{Gateway, GatewayOptions, Manager};
use crate::raw_sip::{header, status, RawUdp};
use crate::webrtc_manager::{sdp_rtp_addr, PendingMedia};

const WAIT: Duration = Duration::from_secs(10);
const CARRIER_HZ: f32 = 1000.0;
const M1_HZ: f32 = 440.0;
const M2_HZ: f32 = 700.0;

/// The carrier's RTP: a 1 kHz tone out; counts received frames carrying each of `listen`
/// (at least a quarter of the frame's energy: two mixed tones share it).
struct Carrier {
    heard: Vec<Arc<AtomicU64>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Carrier {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn carrier(socket: UdpSocket, gateway: SocketAddr, listen: &[f32]) -> Carrier {
    let heard: Vec<_> = listen.iter().map(|_| Arc::new(AtomicU64::new(0))).collect();
    let counters = heard.clone();
    let detectors: Vec<_> = listen
        .iter()
        .map(|&f| ToneDetector::new(f, 8000, 160).with_threshold(0.25))
        .collect();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut buf = vec![0u8; 2048];
        for frame in 0u32.. {
            tokio::select! {
                _ = tick.tick() => {
                    let mut pcm = [0i16; 160];
                    generate_sine(CARRIER_HZ, 8000.0, 8000, u64::from(frame) * 160, &mut pcm);
                    let mut g711 = [0u8; 160];
                    G711Law::Ulaw.encode(&pcm, &mut g711).unwrap();
                    let hdr = RtpHeader { payload_type: 0, marker: frame == 0, sequence: frame as u16, timestamp: frame * 160, ssrc: 77, csrc_count: 0 };
                    let mut pkt = vec![0u8; 200];
                    let n = rtp::write_packet(&hdr, &g711, &mut pkt).unwrap();
                    let _ = socket.send_to(&pkt[..n], gateway).await;
                }
                r = socket.recv_from(&mut buf) => {
                    let Ok((n, _)) = r else { continue };
                    let Ok(p) = rtp::parse(&buf[..n]) else { continue };
                    if p.header().payload_type != 0 { continue; }
                    let mut pcm = [0i16; 160];
                    if G711Law::Ulaw.decode(p.payload(), &mut pcm).is_err() { continue; }
                    for (d, c) in detectors.iter().zip(&counters) {
                        if d.detect(&pcm) {
                            c.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
    });
    Carrier { heard, task }
}

async fn answer_of(m: &mut Manager) -> String {
    loop {
        match m.next(WAIT).await.expect("call_answered") {
            ServerMessage::CallAnswered { sdp_answer, .. } => return sdp_answer,
            ServerMessage::Error { code, message } => panic!("{code}: {message}"),
            _ => {}
        }
    }
}

async fn error_code(m: &mut Manager) -> String {
    loop {
        if let ServerMessage::Error { code, .. } = m.next(WAIT).await.expect("error") {
            return code;
        }
    }
}

#[tokio::test]
async fn an_invited_manager_joins_the_first_leaves_only_himself_the_second_ends_it() {
    let gw = Gateway::start(GatewayOptions::default())
        .await
        .expect("gateway");
    // Manager 1 answers (the only one online when the call comes in).
    let mut m1 = gw.manager("demo-manager-1").await.expect("manager 1");
    let call_id = "conf-1";
    let AnsweredCall {
        sip,
        consultation_id,
        rtp,
        media1,
    } = answered_call(&mut m1, &gw, call_id, &[M1_HZ, M2_HZ]).await;
    let (c_m1, c_m2) = (rtp.heard[0].clone(), rtp.heard[1].clone());
    let r1 = media1.report.clone();
    wait_for("manager 1 to hear the carrier", || {
        r1.tone_frames.load(Ordering::Relaxed) >= 10
    })
    .await;
    wait_for("the carrier to hear manager 1", || {
        c_m1.load(Ordering::Relaxed) >= 10
    })
    .await;

    // Joining uninvited is refused.
    let mut m2 = gw.manager("demo-manager-2").await.expect("manager 2");
    let (_p, stray_offer) = PendingMedia::new().await.unwrap();
    m2.send(&ClientMessage::Join {
        consultation_id: consultation_id.clone(),
        sdp_offer: stray_offer,
    })
    .await
    .unwrap();
    assert_eq!(error_code(&mut m2).await, "meet.not_invited");

    // Manager 1 invites manager 2, who joins.
    m1.send(&ClientMessage::InviteManager {
        consultation_id: consultation_id.clone(),
        manager_id: "manager-2".into(),
    })
    .await
    .unwrap();
    let (caller, invited_by) = loop {
        if let ServerMessage::MeetInvite {
            consultation_id: c,
            caller,
            invited_by,
        } = m2.next(WAIT).await.expect("meet_invite")
        {
            assert_eq!(c, consultation_id);
            break (caller, invited_by);
        }
    };
    assert_eq!(invited_by, "manager-1");
    assert!(caller.is_some_and(|c| c.ends_with("1055556666")));
    let (pending2, offer2) = PendingMedia::new().await.unwrap();
    m2.send(&ClientMessage::Join {
        consultation_id: consultation_id.clone(),
        sdp_offer: offer2,
    })
    .await
    .unwrap();
    let answer2 = answer_of(&mut m2).await;
    let media2 = pending2
        .start_with_threshold(&answer2, M2_HZ, CARRIER_HZ, 0.25)
        .unwrap();
    let r2 = media2.report.clone();
    wait_for("manager 2 to hear the carrier", || {
        r2.tone_frames.load(Ordering::Relaxed) >= 10
    })
    .await;
    // The carrier hears both managers at once (mixed).
    let (m1_before, m2_before) = (c_m1.load(Ordering::Relaxed), c_m2.load(Ordering::Relaxed));
    wait_for("the carrier to hear both managers", || {
        c_m1.load(Ordering::Relaxed) >= m1_before + 10
            && c_m2.load(Ordering::Relaxed) >= m2_before + 10
    })
    .await;

    // Manager 1 leaves only himself: the call stays up, the carrier still hears manager 2.
    m1.send(&ClientMessage::Leave {
        consultation_id: consultation_id.clone(),
    })
    .await
    .unwrap();
    assert_eq!(call_ended(&mut m1).await, "left");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m2_after_leave = c_m2.load(Ordering::Relaxed);
    wait_for("the carrier to keep hearing manager 2", || {
        c_m2.load(Ordering::Relaxed) >= m2_after_leave + 15
    })
    .await;
    // Manager 1 is no longer heard.
    let m1_gone = c_m1.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        c_m1.load(Ordering::Relaxed) <= m1_gone + 2,
        "manager 1 still heard after leaving"
    );
    let ended = gw
        .db()
        .calls_for_consultation(&consultation_id)
        .await
        .unwrap();
    assert!(
        ended[0].ended_at_ms.is_none(),
        "the call ended with manager 1"
    );

    // Manager 2 leaves for everyone: BYE to the carrier.
    m2.send(&ClientMessage::Hangup {
        consultation_id: consultation_id.clone(),
    })
    .await
    .unwrap();
    let bye = loop {
        let msg = sip.recv(WAIT).await.expect("BYE from the gateway");
        if msg.starts_with("BYE ") {
            break msg;
        }
    };
    assert!(bye.contains("Call-ID: conf-1"), "{bye}");
    assert_eq!(call_ended(&mut m2).await, "manager_hung_up");
    let rec = ended_record(&gw, &consultation_id).await;
    assert_eq!(rec.end_reason.as_deref(), Some("manager_hung_up"));
    assert_eq!(rec.ended_by.as_deref(), Some("manager-2"));
    drop(rtp);
}

/// Adds managers `manager-3`..=`manager-{last}` (tokens `demo-manager-N`) to the demo channel.
fn with_managers(last: u32) -> GatewayOptions {
    GatewayOptions {
        edit: Box::new(move |s| {
            let anchor = "[[channels.managers]]\nid = \"admin-1\"";
            let extra: String = (3..=last)
                .map(|n| {
                    format!(
                        "[[channels.managers]]\nid = \"manager-{n}\"\nname = \"Manager {n}\"\n\
                         token = \"demo-manager-{n}\"\nrole = \"manager\"\noperator_seat = true\n\n"
                    )
                })
                .collect();
            assert!(s.contains(anchor), "the example config changed");
            s.replacen(anchor, &format!("{extra}{anchor}"), 1)
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn an_eleventh_participant_is_refused_with_meet_full() {
    let gw = Gateway::start(with_managers(10)).await.expect("gateway");
    let mut m1 = gw.manager("demo-manager-1").await.expect("manager 1");
    let AnsweredCall {
        sip,
        consultation_id,
        rtp: _rtp,
        media1: _media1,
    } = answered_call(&mut m1, &gw, "conf-full", &[M1_HZ]).await;

    // The customer + managers 1..=9 = 10 participants.
    let mut joined = Vec::new();
    for n in 2..=9 {
        let mut m = gw.manager(&format!("demo-manager-{n}")).await.unwrap();
        m1.send(&ClientMessage::InviteManager {
            consultation_id: consultation_id.clone(),
            manager_id: format!("manager-{n}"),
        })
        .await
        .unwrap();
        loop {
            if let ServerMessage::MeetInvite { .. } = m.next(WAIT).await.expect("meet_invite") {
                break;
            }
        }
        let (pending, offer) = PendingMedia::new().await.unwrap();
        m.send(&ClientMessage::Join {
            consultation_id: consultation_id.clone(),
            sdp_offer: offer,
        })
        .await
        .unwrap();
        let answer = answer_of(&mut m).await;
        let media = pending
            .start(&answer, 300.0 + 50.0 * n as f32, CARRIER_HZ)
            .unwrap();
        joined.push((m, media));
    }
    let mut m10 = gw.manager("demo-manager-10").await.unwrap();
    m1.send(&ClientMessage::InviteManager {
        consultation_id: consultation_id.clone(),
        manager_id: "manager-10".into(),
    })
    .await
    .unwrap();
    assert_eq!(error_code(&mut m1).await, "meet.full");
    // Uninvited (the invite was refused): the join is refused too.
    let (_p, offer) = PendingMedia::new().await.unwrap();
    m10.send(&ClientMessage::Join {
        consultation_id: consultation_id.clone(),
        sdp_offer: offer,
    })
    .await
    .unwrap();
    assert_eq!(error_code(&mut m10).await, "meet.not_invited");

    // One leaves: room for the tenth manager.
    let (mut m9, _media9) = joined.pop().unwrap();
    m9.send(&ClientMessage::Leave {
        consultation_id: consultation_id.clone(),
    })
    .await
    .unwrap();
    assert_eq!(call_ended(&mut m9).await, "left");
    m1.send(&ClientMessage::InviteManager {
        consultation_id: consultation_id.clone(),
        manager_id: "manager-10".into(),
    })
    .await
    .unwrap();
    loop {
        if let ServerMessage::MeetInvite { .. } = m10.next(WAIT).await.expect("meet_invite") {
            break;
        }
    }
    // Manager 1 ends it for everyone: BYE, every joined console gets call_ended.
    m1.send(&ClientMessage::Hangup {
        consultation_id: consultation_id.clone(),
    })
    .await
    .unwrap();
    loop {
        let msg = sip.recv(WAIT).await.expect("BYE from the gateway");
        if msg.starts_with("BYE ") {
            break;
        }
    }
    for (m, _) in &mut joined {
        assert_eq!(call_ended(m).await, "manager_hung_up");
    }
    // Manager 10 was invited and had not joined: the invite goes away with the call.
    assert_eq!(call_ended(&mut m10).await, "manager_hung_up");
    let rec = ended_record(&gw, &consultation_id).await;
    assert_eq!(rec.ended_by.as_deref(), Some("manager-1"));
}

/// A call manager 1 answered, with tones flowing both ways.
struct AnsweredCall {
    sip: RawUdp,
    consultation_id: String,
    rtp: Carrier,
    media1: crate::webrtc_manager::ManagerMedia,
}

/// A call manager 1 answered (sending 440 Hz); the carrier counts frames carrying each of
/// `carrier_listens_for`.
async fn answered_call(
    m1: &mut Manager,
    gw: &Gateway,
    call_id: &str,
    carrier_listens_for: &[f32],
) -> AnsweredCall {
    let sip = RawUdp::new(gw.sip).await;
    let rtp_socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sip.send(&invite_with_sdp(
        sip.local(),
        rtp_socket.local_addr().unwrap(),
        call_id,
    ))
    .await;
    let ServerMessage::Ring {
        consultation_id, ..
    } = m1.ring(WAIT).await.expect("ring")
    else {
        unreachable!()
    };
    let (pending1, offer1) = PendingMedia::new().await.unwrap();
    m1.send(&ClientMessage::Accept {
        consultation_id: consultation_id.clone(),
        sdp_offer: offer1,
    })
    .await
    .unwrap();
    let answer1 = answer_of(m1).await;
    let media1 = pending1
        .start_with_threshold(&answer1, M1_HZ, CARRIER_HZ, 0.25)
        .unwrap();
    let ok = sip.final_response(WAIT).await.expect("200 OK");
    assert_eq!(status(&ok), Some(200), "{ok}");
    let body = ok.split("\r\n\r\n").nth(1).unwrap_or_default();
    let gateway_rtp = sdp_rtp_addr(body).expect("gateway RTP address");
    let to = header(&ok, "To")[0].to_string();
    sip.send(&in_dialog("ACK", sip.local(), call_id, 1, &to, "ack1"))
        .await;
    let rtp = carrier(rtp_socket, gateway_rtp, carrier_listens_for);
    AnsweredCall {
        sip,
        consultation_id,
        rtp,
        media1,
    }
}

#[tokio::test]
async fn an_invite_nobody_takes_up_expires_for_both_managers() {
    let gw = Gateway::start(GatewayOptions {
        edit: Box::new(|s| {
            assert!(
                s.contains("meet_invite_timeout_ms = 60000"),
                "the example config changed"
            );
            s.replace(
                "meet_invite_timeout_ms = 60000",
                "meet_invite_timeout_ms = 1000",
            )
        }),
        ..Default::default()
    })
    .await
    .expect("gateway");
    let mut m1 = gw.manager("demo-manager-1").await.expect("manager 1");
    let call = answered_call(&mut m1, &gw, "conf-expire", &[M1_HZ]).await;
    let mut m2 = gw.manager("demo-manager-2").await.expect("manager 2");
    m1.send(&ClientMessage::InviteManager {
        consultation_id: call.consultation_id.clone(),
        manager_id: "manager-2".into(),
    })
    .await
    .unwrap();
    let mut expired = false;
    let started = std::time::Instant::now();
    while !expired {
        match m2.next(WAIT).await.expect("meet_invite, then its expiry") {
            ServerMessage::MeetInviteExpired { consultation_id } => {
                assert_eq!(consultation_id, call.consultation_id);
                expired = true;
            }
            ServerMessage::CallEnded { .. } => panic!("the call ended instead"),
            _ => {}
        }
    }
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "expired early"
    );
    assert_eq!(error_code(&mut m1).await, "meet.invite_expired");
    // A join after the expiry is refused; the call itself goes on.
    let (_p, offer) = PendingMedia::new().await.unwrap();
    m2.send(&ClientMessage::Join {
        consultation_id: call.consultation_id.clone(),
        sdp_offer: offer,
    })
    .await
    .unwrap();
    assert_eq!(error_code(&mut m2).await, "meet.not_invited");
    let r1 = call.media1.report.clone();
    let before = r1.tone_frames.load(Ordering::Relaxed);
    wait_for("manager 1 to keep hearing the carrier", || {
        r1.tone_frames.load(Ordering::Relaxed) >= before + 10
    })
    .await;
    drop(call.sip);
    drop(call.rtp);
}
