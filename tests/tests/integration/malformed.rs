//! Malformed input over UDP and TCP: RFC 4475 torture messages and our own garbage. The
//! gateway must answer what the RFC says can be answered, drop the rest, never panic, and
//! still complete a valid call afterwards.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{workspace_root, Gateway, GatewayOptions, Sipp};
use crate::raw_sip::{status, RawUdp};

fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in ["valid", "invalid"] {
        let path = workspace_root().join("tests/sip-corpus").join(dir);
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for e in entries.flatten() {
            let bytes = std::fs::read(e.path()).expect("read corpus file");
            out.push((format!("{dir}/{}", e.file_name().to_string_lossy()), bytes));
        }
    }
    out.sort();
    out
}

/// Our own: truncations, NULs, absurd lengths, binary noise, header floods.
fn garbage() -> Vec<(String, Vec<u8>)> {
    let valid = b"INVITE sip:07012345678@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKg1;rport\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:07012345678@127.0.0.1>\r\nCall-ID: g1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n".to_vec();
    let mut out = vec![
        ("empty".to_string(), Vec::new()),
        ("crlf".to_string(), b"\r\n\r\n".to_vec()),
        ("nul".to_string(), vec![0u8; 64]),
        ("binary".to_string(), (0..=255u8).cycle().take(3000).collect()),
        ("no-blank-line".to_string(), b"OPTIONS sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKq".to_vec()),
        (
            "huge-content-length".to_string(),
            String::from_utf8_lossy(&valid).replace("Content-Length: 0", "Content-Length: 99999999999999999999").into_bytes(),
        ),
        (
            "negative-content-length".to_string(),
            String::from_utf8_lossy(&valid).replace("Content-Length: 0", "Content-Length: -5").into_bytes(),
        ),
        (
            "cseq-mismatch".to_string(),
            String::from_utf8_lossy(&valid).replace("CSeq: 1 INVITE", "CSeq: 1 BYE").into_bytes(),
        ),
        (
            "no-call-id".to_string(),
            String::from_utf8_lossy(&valid).replace("Call-ID: g1\r\n", "").into_bytes(),
        ),
        (
            "thousand-vias".to_string(),
            String::from_utf8_lossy(&valid)
                .replace("From:", &format!("{}From:", "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\n".repeat(1000)))
                .into_bytes(),
        ),
        ("unknown-method".to_string(), String::from_utf8_lossy(&valid).replace("INVITE", "FROBNICATE").into_bytes()),
        ("sip-3.0".to_string(), String::from_utf8_lossy(&valid).replacen("SIP/2.0\r\n", "SIP/3.0\r\n", 1).into_bytes()),
        ("status-99999".to_string(), b"SIP/2.0 99999 Weird\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKr\r\n\r\n".to_vec()),
        ("stray-response".to_string(), b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKnone\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: stray\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n".to_vec()),
    ];
    for cut in [10, 40, 80, 120, valid.len() - 3] {
        out.push((
            format!("truncated-{cut}"),
            valid[..cut.min(valid.len())].to_vec(),
        ));
    }
    out
}

#[tokio::test]
async fn torture_and_garbage_never_break_the_gateway() {
    let gw = Gateway::start(GatewayOptions::default())
        .await
        .expect("gateway");
    let corpus = corpus();
    assert!(
        corpus.len() >= 20,
        "the RFC 4475 corpus is in tests/sip-corpus ({} files)",
        corpus.len()
    );
    let inputs: Vec<_> = corpus.into_iter().chain(garbage()).collect();

    // UDP: one datagram each; note which got an answer.
    let udp = RawUdp::new(gw.sip).await;
    let mut answered = 0;
    for (_, bytes) in &inputs {
        udp.sock.send_to(bytes, gw.sip).await.expect("send");
    }
    while let Some(msg) = udp.recv(Duration::from_millis(700)).await {
        if status(&msg).is_some() {
            answered += 1;
        }
    }
    // Our own garbage asks for rport (RFC 3581), so its answers come back to this socket.
    assert!(
        answered > 0,
        "malformed requests with a usable Via get 400-class answers"
    );

    // TCP: each input on its own connection, as a broken carrier stack would send it.
    let tcp_addr = gw.server.sip_tcp.expect("tcp");
    for (name, bytes) in &inputs {
        let mut s = tokio::net::TcpStream::connect(tcp_addr)
            .await
            .expect("connect");
        s.write_all(bytes)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let _ = s.shutdown().await;
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_millis(300), s.read_to_end(&mut sink)).await;
    }

    let stats = &gw.server.sip_stats;
    let answered = stats.malformed_answered.load(Ordering::Relaxed);
    let dropped = stats.malformed_dropped.load(Ordering::Relaxed);
    assert!(
        answered > 0 && dropped > 0,
        "answered {answered}, dropped {dropped}"
    );

    // Still healthy: a valid call rings and is cancelled normally, over both transports.
    let mut m1 = gw.manager("demo-manager-1").await.expect("manager");
    for tcp in [false, true] {
        let target = if tcp { tcp_addr } else { gw.sip };
        let sipp = tokio::spawn(async move {
            let mut s = Sipp::new("uac_cancel.xml");
            s.tcp = tcp;
            s.run(target).await
        });
        m1.ring(Duration::from_secs(10))
            .await
            .expect("ring after the torture");
        sipp.await
            .expect("join")
            .expect("valid call after malformed input");
    }
    let health = reqwest_free_healthz(gw.http).await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
}

/// GET /healthz with a plain TCP socket (no HTTP client dependency needed).
async fn reqwest_free_healthz(addr: std::net::SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}
