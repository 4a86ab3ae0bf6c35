//! Recordings in S3-compatible storage, against a real S3 server process (`s3s-fs` from
//! crates.io, installed by tests/run.sh): the finished file is uploaded under its key, leaves
//! the local spool, and the admin API serves it (whole and by range) from the bucket.

use std::time::Duration;

use crate::admin_api::{get, recorded_call};
use crate::answered::sha256_hex;
use crate::harness::{free_port, unique_name, Gateway, GatewayOptions};

const BUCKET: &str = "recordings";

#[tokio::test]
async fn recordings_go_to_the_bucket_and_are_served_from_it() {
    let Ok(bin) = std::env::var("GATEWAY_S3S_FS") else {
        assert!(
            std::env::var("GATEWAY_REQUIRE_S3").as_deref() != Ok("1"),
            "GATEWAY_REQUIRE_S3=1 but GATEWAY_S3S_FS is unset (tests/run.sh sets it)"
        );
        eprintln!("skipped: GATEWAY_S3S_FS unset (run through tests/run.sh)");
        return;
    };
    let root = std::env::temp_dir().join(unique_name("s3-root"));
    std::fs::create_dir_all(root.join(BUCKET)).unwrap();
    let port = free_port("127.0.0.1");
    let _server = tokio::process::Command::new(bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", "test-key", "--secret-key", "test-secret"])
        .arg(&root)
        .kill_on_drop(true)
        .spawn()
        .expect("s3s-fs");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let gw = Gateway::start(GatewayOptions {
        edit: Box::new(move |s| {
            s.replacen(
                "[recordings]\n",
                &format!(
                    "[recordings]\ns3 = {{ bucket = \"{BUCKET}\", endpoint = \"http://127.0.0.1:{port}\", \
                     access_key_id = \"test-key\", secret_access_key = \"test-secret\" }}\n"
                ),
                1,
            )
        }),
        ..Default::default()
    })
    .await
    .expect("gateway");
    let call = recorded_call(&gw, "s3-1").await;
    let rec = gw
        .db()
        .recording_for_call(&call)
        .await
        .unwrap()
        .expect("recording");
    // In the bucket (s3s-fs keeps objects as files under <root>/<bucket>/<key>), not on the
    // gateway's disk.
    let object = std::fs::read(root.join(BUCKET).join(&rec.storage_key)).expect("the object");
    assert_eq!(sha256_hex(&object), rec.sha256);
    assert!(!gw.recordings_dir().join(&rec.storage_key).exists());
    assert!(std::fs::read_dir(gw.recordings_dir().join("spool"))
        .unwrap()
        .next()
        .is_none());
    // Served from the bucket.
    let audio = format!("/v1/recordings/{}/audio", rec.id);
    let whole = get(gw.http, &audio, Some("demo-admin"), &[]).await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, object);
    let part = get(
        gw.http,
        &audio,
        Some("demo-admin"),
        &[("Range", "bytes=40-99")],
    )
    .await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, object[40..100]);
    let _ = std::fs::remove_dir_all(&root);
}
