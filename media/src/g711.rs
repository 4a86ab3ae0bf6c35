//! ITU-T G.711 companding: µ-law (PCMU, RTP payload type 0) and A-law (PCMA, payload type 8),
//! RFC 3551 §4.5.14.
//!
//! Byte-exact with the ITU-T reference implementation, the G.191 Software Tool Library
//! (`g711.c`: `ulaw_compress`/`ulaw_expand`, `alaw_compress`/`alaw_expand`), which is also what
//! libwebrtc matches. Decoding is identical to Sun's classic `g711.c`; encoding differs from
//! Sun's `linear2ulaw` for some negative inputs that sit exactly on a decision boundary: G.191
//! takes the one's complement of negative samples (`~x`, so -1 is "negative zero") where Sun
//! negates. We follow the ITU reference because G.711 itself (§2, Tables 1a/2a) defines the
//! code in sign/magnitude on 13-bit (A-law) or 14-bit (µ-law) values: the low 3 (A-law) or
//! 2 (µ-law) bits of the 16-bit input are ignored.
//!
//! Decoding uses 256-entry tables computed at compile time; encoding is a few integer
//! operations (a leading-zero count finds the segment), no table and no branch per segment.

/// µ-law code for a zero sample (positive zero). Used as comfort silence.
pub const ULAW_SILENCE: u8 = 0xFF;
/// A-law code for a zero-ish sample (+8 after decoding; A-law has no zero level).
pub const ALAW_SILENCE: u8 = 0xD5;

/// Errors from the slice helpers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum G711Error {
    /// The caller's output buffer is shorter than the input.
    #[error("output buffer holds {got} samples, {needed} needed")]
    BufferTooSmall { needed: usize, got: usize },
}

impl G711Error {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            G711Error::BufferTooSmall { .. } => "media.g711.buffer_too_small",
        }
    }
}

/// Which G.711 law a stream uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum G711Law {
    /// µ-law, PCMU (North America, Japan).
    Ulaw,
    /// A-law, PCMA (Europe and most of the rest).
    Alaw,
}

impl G711Law {
    /// Static RTP payload type (RFC 3551 Table 4): PCMU 0, PCMA 8.
    pub const fn payload_type(self) -> u8 {
        match self {
            G711Law::Ulaw => 0,
            G711Law::Alaw => 8,
        }
    }

    /// The law for a static payload type, if it is one of the two.
    pub const fn from_payload_type(pt: u8) -> Option<Self> {
        match pt {
            0 => Some(G711Law::Ulaw),
            8 => Some(G711Law::Alaw),
            _ => None,
        }
    }

    /// SDP `a=rtpmap` encoding name (RFC 3551 §6).
    pub const fn encoding_name(self) -> &'static str {
        match self {
            G711Law::Ulaw => "PCMU",
            G711Law::Alaw => "PCMA",
        }
    }

    /// The code of (near) silence for this law.
    pub const fn silence(self) -> u8 {
        match self {
            G711Law::Ulaw => ULAW_SILENCE,
            G711Law::Alaw => ALAW_SILENCE,
        }
    }

    /// Encode one sample.
    #[inline]
    pub fn encode_sample(self, x: i16) -> u8 {
        match self {
            G711Law::Ulaw => encode_ulaw(x),
            G711Law::Alaw => encode_alaw(x),
        }
    }

    /// Decode one code.
    #[inline]
    pub fn decode_sample(self, code: u8) -> i16 {
        match self {
            G711Law::Ulaw => decode_ulaw(code),
            G711Law::Alaw => decode_alaw(code),
        }
    }

    /// Encode `input` into the first `input.len()` bytes of `out`; returns that count.
    pub fn encode(self, input: &[i16], out: &mut [u8]) -> Result<usize, G711Error> {
        match self {
            G711Law::Ulaw => encode_ulaw_slice(input, out),
            G711Law::Alaw => encode_alaw_slice(input, out),
        }
    }

    /// Decode `input` into the first `input.len()` samples of `out`; returns that count.
    pub fn decode(self, input: &[u8], out: &mut [i16]) -> Result<usize, G711Error> {
        match self {
            G711Law::Ulaw => decode_ulaw_slice(input, out),
            G711Law::Alaw => decode_alaw_slice(input, out),
        }
    }
}

