//! Webhooks end to end: a recorded call's `recording.ready` reaches the channel's endpoint,
//! signed per Standard Webhooks, and is retried when the endpoint fails the first time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::admin_api::recorded_call;
use crate::harness::{wait_for, Gateway, GatewayOptions};

const SECRET: &str = "0123456789abcdef-test";

#[derive(Debug, Clone)]
struct Delivery {
    headers: HashMap<String, String>,
    body: String,
}

/// An HTTP endpoint that answers 500 to the first request and 204 to the others.
async fn endpoint() -> (u16, Arc<Mutex<Vec<Delivery>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (read, mut write) = stream.into_split();
            let mut read = BufReader::new(read);
            let mut headers = HashMap::new();
            let mut line = String::new();
            read.read_line(&mut line).await.unwrap_or(0); // request line
            loop {
                line.clear();
                if read.read_line(&mut line).await.unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
            }
            let len: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            let _ = read.read_exact(&mut body).await;
            let first = {
                let mut l = log.lock().unwrap();
                l.push(Delivery {
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                l.len() == 1
            };
            let status = if first {
                "500 Internal Server Error"
            } else {
                "204 No Content"
            };
            let _ = write
                .write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await;
        }
    });
    (port, seen)
}

#[tokio::test]
async fn recording_ready_is_signed_delivered_and_retried() {
    let (port, seen) = endpoint().await;
    let gw = Gateway::start(GatewayOptions {
        edit: Box::new(move |s| {
            s.replacen(
                "numbers = [\"07012345678\"]",
                &format!(
                    "numbers = [\"07012345678\"]\nwebhook = {{ url = \"http://127.0.0.1:{port}/hook\", \
                     secret = \"{SECRET}\", first_retry_ms = 200 }}"
                ),
                1,
            )
        }),
        ..Default::default()
    })
    .await
    .expect("gateway");
    let call_id = recorded_call(&gw, "hook-1").await;
    let log = seen.clone();
    wait_for("the delivery and its retry", || {
        log.lock().unwrap().len() >= 2
    })
    .await;
    let deliveries = seen.lock().unwrap().clone();
    let recording = gw
        .db()
        .recording_for_call(&call_id)
        .await
        .unwrap()
        .expect("recording");
    for d in &deliveries[..2] {
        assert_eq!(d.headers["content-type"], "application/json");
        let id = &d.headers["webhook-id"];
        let ts: i64 = d.headers["webhook-timestamp"].parse().unwrap();
        let expected =
            gateway::webhooks::sign::signature(SECRET.as_bytes(), id, ts, d.body.as_bytes());
        assert_eq!(d.headers["webhook-signature"], expected, "signature");
        let v: serde_json::Value = serde_json::from_str(&d.body).unwrap();
        assert_eq!(v["type"], "recording.ready");
        assert_eq!(v["data"]["recording_id"], recording.id.as_str());
        assert_eq!(v["data"]["sha256"], recording.sha256.as_str());
    }
    // The retry is the same event (receivers deduplicate on webhook-id).
    assert_eq!(
        deliveries[0].headers["webhook-id"],
        deliveries[1].headers["webhook-id"]
    );
    assert_eq!(gw.db().webhook_events("demo").await.unwrap().len(), 1);
    let db = gw.db();
    for _ in 0..50 {
        let e = &db.webhook_events("demo").await.unwrap()[0];
        if e.state == "delivered" {
            assert_eq!((e.attempts, e.last_status), (2, Some(204)));
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the event was not marked delivered");
}
