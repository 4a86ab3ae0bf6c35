//! Tone detection with the Goertzel algorithm: "did a 1 kHz tone cross the bridge?" checks in
//! tests, and in-band DTMF recognition (ITU-T Q.23 frequencies, Q.24 acceptance simplified).
//!
//! The Goertzel filter evaluates one DFT term at an arbitrary frequency (not just a bin centre)
//! in O(N) with one multiply per sample: s[n] = x[n] + 2cos(ω)·s[n-1] − s[n-2], and
//! |X(ω)|² = s1² + s2² − 2cos(ω)·s1·s2 after the block. It is insensitive to phase, so delay
//! and codec phase shifts through the bridge do not matter.

/// Single-frequency Goertzel filter over blocks of `block_len` samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Goertzel {
    coeff: f32,
    freq_hz: f32,
    block_len: usize,
}

impl Goertzel {
    /// Filter for `freq_hz` at `sample_rate_hz`; [`Goertzel::power`] looks at the first
    /// `block_len` samples of a block (frequency resolution ≈ sample_rate / block_len).
    pub fn new(freq_hz: f32, sample_rate_hz: u32, block_len: usize) -> Self {
        let omega = 2.0 * std::f32::consts::PI * freq_hz / sample_rate_hz.max(1) as f32;
        Self {
            coeff: 2.0 * omega.cos(),
            freq_hz,
            block_len: block_len.max(1),
        }
    }

    pub fn freq_hz(&self) -> f32 {
        self.freq_hz
    }

    pub fn block_len(&self) -> usize {
        self.block_len
    }

    /// |X(f)|² over the first `block_len` samples (fewer if the block is shorter).
    pub fn power(&self, block: &[i16]) -> f32 {
        let (mut s1, mut s2) = (0.0f32, 0.0f32);
        for &x in block.iter().take(self.block_len) {
            let s0 = f32::from(x) + self.coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        (s1 * s1 + s2 * s2 - self.coeff * s1 * s2).max(0.0)
    }
}

/// Σx² and the sample count over the first `len` samples.
fn energy(block: &[i16], len: usize) -> (f32, usize) {
    let n = block.len().min(len);
    let e = block
        .iter()
        .take(n)
        .map(|&x| f32::from(x) * f32::from(x))
        .sum();
    (e, n)
}

/// Share of the block's energy carried by a tone: for a pure sine at the filter frequency,
/// |X|² ≈ (A·N/2)² and Σx² ≈ A²·N/2, so 2|X|²/(N·Σx²) ≈ 1; for noise it is ≈ 2/N.
fn relative(power: f32, energy: f32, n: usize) -> f32 {
    if energy <= 0.0 || n == 0 {
        0.0
    } else {
        (2.0 * power / (n as f32 * energy)).min(1.0)
    }
}

/// Amplitude of a sine that would give this Goertzel power over `n` samples.
fn amplitude(power: f32, n: usize) -> f32 {
    if n == 0 {
        0.0
    } else {
        2.0 * power.sqrt() / n as f32
    }
}

/// Result of one [`ToneDetector::analyze`] call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToneReport {
    /// Share of block energy at the tone frequency, 0..=1.
    pub relative: f32,
    /// Estimated amplitude of the tone (16-bit linear scale).
    pub amplitude: f32,
    /// RMS of the whole block.
    pub rms: f32,
    /// `relative >= threshold` and `rms >= min_rms`.
    pub present: bool,
}

/// Does a tone of one frequency dominate a block?
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToneDetector {
    goertzel: Goertzel,
    threshold: f32,
    min_rms: f32,
}

impl ToneDetector {
    /// Defaults: threshold 0.5 (the tone carries at least half the block's energy) and a floor
    /// of RMS 100 (about -47 dBm0) so silence and codec idle noise never count.
    pub fn new(freq_hz: f32, sample_rate_hz: u32, block_len: usize) -> Self {
        Self {
            goertzel: Goertzel::new(freq_hz, sample_rate_hz, block_len),
            threshold: 0.5,
            min_rms: 100.0,
        }
    }

