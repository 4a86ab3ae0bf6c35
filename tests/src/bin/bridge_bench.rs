//! Media bridge cost against the bare codec work it must do, in one run.
//!
//! Usage: `cargo run --release -p integration-tests --bin bridge-bench -- [FRAMES]`
//! (default 20,000 frames = 400 s of a full-duplex call). Both sides process the same frames:
//! - bare: per 20 ms, G.711 decode + Opus encode (carrier → browser) and Opus decode +
//!   G.711 encode (browser → carrier), straight calls into the codecs;
//! - bridge: `media::bridge::PhoneBridge` doing the same through RTP parsing and building,
//!   both jitter buffers, DTMF and output queuing.
//!
//! Prints µs per frame (both directions) for each, the ratio, and the bridge's per-tick
//! processing latency percentiles.

use std::time::{Duration, Instant};

use media::bridge::{BridgeConfig, BridgeOutput, PhoneBridge, TICK};
use media::g711::G711Law;
use media::opus_codec::{OpusDecoder8k, OpusEncoder8k};
use media::rtp::{self, RtpHeader};
use media::tone::generate_sine;

fn carrier_packets(frames: u32) -> Vec<Vec<u8>> {
    (0..frames)
        .map(|i| {
            let mut pcm = [0i16; 160];
            generate_sine(1000.0, 6000.0, 8000, u64::from(i) * 160, &mut pcm);
            let mut g711 = [0u8; 160];
            G711Law::Ulaw.encode(&pcm, &mut g711).expect("encode");
            let header = RtpHeader {
                payload_type: 0,
                marker: i == 0,
                sequence: i as u16,
                timestamp: i * 160,
                ssrc: 7,
                csrc_count: 0,
            };
            let mut buf = vec![0u8; 200];
            let n = rtp::write_packet(&header, &g711, &mut buf).expect("rtp");
            buf.truncate(n);
            buf
        })
        .collect()
}

fn browser_payloads(frames: u32) -> Vec<Vec<u8>> {
    let mut enc = OpusEncoder8k::new(24_000, 5).expect("encoder");
    let mut out = vec![0u8; 1275];
    (0..frames)
        .map(|i| {
            let mut pcm = [0i16; 160];
            generate_sine(440.0, 6000.0, 8000, u64::from(i) * 160, &mut pcm);
            let n = enc.encode(&pcm, &mut out).expect("encode");
            out[..n].to_vec()
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    let frames: u32 = std::env::args().nth(1).map_or(Ok(20_000), |s| s.parse())?;
    let carrier = carrier_packets(frames);
    let browser = browser_payloads(frames);

    // Bare codec work.
    let mut enc = OpusEncoder8k::new(24_000, 5)?;
    let mut dec = OpusDecoder8k::new()?;
    let (mut pcm, mut opus, mut g711) = ([0i16; 960], vec![0u8; 1275], [0u8; 160]);
    let started = Instant::now();
    for i in 0..frames as usize {
        let p = rtp::parse(&carrier[i])?;
        G711Law::Ulaw.decode(p.payload(), &mut pcm[..160])?;
        enc.encode(&pcm[..160], &mut opus)?;
        dec.decode(&browser[i], &mut pcm)?;
        G711Law::Ulaw.encode(&pcm[..160], &mut g711)?;
    }
    let bare = started.elapsed();

    // The bridge, on virtual time: packets arrive on schedule, one tick per 20 ms.
    let t0 = Instant::now();
    let mut bridge = PhoneBridge::new(
        BridgeConfig {
            law: G711Law::Ulaw,
            carrier_payload_type: 0,
            carrier_dtmf_payload_type: Some(101),
            carrier_ptime_ms: 20,
            opus_bitrate_bps: 24_000,
            opus_complexity: 5,
            record: true,
            carrier_ssrc: 1,
            carrier_first_sequence: 0,
            carrier_first_timestamp: 0,
            browser_first_timestamp: 0,
        },
        t0,
    )?;
    let mut per_tick = Vec::with_capacity(frames as usize);
    let (mut to_browser, mut to_carrier) = (0u64, 0u64);
    let started = Instant::now();
    for i in 0..frames {
        let now = t0 + TICK * i;
        let tick_started = Instant::now();
        bridge.handle_carrier_packet(now, &carrier[i as usize]);
        bridge.handle_browser_audio(now, i as u16, i * 960, &browser[i as usize]);
        bridge.handle_timeout(now)?;
        // The driver hands the recording to its writer each tick; here it is dropped.
        drop(bridge.take_recording());
        while let Some(o) = bridge.poll_output() {
            match o {
                BridgeOutput::ToBrowser { .. } => to_browser += 1,
                BridgeOutput::ToCarrier(_) => to_carrier += 1,
                BridgeOutput::DigitFromCarrier(_) | BridgeOutput::ToLeg { .. } => {}
            }
        }
        per_tick.push(tick_started.elapsed());
    }
    let whole = started.elapsed();
    per_tick.sort();
    let pct = |p: f64| per_tick[((per_tick.len() - 1) as f64 * p) as usize];
    let us = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(frames);
    println!(
        "frames: {frames} (both directions each), to browser {to_browser}, to carrier {to_carrier}"
    );
    println!("| | µs per frame (both directions) |");
    println!("|---|---|");
    println!("| bare codec work | {:.1} |", us(bare));
    println!("| whole bridge | {:.1} |", us(whole));
    println!(
        "\nratio bridge / bare codec: {:.3}",
        whole.as_secs_f64() / bare.as_secs_f64()
    );
    println!(
        "per-tick processing latency: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        pct(0.50).as_secs_f64() * 1e6,
        pct(0.99).as_secs_f64() * 1e6,
        pct(1.0).as_secs_f64() * 1e6
    );
    Ok(())
}
