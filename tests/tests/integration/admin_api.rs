//! The admin API over real HTTP after real calls: call records and recordings of the token's
//! channel, filters and pages, the audio with byte ranges, roles, and another channel's admin
//! seeing none of it (404 for every id).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use schemas::api::{CallDetail, Page, RecordingInfo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::answered::{connect_to, in_dialog, sha256_hex};
use crate::harness::{call_ended, ended_record, wait_for, Gateway, GatewayOptions};
use crate::raw_sip::status;

const WAIT: Duration = Duration::from_secs(10);

/// A second channel with its own admin, number and trunk.
const OTHER_CHANNEL: &str = r#"
[[channels]]
id = "other"
name = "Other Shop"
plan = "paid"
business_verified = true
call_rate_per_minute_minor = 30
currency = "KRW"
numbers = ["07099998888"]

[[channels.trunks]]
id = "other-carrier"
name = "Other carrier"
allowed_cidrs = ["127.0.0.2/32"]

[[channels.managers]]
id = "other-admin"
name = "Other admin"
token = "other-admin"
role = "admin"
operator_seat = false
"#;

pub(crate) struct HttpReply {
    pub(crate) status: u16,
    pub(crate) headers: HashMap<String, String>,
    pub(crate) body: Vec<u8>,
}

impl HttpReply {
    pub(crate) fn value(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    fn calls(&self) -> Page<CallDetail> {
        serde_json::from_value(self.value()).expect("a page of calls")
    }

    fn call(&self) -> CallDetail {
        serde_json::from_value(self.value()).expect("a call")
    }

    fn recordings(&self) -> Page<RecordingInfo> {
        serde_json::from_value(self.value()).expect("a page of recordings")
    }

    fn code(&self) -> String {
        self.value()["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// GET with a bearer token and extra headers, over a fresh HTTP/1.1 connection.
pub(crate) async fn get(
    http: SocketAddr,
    path: &str,
    token: Option<&str>,
    extra: &[(&str, &str)],
) -> HttpReply {
    let mut s = tokio::net::TcpStream::connect(http).await.unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    HttpReply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// One answered call of `seconds`, ended by the carrier's BYE.
pub(crate) async fn recorded_call(gw: &Gateway, call_id: &str) -> String {
    let mut c = connect_to(gw.sip, gw.http, call_id, false, 20).await;
    let heard = c.media.report.clone();
    wait_for("the manager to hear the caller", || {
        heard.tone_frames.load(Ordering::Relaxed) >= 10
    })
    .await;
    c.sip
        .send(&in_dialog(
            "BYE",
            c.sip.local(),
            call_id,
            2,
            &c.to,
            &format!("bye-{call_id}"),
        ))
        .await;
    let r = c.sip.final_response(WAIT).await.unwrap();
    assert_eq!(status(&r), Some(200), "{r}");
    assert_eq!(call_ended(&mut c.manager).await, "customer_hung_up");
    ended_record(gw, &c.consultation_id).await.id
}

#[tokio::test]
async fn admins_see_their_channels_calls_and_recordings_and_nothing_else() {
    let gw = Gateway::start(GatewayOptions {
        edit: Box::new(|s| s + OTHER_CHANNEL),
        ..Default::default()
    })
    .await
    .expect("gateway");
    let first = recorded_call(&gw, "api-1").await;
    let second = recorded_call(&gw, "api-2").await;
    let http = gw.http;
    let admin = Some("demo-admin");

    // Roles: no token 401, a manager's token 403.
    assert_eq!(get(http, "/v1/recordings", None, &[]).await.status, 401);
    let r = get(http, "/v1/recordings", Some("demo-manager-1"), &[]).await;
    assert_eq!((r.status, r.code()), (403, "auth.forbidden".to_string()));

    // Calls, newest first, with who took part and the recording.
    let calls = get(http, "/v1/calls", admin, &[]).await.calls();
    let ids: Vec<&str> = calls.items.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, [second.as_str(), first.as_str()]);
    let c = &calls.items[1];
    assert_eq!(c.direction, "inbound");
    assert_eq!(c.from_number, "+821055556666");
    assert_eq!(c.manager_ids, ["manager-1"]);
    assert_eq!(c.end_reason.as_deref(), Some("customer_hung_up"));
    assert_eq!((c.billable_seconds, c.charge_minor), (1, 50));
    assert!(c.recording_id.is_some());
    assert!(calls.next_cursor.is_none());
    let one = get(http, &format!("/v1/calls/{first}"), admin, &[])
        .await
        .call();
    assert_eq!(&one, c);

    // Recordings: pages of one, then the second page, then none.
    let p1 = get(http, "/v1/recordings?limit=1", admin, &[])
        .await
        .recordings();
    assert_eq!(p1.items.len(), 1);
    assert_eq!(p1.items[0].call_id, second);
    let cursor = p1.next_cursor.clone().expect("a second page");
    let p2 = get(
        http,
        &format!("/v1/recordings?limit=1&cursor={cursor}"),
        admin,
        &[],
    )
    .await
    .recordings();
    assert_eq!(p2.items.len(), 1);
    assert_eq!(p2.items[0].call_id, first);
    assert!(p2.next_cursor.is_none());
    let rec = p2.items[0].clone();
    assert_eq!((rec.sample_rate_hz, rec.channels), (8000, 2));
    assert_eq!(rec.manager_ids, ["manager-1"]);

    // Filters: the customer's number in any common format, the manager, the time.
    for (query, expected) in [
        ("number=010-5555-6666", 2),
        ("number=%2B821055556666", 2),
        ("number=01011112222", 0),
        ("manager_id=manager-1", 2),
        ("manager_id=manager-2", 0),
        ("from_ms=99999999999999", 0),
        (&format!("to_ms={}", rec.started_at_ms + 1), 1),
    ] {
        let p = get(http, &format!("/v1/recordings?{query}"), admin, &[])
            .await
            .recordings();
        assert_eq!(p.items.len(), expected, "{query}");
    }
    for query in [
        "limit=0",
        "limit=x",
        "from_ms=yesterday",
        "cursor=zzz",
        "number=abc",
    ] {
        let r = get(http, &format!("/v1/recordings?{query}"), admin, &[]).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "request.invalid".to_string()),
            "{query}"
        );
    }

    // The audio: whole, a range, the tail, an impossible range.
    let audio = format!("/v1/recordings/{}/audio", rec.id);
    let whole = get(http, &audio, admin, &[]).await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.headers["content-type"], "audio/wav");
    assert_eq!(whole.headers["accept-ranges"], "bytes");
    assert_eq!(whole.body.len() as i64, rec.size_bytes);
    assert_eq!(sha256_hex(&whole.body), rec.sha256);
    let head = get(http, &audio, admin, &[("Range", "bytes=0-43")]).await;
    assert_eq!(head.status, 206);
    assert_eq!(
        head.headers["content-range"],
        format!("bytes 0-43/{}", rec.size_bytes)
    );
    assert_eq!(head.body, whole.body[..44]);
    let tail = get(http, &audio, admin, &[("Range", "bytes=-100")]).await;
    assert_eq!(tail.status, 206);
    assert_eq!(tail.body, whole.body[whole.body.len() - 100..]);
    let stale = get(
        http,
        &audio,
        admin,
        &[("Range", "bytes=0-9"), ("If-Range", "\"old\"")],
    )
    .await;
    assert_eq!(
        stale.status, 200,
        "If-Range of another version gets the whole file"
    );
    let beyond = get(http, &audio, admin, &[("Range", "bytes=99999999-")]).await;
    assert_eq!(beyond.status, 416);
    assert_eq!(
        beyond.headers["content-range"],
        format!("bytes */{}", rec.size_bytes)
    );

    // Another channel's admin: empty lists, and 404 for every id of this channel.
    let other = Some("other-admin");
    let none = get(http, "/v1/recordings", other, &[]).await.recordings();
    assert!(none.items.is_empty());
    let none = get(http, "/v1/calls", other, &[]).await.calls();
    assert!(none.items.is_empty());
    for path in [
        format!("/v1/calls/{first}"),
        format!("/v1/recordings/{}", rec.id),
        audio.clone(),
        "/v1/recordings/no-such-id".to_string(),
    ] {
        let r = get(http, &path, other, &[]).await;
        assert_eq!(
            (r.status, r.code()),
            (404, "not_found".to_string()),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_transcript_is_served_as_json_text_and_webvtt() {
    let gw = Gateway::start(GatewayOptions {
        edit: Box::new(|s| s + OTHER_CHANNEL),
        ..Default::default()
    })
    .await
    .expect("gateway");
    let call = recorded_call(&gw, "tr-1").await;
    let db = gw.db();
    let rec = db
        .recording_for_call(&call)
        .await
        .unwrap()
        .expect("recording");
    let path = format!("/v1/recordings/{}/transcript", rec.id);
    // Not made yet.
    let r = get(gw.http, &path, Some("demo-admin"), &[]).await;
    assert_eq!((r.status, r.code()), (404, "not_found".to_string()));
    // What the worker stores when it finishes the job.
    let now = i64::MAX / 4;
    let job = db
        .claim_transcription_job("test-worker", now, 60_000)
        .await
        .unwrap()
        .expect("the recording's job");
    assert_eq!(job.recording_id, rec.id);
    let turns = r#"[{"speaker":"customer","start_ms":500,"end_ms":2000,"text":"Where is my parcel?"},
        {"speaker":"manager","start_ms":2500,"end_ms":4000,"text":"It left today <tracking & all>."}]"#;
    db.complete_transcription_job(
        &job,
        "test-worker",
        &gateway::db::NewTranscript {
            language: "en".into(),
            turns_json: turns.into(),
            text: "Where is my parcel? It left today.".into(),
            speech_ms: 3_000,
            processing_ms: 250,
        },
        &[],
        now,
    )
    .await
    .unwrap();
    let json = get(gw.http, &path, Some("demo-admin"), &[]).await;
    assert_eq!(json.status, 200);
    let v = json.value();
    assert_eq!(v["language"], "en");
    assert_eq!(v["turns"][1]["speaker"], "manager");
    assert_eq!(v["turns"][0]["text"], "Where is my parcel?");
    let text = get(
        gw.http,
        &format!("{path}?format=text"),
        Some("demo-admin"),
        &[],
    )
    .await;
    assert_eq!(text.headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(
        String::from_utf8_lossy(&text.body),
        "[00:00] Customer: Where is my parcel?\n[00:02] Manager: It left today <tracking & all>.\n"
    );
    let vtt = get(
        gw.http,
        &path,
        Some("demo-admin"),
        &[("Accept", "text/vtt")],
    )
    .await;
    assert_eq!(vtt.headers["content-type"], "text/vtt; charset=utf-8");
    let body = String::from_utf8_lossy(&vtt.body).into_owned();
    assert!(
        body.starts_with("WEBVTT\n\n1\n00:00:00.500 --> 00:00:02.000\n<v Customer>"),
        "{body}"
    );
    assert!(
        body.contains("<v Manager>It left today &lt;tracking &amp; all&gt;."),
        "{body}"
    );
    let bad = get(
        gw.http,
        &format!("{path}?format=pdf"),
        Some("demo-admin"),
        &[],
    )
    .await;
    assert_eq!(bad.status, 400);
    let other = get(gw.http, &path, Some("other-admin"), &[]).await;
    assert_eq!((other.status, other.code()), (404, "not_found".to_string()));
}