/// G.191 `ulaw_expand` for one code: invert, 3-bit segment, 4-bit step, bias 33 (in 14-bit units).
const fn ulaw_expand(code: u8) -> i16 {
    let u = !code;
    let seg = ((u >> 4) & 0x07) as i32;
    let mant = (u & 0x0F) as i32;
    // G.711 Table 2a: value = ((2*mant + 33) << seg) - 33 in 14-bit units; scale by 4 to 16 bits.
    let mag = (((mant << 1) + 33) << seg) - 33;
    let v = mag << 2;
    if u & 0x80 != 0 {
        -v as i16
    } else {
        v as i16
    }
}

/// G.191 `alaw_expand` for one code: even bits inverted (0x55), 3-bit segment, 4-bit step.
const fn alaw_expand(code: u8) -> i16 {
    let ix = (code ^ 0x55) & 0x7F;
    let iexp = (ix >> 4) as i32;
    let mut mant = (ix & 0x0F) as i32;
    if iexp > 0 {
        mant += 16;
    }
    // Reconstruct at the middle of the interval (+0x08), G.711 Table 1a.
    mant = (mant << 4) + 0x08;
    if iexp > 1 {
        mant <<= iexp - 1;
    }
    if code > 127 {
        mant as i16
    } else {
        -mant as i16
    }
}

const fn build_table(alaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if alaw {
            alaw_expand(i as u8)
        } else {
            ulaw_expand(i as u8)
        };
        i += 1;
    }
    t
}

/// µ-law code → 16-bit linear, index by the received octet.
pub const ULAW_TO_LINEAR: [i16; 256] = build_table(false);
/// A-law code → 16-bit linear, index by the received octet.
pub const ALAW_TO_LINEAR: [i16; 256] = build_table(true);

/// Decode one µ-law code to 16-bit linear PCM.
#[inline]
pub fn decode_ulaw(code: u8) -> i16 {
    ULAW_TO_LINEAR[usize::from(code)]
}

/// Decode one A-law code to 16-bit linear PCM.
#[inline]
pub fn decode_alaw(code: u8) -> i16 {
    ALAW_TO_LINEAR[usize::from(code)]
}

/// Encode one 16-bit linear sample to µ-law, exactly as G.191 `ulaw_compress`.
#[inline]
pub fn encode_ulaw(x: i16) -> u8 {
    // One's complement for negatives (G.191): magnitude in 14-bit units, 0..=8191.
    let (mag, mask) = if x < 0 {
        ((!x) >> 2, 0x7Fu8)
    } else {
        (x >> 2, 0xFFu8)
    };
    // Bias 33 (G.711 Table 2a, µ = 255 segment origin), clip to the 13-bit range.
    let biased = ((mag as u16) + 33).min(0x1FFF);
    // Segment = bit length of biased >> 6 (0..=7): first segment is 0..63.
    let seg = 16 - (biased >> 6).leading_zeros() as u16;
    let step = (biased >> (seg + 1)) & 0x0F;
    ((seg << 4) as u8 | step as u8) ^ mask
}

/// Encode one 16-bit linear sample to A-law, exactly as G.191 `alaw_compress`.
#[inline]
pub fn encode_alaw(x: i16) -> u8 {
    // One's complement for negatives (G.191): magnitude in 12-bit units, 0..=2047.
    let (mag, mask) = if x < 0 {
        ((!x) >> 4, 0x55u8)
    } else {
        (x >> 4, 0xD5u8)
    };
    let ix = mag as u16;
    // Segment 0 and 1 share the step size (G.711 Table 1a), so the shift is seg - 1, min 0.
    let seg = 16 - (ix >> 4).leading_zeros() as u16;
    let shift = seg.saturating_sub(1);
    let step = (ix >> shift) & 0x0F;
    ((seg << 4) as u8 | step as u8) ^ mask
}

