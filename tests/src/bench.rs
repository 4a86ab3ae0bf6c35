//! Pieces the benchmark binaries share: a gateway configuration for load, and process stats.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The demo configuration on the given ports with a SQLite file in `dir`, limits lifted, and
/// `managers` extra managers with operator seats whose tokens are `{prefix}-token-{i:04}`.
pub fn load_config(
    dir: &Path,
    sip_port: u16,
    http_port: u16,
    managers: usize,
    prefix: &str,
) -> anyhow::Result<PathBuf> {
    let mut text = std::fs::read_to_string(root().join("deploy/gateway.example.toml"))?
        .replace("127.0.0.1:5060", &format!("127.0.0.1:{sip_port}"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{http_port}"))
        .replace(
            "dir = \"var/recordings\"",
            &format!("dir = \"{}\"", dir.join("recordings").display()),
        )
        .replace(
            "sqlite:var/gateway.db",
            &format!("sqlite:{}", dir.join("bench.db").display()),
        )
        .replace(
            "max_calls_per_second = 1000",
            "max_calls_per_second = 100000",
        )
        .replace(
            "max_concurrent_calls = 2000",
            "max_concurrent_calls = 100000",
        );
    for i in 0..managers {
        text.push_str(&format!(
            "\n[[channels.managers]]\nid = \"{prefix}-{i:04}\"\nname = \"{prefix} {i}\"\ntoken = \"{prefix}-token-{i:04}\"\noperator_seat = true\n"
        ));
    }
    let path = dir.join("bench.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// CPU seconds (utime + stime, clock ticks of 1/100 s on Linux) and resident memory in KiB.
pub fn process_usage(pid: u32) -> anyhow::Result<(f64, u64)> {
    let cpu = stat_cpu_seconds(&format!("/proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .context("VmRSS")?;
    Ok((cpu, rss_kb))
}

/// utime + stime in seconds from a `stat` file of proc(5) (a process's or a thread's).
pub fn stat_cpu_seconds(path: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(path)?;
    // Fields 14 and 15 of stat(5); after the `(comm)` field they are at index 11 and 12.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("stat format")?
        .1
        .split_whitespace()
        .collect();
    let utime: f64 = fields.get(11).context("utime")?.parse()?;
    let stime: f64 = fields.get(12).context("stime")?.parse()?;
    Ok((utime + stime) / 100.0)
}

/// Fails when something already listens on one of the ports (it would answer instead of ours).
pub fn ports_free(ports: &[u16]) -> anyhow::Result<()> {
    for &port in ports {
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            anyhow::bail!("port {port} is in use: stop whatever listens there first");
        }
    }
    Ok(())
}

/// The gateway's `/metrics` as name → value (HTTP/1.0 over loopback; labelled series skipped).
pub async fn scrape_metrics(
    http_port: u16,
) -> anyhow::Result<std::collections::HashMap<String, f64>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", http_port)).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    let body = text.split_once("\r\n\r\n").context("HTTP response")?.1;
    Ok(body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.contains('{'))
        .filter_map(|l| {
            let (name, value) = l.split_once(' ')?;
            Some((name.to_string(), value.trim().parse().ok()?))
        })
        .collect())
}
