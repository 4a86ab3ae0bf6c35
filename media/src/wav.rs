//! Call recordings as WAV files (RIFF, 16-bit PCM): the header, and how a file cut short by a
//! crash is made readable again.
//!
//! A recording is written as it happens: a header whose sizes say "unknown" (0), then audio
//! appended about once a second. At the end the header is rewritten with the real sizes. A
//! crash leaves the provisional header; [`repaired_data_len`] says how much of what reached
//! the disk is whole frames, and [`header`] with that length makes the file valid.

/// Bytes of the canonical PCM WAV header (RIFF + `fmt ` (16 bytes) + `data` chunk header).
pub const HEADER_BYTES: usize = 44;

/// The sample layout of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavFormat {
    pub sample_rate_hz: u32,
    pub channels: u16,
}

impl WavFormat {
    /// Phone calls: 8 kHz, left the customer, right the managers.
    pub const CALL_STEREO_8K: WavFormat = WavFormat {
        sample_rate_hz: 8000,
        channels: 2,
    };

    /// Bytes of one frame: one 16-bit sample per channel.
    pub const fn block_align(self) -> u32 {
        self.channels as u32 * 2
    }

    pub const fn bytes_per_second(self) -> u32 {
        self.sample_rate_hz * self.block_align()
    }

    /// Duration of `data_len` bytes of audio, in milliseconds (whole frames only).
    pub fn duration_ms(self, data_len: u64) -> u64 {
        data_len / u64::from(self.block_align()) * 1000 / u64::from(self.sample_rate_hz)
    }
}

/// The 44-byte header for `data_len` bytes of audio. `data_len` 0 is the provisional header
/// written before any audio (players read such a file as empty, [`repaired_data_len`] fixes it).
/// Lengths beyond what RIFF's 32-bit sizes hold are capped (a call would need 74 hours).
pub fn header(format: WavFormat, data_len: u64) -> [u8; HEADER_BYTES] {
    let data_len = u32::try_from(data_len).unwrap_or(u32::MAX - 36);
    let mut h = [0u8; HEADER_BYTES];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(36u32.saturating_add(data_len)).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&format.channels.to_le_bytes());
    h[24..28].copy_from_slice(&format.sample_rate_hz.to_le_bytes());
    h[28..32].copy_from_slice(&format.bytes_per_second().to_le_bytes());
    h[32..34].copy_from_slice(&(format.block_align() as u16).to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WavError {
    #[error("not a recording of ours: {0}")]
    NotOurs(&'static str),
}

/// For a recording file of `file_len` bytes that starts with `head` (its first 44 bytes, or
/// fewer if the file is that short): how many bytes of audio it really holds, in whole frames.
/// Checks that the header is ours for `format`, so a stray file is never rewritten.
pub fn repaired_data_len(format: WavFormat, head: &[u8], file_len: u64) -> Result<u64, WavError> {
    if head.len() < HEADER_BYTES || file_len < HEADER_BYTES as u64 {
        return Err(WavError::NotOurs("shorter than a WAV header"));
    }
    let expected = header(format, 0);
    // Everything but the two size fields must match what we write.
    let same = |a: usize, b: usize| head[a..b] == expected[a..b];
    if !(same(0, 4) && same(8, 40)) {
        return Err(WavError::NotOurs("header differs from the recorder's"));
    }
    let audio = file_len - HEADER_BYTES as u64;
    Ok(audio - audio % u64::from(format.block_align()))
}

/// Appends one stereo stretch to `out` as interleaved little-endian 16-bit frames: `left[i]`,
/// `right[i]`, ... (`left` and `right` have the same length).
pub fn interleave_stereo(left: &[i16], right: &[i16], out: &mut Vec<u8>) {
    out.reserve(left.len() * 4);
    for (l, r) in left.iter().zip(right) {
        out.extend_from_slice(&l.to_le_bytes());
        out.extend_from_slice(&r.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: WavFormat = WavFormat::CALL_STEREO_8K;

    #[test]
    fn the_header_is_canonical_pcm_wav() {
        let h = header(F, 32_000);
        assert_eq!(&h[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(h[4..8].try_into().unwrap()), 36 + 32_000);
        assert_eq!(&h[8..16], b"WAVEfmt ");
        assert_eq!(u16::from_le_bytes(h[22..24].try_into().unwrap()), 2);
        assert_eq!(u32::from_le_bytes(h[24..28].try_into().unwrap()), 8000);
        assert_eq!(u32::from_le_bytes(h[28..32].try_into().unwrap()), 32_000);
        assert_eq!(u16::from_le_bytes(h[32..34].try_into().unwrap()), 4);
        assert_eq!(u16::from_le_bytes(h[34..36].try_into().unwrap()), 16);
        assert_eq!(&h[36..40], b"data");
        assert_eq!(u32::from_le_bytes(h[40..44].try_into().unwrap()), 32_000);
        assert_eq!(F.duration_ms(32_000), 1000);
    }

    #[test]
    fn a_file_cut_mid_frame_keeps_its_whole_frames() {
        let head = header(F, 0);
        // 1 s of audio and 3 bytes of a frame that never finished.
        assert_eq!(repaired_data_len(F, &head, 44 + 32_000 + 3), Ok(32_000));
        assert_eq!(repaired_data_len(F, &head, 44), Ok(0));
        // A header already finalized is ours as well.
        assert_eq!(repaired_data_len(F, &header(F, 400), 44 + 400), Ok(400));
    }

    #[test]
    fn foreign_or_short_files_are_refused() {
        let head = header(F, 0);
        assert!(repaired_data_len(F, &head[..20], 20).is_err());
        let mut mono = head;
        mono[22] = 1;
        assert!(repaired_data_len(F, &mono, 1000).is_err());
        let mut other = head;
        other[0..4].copy_from_slice(b"OggS");
        assert!(repaired_data_len(F, &other, 1000).is_err());
    }

    #[test]
    fn stereo_is_interleaved_left_first() {
        let mut out = Vec::new();
        interleave_stereo(&[1, -2], &[3, 4], &mut out);
        assert_eq!(out, vec![1u8, 0, 3, 0, 0xfe, 0xff, 4, 0]);
    }
}