fn check_len(needed: usize, got: usize) -> Result<(), G711Error> {
    if got < needed {
        Err(G711Error::BufferTooSmall { needed, got })
    } else {
        Ok(())
    }
}

/// Encode a block to µ-law into `out` (at least `input.len()` long); returns samples written.
pub fn encode_ulaw_slice(input: &[i16], out: &mut [u8]) -> Result<usize, G711Error> {
    check_len(input.len(), out.len())?;
    for (o, &x) in out.iter_mut().zip(input) {
        *o = encode_ulaw(x);
    }
    Ok(input.len())
}

/// Encode a block to A-law into `out` (at least `input.len()` long); returns samples written.
pub fn encode_alaw_slice(input: &[i16], out: &mut [u8]) -> Result<usize, G711Error> {
    check_len(input.len(), out.len())?;
    for (o, &x) in out.iter_mut().zip(input) {
        *o = encode_alaw(x);
    }
    Ok(input.len())
}

/// Decode a µ-law block into `out` (at least `input.len()` long); returns samples written.
pub fn decode_ulaw_slice(input: &[u8], out: &mut [i16]) -> Result<usize, G711Error> {
    check_len(input.len(), out.len())?;
    for (o, &c) in out.iter_mut().zip(input) {
        *o = decode_ulaw(c);
    }
    Ok(input.len())
}

