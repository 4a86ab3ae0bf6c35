//! The mel filter bank whisper.cpp reads from the model file. CTranslate2 models do not carry
//! it (faster-whisper computes it at run time), so the importer computes the same bank OpenAI's
//! Whisper ships: Slaney mel scale, Slaney area normalisation, 16 kHz, 400-point FFT.

/// Whisper's audio front end.
pub const SAMPLE_RATE_HZ: f64 = 16_000.0;
pub const N_FFT: usize = 400;
/// FFT bins the filters cover: 0 Hz up to Nyquist.
pub const N_BINS: usize = N_FFT / 2 + 1;

/// Slaney's scale is linear below 1 kHz (200/3 Hz per mel) and logarithmic above.
const F_SP_HZ: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP_HZ;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ {
        MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / log_step()
    } else {
        hz / F_SP_HZ
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HZ * (log_step() * (mel - MIN_LOG_MEL)).exp()
    } else {
        F_SP_HZ * mel
    }
}

/// `n_mels` triangular filters over [`N_BINS`] bins, row-major (`n_mels` rows).
pub fn filters(n_mels: usize) -> Vec<f32> {
    let nyquist_hz = SAMPLE_RATE_HZ / 2.0;
    let bin_hz: Vec<f64> = (0..N_BINS)
        .map(|k| nyquist_hz * k as f64 / (N_BINS - 1) as f64)
        .collect();
    // n_mels + 2 band edges, evenly spaced in mel from 0 Hz to Nyquist.
    let max_mel = hz_to_mel(nyquist_hz);
    let edges_hz: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(max_mel * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut out = vec![0f32; n_mels * N_BINS];
    for (m, row) in out.chunks_exact_mut(N_BINS).enumerate() {
        let (lo, centre, hi) = (edges_hz[m], edges_hz[m + 1], edges_hz[m + 2]);
        // Area normalisation: every filter has the same total weight per Hz of its width.
        let norm = 2.0 / (hi - lo);
        for (w, &f) in row.iter_mut().zip(&bin_hz) {
            let rising = (f - lo) / (centre - lo);
            let falling = (hi - f) / (hi - centre);
            *w = (rising.min(falling).max(0.0) * norm) as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from OpenAI Whisper's `assets/mel_filters.npz` (`mel_80`, float32).
    #[test]
    fn matches_openai_reference_values() {
        let f = filters(80);
        assert_eq!(f.len(), 80 * 201);
        let at = |row: usize, bin: usize| f[row * N_BINS + bin];
        let reference = [
            (0, 1, 0.024_862_594_902_515_41),
            (1, 1, 0.001_990_821_911_022_067),
            (1, 2, 0.022_871_771_827_340_126),
            (20, 19, 0.010_972_199_961_543_083),
            (20, 20, 0.013_890_394_009_649_754),
            (40, 42, 0.005_411_104_764_789_343),
            (40, 44, 0.006_518_189_795_315_266),
            (60, 90, 0.001_434_534_322_470_426_6),
            (60, 96, 0.000_797_849_148_511_886_6),
            (79, 186, 0.000_366_741_674_952_209),
            (79, 199, 0.000_448_759_004_939_347_5),
        ];
        for (row, bin, want) in reference {
            let got = f64::from(at(row, bin));
            assert!((got - want).abs() < 1e-8, "[{row}][{bin}] {got} vs {want}");
        }
        // Zeros outside each triangle.
        assert_eq!(at(0, 0), 0.0);
        assert_eq!(at(0, 2), 0.0);
        assert_eq!(at(79, 200), 0.0);
        // Row sums (the reference's, to float32 precision).
        let row_sum = |r: usize| {
            f[r * N_BINS..(r + 1) * N_BINS]
                .iter()
                .map(|&v| f64::from(v))
                .sum::<f64>()
        };
        assert!((row_sum(40) - 0.026_664_861_012_250_185).abs() < 1e-7);
        assert!((row_sum(79) - 0.024_925_339_792_389_423).abs() < 1e-7);
    }

    #[test]
    fn large_v3_size_bank_is_well_formed() {
        let f = filters(128);
        assert_eq!(f.len(), 128 * N_BINS);
        assert!(f.iter().all(|v| v.is_finite() && *v >= 0.0));
        assert!(f
            .chunks_exact(N_BINS)
            .all(|row| row.iter().any(|&v| v > 0.0)));
    }
}