    /// Share of energy required (0..=1).
    pub fn with_threshold(mut self, threshold: f32) -> Self {
        self.threshold = threshold.clamp(0.0, 1.0);
        self
    }

    /// Minimum block RMS.
    pub fn with_min_rms(mut self, min_rms: f32) -> Self {
        self.min_rms = min_rms.max(0.0);
        self
    }

    pub fn analyze(&self, block: &[i16]) -> ToneReport {
        let (e, n) = energy(block, self.goertzel.block_len);
        let p = self.goertzel.power(block);
        let rel = relative(p, e, n);
        let rms = if n == 0 { 0.0 } else { (e / n as f32).sqrt() };
        ToneReport {
            relative: rel,
            amplitude: amplitude(p, n),
            rms,
            present: n > 0 && rms >= self.min_rms && rel >= self.threshold,
        }
    }

    /// Whether the tone dominates the block.
    pub fn detect(&self, block: &[i16]) -> bool {
        self.analyze(block).present
    }
}

/// DTMF row (low group) frequencies, ITU-T Q.23.
pub const DTMF_ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
/// DTMF column (high group) frequencies, ITU-T Q.23.
pub const DTMF_COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// The (row, column) frequencies of a DTMF digit (`0`–`9`, `*`, `#`, `A`–`D`).
pub fn dtmf_frequencies(digit: char) -> Option<(f32, f32)> {
    let d = digit.to_ascii_uppercase();
    for (r, row) in KEYPAD.iter().enumerate() {
        for (c, &k) in row.iter().enumerate() {
            if k == d {
                return Some((*DTMF_ROWS.get(r)?, *DTMF_COLS.get(c)?));
            }
        }
    }
    None
}

/// Write `amplitude·sin(2π·f·(n + start)/rate)` into `out` (test signals; `start` lets
/// consecutive blocks continue the phase).
pub fn generate_sine(
    freq_hz: f32,
    amplitude: f32,
    sample_rate_hz: u32,
    start: u64,
    out: &mut [i16],
) {
    let w = 2.0 * std::f64::consts::PI * f64::from(freq_hz) / f64::from(sample_rate_hz.max(1));
    for (i, o) in out.iter_mut().enumerate() {
        let v = f64::from(amplitude) * (w * (start + i as u64) as f64).sin();
        *o = v.round().clamp(-32768.0, 32767.0) as i16;
    }
}

/// Write a DTMF digit (both tones at `amplitude` each) into `out`; false for a non-digit.
pub fn generate_dtmf(
    digit: char,
    amplitude: f32,
    sample_rate_hz: u32,
    start: u64,
    out: &mut [i16],
) -> bool {
    let Some((r, c)) = dtmf_frequencies(digit) else {
        return false;
    };
    let rate = f64::from(sample_rate_hz.max(1));
    let (wr, wc) = (
        2.0 * std::f64::consts::PI * f64::from(r) / rate,
        2.0 * std::f64::consts::PI * f64::from(c) / rate,
    );
    for (i, o) in out.iter_mut().enumerate() {
        let t = (start + i as u64) as f64;
        let v = f64::from(amplitude) * ((wr * t).sin() + (wc * t).sin());
        *o = v.round().clamp(-32768.0, 32767.0) as i16;
    }
    true
}

