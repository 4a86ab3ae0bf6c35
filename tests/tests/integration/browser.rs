//! The manager console in headless Chromium (playwright-core, Debian's chromium): sign in,
//! enable sound, the ring, accept with Ctrl+Shift+Space, audio from the caller received, leave
//! for everyone with Ctrl+Shift+O (BYE to the carrier); and the console's guards (microphone
//! denied, in-app browsers, unsupported browsers). The scripts live in `tests/browser/`.
//!
//! Needs `node` and `/usr/bin/chromium` with `tests/browser/node_modules` (installed by
//! `tests/run.sh`). Without them the tests say so and pass, unless GATEWAY_REQUIRE_BROWSER=1.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::UdpSocket;

use crate::answered::{carrier_rtp, in_dialog, invite_with_sdp};
use crate::harness::{workspace_root, Gateway, GatewayOptions};
use crate::raw_sip::{header, status, RawUdp};
use crate::webrtc_manager::sdp_rtp_addr;

fn browser_available() -> bool {
    let ok = std::path::Path::new("/usr/bin/chromium").exists()
        && workspace_root()
            .join("tests/browser/node_modules/playwright-core")
            .exists()
        && std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_ok();
    if !ok {
        assert!(
            std::env::var("GATEWAY_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "GATEWAY_REQUIRE_BROWSER=1 but node, chromium or tests/browser/node_modules is missing"
        );
        eprintln!("skipped: node, /usr/bin/chromium or tests/browser/node_modules missing (run tests/run.sh)");
    }
    ok
}

fn node(script: &str, http: std::net::SocketAddr) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(workspace_root().join("tests/browser").join(script))
        .env("GATEWAY_HTTP", format!("http://{http}"))
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

#[tokio::test]
async fn console_answers_with_the_keyboard_hears_the_caller_and_hangs_up() {
    if !browser_available() {
        return;
    }
    let gw = Gateway::start(GatewayOptions::default())
        .await
        .expect("gateway");
    let mut child = node("console.test.mjs", gw.http)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let stderr = child.stderr.take().expect("stderr");
    let log = tokio::spawn(async move {
        let mut err = BufReader::new(stderr).lines();
        let mut out = Vec::new();
        while let Ok(Some(l)) = err.next_line().await {
            out.push(l);
        }
        out.join("\n")
    });
    let mut seen = Vec::new();
    let mut call = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while let Ok(Some(line)) = tokio::time::timeout_at(deadline, lines.next_line())
        .await
        .expect("browser script timed out")
    {
        seen.push(line.clone());
        if line == "READY_FOR_CALL" {
            // The carrier: INVITE, ACK the 200, then 1 kHz PCMU until the console hangs up.
            let sip = RawUdp::new(gw.sip).await;
            let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            sip.send(&invite_with_sdp(
                sip.local(),
                rtp.local_addr().unwrap(),
                "browser-1",
            ))
            .await;
            let ok = sip
                .final_response(Duration::from_secs(60))
                .await
                .expect("200 OK after the browser accepts");
            assert_eq!(status(&ok), Some(200), "{ok}");
            let body = ok.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
            let to = header(&ok, "To")[0].to_string();
            sip.send(&in_dialog("ACK", sip.local(), "browser-1", 1, &to, "back1"))
                .await;
            let media = carrier_rtp(rtp, sdp_rtp_addr(&body).expect("gateway RTP"), false);
            call = Some((sip, media));
        }
        if line == "DONE" || line.starts_with("FAIL") {
            break;
        }
    }
    let status_code = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("node exit")
        .expect("node");
    let stderr = log.await.unwrap_or_default();
    assert!(
        status_code.success() && seen.iter().any(|l| l == "DONE"),
        "browser test failed: {seen:?}\n{stderr}"
    );
    assert!(seen.iter().any(|l| l == "TONE_OK"), "{seen:?}");
    // Leaving for everyone sent the carrier a BYE; the carrier heard the browser's microphone.
    let (sip, media) = call.expect("a call was placed");
    let bye = loop {
        let msg = sip
            .recv(Duration::from_secs(10))
            .await
            .expect("BYE from the gateway");
        if msg.starts_with("BYE ") {
            break msg;
        }
    };
    assert!(bye.contains("Call-ID: browser-1"), "{bye}");
    assert!(
        media.heard.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "the caller heard the browser's 440 Hz microphone"
    );
}

#[tokio::test]
async fn console_guards_microphone_in_app_and_unsupported_browsers() {
    if !browser_available() {
        return;
    }
    let gw = Gateway::start(GatewayOptions::default())
        .await
        .expect("gateway");
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        node("guards.test.mjs", gw.http).output(),
    )
    .await
    .expect("guards test timed out")
    .expect("node");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn console_calls_a_customer_through_the_trunk() {
    if !browser_available() {
        return;
    }
    // The carrier: a sipp UAS that challenges with 401, rings with early media, answers, and
    // hangs up 1.5 s after the ACK.
    let uas = crate::outbound::SippUas::start("uas_auth_answer.xml").await;
    let gw = Gateway::start(GatewayOptions {
        edit: crate::outbound::trunk_edit(uas.port, 120_000, false),
        ..Default::default()
    })
    .await
    .expect("gateway");
    let out = tokio::time::timeout(
        Duration::from_secs(150),
        node("outbound.test.mjs", gw.http).output(),
    )
    .await
    .expect("outbound browser test timed out")
    .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("DONE"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    uas.finish().await.expect("sipp UAS scenario");
}
