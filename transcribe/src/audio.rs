//! Sample-rate conversion and sample-format helpers, pure functions over buffers.
//!
//! Phone audio is 8 kHz; whisper wants 16 kHz f32. The conversion is a plain band-limited
//! interpolation: no extra telephone band-pass (measured here: a 300–3400 Hz band-pass made
//! WER much worse).

/// The rate call audio arrives at.
pub const PHONE_RATE_HZ: u32 = 8_000;
/// The rate whisper's front end expects.
pub const WHISPER_RATE_HZ: u32 = 16_000;

/// Highest rate we accept; guards the filter table size against nonsense input.
const MAX_RATE_HZ: u32 = 768_000;
/// Zero crossings of the sinc on each side of the centre: about 80 dB stop band with the
/// Blackman window, at ~36 multiply-adds per output sample when doubling the rate.
const ZERO_CROSSINGS: f64 = 16.0;
/// Pass band edge as a fraction of the lower Nyquist frequency; the rest is transition band.
const ROLLOFF: f64 = 0.94;
/// Fractional positions are quantised to this many phases when the rate ratio has more
/// (e.g. 44.1 kHz -> 8 kHz has 80 exact phases, 22.05 kHz -> 8 kHz 160, coprime rates up to
/// the output rate). Error from quantising: under 1/2048 of a sample, far below 16-bit noise.
const MAX_PHASES: u64 = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResampleError {
    #[error("sample rate {rate_hz} Hz is outside 1..={MAX_RATE_HZ} Hz")]
    BadRate { rate_hz: u32 },
}

/// A windowed-sinc resampler between two fixed rates. Build once, use for many buffers.
#[derive(Debug, Clone)]
pub struct Resampler {
    from_hz: u64,
    to_hz: u64,
    /// Exact phase count when `to_hz / gcd` fits, else [`MAX_PHASES`] (quantised).
    phases: u64,
    exact: bool,
    /// Taps on each side of the interpolation point, in input samples.
    half_taps: usize,
    /// `phases` rows of `2 * half_taps` taps; row p is for fractional position p / phases.
    table: Vec<f32>,
}

impl Resampler {
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self, ResampleError> {
        for rate_hz in [from_hz, to_hz] {
            if rate_hz == 0 || rate_hz > MAX_RATE_HZ {
                return Err(ResampleError::BadRate { rate_hz });
            }
        }
        let (from, to) = (u64::from(from_hz), u64::from(to_hz));
        let g = gcd(from, to);
        let exact_phases = to / g;
        let (phases, exact) = if exact_phases <= MAX_PHASES {
            (exact_phases, true)
        } else {
            (MAX_PHASES, false)
        };
        // Cutoff in cycles per input sample: below the lower of the two Nyquist frequencies.
        let ratio = (to as f64 / from as f64).min(1.0);
        let cutoff = 0.5 * ratio * ROLLOFF;
        let half_width = ZERO_CROSSINGS / (2.0 * cutoff);
        let half_taps = half_width.ceil() as usize;
        let n_taps = 2 * half_taps;
        let mut table = vec![0f32; phases as usize * n_taps];
        for (p, row) in table.chunks_exact_mut(n_taps).enumerate() {
            let frac = p as f64 / phases as f64;
            let mut sum = 0.0;
            let mut taps = vec![0f64; n_taps];
            for (j, tap) in taps.iter_mut().enumerate() {
                // Tap j reads input index floor(t) - half_taps + 1 + j; x is its distance from t.
                let x = (j as f64 - half_taps as f64 + 1.0) - frac;
                *tap = kernel(x, cutoff, half_width);
                sum += *tap;
            }
            // Normalising each phase to unit DC gain keeps a constant input constant, whatever
            // the phase (the raw sums ripple by a fraction of a percent).
            for (out, tap) in row.iter_mut().zip(&taps) {
                *out = if sum.abs() > f64::EPSILON {
                    (tap / sum) as f32
                } else {
                    0.0
                };
            }
        }
        Ok(Resampler {
            from_hz: from,
            to_hz: to,
            phases,
            exact,
            half_taps,
            table,
        })
    }

    /// Output samples for `input_len` input samples: ceil(len * to / from).
    pub fn output_len(&self, input_len: usize) -> usize {
        let n = input_len as u64 * self.to_hz;
        n.div_ceil(self.from_hz) as usize
    }

    /// Resamples a whole buffer; the signal is taken as zero outside it.
    pub fn process(&self, input: &[f32]) -> Vec<f32> {
        let n_out = self.output_len(input.len());
        let n_taps = 2 * self.half_taps;
        let mut out = Vec::with_capacity(n_out);
        for n in 0..n_out as u64 {
            let pos = n * self.from_hz;
            let mut idx = pos / self.to_hz;
            let rem = pos % self.to_hz;
            let mut phase = if self.exact {
                rem * self.phases / self.to_hz
            } else {
                (rem * self.phases + self.to_hz / 2) / self.to_hz
            };
            if phase == self.phases {
                idx += 1;
                phase = 0;
            }
            let row = &self.table[phase as usize * n_taps..(phase as usize + 1) * n_taps];
            // Taps that fall before the start or past the end read zeros: skip them.
            let first = idx as i64 - self.half_taps as i64 + 1;
            let skip = (-first).max(0) as usize;
            let start = first.max(0) as usize;
            let acc: f32 = match input.get(start..) {
                Some(rest) if skip < n_taps => {
                    row[skip..].iter().zip(rest).map(|(w, x)| w * x).sum()
                }
                _ => 0.0,
            };
            out.push(acc);
        }
        out
    }
}

