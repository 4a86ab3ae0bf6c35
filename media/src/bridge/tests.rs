use std::time::{Duration, Instant};

use super::*;
use crate::dtmf::{DtmfReceiver, DtmfSender};
use crate::opus_codec::{OpusDecoder8k, OpusEncoder8k};
use crate::tone::{generate_sine, ToneDetector};

fn config() -> BridgeConfig {
    BridgeConfig {
        law: G711Law::Ulaw,
        carrier_payload_type: 0,
        carrier_dtmf_payload_type: Some(101),
        carrier_ptime_ms: 20,
        opus_bitrate_bps: 24_000,
        opus_complexity: 5,
        record: false,
        carrier_ssrc: 0x1234_5678,
        carrier_first_sequence: 65_530, // wraps during the test
        carrier_first_timestamp: 4_294_967_000,
        browser_first_timestamp: 1000,
    }
}

/// 20 ms of a sine as a PCMU RTP packet from "the carrier".
fn carrier_packet(seq: u16, freq_hz: f32, frame: u32) -> Vec<u8> {
    let mut pcm = [0i16; 160];
    generate_sine(freq_hz, 8000.0, 8000, u64::from(frame) * 160, &mut pcm);
    let mut g711 = [0u8; 160];
    G711Law::Ulaw.encode(&pcm, &mut g711).unwrap();
    let header = RtpHeader {
        payload_type: 0,
        marker: frame == 0,
        sequence: seq,
        timestamp: frame * 160,
        ssrc: 42,
        csrc_count: 0,
    };
    let mut buf = vec![0u8; 200];
    let n = rtp::write_packet(&header, &g711, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn drain(b: &mut PhoneBridge) -> Vec<BridgeOutput> {
    std::iter::from_fn(|| b.poll_output()).collect()
}

/// Runs `frames` ticks at 20 ms, feeding each tick's input first.
fn run(
    b: &mut PhoneBridge,
    t0: Instant,
    frames: u32,
    mut feed: impl FnMut(&mut PhoneBridge, Instant, u32),
) -> Vec<BridgeOutput> {
    let mut out = Vec::new();
    for i in 0..frames {
        let now = t0 + TICK * i;
        feed(b, now, i);
        b.handle_timeout(now).unwrap();
        out.extend(drain(b));
    }
    out
}

#[test]
fn carrier_tone_reaches_the_browser_as_opus() {
    let t0 = Instant::now();
    let mut b = PhoneBridge::new(config(), t0).unwrap();
    let out = run(&mut b, t0, 60, |b, now, i| {
        b.handle_carrier_packet(now, &carrier_packet(i as u16, 1000.0, i))
    });
    let mut decoder = OpusDecoder8k::new().unwrap();
    let detector = ToneDetector::new(1000.0, 8000, 160);
    let mut timestamps = Vec::new();
    let mut heard = 0;
    for o in &out {
        if let BridgeOutput::ToBrowser {
            payload,
            rtp_timestamp,
        } = o
        {
            timestamps.push(*rtp_timestamp);
            let mut pcm = [0i16; 960];
            let n = decoder.decode(payload, &mut pcm).unwrap();
            assert_eq!(n, 160);
            heard += usize::from(detector.detect(&pcm[..160]));
        }
    }
    // After the jitter buffer's initial delay, every frame carries the tone.
    assert!(timestamps.len() >= 50, "{} frames", timestamps.len());
    assert!(
        heard >= timestamps.len() - 3,
        "tone in {heard} of {} frames",
        timestamps.len()
    );
    // RFC 7587 §4.1: 960 per 20 ms on the 48 kHz clock, from the injected start.
    assert_eq!(timestamps[0], 1000);
    assert!(timestamps
        .windows(2)
        .all(|w| w[1].wrapping_sub(w[0]) == 960));
}

#[test]
fn browser_tone_reaches_the_carrier_as_pcmu_with_a_steady_stream() {
    let t0 = Instant::now();
    let mut b = PhoneBridge::new(config(), t0).unwrap();
    let mut encoder = OpusEncoder8k::new(24_000, 5).unwrap();
    let mut opus = vec![0u8; 1275];
    let out = run(&mut b, t0, 60, |b, now, i| {
        // The browser starts talking 10 frames in, after two empty probes.
        if i == 8 || i == 9 {
            b.handle_browser_audio(now, 0, 0, &[]);
        }
        if i >= 10 {
            let mut pcm = [0i16; 160];
            generate_sine(440.0, 8000.0, 8000, u64::from(i) * 160, &mut pcm);
            let n = encoder.encode(&pcm, &mut opus).unwrap();
            b.handle_browser_audio(now, i as u16, i * 960, &opus[..n]);
        }
    });
    let detector = ToneDetector::new(440.0, 8000, 160);
    let mut seqs = Vec::new();
    let mut heard_from = None;
    for (k, o) in out.iter().enumerate() {
        let BridgeOutput::ToCarrier(bytes) = o else {
            continue;
        };
        let p = rtp::parse(bytes).unwrap();
        assert_eq!(p.header().payload_type, 0);
        assert_eq!(p.header().ssrc, 0x1234_5678);
        assert_eq!(p.header().marker, k == 0, "marker only on the first packet");
        seqs.push(p.header().sequence);
        let mut pcm = [0i16; 160];
        G711Law::Ulaw.decode(p.payload(), &mut pcm).unwrap();
        if detector.detect(&pcm) && heard_from.is_none() {
            heard_from = Some(seqs.len());
        }
    }
    // One packet per tick from the start (silence first), sequence numbers wrapping.
    assert_eq!(seqs.len(), 60);
    assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));
    assert!(
        heard_from.is_some_and(|k| k <= 20),
        "tone from packet {heard_from:?}"
    );
    assert_eq!(b.stats().browser_empty_skipped, 2);
}

