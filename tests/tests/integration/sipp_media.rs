//! Answered calls with sipp as the carrier and real RTP audio: sipp plays G.711 RTP from pcaps
//! the test writes (a 1 kHz tone; the tone with RFC 4733 digits), the programmatic WebRTC
//! manager accepts, sends 440 Hz and listens for the 1 kHz tone; BYE from either side, DTMF,
//! hold and resume by re-INVITE.
//!
//! sipp 3.6 plays a pcap with `<exec play_pcap_audio="file.pcap"/>` (a raw socket: it needs
//! root or CAP_NET_RAW) from its media port (`-mp`) to the `m=audio` address of the gateway's
//! SDP answer. It reads the pcap when it loads the scenario, relative to its working
//! directory, so each test writes its pcaps into a private directory and runs sipp there.

use std::sync::atomic::Ordering;
use std::time::Duration;

use media::dtmf::{char_to_event, TelephoneEvent};
use media::g711::G711Law;
use media::rtp::{self, RtpHeader};
use media::tone::generate_sine;
use schemas::ws::{ClientMessage, ServerMessage};

use crate::harness::ended_record;
use crate::harness::{ring_during, Gateway, GatewayOptions, Sipp, TempDir};
use crate::webrtc_manager::{ManagerMedia, PendingMedia};

const WAIT: Duration = Duration::from_secs(20);
/// The carrier's tone and the manager's.
const CARRIER_HZ: f32 = 1000.0;
const MANAGER_HZ: f32 = 440.0;
/// RTP payload type of telephone-event in the scenarios' SDP offer.
const DTMF_PT: u8 = 101;
const SSRC: u32 = 0x5151_0001;
/// Ports inside the pcap; sipp replaces them (source: its `-mp`; destination: the SDP's).
const PCAP_PORT: u16 = 6000;

// ---------------------------------------------------------------------------------------------
// pcap writing (libpcap format, Ethernet / IPv4 / UDP), deterministic.

/// One RTP datagram and when it leaves, in µs from the start of the capture.
struct Timed {
    at_us: u64,
    rtp: Vec<u8>,
}

fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// A pcap file of the datagrams from 127.0.0.1:6000 to 127.0.0.1:6000 (sipp rewrites the
/// addresses and ports and recomputes the UDP checksum, so it is left zero here).
fn pcap_file(packets: &[Timed]) -> Vec<u8> {
    const EPOCH_S: u64 = 1_700_000_000;
    let mut out = Vec::new();
    // Global header: magic, v2.4, GMT offset, accuracy, snaplen, LINKTYPE_ETHERNET.
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, p) in packets.iter().enumerate() {
        let udp_len = 8 + p.rtp.len();
        let ip_len = 20 + udp_len;
        let mut frame = Vec::with_capacity(14 + ip_len);
        frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]); // destination MAC
        frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]); // source MAC
        frame.extend_from_slice(&0x0800u16.to_be_bytes());
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&(i as u16).to_be_bytes());
        ip[6] = 0x40; // don't fragment
        ip[8] = 64;
        ip[9] = 17; // UDP
        ip[12..16].copy_from_slice(&[127, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[127, 0, 0, 1]);
        let sum = ipv4_checksum(&ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&PCAP_PORT.to_be_bytes());
        frame.extend_from_slice(&PCAP_PORT.to_be_bytes());
        frame.extend_from_slice(&(udp_len as u16).to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(&p.rtp);
        let ts_s = EPOCH_S + p.at_us / 1_000_000;
        let ts_us = p.at_us % 1_000_000;
        out.extend_from_slice(&(ts_s as u32).to_le_bytes());
        out.extend_from_slice(&(ts_us as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&frame);
    }
    out
}

fn rtp_packet(header: &RtpHeader, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 12 + payload.len()];
    let n = rtp::write_packet(header, payload, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// 20 ms of the carrier's 1 kHz tone, µ-law, for slot `slot` (phase continues across slots).
fn tone_frame(slot: u32) -> [u8; 160] {
    let mut pcm = [0i16; 160];
    generate_sine(CARRIER_HZ, 8000.0, 8000, u64::from(slot) * 160, &mut pcm);
    let mut g711 = [0u8; 160];
    G711Law::Ulaw.encode(&pcm, &mut g711).unwrap();
    g711
}

/// What each 20 ms slot of a generated stream carries.
enum Slot {
    Audio,
    /// A telephone-event packet: digit, event start slot, duration in timestamp units, end.
    Event(char, u32, u16, bool),
}

/// One RTP stream (one SSRC, consecutive sequence numbers) of 20 ms slots.
fn stream(slots: &[Slot]) -> Vec<Timed> {
    let mut out = Vec::new();
    let mut talkspurt_start = true;
    for (i, slot) in slots.iter().enumerate() {
        let n = i as u32;
        let (header, payload) = match *slot {
            Slot::Audio => {
                let marker = std::mem::take(&mut talkspurt_start);
                let h = RtpHeader {
                    payload_type: 0,
                    marker,
                    sequence: n as u16,
                    timestamp: n * 160,
                    ssrc: SSRC,
                    csrc_count: 0,
                };
                (h, tone_frame(n).to_vec())
            }
            Slot::Event(digit, start, duration, end) => {
                talkspurt_start = true;
                let h = RtpHeader {
                    payload_type: DTMF_PT,
                    marker: n == start, // RFC 4733 §2.5.1.1: the event's first packet
                    sequence: n as u16,
                    timestamp: start * 160,
                    ssrc: SSRC,
                    csrc_count: 0,
                };
                let ev = TelephoneEvent {
                    event: char_to_event(digit).unwrap(),
                    end,
                    volume: 10,
                    duration,
                };
                (h, ev.to_bytes().to_vec())
            }
        };
        out.push(Timed {
            at_us: u64::from(n) * 20_000,
            rtp: rtp_packet(&header, &payload),
        });
    }
    out
}

/// `seconds` of the 1 kHz tone: PCMU, PT 0, 20 ms packets.
fn tone_pcap(seconds: u32) -> Vec<u8> {
    let slots: Vec<Slot> = (0..seconds * 50).map(|_| Slot::Audio).collect();
    pcap_file(&stream(&slots))
}

/// Events of 200 ms (ten updates) and three end packets (RFC 4733 §2.5.1.4).
const EVENT_UPDATES: u32 = 10;
const EVENT_SLOTS: u32 = EVENT_UPDATES + 3;

/// 4 s of the 1 kHz tone with the digits 1, 2, 3 as telephone-events at 1.0 s, 1.6 s and
/// 2.2 s, in the same RTP stream (the audio pauses while an event is sent, as phones do).
fn dtmf_pcap(digits: &[char]) -> Vec<u8> {
    let mut slots: Vec<Slot> = (0..200).map(|_| Slot::Audio).collect();
    for (k, &digit) in digits.iter().enumerate() {
        let start = 50 + k as u32 * 30;
        for j in 0..EVENT_SLOTS {
            let updates = (j + 1).min(EVENT_UPDATES);
            slots[(start + j) as usize] =
                Slot::Event(digit, start, (updates * 160) as u16, j >= EVENT_UPDATES);
        }
    }
    pcap_file(&stream(&slots))
}

/// The pcaps the scenarios play, in a private directory sipp runs in.
fn pcap_dir() -> TempDir {
    let dir = TempDir::new("sipp-media").unwrap();
    std::fs::write(dir.path().join("tone_1khz_pcmu.pcap"), tone_pcap(8)).unwrap();
    std::fs::write(
        dir.path().join("tone_dtmf_123.pcap"),
        dtmf_pcap(&['1', '2', '3']),
    )
    .unwrap();
    dir
}

/// Writes the pcaps under `tests/fixtures/` for inspection (`tcpdump -r`, Wireshark); the
/// tests themselves generate them at run time and commit no binary.
#[test]
#[ignore = "writes tests/fixtures/*.pcap for inspection"]
fn write_fixture_pcaps() {
    let dir = crate::harness::workspace_root().join("tests/fixtures");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tone_1khz_pcmu.pcap"), tone_pcap(8)).unwrap();
    std::fs::write(dir.join("tone_dtmf_123.pcap"), dtmf_pcap(&['1', '2', '3'])).unwrap();
}

#[test]
fn generated_pcaps_are_deterministic_and_well_formed() {
    let a = tone_pcap(8);
    assert_eq!(a, tone_pcap(8));
    // 24-byte header, then 400 records of 16 + 14 + 20 + 8 + 12 + 160 bytes.
    assert_eq!(a.len(), 24 + 400 * (16 + 14 + 20 + 8 + 12 + 160));
    let first = &a[24 + 16..];
    assert_eq!(ipv4_checksum(&first[14..34]), 0, "IPv4 header checksum");
    let p = rtp::parse(&first[42..42 + 172]).unwrap();
    assert_eq!(p.header().payload_type, 0);
    assert!(p.header().marker);
    let d = dtmf_pcap(&['1', '2', '3']);
    assert_eq!(d, dtmf_pcap(&['1', '2', '3']));
    // Each digit: 13 telephone-event packets of 4 bytes instead of 160 bytes of audio.
    assert_eq!(
        d.len(),
        24 + 200 * (16 + 14 + 20 + 8 + 12) + (200 - 39) * 160 + 39 * 4
    );
}

// ---------------------------------------------------------------------------------------------
// One call: gateway, manager (WebSocket + WebRTC), sipp.

/// What the manager does once connected.
#[derive(Clone, Copy, PartialEq)]
enum ManagerSide {
    /// Listens until the call ends.
    Listen,
    /// Hangs up after hearing `n` frames of the caller's tone.
    HangUpAfterTone(u64),
}

struct CallResult {
    sipp: anyhow::Result<()>,
    consultation_id: String,
    tone_frames: u64,
    frames_received: u64,
    digits: Vec<char>,
    ended: Option<String>,
}

async fn sipp_call(gw: &Gateway, scenario: &'static str, side: ManagerSide) -> CallResult {
    sipp_call_with(gw, scenario, side, &[], CARRIER_HZ).await
}

/// A call with `extra` sipp arguments, the manager listening for `expect_hz`.
async fn sipp_call_with(
    gw: &Gateway,
    scenario: &'static str,
    side: ManagerSide,
    extra: &'static [&'static str],
    expect_hz: f32,
) -> CallResult {
    let dir = pcap_dir();
    let mut manager = gw.manager("demo-manager-1").await.expect("manager");
    let target = gw.sip;
    let dir_path = dir.path().to_path_buf();
    let mut sipp = tokio::spawn(async move {
        // sipp's message log in its own directory (by default it goes beside the scenario).
        let mut args = vec!["-trace_msg", "-message_file", "messages.log"];
        args.extend_from_slice(extra);
        Sipp::new(scenario).run_in(target, &dir_path, &args).await
    });
    let ServerMessage::Ring {
        consultation_id, ..
    } = ring_during(&mut manager, &mut sipp, WAIT)
        .await
        .expect("ring")
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
    let media: ManagerMedia = pending
        .start(&answer, MANAGER_HZ, expect_hz)
        .expect("media");
    let report = media.report.clone();
    let mut digits = Vec::new();
    let mut ended = None;
    let mut hung_up = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    // The console's messages until the call ends; the manager hangs up when told to.
    while ended.is_none() && tokio::time::Instant::now() < deadline {
        if let ManagerSide::HangUpAfterTone(n) = side {
            if !hung_up && report.tone_frames.load(Ordering::Relaxed) >= n {
                manager
                    .send(&ClientMessage::Hangup {
                        consultation_id: consultation_id.clone(),
                    })
                    .await
                    .unwrap();
                hung_up = true;
            }
        }
        match manager.next(Duration::from_millis(100)).await {
            Ok(ServerMessage::DtmfReceived { digit, .. }) => digits.push(digit),
            Ok(ServerMessage::CallEnded { reason, .. }) => ended = Some(reason),
            Ok(_) => {}
            Err(e) if e.to_string().contains("no message in time") => {}
            Err(e) => panic!("manager socket: {e:#}"),
        }
    }
    let sipp = tokio::time::timeout(Duration::from_secs(30), sipp)
        .await
        .expect("sipp ends")
        .expect("sipp task");
    let log = std::fs::read_to_string(dir.path().join("messages.log")).unwrap_or_default();
    if std::env::var_os("SIPP_MEDIA_LOG").is_some() {
        eprintln!("---- sipp {scenario} messages ----\n{log}");
    }
    let sipp = sipp.map_err(|e| e.context(format!("sipp's messages:\n{log}")));
    let result = CallResult {
        sipp,
        consultation_id,
        tone_frames: report.tone_frames.load(Ordering::Relaxed),
        frames_received: report.frames_received.load(Ordering::Relaxed),
        digits,
        ended,
    };
    eprintln!(
        "{scenario}: tone in {} of {} frames; digits {:?}; ended {:?}; sipp ok: {}",
        result.tone_frames,
        result.frames_received,
        result.digits,
        result.ended,
        result.sipp.is_ok()
    );
    drop(media);
    manager.close().await;
    result
}

/// Answered, ended for `reason` by `by`, charged one started minute at the demo rate.
fn assert_answered_and_charged(rec: &gateway::db::CallRecord, reason: &str, by: &str) {
    assert!(rec.answered_at_ms.is_some(), "{rec:?}");
    assert_eq!(rec.end_reason.as_deref(), Some(reason), "{rec:?}");
    assert_eq!(rec.ended_by.as_deref(), Some(by), "{rec:?}");
    assert!(rec.billable_seconds >= 1, "{rec:?}");
    assert_eq!(rec.charge_minor, 50, "{rec:?}");
}

fn assert_heard_tone(r: &CallResult, at_least: u64) {
    assert!(
        r.tone_frames >= at_least,
        "the manager heard the expected tone in {} of {} frames (want ≥ {at_least})",
        r.tone_frames,
        r.frames_received
    );
}

#[tokio::test]
async fn sipp_plays_a_tone_and_hangs_up() {
    let gw = Gateway::start(GatewayOptions::default())
        .await
        .expect("gateway");
    let r = sipp_call(&gw, "uac_answer_bye.xml", ManagerSide::Listen).await;
    r.sipp.as_ref().expect("sipp scenario");
    // 5 s of tone before the BYE: 250 frames; allow for the start and for loss.
    assert_heard_tone(&r, 100);
    assert_eq!(r.ended.as_deref(), Some("customer_hung_up"));
    let rec = ended_record(&gw, &r.consultation_id).await;
    assert_answered_and_charged(&rec, "customer_hung_up", "customer");
}

#[tokio::test]
async fn the_manager_hangs_up_on_sipp_after_hearing_the_tone() {
    let gw = Gateway::start(GatewayOptions::default())
        .await
        .expect("gateway");
    let r = sipp_call(
        &gw,
        "uac_answer_wait_bye.xml",
        ManagerSide::HangUpAfterTone(50),
    )
    .await;
    r.sipp.as_ref().expect("sipp scenario");
    assert_heard_tone(&r, 50);
    assert_eq!(r.ended.as_deref(), Some("manager_hung_up"));
    let rec = ended_record(&gw, &r.consultation_id).await;
    assert_answered_and_charged(&rec, "manager_hung_up", "manager-1");
}

#[tokio::test]
async fn sipp_dtmf_reaches_the_console_in_order() {
    let gw = Gateway::start(GatewayOptions::default())
        .await
        .expect("gateway");
    let r = sipp_call(&gw, "uac_answer_dtmf.xml", ManagerSide::Listen).await;
    r.sipp.as_ref().expect("sipp scenario");
    assert_eq!(r.digits, ['1', '2', '3']);
    // 161 tone frames in the pcap.
    assert_heard_tone(&r, 60);
    assert_eq!(r.ended.as_deref(), Some("customer_hung_up"));
    let rec = ended_record(&gw, &r.consultation_id).await;
    assert_answered_and_charged(&rec, "customer_hung_up", "customer");
}

#[tokio::test]
async fn sipp_holds_and_resumes_with_re_invites() {
    let gw = Gateway::start(GatewayOptions::default())
        .await
        .expect("gateway");
    let r = sipp_call(&gw, "uac_answer_hold.xml", ManagerSide::Listen).await;
    r.sipp.as_ref().expect("sipp scenario");
    assert_heard_tone(&r, 100);
    assert_eq!(r.ended.as_deref(), Some("customer_hung_up"));
    let rec = ended_record(&gw, &r.consultation_id).await;
    assert_answered_and_charged(&rec, "customer_hung_up", "customer");
}

/// The other direction: sipp echoes the gateway's G.711 (`-rtp_echo`), so the manager hears its
/// own 440 Hz after Opus → G.711 → sipp → G.711 → Opus.
#[tokio::test]
async fn the_manager_hears_itself_through_sipp_rtp_echo() {
    let gw = Gateway::start(GatewayOptions::default())
        .await
        .expect("gateway");
    let r = sipp_call_with(
        &gw,
        "uac_answer_echo.xml",
        ManagerSide::Listen,
        &["-rtp_echo"],
        MANAGER_HZ,
    )
    .await;
    r.sipp.as_ref().expect("sipp scenario");
    // 4 s of call: 200 frames; the echo starts once the manager's audio reaches sipp.
    assert_heard_tone(&r, 75);
    assert_eq!(r.ended.as_deref(), Some("customer_hung_up"));
    let rec = ended_record(&gw, &r.consultation_id).await;
    assert_answered_and_charged(&rec, "customer_hung_up", "customer");
}