/// Blackman-windowed sinc low-pass with `cutoff` in cycles per sample, `x` in samples.
fn kernel(x: f64, cutoff: f64, half_width: f64) -> f64 {
    if x.abs() >= half_width {
        return 0.0;
    }
    let arg = 2.0 * cutoff * x;
    let sinc = if arg.abs() < 1e-12 {
        1.0
    } else {
        (std::f64::consts::PI * arg).sin() / (std::f64::consts::PI * arg)
    };
    // Blackman window over [-half_width, half_width].
    let w = 0.5 + 0.5 * x / half_width; // 0..1 across the window
    let two_pi_w = 2.0 * std::f64::consts::PI * w;
    let window = 0.42 - 0.5 * two_pi_w.cos() + 0.08 * (2.0 * two_pi_w).cos();
    2.0 * cutoff * sinc * window
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// 16-bit PCM to f32 in [-1, 1).
pub fn i16_to_f32(pcm: &[i16]) -> Vec<f32> {
    pcm.iter().map(|&s| f32::from(s) / 32768.0).collect()
}

/// f32 in [-1, 1] to 16-bit PCM, rounding and saturating (resampling can overshoot full scale).
pub fn f32_to_i16(samples: &[f32]) -> Vec<i16> {
    samples
        .iter()
        .map(|&s| (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect()
}

/// 8 kHz phone PCM to the 16 kHz f32 whisper reads.
pub fn phone_to_whisper(pcm_8k: &[i16]) -> Vec<f32> {
    match Resampler::new(PHONE_RATE_HZ, WHISPER_RATE_HZ) {
        Ok(r) => r.process(&i16_to_f32(pcm_8k)),
        // Both rates are constants inside the accepted range.
        Err(_) => unreachable!("8 kHz and 16 kHz are valid rates"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq_hz: f64, rate_hz: u32, n: usize, amp: f64) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (amp * (2.0 * std::f64::consts::PI * freq_hz * i as f64 / f64::from(rate_hz)).sin())
                    as f32
            })
            .collect()
    }

    fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn doubling_keeps_the_input_samples_and_interpolates_a_tone() {
        let input = sine(1000.0, 8000, 800, 0.5);
        let out = Resampler::new(8000, 16000).unwrap().process(&input);
        assert_eq!(out.len(), 1600);
        let expected = sine(1000.0, 16000, 1600, 0.5);
        // Away from the zero-padded edges the output is the same tone at the new rate.
        for i in 100..1500 {
            assert!((out[i] - expected[i]).abs() < 1e-3, "sample {i}");
        }
    }

    #[test]
    fn downsampling_removes_what_the_new_rate_cannot_carry() {
        // 6 kHz cannot exist at 8 kHz (Nyquist 4 kHz): it must be filtered, not aliased to 2 kHz.
        let input = sine(6000.0, 22050, 22050, 0.5);
        let out = Resampler::new(22050, 8000).unwrap().process(&input);
        assert_eq!(out.len(), 8000);
        assert!(rms(&out[200..7800]) < 1e-3, "rms {}", rms(&out[200..7800]));
        // ... while 1 kHz passes unchanged in level.
        let input = sine(1000.0, 22050, 22050, 0.5);
        let out = Resampler::new(22050, 8000).unwrap().process(&input);
        let level = rms(&out[200..7800]);
        assert!((level - 0.5 / 2f64.sqrt()).abs() < 2e-3, "rms {level}");
    }

    #[test]
    fn coprime_rates_use_quantised_phases_and_still_track_a_tone() {
        // 7919 is prime: 8000 exact phases, more than the table holds.
        let r = Resampler::new(7919, 8000).unwrap();
        assert!(!r.exact);
        let input = sine(500.0, 7919, 7919, 0.5);
        let out = r.process(&input);
        let expected = sine(500.0, 8000, out.len(), 0.5);
        for i in 200..out.len() - 200 {
            assert!((out[i] - expected[i]).abs() < 2e-3, "sample {i}");
        }
    }

    #[test]
    fn bad_rates_are_errors() {
        assert_eq!(
            Resampler::new(0, 8000).unwrap_err(),
            ResampleError::BadRate { rate_hz: 0 }
        );
        assert!(Resampler::new(8000, 10_000_000).is_err());
    }

    #[test]
    fn empty_input_gives_empty_output() {
        assert!(phone_to_whisper(&[]).is_empty());
    }

    #[test]
    fn i16_round_trip_saturates() {
        assert_eq!(f32_to_i16(&[1.5, -1.5, 0.0]), vec![32767, -32768, 0]);
        assert_eq!(
            f32_to_i16(&i16_to_f32(&[-32768, -1, 0, 1, 32767])),
            vec![-32768, -1, 0, 1, 32767]
        );
    }
}