/// In-band DTMF recogniser over one block (the classic 205 samples at 8 kHz, ~25.6 ms).
///
/// Acceptance, a simplification of ITU-T Q.24 (documented limits, not a certified receiver):
/// - each of the two tones at least `min_amplitude` (default 400 ≈ -35 dBm0 per tone);
/// - the strongest row and column beat every other tone of their group by 6 dB;
/// - twist: the row tone may be up to 8 dB stronger than the column tone ("normal twist")
///   and the column up to 4 dB stronger than the row ("reverse twist");
/// - the two tones carry at least 60 % of the block energy (rejects speech and noise).
///
/// Frequency tolerance is whatever a `block_len` window gives (±1.5 % passes at 205 samples);
/// the Q.24 ±3.5 % rejection edge and the second-harmonic speech check are not enforced.
/// Digit timing (40 ms minimum, debouncing across blocks) is left to the caller.
#[derive(Debug, Clone)]
pub struct DtmfDetector {
    rows: [Goertzel; 4],
    cols: [Goertzel; 4],
    block_len: usize,
    min_amplitude: f32,
    min_share: f32,
}

impl DtmfDetector {
    /// 10^(6/10): a group's winner must beat the runner-up by 6 dB.
    const GROUP_MARGIN: f32 = 3.981;
    /// 10^(8/10) and 10^(4/10).
    const NORMAL_TWIST: f32 = 6.310;
    const REVERSE_TWIST: f32 = 2.512;

    pub fn new(sample_rate_hz: u32, block_len: usize) -> Self {
        let g = |f: f32| Goertzel::new(f, sample_rate_hz, block_len);
        Self {
            rows: DTMF_ROWS.map(g),
            cols: DTMF_COLS.map(g),
            block_len: block_len.max(1),
            min_amplitude: 400.0,
            min_share: 0.6,
        }
    }

    /// Minimum amplitude of each tone (16-bit linear).
    pub fn with_min_amplitude(mut self, a: f32) -> Self {
        self.min_amplitude = a.max(0.0);
        self
    }

    /// The digit present in `block` (its first `block_len` samples), if any.
    pub fn detect(&self, block: &[i16]) -> Option<char> {
        let (e, n) = energy(block, self.block_len);
        // Under ~12 ms (at 8 kHz) the row frequencies cannot be told apart.
        if n < 100 || e <= 0.0 {
            return None;
        }
        let rp = self.rows.map(|g| g.power(block));
        let cp = self.cols.map(|g| g.power(block));
        let (ri, r) = strongest(&rp)?;
        let (ci, c) = strongest(&cp)?;
        if amplitude(r, n) < self.min_amplitude || amplitude(c, n) < self.min_amplitude {
            return None;
        }
        let dominant = |p: &[f32; 4], best: usize, v: f32| {
            p.iter()
                .enumerate()
                .all(|(i, &x)| i == best || x * Self::GROUP_MARGIN <= v)
        };
        if !dominant(&rp, ri, r) || !dominant(&cp, ci, c) {
            return None;
        }
        if r > c * Self::NORMAL_TWIST || c > r * Self::REVERSE_TWIST {
            return None;
        }
        if relative(r, e, n) + relative(c, e, n) < self.min_share {
            return None;
        }
        KEYPAD.get(ri)?.get(ci).copied()
    }
}

