//! Hand-written SIP over a plain UDP socket, for what sipp scenarios express poorly:
//! trunk limits, digest challenges, retransmissions.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use sqlx::Row;
use tokio::net::UdpSocket;

use crate::harness::{Gateway, GatewayOptions};

pub struct RawUdp {
    pub sock: UdpSocket,
    pub target: SocketAddr,
}

impl RawUdp {
    pub async fn new(target: SocketAddr) -> RawUdp {
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        RawUdp { sock, target }
    }

    pub fn local(&self) -> SocketAddr {
        self.sock.local_addr().expect("addr")
    }

    pub async fn send(&self, text: &str) {
        self.sock
            .send_to(text.as_bytes(), self.target)
            .await
            .expect("send");
    }

    /// Next message received, or `None` after `within`.
    pub async fn recv(&self, within: Duration) -> Option<String> {
        let mut buf = vec![0u8; 65_535];
        let (n, _) = tokio::time::timeout(within, self.sock.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Next final (non-1xx) response.
    pub async fn final_response(&self, within: Duration) -> anyhow::Result<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let msg = self.recv(left).await.context("no final response")?;
            if status(&msg).is_some_and(|s| s >= 200) {
                return Ok(msg);
            }
        }
    }
}

pub fn status(msg: &str) -> Option<u16> {
    msg.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

pub fn header<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.lines()
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .collect()
}

