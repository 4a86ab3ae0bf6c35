//! Tests for the 8 kHz Opus wrapper. Tone measurements use a Goertzel filter written here
//! (this module must not depend on `media::tone`).

use super::*;

const TONE_HZ: f64 = 1_000.0;
const AMPLITUDE: f64 = 8_000.0; // about -12 dBFS

/// Samples of a sine at `freq` Hz, 8 kHz sample rate, starting at sample index `start`.
fn sine(freq: f64, amplitude: f64, start: usize, len: usize) -> Vec<i16> {
    (start..start + len)
        .map(|n| {
            let t = n as f64 / f64::from(SAMPLE_RATE_HZ);
            (amplitude * (2.0 * std::f64::consts::PI * freq * t).sin()).round() as i16
        })
        .collect()
}

/// Fraction of the block's energy that sits at `freq` (1.0 for a pure tone with a whole number
/// of cycles in the block).
fn goertzel_fraction(x: &[i16], freq: f64) -> f64 {
    let n = x.len() as f64;
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(SAMPLE_RATE_HZ);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s0 = f64::from(v) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let energy: f64 = x.iter().map(|&v| f64::from(v).powi(2)).sum();
    if energy == 0.0 {
        return 0.0;
    }
    power / (n / 2.0 * energy)
}

fn rms(x: &[i16]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
}

fn db(ratio: f64) -> f64 {
    20.0 * ratio.log10()
}

/// SNR in dB of `got` against `reference`.
fn snr_db(reference: &[i16], got: &[i16]) -> f64 {
    let sig: f64 = reference.iter().map(|&v| f64::from(v).powi(2)).sum();
    let noise: f64 = reference
        .iter()
        .zip(got)
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
        .sum();
    10.0 * (sig / noise.max(1e-9)).log10()
}

/// Encode `pcm` (a whole number of 20 ms frames) into packets.
fn encode_all(enc: &mut OpusEncoder8k, pcm: &[i16]) -> Vec<Vec<u8>> {
    pcm.chunks(FRAME_SAMPLES_8K)
        .map(|frame| {
            let mut out = [0u8; MAX_PACKET_BYTES];
            let n = enc.encode(frame, &mut out).expect("encode");
            out[..n].to_vec()
        })
        .collect()
}

/// Decode every packet, concatenated.
fn decode_all(packets: &[Vec<u8>]) -> Vec<i16> {
    let mut dec = OpusDecoder8k::new().expect("decoder");
    let mut pcm = Vec::new();
    for p in packets {
        let mut out = [0i16; MAX_DECODE_SAMPLES];
        let n = dec.decode(p, &mut out).expect("decode");
        assert_eq!(n, FRAME_SAMPLES_8K);
        pcm.extend_from_slice(&out[..n]);
    }
    pcm
}

/// Deterministic xorshift64* generator for the garbage-payload loop.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn opus_constants_follow_rfc7587() {
    assert_eq!(FRAME_SAMPLES_8K, 160);
    assert_eq!(RTP_TIMESTAMP_INCREMENT_20MS, 960);
    assert_eq!(RTP_CLOCK_RATE_HZ, 48_000);
    assert_eq!(
        RTP_TIMESTAMP_INCREMENT_20MS as usize,
        FRAME_SAMPLES_8K * (RTP_CLOCK_RATE_HZ / SAMPLE_RATE_HZ) as usize
    );
    assert_eq!(MAX_DECODE_SAMPLES, 6 * FRAME_SAMPLES_8K); // 120 ms
}

#[test]
fn opus_links_libopus_1_6_1() {
    let v = libopus_version();
    assert!(v.contains("1.6.1"), "linked {v}");
}