fn strongest(p: &[f32; 4]) -> Option<(usize, f32)> {
    p.iter()
        .copied()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// [`DtmfDetector`] at 8 kHz over the whole block (pass 205 samples for the classic window).
pub fn dtmf_digit(block: &[i16]) -> Option<char> {
    DtmfDetector::new(8000, block.len()).detect(block)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::g711;

    const DIGITS: &str = "0123456789*#ABCD";

    /// Seeded uniform noise in [-amp, amp].
    fn add_noise(block: &mut [i16], amp: i32, seed: u64) {
        let mut s = seed | 1;
        for x in block.iter_mut() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let n = (s % (2 * amp as u64 + 1)) as i32 - amp;
            *x = (i32::from(*x) + n).clamp(-32768, 32767) as i16;
        }
    }

    fn ulaw_round_trip(block: &mut [i16]) {
        let mut enc = vec![0u8; block.len()];
        g711::encode_ulaw_slice(block, &mut enc).unwrap();
        g711::decode_ulaw_slice(&enc, block).unwrap();
    }

    fn alaw_round_trip(block: &mut [i16]) {
        let mut enc = vec![0u8; block.len()];
        g711::encode_alaw_slice(block, &mut enc).unwrap();
        g711::decode_alaw_slice(&enc, block).unwrap();
    }

    #[test]
    fn goertzel_power_of_pure_sine() {
        let mut b = [0i16; 160];
        generate_sine(1000.0, 10_000.0, 8000, 0, &mut b);
        let g = Goertzel::new(1000.0, 8000, 160);
        let amp = amplitude(g.power(&b), 160);
        assert!((amp - 10_000.0).abs() < 50.0, "amp {amp}");
        // Far from the tone, almost nothing.
        let off = Goertzel::new(2000.0, 8000, 160);
        assert!(amplitude(off.power(&b), 160) < 50.0);
    }

    #[test]
    fn tone_detector_one_khz_and_440() {
        let k1 = ToneDetector::new(1000.0, 8000, 160);
        let a4 = ToneDetector::new(440.0, 8000, 160);
        let mut b = [0i16; 160];
        generate_sine(1000.0, 8000.0, 8000, 37, &mut b);
        let r = k1.analyze(&b);
        assert!(r.present && r.relative > 0.95, "{r:?}");
        assert!(!a4.detect(&b));
        generate_sine(440.0, 8000.0, 8000, 0, &mut b);
        assert!(a4.detect(&b));
        assert!(!k1.detect(&b));
    }

    #[test]
    fn tone_survives_g711_and_noise() {
        for &(f, other) in &[(1000.0f32, 440.0f32), (440.0, 1000.0)] {
            let det = ToneDetector::new(f, 8000, 160);
            let neg = ToneDetector::new(other, 8000, 160);
            for seed in 1..20u64 {
                let mut b = [0i16; 160];
                generate_sine(f, 3000.0, 8000, seed * 160, &mut b);
                // Uniform noise of ±2000 (RMS ≈ 1155) against a sine of RMS ≈ 2121: SNR ≈ 5 dB.
                add_noise(&mut b, 2000, seed);
                if seed % 2 == 0 {
                    ulaw_round_trip(&mut b)
                } else {
                    alaw_round_trip(&mut b)
                }
                let r = det.analyze(&b);
                assert!(r.present, "f={f} seed={seed} {r:?}");
                assert!(!neg.detect(&b));
            }
        }
    }

    #[test]
    fn silence_noise_and_mixtures_are_not_tones() {
        let det = ToneDetector::new(1000.0, 8000, 160);
        assert!(!det.detect(&[0i16; 160]));
        assert!(!det.detect(&[]));
        // µ-law idle channel: 0xFF decodes to 0; A-law idle to ±8 (below min RMS).
        let mut idle = [g711::decode_alaw(g711::ALAW_SILENCE); 160];
        assert!(!det.detect(&idle));
        add_noise(&mut idle, 5000, 99);
        assert!(!det.detect(&idle), "{:?}", det.analyze(&idle));
        // Two equal tones: 1 kHz carries only half the energy.
        let mut a = [0i16; 160];
        let mut b = [0i16; 160];
        generate_sine(1000.0, 5000.0, 8000, 0, &mut a);
        generate_sine(1800.0, 5000.0, 8000, 0, &mut b);
        let mix: Vec<i16> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        assert!(!det.with_threshold(0.6).detect(&mix));
        // Quiet tone below the RMS floor.
        generate_sine(1000.0, 100.0, 8000, 0, &mut a);
        assert!(!det.detect(&a));
        assert!(det.with_min_rms(10.0).detect(&a));
    }

    #[test]
    fn all_sixteen_dtmf_digits() {
        for d in DIGITS.chars() {
            let mut b = [0i16; 205];
            assert!(generate_dtmf(d, 6000.0, 8000, 0, &mut b));
            assert_eq!(dtmf_digit(&b), Some(d), "clean {d}");
            ulaw_round_trip(&mut b);
            assert_eq!(dtmf_digit(&b), Some(d), "ulaw {d}");
            let mut b2 = [0i16; 205];
            generate_dtmf(d, 2000.0, 8000, 1234, &mut b2);
            alaw_round_trip(&mut b2);
            assert_eq!(dtmf_digit(&b2), Some(d), "alaw {d}");
        }
        assert!(!generate_dtmf('x', 1.0, 8000, 0, &mut [0i16; 4]));
        assert_eq!(dtmf_frequencies('5'), Some((770.0, 1336.0)));
        assert_eq!(dtmf_frequencies('d'), Some((941.0, 1633.0)));
    }

    #[test]
    fn dtmf_with_noise() {
        for (i, d) in DIGITS.chars().enumerate() {
            let mut b = [0i16; 205];
            generate_dtmf(d, 4000.0, 8000, 0, &mut b);
            // Noise RMS ≈ 866 vs two tones of RMS ≈ 4000 total: SNR ≈ 13 dB.
            add_noise(&mut b, 1500, i as u64 + 7);
            ulaw_round_trip(&mut b);
            assert_eq!(dtmf_digit(&b), Some(d), "noisy {d}");
        }
    }

    #[test]
    fn dtmf_rejections() {
        let det = DtmfDetector::new(8000, 205);
        assert_eq!(det.detect(&[0i16; 205]), None);
        assert_eq!(det.detect(&[0i16; 50]), None);
        // One tone alone.
        let mut b = [0i16; 205];
        generate_sine(770.0, 8000.0, 8000, 0, &mut b);
        assert_eq!(det.detect(&b), None);
        // Too quiet.
        generate_dtmf('5', 200.0, 8000, 0, &mut b);
        assert_eq!(det.detect(&b), None);
        assert_eq!(det.clone().with_min_amplitude(100.0).detect(&b), Some('5'));
        // Twist: row 10 dB above column (normal twist limit 8 dB) and column 6 dB above row
        // (reverse limit 4 dB) are rejected; 6 dB normal and 3 dB reverse pass.
        let two = |ra: f32, ca: f32| {
            let mut r = [0i16; 205];
            let mut c = [0i16; 205];
            generate_sine(852.0, ra, 8000, 0, &mut r);
            generate_sine(1477.0, ca, 8000, 0, &mut c);
            r.iter().zip(&c).map(|(x, y)| x + y).collect::<Vec<i16>>()
        };
        let db = |d: f32| 10f32.powf(d / 20.0);
        assert_eq!(det.detect(&two(4000.0 * db(10.0), 4000.0)), None);
        assert_eq!(det.detect(&two(4000.0 * db(6.0), 4000.0)), Some('9'));
        assert_eq!(det.detect(&two(4000.0, 4000.0 * db(6.0))), None);
        assert_eq!(det.detect(&two(4000.0, 4000.0 * db(3.0))), Some('9'));
        // Two row tones at once (not a valid digit).
        let mut r2 = [0i16; 205];
        generate_dtmf('1', 4000.0, 8000, 0, &mut b);
        generate_sine(852.0, 4000.0, 8000, 0, &mut r2);
        let bad: Vec<i16> = b.iter().zip(&r2).map(|(x, y)| x + y).collect();
        assert_eq!(det.detect(&bad), None);
        // Loud noise only.
        let mut n = [0i16; 205];
        add_noise(&mut n, 10_000, 3);
        assert_eq!(det.detect(&n), None);
        // A 1.5 % frequency error is still accepted.
        generate_sine(697.0 * 1.015, 5000.0, 8000, 0, &mut b);
        generate_sine(1209.0 * 0.985, 5000.0, 8000, 0, &mut r2);
        let off: Vec<i16> = b.iter().zip(&r2).map(|(x, y)| x + y).collect();
        assert_eq!(det.detect(&off), Some('1'));
    }
}