/// Decode an A-law block into `out` (at least `input.len()` long); returns samples written.
pub fn decode_alaw_slice(input: &[u8], out: &mut [i16]) -> Result<usize, G711Error> {
    check_len(input.len(), out.len())?;
    for (o, &c) in out.iter_mut().zip(input) {
        *o = decode_alaw(c);
    }
    Ok(input.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Published decode tables (identical in Sun g711.c, G.191, NAudio, Python audioop); the
    // values were cross-checked against a published copy, not derived from the code above.
    const ULAW_EXPECTED: [i16; 256] = [
        -32124, -31100, -30076, -29052, -28028, -27004, -25980, -24956, -23932, -22908, -21884,
        -20860, -19836, -18812, -17788, -16764, -15996, -15484, -14972, -14460, -13948, -13436,
        -12924, -12412, -11900, -11388, -10876, -10364, -9852, -9340, -8828, -8316, -7932, -7676,
        -7420, -7164, -6908, -6652, -6396, -6140, -5884, -5628, -5372, -5116, -4860, -4604, -4348,
        -4092, -3900, -3772, -3644, -3516, -3388, -3260, -3132, -3004, -2876, -2748, -2620, -2492,
        -2364, -2236, -2108, -1980, -1884, -1820, -1756, -1692, -1628, -1564, -1500, -1436, -1372,
        -1308, -1244, -1180, -1116, -1052, -988, -924, -876, -844, -812, -780, -748, -716, -684,
        -652, -620, -588, -556, -524, -492, -460, -428, -396, -372, -356, -340, -324, -308, -292,
        -276, -260, -244, -228, -212, -196, -180, -164, -148, -132, -120, -112, -104, -96, -88,
        -80, -72, -64, -56, -48, -40, -32, -24, -16, -8, 0, 32124, 31100, 30076, 29052, 28028,
        27004, 25980, 24956, 23932, 22908, 21884, 20860, 19836, 18812, 17788, 16764, 15996, 15484,
        14972, 14460, 13948, 13436, 12924, 12412, 11900, 11388, 10876, 10364, 9852, 9340, 8828,
        8316, 7932, 7676, 7420, 7164, 6908, 6652, 6396, 6140, 5884, 5628, 5372, 5116, 4860, 4604,
        4348, 4092, 3900, 3772, 3644, 3516, 3388, 3260, 3132, 3004, 2876, 2748, 2620, 2492, 2364,
        2236, 2108, 1980, 1884, 1820, 1756, 1692, 1628, 1564, 1500, 1436, 1372, 1308, 1244, 1180,
        1116, 1052, 988, 924, 876, 844, 812, 780, 748, 716, 684, 652, 620, 588, 556, 524, 492, 460,
        428, 396, 372, 356, 340, 324, 308, 292, 276, 260, 244, 228, 212, 196, 180, 164, 148, 132,
        120, 112, 104, 96, 88, 80, 72, 64, 56, 48, 40, 32, 24, 16, 8, 0,
    ];
    const ALAW_EXPECTED: [i16; 256] = [
        -5504, -5248, -6016, -5760, -4480, -4224, -4992, -4736, -7552, -7296, -8064, -7808, -6528,
        -6272, -7040, -6784, -2752, -2624, -3008, -2880, -2240, -2112, -2496, -2368, -3776, -3648,
        -4032, -3904, -3264, -3136, -3520, -3392, -22016, -20992, -24064, -23040, -17920, -16896,
        -19968, -18944, -30208, -29184, -32256, -31232, -26112, -25088, -28160, -27136, -11008,
        -10496, -12032, -11520, -8960, -8448, -9984, -9472, -15104, -14592, -16128, -15616, -13056,
        -12544, -14080, -13568, -344, -328, -376, -360, -280, -264, -312, -296, -472, -456, -504,
        -488, -408, -392, -440, -424, -88, -72, -120, -104, -24, -8, -56, -40, -216, -200, -248,
        -232, -152, -136, -184, -168, -1376, -1312, -1504, -1440, -1120, -1056, -1248, -1184,
        -1888, -1824, -2016, -1952, -1632, -1568, -1760, -1696, -688, -656, -752, -720, -560, -528,
        -624, -592, -944, -912, -1008, -976, -816, -784, -880, -848, 5504, 5248, 6016, 5760, 4480,
        4224, 4992, 4736, 7552, 7296, 8064, 7808, 6528, 6272, 7040, 6784, 2752, 2624, 3008, 2880,
        2240, 2112, 2496, 2368, 3776, 3648, 4032, 3904, 3264, 3136, 3520, 3392, 22016, 20992,
        24064, 23040, 17920, 16896, 19968, 18944, 30208, 29184, 32256, 31232, 26112, 25088, 28160,
        27136, 11008, 10496, 12032, 11520, 8960, 8448, 9984, 9472, 15104, 14592, 16128, 15616,
        13056, 12544, 14080, 13568, 344, 328, 376, 360, 280, 264, 312, 296, 472, 456, 504, 488,
        408, 392, 440, 424, 88, 72, 120, 104, 24, 8, 56, 40, 216, 200, 248, 232, 152, 136, 184,
        168, 1376, 1312, 1504, 1440, 1120, 1056, 1248, 1184, 1888, 1824, 2016, 1952, 1632, 1568,
        1760, 1696, 688, 656, 752, 720, 560, 528, 624, 592, 944, 912, 1008, 976, 816, 784, 880,
        848,
    ];

    /// Literal transcription of G.191 `ulaw_compress` (the reference loop), for exhaustive
    /// comparison with the fast encoder.
    fn g191_ulaw_compress(x: i16) -> u8 {
        let x = i32::from(x);
        let mut absno = if x < 0 {
            ((!x) >> 2) + 33
        } else {
            (x >> 2) + 33
        };
        if absno > 0x1FFF {
            absno = 0x1FFF;
        }
        let mut i = absno >> 6;
        let mut segno = 1;
        while i != 0 {
            segno += 1;
            i >>= 1;
        }
        let high = 8 - segno;
        let low = 0x0F - ((absno >> segno) & 0x0F);
        let mut v = (high << 4) | low;
        if x >= 0 {
            v |= 0x80;
        }
        v as u8
    }

    /// Literal transcription of G.191 `alaw_compress`.
    fn g191_alaw_compress(x: i16) -> u8 {
        let x = i32::from(x);
        let mut ix = if x < 0 { (!x) >> 4 } else { x >> 4 };
        if ix > 15 {
            let mut iexp = 1;
            while ix > 16 + 15 {
                ix >>= 1;
                iexp += 1;
            }
            ix -= 16;
            ix += iexp << 4;
        }
        if x >= 0 {
            ix |= 0x80;
        }
        (ix ^ 0x55) as u8
    }

    #[test]
    fn decode_tables_match_published() {
        for c in 0..=255u8 {
            assert_eq!(
                decode_ulaw(c),
                ULAW_EXPECTED[usize::from(c)],
                "ulaw {c:#04x}"
            );
            assert_eq!(
                decode_alaw(c),
                ALAW_EXPECTED[usize::from(c)],
                "alaw {c:#04x}"
            );
        }
    }

    #[test]
    fn decode_known_values() {
        assert_eq!(decode_ulaw(0xFF), 0);
        assert_eq!(decode_ulaw(0x7F), 0);
        assert_eq!(decode_ulaw(0x00), -32124);
        assert_eq!(decode_ulaw(0x80), 32124);
        assert_eq!(decode_ulaw(0x7E), -8);
        assert_eq!(decode_alaw(0xD5), 8);
        assert_eq!(decode_alaw(0x55), -8);
        // 0x2A has the sign bit clear: it is the most negative A-law level.
        assert_eq!(decode_alaw(0x2A), -32256);
        assert_eq!(decode_alaw(0xAA), 32256);
    }

    #[test]
    fn encoders_match_g191_for_every_input() {
        for x in i16::MIN..=i16::MAX {
            assert_eq!(encode_ulaw(x), g191_ulaw_compress(x), "ulaw {x}");
            assert_eq!(encode_alaw(x), g191_alaw_compress(x), "alaw {x}");
        }
    }

    #[test]
    fn golden_encoded_values() {
        // (input, µ-law, A-law) from the G.191 reference.
        let golden: [(i16, u8, u8); 16] = [
            (0, 0xFF, 0xD5),
            (-1, 0x7F, 0x55),
            (1, 0xFF, 0xD5),
            (4, 0xFE, 0xD5),
            (-4, 0x7F, 0x55),
            (-5, 0x7E, 0x55),
            (8, 0xFE, 0xD5),
            (100, 0xF2, 0xD3),
            (-100, 0x73, 0x53),
            (1000, 0xCE, 0xFA),
            (-1000, 0x4E, 0x7A),
            (12345, 0x97, 0xBD),
            (-12345, 0x17, 0x3D),
            (32124, 0x80, 0xAA),
            (32767, 0x80, 0xAA),
            (-32768, 0x00, 0x2A),
        ];
        for (x, u, a) in golden {
            assert_eq!(encode_ulaw(x), u, "ulaw {x}");
            assert_eq!(encode_alaw(x), a, "alaw {x}");
        }
    }

    #[test]
    fn encode_of_decode_is_identity() {
        for c in 0..=255u8 {
            let back = encode_ulaw(decode_ulaw(c));
            if c == 0x7F {
                // Negative zero decodes to 0, which encodes as positive zero.
                assert_eq!(back, 0xFF);
            } else {
                assert_eq!(back, c, "ulaw {c:#04x}");
            }
            assert_eq!(encode_alaw(decode_alaw(c)), c, "alaw {c:#04x}");
        }
    }

    #[test]
    fn encoders_are_monotonic() {
        // Map codes to their decoded value: the decoded output must never decrease as input grows.
        let mut prev_u = i16::MIN;
        let mut prev_a = i16::MIN;
        for x in i16::MIN..=i16::MAX {
            let u = decode_ulaw(encode_ulaw(x));
            let a = decode_alaw(encode_alaw(x));
            assert!(u >= prev_u, "ulaw not monotonic at {x}");
            assert!(a >= prev_a, "alaw not monotonic at {x}");
            prev_u = u;
            prev_a = a;
        }
        // And the decode tables, sorted by value, are strictly increasing apart from ±0.
        let mut u: Vec<i16> = ULAW_TO_LINEAR.to_vec();
        u.sort_unstable();
        u.dedup();
        assert_eq!(u.len(), 255);
        let mut a: Vec<i16> = ALAW_TO_LINEAR.to_vec();
        a.sort_unstable();
        a.dedup();
        assert_eq!(a.len(), 256);
    }

    #[test]
    fn round_trip_error_bounds() {
        for x in i16::MIN..=i16::MAX {
            let xi = i32::from(x);
            let mag = xi.unsigned_abs();
            // µ-law: step is 8 << segment in 16-bit units; the reconstruction is mid-step, and
            // G.191's truncation of the 2 ignored bits adds up to 4. Beyond the last level
            // (±32124) the encoder clips.
            let u = i32::from(decode_ulaw(encode_ulaw(x)));
            let err_u = (u - xi).unsigned_abs();
            if mag <= 32124 {
                let seg = (0..8).find(|s| mag + 132 < (256u32 << s)).unwrap_or(7);
                let step = 8u32 << seg;
                assert!(
                    err_u <= step / 2 + 4,
                    "ulaw x={x} got {u} err {err_u} step {step}"
                );
            } else {
                assert!(err_u <= mag - 32124 + 4, "ulaw clip x={x} got {u}");
            }
            // A-law: step 16 in segments 0 and 1, then doubles; clip beyond ±32256.
            let a = i32::from(decode_alaw(encode_alaw(x)));
            let err_a = (a - xi).unsigned_abs();
            if mag <= 32256 {
                let seg = (0..8).find(|s| mag < (512u32 << s)).unwrap_or(7);
                let step = 16u32 << seg;
                assert!(err_a <= step / 2 + 16, "alaw x={x} got {a} err {err_a}");
            } else {
                assert!(err_a <= mag - 32256 + 16, "alaw clip x={x} got {a}");
            }
            // Relative error stays under ~3.6 % above the linear segments: half a step is 1/32 of a segment start, plus truncation (the ~38 dB SNR of G.711).
            if mag > 1024 {
                assert!(f64::from(err_u) / f64::from(mag) < 0.036, "ulaw rel x={x}");
                assert!(f64::from(err_a) / f64::from(mag) < 0.036, "alaw rel x={x}");
            }
        }
    }

    #[test]
    fn slices_and_law_dispatch() {
        let pcm: Vec<i16> = (0..160)
            .map(|i| ((i * 409) % 65536 - 32768) as i16)
            .collect();
        let mut enc = [0u8; 160];
        let mut dec = [0i16; 160];
        for law in [G711Law::Ulaw, G711Law::Alaw] {
            assert_eq!(law.encode(&pcm, &mut enc), Ok(160));
            for (i, &x) in pcm.iter().enumerate() {
                assert_eq!(enc[i], law.encode_sample(x));
            }
            assert_eq!(law.decode(&enc, &mut dec), Ok(160));
            for (i, &c) in enc.iter().enumerate() {
                assert_eq!(dec[i], law.decode_sample(c));
            }
            assert_eq!(G711Law::from_payload_type(law.payload_type()), Some(law));
            assert!(law.decode_sample(law.silence()).abs() <= 8);
        }
        // Output longer than input is fine; shorter is an error, nothing written past it.
        let mut big = [0u8; 200];
        assert_eq!(encode_ulaw_slice(&pcm, &mut big), Ok(160));
        let mut small = [0u8; 10];
        let err = encode_alaw_slice(&pcm, &mut small).unwrap_err();
        assert_eq!(
            err,
            G711Error::BufferTooSmall {
                needed: 160,
                got: 10
            }
        );
        assert_eq!(err.code(), "media.g711.buffer_too_small");
        let mut small16 = [0i16; 3];
        assert!(decode_ulaw_slice(&enc, &mut small16).is_err());
        assert!(decode_alaw_slice(&enc, &mut small16).is_err());
        assert_eq!(G711Law::from_payload_type(9), None);
        assert_eq!(G711Law::Alaw.encoding_name(), "PCMA");
    }
}