#[test]
fn opus_encoder_config_is_validated() {
    let e = OpusEncoder8k::new(5_999, 5).unwrap_err();
    assert_eq!(e.code(), "opus.invalid_config");
    assert!(OpusEncoder8k::new(510_001, 5).is_err());
    assert!(OpusEncoder8k::new(24_000, 11).is_err());
    assert!(OpusEncoder8k::with_expected_loss(24_000, 5, 101).is_err());
    let mut enc = OpusEncoder8k::with_expected_loss(24_000, 10, 0).expect("encoder");
    assert_eq!(enc.bitrate_bps(), 24_000);
    assert_eq!(enc.complexity(), 10);
    assert_eq!(enc.expected_loss_percent(), 0);
    enc.set_bitrate(16_000).expect("bitrate");
    enc.set_expected_packet_loss(25).expect("loss");
    assert_eq!(enc.bitrate_bps(), 16_000);
    assert_eq!(enc.expected_loss_percent(), 25);
    assert!(enc.set_bitrate(1_000).is_err());
    assert!(enc.set_expected_packet_loss(200).is_err());
    assert_eq!(
        enc.bitrate_bps(),
        16_000,
        "a rejected change keeps the old value"
    );
    let enc = OpusEncoder8k::new(24_000, 5).expect("encoder");
    assert_eq!(enc.expected_loss_percent(), DEFAULT_EXPECTED_LOSS_PERCENT);
}

#[test]
fn opus_wrong_frame_sizes_are_errors() {
    let mut enc = OpusEncoder8k::new(24_000, 5).expect("encoder");
    let mut out = [0u8; MAX_PACKET_BYTES];
    for len in [0usize, 1, 80, 159, 161, 320, 480, 960] {
        let pcm = vec![0i16; len];
        let err = enc.encode(&pcm, &mut out).unwrap_err();
        assert_eq!(
            err,
            OpusError::WrongFrameSize {
                expected: 160,
                got: len
            }
        );
        assert_eq!(err.code(), "opus.wrong_frame_size");
    }
    // A fixed-size array works through unsizing.
    let frame = [0i16; FRAME_SAMPLES_8K];
    assert!(enc.encode(&frame, &mut out).expect("encode") > 0);
    // An empty output buffer is an error, not a panic.
    assert_eq!(
        enc.encode(&frame, &mut []).unwrap_err().code(),
        "opus.output_too_small"
    );
}

#[test]
fn opus_tone_round_trip_keeps_frequency_and_level() {
    let mut enc = OpusEncoder8k::new(24_000, 5).expect("encoder");
    let lookahead = enc.lookahead_samples().expect("lookahead");
    let frames = 50; // 1 s
    let input = sine(TONE_HZ, AMPLITUDE, 0, frames * FRAME_SAMPLES_8K);
    let packets = encode_all(&mut enc, &input);
    for p in &packets {
        assert!(!p.is_empty() && p.len() <= MAX_PACKET_BYTES);
        assert_eq!(packet_samples_8k(p).expect("toc"), 160);
    }
    let output = decode_all(&packets);
    assert_eq!(output.len(), input.len());

    // Skip 200 ms, far beyond the algorithmic delay, then judge 100 ms blocks.
    let skip = 10 * FRAME_SAMPLES_8K;
    let in_rms = rms(&input[skip..]);
    let out_rms = rms(&output[skip..]);
    let level_db = db(out_rms / in_rms);
    let mut worst_fraction = 1.0f64;
    for block in output[skip..].chunks_exact(800) {
        worst_fraction = worst_fraction.min(goertzel_fraction(block, TONE_HZ));
    }
    let bytes: usize = packets.iter().map(Vec::len).sum();
    println!(
        "lookahead {lookahead} samples; level {level_db:+.2} dB; worst 1 kHz energy fraction \
         {worst_fraction:.4}; {} bytes/packet avg",
        bytes / packets.len()
    );
    assert!(level_db.abs() < 3.0, "level changed by {level_db:.2} dB");
    assert!(
        worst_fraction > 0.9,
        "tone fraction {worst_fraction:.4} too low"
    );
}

