//! Recordings survive a crash: a gateway process killed with SIGKILL in the middle of a call
//! leaves a `.part` file; the next start repairs it (whole frames, real header), ends the call
//! where the recording ends, and stores the recording with its transcription job, once.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use gateway::config::Config;
use gateway::server::StartOptions;
use media::tone::ToneDetector;

use crate::answered::{connect_to, sha256_hex, stereo_frames};
use crate::harness::{config_text, free_port, unique_name, wait_for};

/// Set for the child process: the configuration it runs the gateway with.
const CHILD_CONFIG_ENV: &str = "GATEWAY_TEST_CHILD_CONFIG";

/// Not a test of its own: the crash test runs this test binary again with only this test
/// selected and the configuration in the environment, so the gateway lives in a process that
/// can be killed for real.
#[tokio::test]
#[ignore = "runs only as the child process of a_gateway_killed_mid_call_..."]
async fn gateway_process_for_the_crash_test() {
    let Ok(path) = std::env::var(CHILD_CONFIG_ENV) else {
        return;
    };
    let text = std::fs::read_to_string(&path).expect("child configuration");
    let config = Config::parse(&text).expect("valid configuration");
    let _server = gateway::server::start(config, StartOptions { rng_seed: None })
        .await
        .expect("child gateway");
    // Until the parent kills this process.
    std::future::pending::<()>().await;
}

fn part_files(spool: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(spool)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().ends_with(".wav.part"))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_gateway_killed_mid_call_has_its_recording_repaired_and_stored_at_restart() {
    let dir = std::env::temp_dir().join(unique_name("gw-crash"));
    std::fs::create_dir_all(&dir).unwrap();
    let db_url = format!("sqlite:{}", dir.join("gateway.db").display());
    let (sip_port, http_port) = (free_port("127.0.0.1"), free_port("127.0.0.1"));
    let text = config_text(&dir, &db_url).unwrap();
    let child_text = text
        .replace(
            "udp_listen = \"127.0.0.1:0\"",
            &format!("udp_listen = \"127.0.0.1:{sip_port}\""),
        )
        .replace(
            "tcp_listen = \"127.0.0.1:0\"",
            &format!("tcp_listen = \"127.0.0.1:{sip_port}\""),
        )
        .replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{http_port}\""),
        );
    let config_path = dir.join("gateway.toml");
    std::fs::write(&config_path, &child_text).unwrap();

    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "recording::gateway_process_for_the_crash_test",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_CONFIG_ENV, &config_path)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("child gateway process");
    let http = std::net::SocketAddr::from(([127, 0, 0, 1], http_port));
    let sip = std::net::SocketAddr::from(([127, 0, 0, 1], sip_port));
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(http).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let call = connect_to(sip, http, "crash-1", false, 20).await;
    let heard = call.media.report.clone();
    wait_for("the manager to hear the caller", || {
        heard.tone_frames.load(Ordering::Relaxed) >= 25
    })
    .await;
    // At least a second and a half of audio on disk (the writer appends every second).
    let spool = dir.join("recordings").join("spool");
    wait_for("the recording to reach the disk", || {
        part_files(&spool)
            .iter()
            .any(|p| std::fs::metadata(p).map_or(0, |m| m.len()) >= 44 + 48_000)
    })
    .await;
    child.kill().await.expect("SIGKILL");
    let parts = part_files(&spool);
    assert_eq!(parts.len(), 1, "one call in progress: {parts:?}");
    let part_len = std::fs::metadata(&parts[0]).unwrap().len();

    // Restart on the same database and recordings, other ports (the killed process's
    // sockets may linger).
    let config = Config::parse(&text).expect("configuration");
    let server = gateway::server::start(config, StartOptions { rng_seed: None })
        .await
        .expect("restarted gateway");
    let db = &server.state.db;
    let record = db
        .calls_for_consultation(&call.consultation_id)
        .await
        .unwrap()
        .pop()
        .expect("the call record");
    assert_eq!(record.end_reason.as_deref(), Some("gateway_restarted"));
    assert_eq!(record.ended_by.as_deref(), Some("system"));
    let stored = db
        .recording_for_call(&record.id)
        .await
        .unwrap()
        .expect("the recording row");
    assert!(stored.repaired);
    // Ended where the recording ends, not at the restart: the downtime is not charged.
    assert_eq!(
        record.ended_at_ms,
        Some(stored.started_at_ms + stored.duration_ms)
    );
    let bytes = std::fs::read(dir.join("recordings").join(&stored.storage_key)).unwrap();
    assert_eq!(stored.sha256, sha256_hex(&bytes));
    assert_eq!(bytes.len() as i64, stored.size_bytes);
    // Whole frames of what reached the disk, nothing invented.
    assert!(bytes.len() as u64 <= part_len && (bytes.len() - 44).is_multiple_of(4));
    assert!(stored.duration_ms >= 1500, "{stored:?}");
    let (customer, _) = stereo_frames(&bytes);
    let tone = ToneDetector::new(1000.0, 8000, 160);
    assert!(customer.iter().filter(|f| tone.detect(f)).count() >= 50);
    assert_eq!(
        db.transcription_job_state(&stored.id).await.unwrap(),
        Some(("queued".to_string(), 0))
    );
    assert!(part_files(&spool).is_empty());
    assert!(std::fs::read_dir(&spool).unwrap().next().is_none());
    server.shutdown();

    // A second restart finds nothing left to do: no second recording, no second job.
    let config = Config::parse(&text).expect("configuration");
    let again = gateway::server::start(config, StartOptions { rng_seed: None })
        .await
        .expect("second restart");
    let same = again
        .state
        .db
        .recording_for_call(&record.id)
        .await
        .unwrap()
        .expect("still the recording");
    assert_eq!(same, stored);
    again.shutdown();
    drop(call);
    let _ = std::fs::remove_dir_all(&dir);
}