#[test]
fn digits_cross_both_ways() {
    let t0 = Instant::now();
    let mut b = PhoneBridge::new(config(), t0).unwrap();
    // Carrier → browser: an RFC 4733 event for '5' with its repeated end packets.
    let mut carrier_dtmf = DtmfSender::new(101, 8000, 20);
    carrier_dtmf.start('5', 100, t0).unwrap();
    let mut seq = 0u16;
    let out = run(&mut b, t0, 20, |b, now, i| {
        if i == 3 {
            b.send_digit(now, '7', 100).unwrap();
        }
        while let Some(p) = carrier_dtmf.poll_packet(now) {
            let mut buf = vec![0u8; 32];
            let n = rtp::write_packet(&p.header(seq, 42), &p.payload, &mut buf).unwrap();
            seq = seq.wrapping_add(1);
            b.handle_carrier_packet(now, &buf[..n]);
        }
    });
    let digits: Vec<char> = out
        .iter()
        .filter_map(|o| match o {
            BridgeOutput::DigitFromCarrier(d) => Some(*d),
            _ => None,
        })
        .collect();
    assert_eq!(digits, ['5']);
    // Browser → carrier: the '7' arrives as telephone-event packets in our RTP stream.
    let mut rx = DtmfReceiver::new(8000);
    for o in &out {
        if let BridgeOutput::ToCarrier(bytes) = o {
            let p = rtp::parse(bytes).unwrap();
            if p.header().payload_type == 101 {
                rx.handle_packet(t0, p.header(), p.payload()).unwrap();
            }
        }
    }
    let ev = rx.poll_event().expect("digit sent to the carrier");
    assert_eq!(ev.digit, '7');
    assert!(rx.poll_event().is_none());
}

#[test]
fn telephone_events_between_audio_packets_are_not_taken_for_lost_audio() {
    let t0 = Instant::now();
    let mut b = PhoneBridge::new(config(), t0).unwrap();
    let mut dtmf = DtmfSender::new(101, 8000, 20);
    // Audio for 10 packets, a 100 ms '9' (event packets plus its repeated ends) in the same
    // sequence space, then audio again: no sequence number is missing.
    let mut seq = 100u16;
    let mut frame = 0u32;
    run(&mut b, t0, 60, |b, now, i| {
        if i == 10 {
            dtmf.start('9', 100, now).unwrap();
        }
        let mut sent_event = false;
        while let Some(p) = dtmf.poll_packet(now) {
            let mut buf = vec![0u8; 32];
            let n = rtp::write_packet(&p.header(seq, 42), &p.payload, &mut buf).unwrap();
            b.handle_carrier_packet(now, &buf[..n]);
            seq = seq.wrapping_add(1);
            frame += 1;
            sent_event = true;
        }
        if !sent_event {
            b.handle_carrier_packet(now, &carrier_packet(seq, 1000.0, frame));
            seq = seq.wrapping_add(1);
            frame += 1;
        }
    });
    let s = b.stats();
    assert_eq!(s.digits_from_carrier, 1, "{s:?}");
    assert_eq!(s.carrier_concealed, 0, "{s:?}");
    assert_eq!(s.carrier_discarded, 0, "{s:?}");
}