#[test]
fn opus_tone_onset_delay_is_the_algorithmic_delay() {
    // 100 ms of silence, then the tone: the output's onset lags the input's by the codec delay.
    let mut enc = OpusEncoder8k::new(24_000, 5).expect("encoder");
    let lookahead = enc.lookahead_samples().expect("lookahead");
    let onset = 5 * FRAME_SAMPLES_8K;
    let mut input = vec![0i16; onset];
    input.extend(sine(TONE_HZ, AMPLITUDE, 0, 20 * FRAME_SAMPLES_8K));
    let output = decode_all(&encode_all(&mut enc, &input));
    let first_loud = output
        .iter()
        .position(|&v| f64::from(v).abs() > AMPLITUDE / 2.0)
        .expect("the tone comes through");
    let delay = first_loud.saturating_sub(onset);
    println!("lookahead {lookahead} samples, tone onset delay {delay} samples");
    assert!(first_loud >= onset, "output cannot precede input");
    // Measured: 53 samples (6.6 ms) with a 52-sample look-ahead; the decoder adds ~nothing
    // at 8 kHz. Allow slack for the onset threshold.
    assert!(
        (lookahead / 2..=lookahead + 24).contains(&delay),
        "delay {delay} samples, lookahead {lookahead}"
    );
}

#[test]
fn opus_silence_stays_silent() {
    let mut enc = OpusEncoder8k::new(24_000, 5).expect("encoder");
    let input = vec![0i16; 25 * FRAME_SAMPLES_8K];
    let packets = encode_all(&mut enc, &input);
    let output = decode_all(&packets);
    let peak = output
        .iter()
        .map(|&v| i32::from(v).abs())
        .max()
        .unwrap_or(0);
    let out_rms = rms(&output);
    let bytes: usize = packets.iter().map(Vec::len).sum();
    println!(
        "silence: rms {out_rms:.2}, peak {peak}, {} bytes/packet avg (DTX off, so a packet every 20 ms)",
        bytes / packets.len()
    );
    assert!(packets.iter().all(|p| !p.is_empty()));
    assert!(out_rms < 10.0, "rms {out_rms}");
    assert!(peak < 100, "peak {peak}");
}

#[test]
fn opus_empty_payload_is_refused_and_not_decoded() {
    let mut enc = OpusEncoder8k::new(24_000, 5).expect("encoder");
    let packets = encode_all(
        &mut enc,
        &sine(TONE_HZ, AMPLITUDE, 0, 10 * FRAME_SAMPLES_8K),
    );
    let mut dec = OpusDecoder8k::new().expect("decoder");
    let mut out = [7i16; MAX_DECODE_SAMPLES];
    for p in &packets[..5] {
        dec.decode(p, &mut out).expect("decode");
    }
    let mut probe_out = [7i16; MAX_DECODE_SAMPLES];
    let err = dec.decode(&[], &mut probe_out).unwrap_err();
    assert_eq!(err, OpusError::EmptyPayload);
    assert_eq!(err.code(), "opus.empty_payload");
    assert!(err.is_bad_input());
    assert!(probe_out.iter().all(|&v| v == 7), "nothing was written");
    assert_eq!(
        dec.decode_fec(&[], &mut probe_out),
        Err(OpusError::EmptyPayload)
    );
    assert_eq!(packet_samples_8k(&[]), Err(OpusError::EmptyPayload));

    // The decoder was not advanced: it decodes the rest exactly like one that never saw the probe.
    let mut clean = OpusDecoder8k::new().expect("decoder");
    for p in &packets[..5] {
        clean.decode(p, &mut out).expect("decode");
    }
    for p in &packets[5..] {
        let mut a = [0i16; MAX_DECODE_SAMPLES];
        let mut b = [0i16; MAX_DECODE_SAMPLES];
        assert_eq!(dec.decode(p, &mut a), Ok(160));
        assert_eq!(clean.decode(p, &mut b), Ok(160));
        assert_eq!(a, b);
    }
}

