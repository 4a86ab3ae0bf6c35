//! Calls-per-second benchmark: sipp INVITE → 180 → CANCEL → 487 at rising rates against the
//! release gateway on SQLite, with programmatic managers online so every call really rings.
//!
//! Usage: `cargo run --release -p integration-tests --bin sip-bench -- [RATES] [SECONDS]`
//! (default rates `200,300,…,800`, 10 s each). Prints a Markdown table:
//! per rate, calls attempted, successful, failed, and gateway CPU per call attempt (from
//! /proc/PID/stat, so sipp's own CPU is not counted). Stops after the first rate with failures.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::StreamExt;
use integration_tests::bench::{load_config, ports_free, process_usage, root};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const SIP_PORT: u16 = 15060;
const HTTP_PORT: u16 = 18080;
const MANAGERS: usize = 400;
/// How long each call rings before sipp cancels it.
const RING_MS: u32 = 100;

fn last_number(line: &str) -> Option<u64> {
    line.split(|c: char| !c.is_ascii_digit())
        .rfind(|s| !s.is_empty())?
        .parse()
        .ok()
}

struct RateResult {
    rate: u32,
    attempted: u64,
    successful: u64,
    failed: u64,
    cpu_us_per_call: f64,
    wall_s: f64,
}

async fn run_rate(gw_pid: u32, rate: u32, seconds: u32, dir: &Path) -> anyhow::Result<RateResult> {
    let calls = rate * seconds;
    let cpu_before = process_usage(gw_pid)?.0;
    let started = Instant::now();
    let out = tokio::process::Command::new("sipp")
        .arg(format!("127.0.0.1:{SIP_PORT}"))
        .arg("-sf")
        .arg(root().join("tests/sipp/uac_cancel.xml"))
        .args([
            "-s",
            "07012345678",
            "-i",
            "127.0.0.1",
            "-p",
            "15070",
            "-mp",
            "16000",
        ])
        .args([
            "-r",
            &rate.to_string(),
            "-m",
            &calls.to_string(),
            "-l",
            "20000",
        ])
        .args([
            "-d",
            &RING_MS.to_string(),
            "-timeout",
            "120s",
            "-nostdin",
            "-trace_stat",
        ])
        .arg("-stf")
        .arg(dir.join(format!("stat-{rate}.csv")))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .context("sipp")?;
    let wall_s = started.elapsed().as_secs_f64();
    let cpu = process_usage(gw_pid)?.0 - cpu_before;
    let screen = String::from_utf8_lossy(&out.stdout);
    let find = |label: &str| {
        screen
            .lines()
            .filter(|l| l.trim_start().starts_with(label))
            .filter_map(last_number)
            .next_back()
    };
    let successful = find("Successful call").unwrap_or(0);
    let failed = find("Failed call").unwrap_or(u64::MAX);
    Ok(RateResult {
        rate,
        attempted: u64::from(calls),
        successful,
        failed,
        cpu_us_per_call: cpu * 1e6 / f64::from(calls),
        wall_s,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rates: Vec<u32> = args
        .get(1)
        .map_or("200,300,400,500,600,700,800", String::as_str)
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .context("rates: comma-separated integers")?;
    let seconds: u32 = args
        .get(2)
        .map_or(Ok(10), |s| s.parse())
        .context("seconds")?;
    let gateway_bin = root().join("target/release/gateway");
    if !gateway_bin.exists() {
        bail!("build it first: cargo build --release -p gateway");
    }
    ports_free(&[SIP_PORT, HTTP_PORT])?;
    let dir = std::env::temp_dir().join(format!("sip-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = load_config(&dir, SIP_PORT, HTTP_PORT, MANAGERS, "bench")?;
    let mut gw = tokio::process::Command::new(&gateway_bin)
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .context("starting the gateway")?;
    let pid = gw.id().context("pid")?;
    let health = format!("127.0.0.1:{HTTP_PORT}");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(&health).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every manager online, reading (and discarding) its rings like a console would.
    let mut sessions = Vec::new();
    for i in 0..MANAGERS {
        let mut req = format!("ws://127.0.0.1:{HTTP_PORT}/v1/ws").into_client_request()?;
        req.headers_mut().insert(
            "authorization",
            format!("Bearer bench-token-{i:04}").parse()?,
        );
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .context("manager websocket")?;
        sessions.push(tokio::spawn(async move {
            let (_, mut read) = ws.split();
            while let Some(Ok(_)) = read.next().await {}
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    println!("| offered rate (calls/s) | attempted | successful | failed | gateway CPU per call attempt (µs) | wall (s) |");
    println!("|---|---|---|---|---|---|");
    let mut best = None;
    for rate in rates {
        let r = run_rate(pid, rate, seconds, &dir).await?;
        println!(
            "| {} | {} | {} | {} | {:.0} | {:.1} |",
            r.rate, r.attempted, r.successful, r.failed, r.cpu_us_per_call, r.wall_s
        );
        if r.failed != 0 || r.successful != r.attempted {
            // Show why, from sipp's error log (first lines are enough).
            let errors =
                std::fs::read_to_string(dir.join(format!("errors-{rate}.log"))).unwrap_or_default();
            for line in errors.lines().filter(|l| !l.trim().is_empty()).take(6) {
                eprintln!("sipp: {line}");
            }
            break;
        }
        best = Some(r.rate);
        // Let ringing calls and the database settle between steps.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    match best {
        Some(rate) => println!("\nhighest rate with zero failed calls: {rate} calls/s"),
        None => println!("\nno rate completed without failures"),
    }
    gw.kill().await.ok();
    for s in sessions {
        s.abort();
    }
    if std::env::var_os("SIP_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("kept {}", dir.display());
    }
    Ok(())
}