#[test]
fn loss_is_concealed_and_garbage_dropped() {
    let t0 = Instant::now();
    let mut b = PhoneBridge::new(config(), t0).unwrap();
    let out = run(&mut b, t0, 50, |b, now, i| {
        if i % 7 != 3 {
            b.handle_carrier_packet(now, &carrier_packet(i as u16, 1000.0, i));
        }
        b.handle_carrier_packet(now, b"\x80garbage");
        b.handle_carrier_packet(now, &[0xff; 3]);
        b.handle_browser_audio(now, i as u16, i * 960, &[0xff, 0xff, 0xfe, 0x00]);
    });
    let to_browser = out
        .iter()
        .filter(|o| matches!(o, BridgeOutput::ToBrowser { .. }))
        .count();
    let to_carrier = out
        .iter()
        .filter(|o| matches!(o, BridgeOutput::ToCarrier(_)))
        .count();
    // One frame per tick each way despite loss and junk.
    assert!(to_browser >= 49, "{to_browser}");
    assert_eq!(to_carrier, 50);
    let s = b.stats();
    assert!(s.carrier_concealed > 0, "{s:?}");
    assert!(s.carrier_dropped >= 100, "{s:?}");
}

#[test]
fn a_late_driver_catches_up_tick_by_tick() {
    let t0 = Instant::now();
    let mut b = PhoneBridge::new(config(), t0).unwrap();
    b.handle_timeout(t0 + Duration::from_millis(200)).unwrap();
    let packets = drain(&mut b)
        .iter()
        .filter(|o| matches!(o, BridgeOutput::ToCarrier(_)))
        .count();
    // Ticks at 0, 20, …, 200 ms: the first one as the bridge starts.
    assert_eq!(packets, 11);
    assert_eq!(b.poll_timeout(), t0 + Duration::from_millis(220));
}

#[test]
fn mismatched_config_is_refused() {
    let mut cfg = config();
    cfg.carrier_payload_type = 8;
    assert!(matches!(
        PhoneBridge::new(cfg, Instant::now()),
        Err(BridgeError::Config(_))
    ));
    let mut cfg = config();
    cfg.carrier_dtmf_payload_type = None;
    let mut b = PhoneBridge::new(cfg, Instant::now()).unwrap();
    assert!(b.send_digit(Instant::now(), '1', 100).is_err());
}

/// Opus payloads of a sine, as a browser leg would send them.
fn opus_tone(freq_hz: f32, frames: u32) -> Vec<Vec<u8>> {
    let mut enc = OpusEncoder8k::new(24_000, 5).unwrap();
    (0..frames)
        .map(|i| {
            let mut pcm = [0i16; 160];
            generate_sine(freq_hz, 6000.0, 8000, u64::from(i) * 160, &mut pcm);
            let mut out = vec![0u8; 1275];
            let n = enc.encode(&pcm, &mut out).unwrap();
            out.truncate(n);
            out
        })
        .collect()
}

/// Counts frames (after warm-up) in which the frequency carries at least a quarter of the
/// energy (two tones mixed share it about half and half).
fn heard(frames: &[Vec<i16>], freq_hz: f32) -> usize {
    let d = ToneDetector::new(freq_hz, 8000, 160).with_threshold(0.25);
    frames.iter().skip(10).filter(|f| d.detect(f)).count()
}