#[test]
fn opus_garbage_payloads_are_errors_without_panic() {
    let mut rng = XorShift(0x5EED_0F0F_1234_5678);
    let mut dec = OpusDecoder8k::new().expect("decoder");
    let (mut ok, mut invalid, mut short) = (0u32, 0u32, 0u32);
    for i in 0..5_000 {
        let len = 1 + rng.below(300);
        let payload: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Mostly full-size buffers, sometimes short ones.
        let out_len = if i % 7 == 0 {
            rng.below(200)
        } else {
            MAX_DECODE_SAMPLES
        };
        let mut out = vec![0i16; out_len];
        match dec.decode(&payload, &mut out) {
            Ok(n) => {
                assert!(n <= out_len && n <= MAX_DECODE_SAMPLES);
                ok += 1;
            }
            Err(OpusError::InvalidPacket { len: l }) => {
                assert_eq!(l, len);
                invalid += 1;
            }
            Err(OpusError::OutputTooSmall { needed, got }) => {
                assert!(needed > got);
                short += 1;
            }
            Err(other) => panic!("unexpected error {other:?}"),
        }
        match dec.decode_fec(&payload, &mut out) {
            Ok(n) => assert_eq!(n, FRAME_SAMPLES_8K),
            Err(e) => assert!(
                matches!(
                    e,
                    OpusError::InvalidPacket { .. } | OpusError::OutputTooSmall { .. }
                ),
                "{e:?}"
            ),
        }
        if i % 10 == 0 {
            let _ = dec.conceal(&mut out);
        }
    }
    println!("garbage: {ok} decoded as noise, {invalid} invalid, {short} output too small");
    assert!(invalid > 0, "the loop should hit invalid packets");
    // After all that, a fresh stream still decodes.
    dec.reset().expect("reset");
    let mut enc = OpusEncoder8k::new(24_000, 5).expect("encoder");
    let mut pkt = [0u8; MAX_PACKET_BYTES];
    let n = enc
        .encode(&sine(TONE_HZ, AMPLITUDE, 0, FRAME_SAMPLES_8K), &mut pkt)
        .expect("encode");
    let mut out = [0i16; MAX_DECODE_SAMPLES];
    assert_eq!(dec.decode(&pkt[..n], &mut out), Ok(160));
}

#[test]
fn opus_malformed_headers_are_invalid_packets() {
    let mut dec = OpusDecoder8k::new().expect("decoder");
    let mut out = [0i16; MAX_DECODE_SAMPLES];
    // Code 3 (arbitrary frame count) with no frame-count byte.
    let e = dec.decode(&[0x03], &mut out).unwrap_err();
    assert_eq!(e, OpusError::InvalidPacket { len: 1 });
    assert_eq!(e.code(), "opus.invalid_packet");
    assert!(e.is_bad_input());
    // Code 3 with 63 frames of 20 ms = 1.26 s > 120 ms.
    assert!(matches!(
        dec.decode(&[0x0B, 0x3F, 0, 0], &mut out),
        Err(OpusError::InvalidPacket { .. })
    ));
    // Code 2 (two frames of different sizes) whose first length exceeds the packet.
    assert!(matches!(
        dec.decode(&[0x0A, 0xFB, 0x01], &mut out),
        Err(OpusError::InvalidPacket { .. })
    ));
    // Longer than any datagram.
    let big = vec![0u8; MAX_PAYLOAD_BYTES + 1];
    let e = dec.decode(&big, &mut out).unwrap_err();
    assert_eq!(e.code(), "opus.payload_too_large");
    assert!(dec.decode_fec(&big, &mut out).is_err());
}

#[test]
fn opus_120ms_packet_fits_max_decode_buffer() {
    let mut enc = OpusEncoder8k::new(24_000, 5).expect("encoder");
    let packets = encode_all(&mut enc, &sine(TONE_HZ, AMPLITUDE, 0, 6 * FRAME_SAMPLES_8K));
    let parts: Vec<&[u8]> = packets.iter().map(Vec::as_slice).collect();
    let mut rp = opus::Repacketizer::new().expect("repacketizer");
    let mut joined = [0u8; 8 * MAX_PACKET_BYTES];
    let n = rp.combine(&parts, &mut joined).expect("combine");
    let joined = &joined[..n];
    assert_eq!(packet_samples_8k(joined), Ok(MAX_DECODE_SAMPLES));

    let mut dec = OpusDecoder8k::new().expect("decoder");
    let mut short = [0i16; MAX_DECODE_SAMPLES - 1];
    assert_eq!(
        dec.decode(joined, &mut short),
        Err(OpusError::OutputTooSmall {
            needed: 960,
            got: 959
        })
    );
    // A buffer longer than needed is fine; only MAX_DECODE_SAMPLES of it is used.
    let mut out = vec![0i16; 4 * MAX_DECODE_SAMPLES];
    assert_eq!(dec.decode(joined, &mut out), Ok(MAX_DECODE_SAMPLES));
    // And a 20 ms packet into a short buffer says how much it needs.
    let mut tiny = [0i16; 100];
    assert_eq!(
        dec.decode(&packets[0], &mut tiny),
        Err(OpusError::OutputTooSmall {
            needed: 160,
            got: 100
        })
    );
}