pub fn invite(local: SocketAddr, branch: &str, call_id: &str, cseq: u32, extra: &str) -> String {
    let sdp = "v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 8 0\r\n";
    format!(
        "INVITE sip:07012345678@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\n\
         From: <sip:0212345678@127.0.0.1>;tag=f{call_id}\r\n\
         To: <sip:07012345678@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} INVITE\r\n\
         Contact: <sip:0212345678@{local}>\r\n\
         Max-Forwards: 70\r\n\
         {extra}\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

pub fn ack_for(
    local: SocketAddr,
    branch: &str,
    call_id: &str,
    cseq: u32,
    to_header: &str,
) -> String {
    format!(
        "ACK sip:07012345678@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\n\
         From: <sip:0212345678@127.0.0.1>;tag=f{call_id}\r\n\
         To: {to_header}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} ACK\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

async fn consultations(gw: &Gateway) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM consultations")
        .fetch_one(gw.db().pool())
        .await
        .expect("count")
        .get::<i64, _>("n")
}

#[tokio::test]
async fn calls_per_second_limit_answers_503_with_retry_after() {
    let gw = Gateway::start(GatewayOptions {
        edit: Box::new(|s| s.replace("max_calls_per_second = 1000", "max_calls_per_second = 2")),
        ..Default::default()
    })
    .await
    .expect("gateway");
    let c = RawUdp::new(gw.sip).await;
    for i in 0..4 {
        c.send(&invite(
            c.local(),
            &format!("cps{i}"),
            &format!("cps-{i}"),
            1,
            "",
        ))
        .await;
    }
    let mut statuses = Vec::new();
    let mut retry_after = Vec::new();
    for _ in 0..4 {
        let r = c
            .final_response(Duration::from_secs(5))
            .await
            .expect("final");
        if status(&r) == Some(503) {
            retry_after.extend(header(&r, "Retry-After").into_iter().map(str::to_string));
        }
        statuses.push(status(&r).unwrap_or(0));
    }
    statuses.sort();
    // Two admitted (nobody online: 480), two refused by the limit.
    assert_eq!(statuses, [480, 480, 503, 503]);
    assert_eq!(retry_after, ["1", "1"]);
}

#[tokio::test]
async fn concurrent_call_limit_answers_503() {
    let gw = Gateway::start(GatewayOptions {
        edit: Box::new(|s| s.replace("max_concurrent_calls = 2000", "max_concurrent_calls = 1")),
        ..Default::default()
    })
    .await
    .expect("gateway");
    let mut m1 = gw.manager("demo-manager-1").await.expect("m1");
    let c = RawUdp::new(gw.sip).await;
    c.send(&invite(c.local(), "cc1", "cc-1", 1, "")).await;
    m1.ring(Duration::from_secs(5))
        .await
        .expect("first call rings");
    c.send(&invite(c.local(), "cc2", "cc-2", 1, "")).await;
    let r = c.final_response(Duration::from_secs(5)).await.expect("503");
    assert_eq!(status(&r), Some(503), "{r}");
    assert!(r.contains("Call-ID: cc-2"));
    assert_eq!(header(&r, "Retry-After"), ["10"]);
    assert_eq!(consultations(&gw).await, 1);
}

fn digest_config(s: String) -> String {
    s.replace(
        "max_concurrent_calls = 2000",
        "max_concurrent_calls = 2000\n[channels.trunks.digest]\nusername = \"carrier\"\npassword = \"s3cret-pass\"\nrealm = \"demo\"\nalgorithms = [\"SHA-256\", \"MD5\"]",
    )
}

#[tokio::test]
async fn digest_challenge_then_sha256_and_md5_credentials_pass() {
    let gw = Gateway::start(GatewayOptions {
        edit: Box::new(digest_config),
        ..Default::default()
    })
    .await
    .expect("gateway");
    for (n, wanted) in ["SHA-256", "MD5"].into_iter().enumerate() {
        let c = RawUdp::new(gw.sip).await;
        let call_id = format!("auth-{n}");
        c.send(&invite(c.local(), &format!("a{n}1"), &call_id, 1, ""))
            .await;
        let r = c.final_response(Duration::from_secs(5)).await.unwrap();
        assert_eq!(status(&r), Some(401), "{r}");
        let challenges = header(&r, "WWW-Authenticate");
        // RFC 8760 §2.4: one challenge per algorithm, SHA-256 first.
        assert_eq!(challenges.len(), 2, "{r}");
        assert!(challenges[0].contains("algorithm=SHA-256"), "{r}");
        assert!(challenges[1].contains("algorithm=MD5"), "{r}");
        let to = header(&r, "To")[0].to_string();
        c.send(&ack_for(c.local(), &format!("a{n}1"), &call_id, 1, &to))
            .await;
        let chosen = challenges
            .iter()
            .find(|v| v.contains(&format!("algorithm={wanted}")))
            .and_then(|v| sip::digest::Challenge::parse(v).ok())
            .expect("challenge");
        // A wrong password is challenged again, not let through.
        let bad = sip::digest::respond(
            &chosen,
            "INVITE",
            "sip:07012345678@127.0.0.1",
            "carrier",
            "wrong",
            "abc",
            1,
        )
        .unwrap();
        c.send(&invite(
            c.local(),
            &format!("a{n}2"),
            &call_id,
            2,
            &format!("Authorization: {bad}\r\n"),
        ))
        .await;
        let r = c.final_response(Duration::from_secs(5)).await.unwrap();
        assert_eq!(status(&r), Some(401), "{r}");
        let good = sip::digest::respond(
            &chosen,
            "INVITE",
            "sip:07012345678@127.0.0.1",
            "carrier",
            "s3cret-pass",
            "abc",
            2,
        )
        .unwrap();
        c.send(&invite(
            c.local(),
            &format!("a{n}3"),
            &call_id,
            3,
            &format!("Authorization: {good}\r\n"),
        ))
        .await;
        // Through authentication: nobody is online, so the call is missed with 480.
        let r = c.final_response(Duration::from_secs(5)).await.unwrap();
        assert_eq!(status(&r), Some(480), "{wanted}: {r}");
    }
    assert_eq!(consultations(&gw).await, 2);
}

#[tokio::test]
async fn retransmitted_invite_is_absorbed_by_its_transaction() {
    let gw = Gateway::start(GatewayOptions::default())
        .await
        .expect("gateway");
    let mut m1 = gw.manager("demo-manager-1").await.expect("m1");
    let c = RawUdp::new(gw.sip).await;
    let inv = invite(c.local(), "rt1", "rt-1", 1, "");
    c.send(&inv).await;
    m1.ring(Duration::from_secs(5)).await.expect("ring");
    // The carrier did not see our 180 and retransmits: the last provisional comes back,
    // and no second call is opened.
    c.send(&inv).await;
    c.send(&inv).await;
    let mut ringing = 0;
    while let Some(msg) = c.recv(Duration::from_millis(500)).await {
        if status(&msg) == Some(180) {
            ringing += 1;
        }
    }
    assert!(
        ringing >= 2,
        "the 180 is resent on retransmissions, saw {ringing}"
    );
    assert_eq!(consultations(&gw).await, 1);
    assert!(
        gw.server
            .sip_stats
            .retransmissions_absorbed
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2
    );
}

#[tokio::test]
async fn required_extension_gets_420_and_a_foreign_body_415() {
    let gw = Gateway::start(GatewayOptions::default())
        .await
        .expect("gateway");
    let c = RawUdp::new(gw.sip).await;
    c.send(&invite(
        c.local(),
        "req1",
        "req-1",
        1,
        "Require: 100rel, foo\r\n",
    ))
    .await;
    let r = c.final_response(Duration::from_secs(5)).await.unwrap();
    assert_eq!(status(&r), Some(420), "{r}");
    assert_eq!(header(&r, "Unsupported"), ["100rel, foo"]);
    let isup = invite(c.local(), "ct1", "ct-1", 1, "").replace(
        "Content-Type: application/sdp",
        "Content-Type: application/isup",
    );
    c.send(&isup).await;
    let r = c.final_response(Duration::from_secs(5)).await.unwrap();
    assert_eq!(status(&r), Some(415), "{r}");
    assert_eq!(header(&r, "Accept"), ["application/sdp"]);
    assert_eq!(consultations(&gw).await, 0);
}

fn in_dialog(
    method: &str,
    local: SocketAddr,
    branch: &str,
    call_id: &str,
    cseq: u32,
    to_header: &str,
) -> String {
    format!(
        "{method} sip:gateway@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\n\
         From: <sip:0212345678@127.0.0.1>;tag=f{call_id}\r\n\
         To: {to_header}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// Waits for a response with this status and CSeq method.
async fn response_to(c: &RawUdp, code: u16, method: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let msg = c
            .recv(left)
            .await
            .unwrap_or_else(|| panic!("no {code} to {method}"));
        if status(&msg) == Some(code)
            && header(&msg, "CSeq")
                .first()
                .is_some_and(|v| v.ends_with(method))
        {
            return msg;
        }
    }
}

#[tokio::test]
async fn early_dialog_requests_info_501_wrong_tag_481_and_bye_ends_the_call() {
    let gw = Gateway::start(GatewayOptions::default())
        .await
        .expect("gateway");
    let mut m1 = gw.manager("demo-manager-1").await.expect("m1");
    let c = RawUdp::new(gw.sip).await;
    c.send(&invite(c.local(), "ed1", "ed-1", 1, "")).await;
    let schemas::ws::ServerMessage::Ring {
        consultation_id, ..
    } = m1.ring(Duration::from_secs(5)).await.unwrap()
    else {
        unreachable!()
    };
    let ringing = response_to(&c, 180, "INVITE").await;
    let to = header(&ringing, "To")[0].to_string();
    assert!(to.contains(";tag="), "{ringing}");
    c.send(&in_dialog("INFO", c.local(), "ed2", "ed-1", 2, &to))
        .await;
    response_to(&c, 501, "INFO").await;
    c.send(&in_dialog(
        "BYE",
        c.local(),
        "ed3",
        "ed-1",
        3,
        "<sip:07012345678@127.0.0.1>;tag=not-ours",
    ))
    .await;
    response_to(&c, 481, "BYE").await;
    // RFC 3261 §15.1.2: BYE on the early dialog: 200 to it, 487 to the pending INVITE.
    c.send(&in_dialog("BYE", c.local(), "ed4", "ed-1", 4, &to))
        .await;
    response_to(&c, 200, "BYE").await;
    response_to(&c, 487, "INVITE").await;
    let mut missed = None;
    for _ in 0..50 {
        let row = gw
            .db()
            .consultation(&consultation_id)
            .await
            .unwrap()
            .unwrap();
        if row.missed_reason.is_some() {
            missed = row.missed_reason;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(missed, Some(gateway::db::MissedReason::CallerCancelled));
}

#[tokio::test]
async fn invite_without_contact_is_400_before_any_row() {
    let gw = Gateway::start(GatewayOptions::default())
        .await
        .expect("gateway");
    let c = RawUdp::new(gw.sip).await;
    let no_contact: String = invite(c.local(), "nc1", "nc-1", 1, "")
        .lines()
        .filter(|l| !l.starts_with("Contact:"))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .replace('\n', "\r\n")
        .replace("\r\r\n", "\r\n");
    assert!(!no_contact.contains("Contact:"));
    c.send(&no_contact).await;
    let r = c.final_response(Duration::from_secs(5)).await.unwrap();
    // RFC 3261 §8.1.1.8: an INVITE must carry a Contact; without it no dialog can exist.
    assert_eq!(status(&r), Some(400), "{r}");
    assert_eq!(consultations(&gw).await, 0);
}