#[test]
fn three_participants_each_hear_the_other_two() {
    let t0 = Instant::now();
    let mut b = PhoneBridge::new(config(), t0).unwrap();
    b.add_leg(1, 7).unwrap();
    assert_eq!(b.leg_count(), 2);
    let (f_carrier, f_m0, f_m1) = (600.0, 1000.0, 1500.0);
    let frames = 80;
    let m0 = opus_tone(f_m0, frames);
    let m1 = opus_tone(f_m1, frames);
    let out = run(&mut b, t0, frames, |b, now, i| {
        b.handle_carrier_packet(now, &carrier_packet(i as u16, f_carrier, i));
        b.handle_browser_audio(now, i as u16, i * 960, &m0[i as usize]);
        b.handle_leg_audio(1, now, i as u16, i * 960, &m1[i as usize]);
    });
    let (mut carrier, mut leg0, mut leg1) = (Vec::new(), Vec::new(), Vec::new());
    let (mut d0, mut d1) = (OpusDecoder8k::new().unwrap(), OpusDecoder8k::new().unwrap());
    for o in out {
        match o {
            BridgeOutput::ToCarrier(p) => {
                let p = rtp::parse(&p).unwrap();
                let mut pcm = vec![0i16; 160];
                G711Law::Ulaw.decode(p.payload(), &mut pcm).unwrap();
                carrier.push(pcm);
            }
            BridgeOutput::ToBrowser { payload, .. } => {
                let mut pcm = vec![0i16; 160];
                d0.decode(&payload, &mut pcm).unwrap();
                leg0.push(pcm);
            }
            BridgeOutput::ToLeg { leg, payload, .. } => {
                assert_eq!(leg, 1);
                let mut pcm = vec![0i16; 160];
                d1.decode(&payload, &mut pcm).unwrap();
                leg1.push(pcm);
            }
            BridgeOutput::DigitFromCarrier(_) => {}
        }
    }
    let min = (frames as usize - 10) / 2;
    // The carrier hears both managers, not itself.
    assert!(heard(&carrier, f_m0) > min, "carrier hears manager 0");
    assert!(heard(&carrier, f_m1) > min, "carrier hears manager 1");
    assert_eq!(
        heard(&carrier, f_carrier),
        0,
        "carrier does not hear itself"
    );
    // Manager 0 hears the carrier and manager 1.
    assert!(heard(&leg0, f_carrier) > min);
    assert!(heard(&leg0, f_m1) > min);
    assert_eq!(heard(&leg0, f_m0), 0);
    // Manager 1 hears the carrier and manager 0.
    assert!(heard(&leg1, f_carrier) > min);
    assert!(heard(&leg1, f_m0) > min);
    assert_eq!(heard(&leg1, f_m1), 0);

    // Leaving: manager 0 goes, the carrier still hears manager 1.
    assert!(b.remove_leg(PRIMARY_LEG));
    assert_eq!(b.leg_count(), 1);
}

#[test]
fn the_meet_is_limited_to_ten_participants() {
    let t0 = Instant::now();
    let mut b = PhoneBridge::new(config(), t0).unwrap();
    // carrier + primary + 8 more managers = 10
    for id in 1..=8 {
        b.add_leg(id, 0).unwrap();
    }
    let err = b.add_leg(9, 0).unwrap_err();
    assert_eq!(err.code(), "meet.full");
    assert!(matches!(
        b.add_leg(3, 0),
        Err(BridgeError::DuplicateLeg(3)) | Err(BridgeError::Full { .. })
    ));
    b.handle_timeout(t0).unwrap();
}