#[test]
fn opus_plc_produces_one_frame() {
    let mut enc = OpusEncoder8k::new(24_000, 5).expect("encoder");
    let packets = encode_all(
        &mut enc,
        &sine(TONE_HZ, AMPLITUDE, 0, 20 * FRAME_SAMPLES_8K),
    );
    let mut dec = OpusDecoder8k::new().expect("decoder");
    let mut out = [0i16; MAX_DECODE_SAMPLES];
    for p in &packets[..19] {
        dec.decode(p, &mut out).expect("decode");
    }
    let mut plc = [0i16; MAX_DECODE_SAMPLES];
    assert_eq!(dec.conceal(&mut plc), Ok(FRAME_SAMPLES_8K));
    assert!(
        plc[FRAME_SAMPLES_8K..].iter().all(|&v| v == 0),
        "only one 20 ms frame is written"
    );
    let level = db(rms(&plc[..FRAME_SAMPLES_8K]) / (AMPLITUDE / 2f64.sqrt()));
    let fraction = goertzel_fraction(&plc[..FRAME_SAMPLES_8K], TONE_HZ);
    println!("PLC after a tone: level {level:+.2} dB, 1 kHz fraction {fraction:.3}");
    assert!(
        level > -20.0,
        "concealment continues the tone ({level:.1} dB)"
    );
    // Short buffer is an error.
    let mut short = [0i16; 159];
    assert_eq!(
        dec.conceal(&mut short),
        Err(OpusError::OutputTooSmall {
            needed: 160,
            got: 159
        })
    );
    // The stream goes on after concealment.
    assert_eq!(dec.decode(&packets[19], &mut out), Ok(160));
}

/// Loses every 10th frame of a signal and repairs it once with PLC and once with FEC from the
/// next packet; returns (mean PLC SNR, mean FEC SNR) in dB against a decoder that lost nothing.
fn plc_vs_fec(input: &[i16], bitrate: u32, loss_percent: u8) -> (f64, f64) {
    let mut enc = OpusEncoder8k::with_expected_loss(bitrate, 5, loss_percent).expect("encoder");
    let packets = encode_all(&mut enc, input);
    let reference = decode_all(&packets);
    let mut plc_dec = OpusDecoder8k::new().expect("decoder");
    let mut fec_dec = OpusDecoder8k::new().expect("decoder");
    let (mut plc_sum, mut fec_sum, mut count) = (0.0, 0.0, 0u32);
    let mut out = [0i16; MAX_DECODE_SAMPLES];
    for (k, p) in packets.iter().enumerate() {
        let lost = k >= 10 && k % 10 == 5 && k + 1 < packets.len();
        if lost {
            let want = &reference[k * FRAME_SAMPLES_8K..(k + 1) * FRAME_SAMPLES_8K];
            let mut plc = [0i16; FRAME_SAMPLES_8K];
            let mut fec = [0i16; FRAME_SAMPLES_8K];
            assert_eq!(plc_dec.conceal(&mut plc), Ok(FRAME_SAMPLES_8K));
            assert_eq!(
                fec_dec.decode_fec(&packets[k + 1], &mut fec),
                Ok(FRAME_SAMPLES_8K)
            );
            plc_sum += snr_db(want, &plc);
            fec_sum += snr_db(want, &fec);
            count += 1;
        } else {
            assert_eq!(plc_dec.decode(p, &mut out), Ok(FRAME_SAMPLES_8K));
            assert_eq!(fec_dec.decode(p, &mut out), Ok(FRAME_SAMPLES_8K));
        }
    }
    (plc_sum / f64::from(count), fec_sum / f64::from(count))
}

