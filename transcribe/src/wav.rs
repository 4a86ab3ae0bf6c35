//! Reading 16-bit PCM WAV files (call recordings, test fixtures) from bytes.
//!
//! Tolerant where recordings need it: a data chunk whose size says 0 or more than the file
//! holds (a recording cut short by a crash, or a stream written to a pipe) is read to the end
//! of the file, in whole frames.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wav {
    pub sample_rate_hz: u32,
    pub channels: u16,
    /// Interleaved samples, whole frames only.
    pub samples: Vec<i16>,
}

impl Wav {
    /// One channel's samples (0 = left).
    pub fn channel(&self, index: u16) -> Vec<i16> {
        let n = usize::from(self.channels.max(1));
        self.samples
            .iter()
            .skip(usize::from(index))
            .step_by(n)
            .copied()
            .collect()
    }

    pub fn duration_ms(&self) -> u64 {
        let frames = self.samples.len() as u64 / u64::from(self.channels.max(1));
        frames * 1000 / u64::from(self.sample_rate_hz.max(1))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WavError {
    #[error("not a WAV file (no RIFF/WAVE header)")]
    NotWav,
    #[error("WAV file has no {0} chunk")]
    MissingChunk(&'static str),
    #[error("unsupported WAV encoding: {0} (convert to 16-bit PCM, e.g. `sox in.wav -e signed -b 16 out.wav`)")]
    Unsupported(String),
}

const FORMAT_PCM: u16 = 1;
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

pub fn parse(bytes: &[u8]) -> Result<Wav, WavError> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError::NotWav);
    }
    let le16 = |b: &[u8]| u16::from_le_bytes([b[0], b[1]]);
    let le32 = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let mut pos = 12;
    let mut format: Option<(u16, u32)> = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let declared = le32(&bytes[pos + 4..pos + 8]) as usize;
        let body_start = pos + 8;
        let available = bytes.len() - body_start;
        if id == b"fmt " {
            if declared < 16 || available < 16 {
                return Err(WavError::Unsupported("short fmt chunk".to_owned()));
            }
            let b = &bytes[body_start..];
            let mut tag = le16(&b[0..2]);
            let channels = le16(&b[2..4]);
            let rate_hz = le32(&b[4..8]);
            let bits = le16(&b[14..16]);
            if tag == FORMAT_EXTENSIBLE && declared >= 26 && available >= 26 {
                // The sub-format GUID starts with the plain format tag.
                tag = le16(&b[24..26]);
            }
            if tag != FORMAT_PCM || bits != 16 {
                return Err(WavError::Unsupported(format!(
                    "format tag {tag}, {bits} bits per sample"
                )));
            }
            if channels == 0 || rate_hz == 0 {
                return Err(WavError::Unsupported(format!(
                    "{channels} channels at {rate_hz} Hz"
                )));
            }
            format = Some((channels, rate_hz));
        } else if id == b"data" {
            let (channels, sample_rate_hz) = format.ok_or(WavError::MissingChunk("fmt "))?;
            let len = if declared == 0 || declared > available {
                available
            } else {
                declared
            };
            let frame_bytes = 2 * usize::from(channels);
            let len = len - len % frame_bytes;
            let samples = bytes[body_start..body_start + len]
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect();
            return Ok(Wav {
                sample_rate_hz,
                channels,
                samples,
            });
        }
        // Chunks are padded to even sizes.
        pos = body_start
            .saturating_add(declared)
            .saturating_add(declared & 1);
    }
    Err(WavError::MissingChunk("data"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(
        channels: u16,
        rate_hz: u32,
        data_size: u32,
        samples: &[i16],
        extra_chunk: bool,
    ) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF");
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(b"WAVE");
        if extra_chunk {
            b.extend_from_slice(b"LIST");
            b.extend_from_slice(&3u32.to_le_bytes());
            b.extend_from_slice(&[1, 2, 3, 0]); // odd size + pad byte
        }
        b.extend_from_slice(b"fmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&channels.to_le_bytes());
        b.extend_from_slice(&rate_hz.to_le_bytes());
        b.extend_from_slice(&(rate_hz * 2 * u32::from(channels)).to_le_bytes());
        b.extend_from_slice(&(2 * channels).to_le_bytes());
        b.extend_from_slice(&16u16.to_le_bytes());
        b.extend_from_slice(b"data");
        b.extend_from_slice(&data_size.to_le_bytes());
        for s in samples {
            b.extend_from_slice(&s.to_le_bytes());
        }
        b
    }

    #[test]
    fn reads_stereo_and_splits_channels() {
        let w = parse(&wav(2, 8000, 8, &[1, -1, 2, -2], true)).unwrap();
        assert_eq!((w.sample_rate_hz, w.channels), (8000, 2));
        assert_eq!(w.channel(0), vec![1, 2]);
        assert_eq!(w.channel(1), vec![-1, -2]);
    }

    #[test]
    fn a_provisional_header_reads_to_the_end_in_whole_frames() {
        let mut bytes = wav(2, 8000, 0, &[1, -1, 2, -2], false);
        bytes.push(9); // half a sample left by a crash
        let w = parse(&bytes).unwrap();
        assert_eq!(w.samples, vec![1, -1, 2, -2]);
        let w = parse(&wav(1, 8000, 1_000_000, &[5, 6, 7], false)).unwrap();
        assert_eq!(w.samples, vec![5, 6, 7]);
    }

    #[test]
    fn foreign_and_unsupported_files_are_errors() {
        assert_eq!(parse(b"ID3\x04 an mp3"), Err(WavError::NotWav));
        let mut b = wav(1, 8000, 2, &[0], false);
        b[20] = 7; // mu-law
        assert!(matches!(parse(&b), Err(WavError::Unsupported(_))));
        let b = wav(1, 8000, 2, &[0], false);
        for len in 0..b.len() {
            let _ = parse(&b[..len]); // never panics
        }
        assert_eq!(parse(&b[..36]), Err(WavError::MissingChunk("data")));
    }
}