/// `samples` of a sine starting at sample `first`, as one PCMU RTP packet.
fn carrier_packet_of(seq: u16, freq_hz: f32, first: u64, samples: usize) -> Vec<u8> {
    let mut pcm = vec![0i16; samples];
    generate_sine(freq_hz, 8000.0, 8000, first, &mut pcm);
    let mut g711 = vec![0u8; samples];
    G711Law::Ulaw.encode(&pcm, &mut g711).unwrap();
    let header = RtpHeader {
        payload_type: 0,
        marker: seq == 0,
        sequence: seq,
        timestamp: first as u32,
        ssrc: 42,
        csrc_count: 0,
    };
    let mut buf = vec![0u8; 12 + samples];
    let n = rtp::write_packet(&header, &g711, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn carriers_packetizing_at_10_30_and_60_ms_are_bridged_both_ways() {
    for ptime_ms in [10u32, 30, 60] {
        let t0 = Instant::now();
        let cfg = BridgeConfig {
            carrier_ptime_ms: ptime_ms,
            ..config()
        };
        let mut b = PhoneBridge::new(cfg, t0).unwrap();
        let samples = (ptime_ms * 8) as usize;
        let mut out = Vec::new();
        let mut seq = 0u16;
        // Two seconds on a 10 ms clock: a carrier packet at the end of each ptime of audio,
        // a bridge tick every 20 ms.
        for step in 0..200u32 {
            let now = t0 + Duration::from_millis(u64::from(step) * 10);
            if step > 0 && (step * 10) % ptime_ms == 0 {
                let first = u64::from(seq) * samples as u64;
                b.handle_carrier_packet(now, &carrier_packet_of(seq, 1000.0, first, samples));
                seq = seq.wrapping_add(1);
            }
            if step % 2 == 0 {
                b.handle_timeout(now).unwrap();
                out.extend(drain(&mut b));
            }
        }
        // Toward the browser: a 20 ms Opus frame per tick, carrying the tone, no concealment.
        let mut decoder = OpusDecoder8k::new().unwrap();
        let detector = ToneDetector::new(1000.0, 8000, 160);
        let (mut frames, mut heard) = (0, 0);
        for o in &out {
            if let BridgeOutput::ToBrowser { payload, .. } = o {
                let mut pcm = [0i16; 960];
                decoder.decode(payload, &mut pcm).unwrap();
                frames += 1;
                heard += usize::from(detector.detect(&pcm[..160]));
            }
        }
        let s = b.stats();
        assert_eq!(s.carrier_concealed, 0, "ptime {ptime_ms}: {s:?}");
        assert_eq!(s.carrier_discarded, 0, "ptime {ptime_ms}: {s:?}");
        assert!(frames >= 90, "ptime {ptime_ms}: {frames} frames");
        assert!(
            heard + 8 >= frames,
            "ptime {ptime_ms}: tone in {heard} of {frames}"
        );
        // Toward the carrier: packets of the negotiated ptime, contiguous in sequence and time.
        let packets: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                BridgeOutput::ToCarrier(bytes) => {
                    let p = rtp::parse(bytes).unwrap();
                    Some((p.header().sequence, p.header().timestamp, p.payload().len()))
                }
                _ => None,
            })
            .collect();
        assert!(packets.iter().all(|p| p.2 == samples), "ptime {ptime_ms}");
        for w in packets.windows(2) {
            assert_eq!(w[1].0, w[0].0.wrapping_add(1), "ptime {ptime_ms}");
            assert_eq!(
                w[1].1,
                w[0].1.wrapping_add(samples as u32),
                "ptime {ptime_ms}"
            );
        }
        // 100 ticks of 160 samples, less what waits for a whole packet.
        let sent = packets.len() * samples;
        assert!(
            sent <= 100 * 160 && sent + samples > 100 * 160,
            "ptime {ptime_ms}: {sent}"
        );
    }
}

#[test]
fn a_ptime_that_is_not_whole_10_ms_frames_is_refused() {
    for ptime_ms in [0, 5, 25, 130] {
        let cfg = BridgeConfig {
            carrier_ptime_ms: ptime_ms,
            ..config()
        };
        assert!(PhoneBridge::new(cfg, Instant::now()).is_err(), "{ptime_ms}");
    }
}

#[test]
fn the_recording_holds_the_customer_left_and_the_managers_right() {
    let t0 = Instant::now();
    let mut b = PhoneBridge::new(
        BridgeConfig {
            record: true,
            ..config()
        },
        t0,
    )
    .unwrap();
    let browser = opus_tone(440.0, 50);
    let mut recording = Vec::new();
    run(&mut b, t0, 50, |b, now, i| {
        b.handle_carrier_packet(now, &carrier_packet(i as u16, 1000.0, i));
        b.handle_browser_audio(now, i as u16, i * 960, &browser[i as usize]);
        if let Some(chunk) = b.take_recording() {
            recording.extend(chunk);
        }
    });
    recording.extend(b.take_recording().unwrap_or_default());
    // One 20 ms stereo frame per tick (the last tick's is taken after the loop).
    assert_eq!(recording.len(), 50 * 160 * 4);
    let samples: Vec<i16> = recording
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    let (left, right): (Vec<i16>, Vec<i16>) = samples.chunks_exact(2).map(|f| (f[0], f[1])).unzip();
    let frames = |ch: &[i16]| {
        ch.chunks_exact(160)
            .map(<[i16]>::to_vec)
            .collect::<Vec<_>>()
    };
    let (customer, managers) = (frames(&left), frames(&right));
    let detect = |hz: f32, fs: &[Vec<i16>]| {
        let d = ToneDetector::new(hz, 8000, 160);
        fs.iter().filter(|f| d.detect(f)).count()
    };
    assert!(detect(1000.0, &customer) >= 40, "customer channel");
    assert_eq!(
        detect(440.0, &customer),
        0,
        "no manager in the customer channel"
    );
    assert!(detect(440.0, &managers) >= 40, "managers channel");
    assert_eq!(
        detect(1000.0, &managers),
        0,
        "no customer in the managers channel"
    );
    assert!(b.take_recording().is_none());
}
