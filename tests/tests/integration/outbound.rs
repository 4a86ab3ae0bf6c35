//! Outgoing calls: the programmatic manager calls a customer over the console WebSocket and
//! sipp plays the carrier (UAS) behind the trunk's outbound proxy: digest challenge, early
//! media, answer and BYE; busy; no answer (ring timeout → CANCEL → 487); and REGISTER with a
//! digest challenge and a refresh at half the granted lifetime.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use schemas::ws::{ClientMessage, ServerMessage};

use crate::harness::ended_record;
use crate::harness::{free_port, scenario, Gateway, GatewayOptions, Manager};
use crate::webrtc_manager::PendingMedia;

const WAIT: Duration = Duration::from_secs(15);

/// sipp as a UAS on a free port: the carrier's outbound proxy / registrar.
pub(crate) struct SippUas {
    pub(crate) port: u16,
    task: tokio::task::JoinHandle<anyhow::Result<std::process::Output>>,
}

impl SippUas {
    pub(crate) async fn start(name: &str) -> SippUas {
        let port = free_port("127.0.0.1");
        let media_port = free_port("127.0.0.1");
        let mut cmd = tokio::process::Command::new("sipp");
        cmd.arg("-sf")
            .arg(scenario(name))
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
            .args(["-p", &port.to_string(), "-mp", &media_port.to_string()])
            .args(["-m", "1", "-timeout", "100s", "-timeout_error", "-nostdin"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let task = tokio::spawn(async move { cmd.output().await.context("running sipp") });
        // Let sipp bind its port before the gateway sends anything.
        tokio::time::sleep(Duration::from_millis(400)).await;
        SippUas { port, task }
    }

    pub(crate) async fn finish(self) -> anyhow::Result<()> {
        let out = tokio::time::timeout(Duration::from_secs(110), self.task)
            .await
            .context("sipp did not finish")???;
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
                "sipp failed ({}):\n{tail}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

/// The demo trunk with an outbound proxy (and optionally registration) at sipp's port.
pub(crate) fn trunk_edit(
    port: u16,
    ring_timeout_ms: u64,
    register: bool,
) -> Box<dyn Fn(String) -> String + Send> {
    Box::new(move |text: String| {
        let mut section = format!(
            "max_concurrent_calls = 2000\n\
             [channels.trunks.outbound]\n\
             proxy = \"127.0.0.1:{port}\"\n\
             domain = \"carrier.test\"\n\
             from_number = \"07012345678\"\n\
             number_format = \"national\"\n\
             ring_timeout_ms = {ring_timeout_ms}\n\
             auth_username = \"07012345678\"\n\
             auth_password = \"trunk-secret\"\n"
        );
        if register {
            section.push_str(
                "[channels.trunks.register]\nexpires_s = 60\nretry_min_s = 1\nretry_max_s = 8\n",
            );
        }
        text.replacen("max_concurrent_calls = 2000\n", &section, 1)
    })
}

async fn call_customer(gw: &Gateway) -> (Manager, String, PendingMedia, String) {
    let mut manager = gw.manager("demo-manager-1").await.expect("manager");
    let (pending, offer) = PendingMedia::new().await.expect("webrtc offer");
    manager
        .send(&ClientMessage::CallCustomer {
            customer_number: Some("010-5555-6666".into()),
            customer_id: None,
            sdp_offer: offer,
        })
        .await
        .unwrap();
    loop {
        match manager.next(WAIT).await.expect("outbound_started") {
            ServerMessage::OutboundStarted {
                consultation_id,
                sdp_answer,
                customer_number,
                ..
            } => {
                assert_eq!(customer_number, "+821055556666");
                return (manager, consultation_id, pending, sdp_answer);
            }
            ServerMessage::Error { code, message } => panic!("{code}: {message}"),
            _ => {}
        }
    }
}

/// Collects console messages until `call_ended`; returns them all.
async fn until_ended(m: &mut Manager) -> Vec<ServerMessage> {
    let mut seen = Vec::new();
    loop {
        let msg = m.next(Duration::from_secs(40)).await.expect("call_ended");
        let done = matches!(msg, ServerMessage::CallEnded { .. });
        seen.push(msg);
        if done {
            return seen;
        }
    }
}

fn ended_reason(seen: &[ServerMessage]) -> String {
    match seen.last() {
        Some(ServerMessage::CallEnded { reason, .. }) => reason.clone(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn outgoing_call_with_digest_early_media_answer_and_carrier_bye() {
    let uas = SippUas::start("uas_auth_answer.xml").await;
    let gw = Gateway::start(GatewayOptions {
        edit: trunk_edit(uas.port, 120_000, false),
        ..Default::default()
    })
    .await
    .expect("gateway");
    let (mut manager, consultation_id, pending, answer) = call_customer(&gw).await;
    let media = pending.start(&answer, 440.0, 1000.0).expect("media");
    let seen = until_ended(&mut manager).await;
    assert!(
        seen.iter().any(|m| matches!(
            m,
            ServerMessage::OutboundRinging {
                early_media: true,
                ..
            }
        )),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|m| matches!(m, ServerMessage::OutboundAnswered { .. })),
        "{seen:?}"
    );
    assert_eq!(ended_reason(&seen), "customer_hung_up");
    assert!(media
        .report
        .connected
        .load(std::sync::atomic::Ordering::Relaxed));
    uas.finish().await.expect("sipp scenario");
    let rec = ended_record(&gw, &consultation_id).await;
    assert_eq!(rec.direction, gateway::db::Direction::Outbound);
    assert!(rec.answered_at_ms.is_some(), "{rec:?}");
    assert_eq!(rec.end_reason.as_deref(), Some("customer_hung_up"));
    assert_eq!(rec.to_number, "+821055556666");
    assert_eq!(rec.from_number, "+827012345678");
    let consultation = gw
        .db()
        .consultation(&consultation_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        consultation.assignee_manager_id.as_deref(),
        Some("manager-1")
    );
}

#[tokio::test]
async fn outgoing_call_to_a_busy_line_is_recorded_busy() {
    let uas = SippUas::start("uas_busy.xml").await;
    let gw = Gateway::start(GatewayOptions {
        edit: trunk_edit(uas.port, 120_000, false),
        ..Default::default()
    })
    .await
    .expect("gateway");
    let (mut manager, consultation_id, pending, answer) = call_customer(&gw).await;
    let _media = pending.start(&answer, 440.0, 1000.0).expect("media");
    let seen = until_ended(&mut manager).await;
    assert_eq!(ended_reason(&seen), "busy");
    uas.finish().await.expect("sipp scenario");
    let rec = ended_record(&gw, &consultation_id).await;
    assert_eq!(rec.direction, gateway::db::Direction::Outbound);
    assert!(rec.answered_at_ms.is_none());
    assert_eq!(rec.end_reason.as_deref(), Some("busy"));
    assert_eq!(rec.missed_reason.map(|r| r.as_str()), Some("no_answer"));
}

#[tokio::test]
async fn unanswered_outgoing_call_is_cancelled_at_the_ring_timeout() {
    let uas = SippUas::start("uas_no_answer.xml").await;
    let gw = Gateway::start(GatewayOptions {
        edit: trunk_edit(uas.port, 2_000, false),
        ..Default::default()
    })
    .await
    .expect("gateway");
    let (mut manager, consultation_id, pending, answer) = call_customer(&gw).await;
    let _media = pending.start(&answer, 440.0, 1000.0).expect("media");
    let seen = until_ended(&mut manager).await;
    assert!(
        seen.iter().any(|m| matches!(
            m,
            ServerMessage::OutboundRinging {
                early_media: false,
                ..
            }
        )),
        "{seen:?}"
    );
    assert_eq!(ended_reason(&seen), "no_answer");
    uas.finish()
        .await
        .expect("sipp scenario (CANCEL, 487, ACK)");
    let rec = ended_record(&gw, &consultation_id).await;
    assert_eq!(rec.end_reason.as_deref(), Some("no_answer"));
    assert!(rec.answered_at_ms.is_none());
}

#[tokio::test]
async fn registers_with_digest_and_refreshes_before_expiry() {
    let uas = SippUas::start("uas_register.xml").await;
    let gw = Gateway::start(GatewayOptions {
        edit: trunk_edit(uas.port, 120_000, true),
        ..Default::default()
    })
    .await
    .expect("gateway");
    uas.finish()
        .await
        .expect("sipp registrar: challenge, register, refresh");
    let metrics = gw.server.sip_stats.render_prometheus();
    assert!(
        metrics.contains("sip_registration_registered{trunk=\"demo-carrier\",aor=\"sip:07012345678@carrier.test\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sip_registration_success_total{trunk=\"demo-carrier\",aor=\"sip:07012345678@carrier.test\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn manager_hang_up_while_ringing_sends_cancel() {
    let uas = SippUas::start("uas_no_answer.xml").await;
    let gw = Gateway::start(GatewayOptions {
        edit: trunk_edit(uas.port, 120_000, false),
        ..Default::default()
    })
    .await
    .expect("gateway");
    let (mut manager, consultation_id, pending, answer) = call_customer(&gw).await;
    let _media = pending.start(&answer, 440.0, 1000.0).expect("media");
    loop {
        if let ServerMessage::OutboundRinging { .. } = manager.next(WAIT).await.expect("ringing") {
            break;
        }
    }
    manager
        .send(&ClientMessage::Hangup {
            consultation_id: consultation_id.clone(),
        })
        .await
        .unwrap();
    let seen = until_ended(&mut manager).await;
    assert_eq!(ended_reason(&seen), "cancelled");
    uas.finish()
        .await
        .expect("sipp scenario (CANCEL, 487, ACK)");
    let rec = ended_record(&gw, &consultation_id).await;
    assert_eq!(rec.end_reason.as_deref(), Some("cancelled"));
    assert_eq!(
        rec.missed_reason.map(|r| r.as_str()),
        Some("caller_cancelled")
    );
}