#[test]
fn opus_fec_recovers_lost_frame_better_than_plc() {
    // Steady 1 kHz tone.
    let tone = sine(TONE_HZ, AMPLITUDE, 0, 100 * FRAME_SAMPLES_8K);
    let (plc_tone, fec_tone) = plc_vs_fec(&tone, 24_000, 20);
    // A tone whose pitch changes every 20 ms (300..1500 Hz), which extrapolation cannot guess.
    let mut stepped = Vec::new();
    for k in 0..100 {
        let f = 300.0 + 120.0 * f64::from((k * 7) % 11);
        stepped.extend(sine(
            f,
            AMPLITUDE,
            k as usize * FRAME_SAMPLES_8K,
            FRAME_SAMPLES_8K,
        ));
    }
    let (plc_step, fec_step) = plc_vs_fec(&stepped, 24_000, 20);
    println!(
        "SNR vs loss-free decode: 1 kHz tone PLC {plc_tone:.1} dB, FEC {fec_tone:.1} dB; \
         stepped tone PLC {plc_step:.1} dB, FEC {fec_step:.1} dB"
    );
    assert!(
        fec_tone > plc_tone,
        "FEC {fec_tone:.1} dB vs PLC {plc_tone:.1} dB"
    );
    assert!(
        fec_step > plc_step,
        "FEC {fec_step:.1} dB vs PLC {plc_step:.1} dB"
    );
}

#[test]
fn opus_fec_without_loss_expectation_falls_back_to_concealment() {
    // With 0 % expected loss the encoder sends no FEC; decode_fec still yields a frame.
    let tone = sine(TONE_HZ, AMPLITUDE, 0, 30 * FRAME_SAMPLES_8K);
    let (plc, fec) = plc_vs_fec(&tone, 24_000, 0);
    println!("no FEC in stream: PLC {plc:.1} dB, decode_fec {fec:.1} dB");
    assert!((plc - fec).abs() < 0.5, "decode_fec fell back to PLC");
}

#[test]
fn opus_error_codes_are_stable() {
    let cases = [
        (
            OpusError::WrongFrameSize {
                expected: 160,
                got: 1,
            },
            "opus.wrong_frame_size",
        ),
        (OpusError::EmptyPayload, "opus.empty_payload"),
        (
            OpusError::PayloadTooLarge { len: 1, max: 0 },
            "opus.payload_too_large",
        ),
        (OpusError::InvalidPacket { len: 1 }, "opus.invalid_packet"),
        (
            OpusError::OutputTooSmall { needed: 2, got: 1 },
            "opus.output_too_small",
        ),
        (
            OpusError::InvalidConfig {
                what: "bitrate",
                value: 1,
            },
            "opus.invalid_config",
        ),
        (
            OpusError::Codec {
                function: "f",
                reason: "r",
            },
            "opus.codec_failure",
        ),
    ];
    for (err, code) in cases {
        assert_eq!(err.code(), code);
        assert!(!err.to_string().is_empty());
    }
}

/// Per-frame cost. Run in release only:
/// `cargo test -p media --release opus_codec::tests::timing -- --ignored --nocapture`.
#[test]
#[ignore = "timing; run in release by hand"]
fn opus_timing_release_check() {
    let frames = 500; // 10 s
    let input = sine(TONE_HZ, AMPLITUDE, 0, frames * FRAME_SAMPLES_8K);
    let mut best_enc = f64::MAX;
    let mut best_dec = f64::MAX;
    for _ in 0..5 {
        let mut enc = OpusEncoder8k::new(24_000, 5).expect("encoder");
        let t = std::time::Instant::now();
        let packets = encode_all(&mut enc, &input);
        best_enc = best_enc.min(t.elapsed().as_secs_f64() * 1e6 / frames as f64);
        let t = std::time::Instant::now();
        let out = decode_all(&packets);
        best_dec = best_dec.min(t.elapsed().as_secs_f64() * 1e6 / frames as f64);
        assert_eq!(out.len(), input.len());
    }
    println!(
        "{}: encode {best_enc:.1} us/frame, decode {best_dec:.1} us/frame (best of 5 × {frames})",
        libopus_version()
    );
}
