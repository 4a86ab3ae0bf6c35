//! whisper.cpp's legacy ggml model file: writer (for the importer) and reader (to check a file
//! before handing it to whisper.cpp, and for tests).
//!
//! ```text
//! u32 magic | i32 × 11 hparams | i32 n_mel, i32 n_fft (bins), f32[n_mel × n_fft] filters |
//! i32 n_tokens, n × (u32 len, bytes) |
//! until EOF: i32 n_dims, i32 name_len, i32 type, i32 ne[n_dims] (innermost first), name, data
//! ```
//! All little-endian, no padding.

use std::io::{self, Read, Seek, SeekFrom, Write};

pub const MAGIC: u32 = 0x6767_6d6c;
/// whisper.cpp's ftype for "big tensors in f16".
pub const FTYPE_F16: i32 = 1;
/// whisper.cpp folds a quantisation version into ftype as `version * 1000 + ftype`.
const QNT_VERSION_FACTOR: i32 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorType {
    F32 = 0,
    F16 = 1,
}

impl TensorType {
    pub fn size_bytes(self) -> usize {
        match self {
            TensorType::F32 => 4,
            TensorType::F16 => 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hparams {
    pub n_vocab: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    pub n_mels: i32,
    pub ftype: i32,
}

impl Hparams {
    fn fields(&self) -> [i32; 11] {
        [
            self.n_vocab,
            self.n_audio_ctx,
            self.n_audio_state,
            self.n_audio_head,
            self.n_audio_layer,
            self.n_text_ctx,
            self.n_text_state,
            self.n_text_head,
            self.n_text_layer,
            self.n_mels,
            self.ftype,
        ]
    }

    /// whisper.cpp multilingual models have at least this many tokens (tiny.en: 51864).
    pub fn is_multilingual(&self) -> bool {
        self.n_vocab >= 51865
    }

    /// Tensors whisper.cpp expects: encoder 7 + 15 per layer, decoder 4 + 24 per layer.
    pub fn expected_tensor_count(&self) -> usize {
        let layers = |n: i32| usize::try_from(n).unwrap_or(0);
        7 + 15 * layers(self.n_audio_layer) + 4 + 24 * layers(self.n_text_layer)
    }

    /// Ranges that every Whisper size (tiny .. large-v3) is far inside; anything outside would
    /// make whisper.cpp allocate nonsense or divide by zero.
    pub fn check(&self) -> Result<(), String> {
        let within = |name: &str, v: i32, lo: i32, hi: i32| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name} = {v} is outside {lo}..={hi}"))
            }
        };
        within("n_vocab", self.n_vocab, 1, 1_000_000)?;
        within("n_audio_ctx", self.n_audio_ctx, 1, 100_000)?;
        within("n_audio_state", self.n_audio_state, 1, 16_384)?;
        within("n_audio_head", self.n_audio_head, 1, 1_024)?;
        within("n_audio_layer", self.n_audio_layer, 1, 256)?;
        within("n_text_ctx", self.n_text_ctx, 1, 100_000)?;
        within("n_text_state", self.n_text_state, 1, 16_384)?;
        within("n_text_head", self.n_text_head, 1, 1_024)?;
        within("n_text_layer", self.n_text_layer, 1, 256)?;
        within("n_mels", self.n_mels, 1, 512)?;
        within("ftype", self.ftype % QNT_VERSION_FACTOR, 0, 64)?;
        if self.n_audio_state != self.n_text_state {
            return Err(format!(
                "encoder width {} differs from decoder width {}",
                self.n_audio_state, self.n_text_state
            ));
        }
        if self.n_audio_state % self.n_audio_head != 0 || self.n_text_state % self.n_text_head != 0
        {
            return Err("model width is not a multiple of the head count".to_owned());
        }
        Ok(())
    }
}

/// Writes everything before the tensors.
pub fn write_header<W: Write>(
    w: &mut W,
    hparams: &Hparams,
    n_mel: usize,
    n_fft_bins: usize,
    filters: &[f32],
    tokens: &[Vec<u8>],
) -> io::Result<()> {
    w.write_all(&MAGIC.to_le_bytes())?;
    for v in hparams.fields() {
        w.write_all(&v.to_le_bytes())?;
    }
    w.write_all(&i32_of(n_mel)?.to_le_bytes())?;
    w.write_all(&i32_of(n_fft_bins)?.to_le_bytes())?;
    for f in filters {
        w.write_all(&f.to_le_bytes())?;
    }
    w.write_all(&i32_of(tokens.len())?.to_le_bytes())?;
    for t in tokens {
        let len = u32::try_from(t.len()).map_err(|_| invalid("token longer than 4 GiB"))?;
        w.write_all(&len.to_le_bytes())?;
        w.write_all(t)?;
    }
    Ok(())
}

/// Writes one tensor's header; its data must follow. `shape` is numpy order (outermost
/// first); ggml lists dimensions innermost first, so it is written reversed.
pub fn write_tensor_header<W: Write>(
    w: &mut W,
    name: &str,
    shape: &[usize],
    ty: TensorType,
) -> io::Result<()> {
    w.write_all(&i32_of(shape.len())?.to_le_bytes())?;
    w.write_all(&i32_of(name.len())?.to_le_bytes())?;
    w.write_all(&(ty as i32).to_le_bytes())?;
    for &d in shape.iter().rev() {
        w.write_all(&i32_of(d)?.to_le_bytes())?;
    }
    w.write_all(name.as_bytes())
}

fn i32_of(v: usize) -> io::Result<i32> {
    i32::try_from(v).map_err(|_| invalid("value does not fit the format's 32-bit field"))
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// What a ggml file holds, read back without loading tensor data.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub hparams: Hparams,
    pub n_mel: i32,
    pub n_fft_bins: i32,
    pub filters: Vec<f32>,
    pub tokens: Vec<Vec<u8>>,
    pub tensors: Vec<TensorInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: innermost dimension first.
    pub ne: Vec<i32>,
    pub ty: i32,
    /// Offset of the data in the file.
    pub data_offset: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum GgmlError {
    #[error("not a whisper.cpp ggml model (magic {found:#010x}, expected {MAGIC:#010x})")]
    BadMagic { found: u32 },
    #[error("bad model hyperparameters: {0}")]
    BadHparams(String),
    #[error("bad model file: {0}")]
    Malformed(String),
    #[error("model file ends early ({0})")]
    Truncated(&'static str),
    #[error(transparent)]
    Io(#[from] io::Error),
}

fn read_i32<R: Read>(r: &mut R, what: &'static str) -> Result<i32, GgmlError> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b).map_err(|e| eof(e, what))?;
    Ok(i32::from_le_bytes(b))
}

fn eof(e: io::Error, what: &'static str) -> GgmlError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        GgmlError::Truncated(what)
    } else {
        GgmlError::Io(e)
    }
}

/// Reads and checks the magic and hyperparameters only.
pub fn read_hparams<R: Read>(r: &mut R) -> Result<Hparams, GgmlError> {
    let magic = read_i32(r, "magic")? as u32;
    if magic != MAGIC {
        return Err(GgmlError::BadMagic { found: magic });
    }
    let mut f = [0i32; 11];
    for v in &mut f {
        *v = read_i32(r, "hyperparameters")?;
    }
    let h = Hparams {
        n_vocab: f[0],
        n_audio_ctx: f[1],
        n_audio_state: f[2],
        n_audio_head: f[3],
        n_audio_layer: f[4],
        n_text_ctx: f[5],
        n_text_state: f[6],
        n_text_head: f[7],
        n_text_layer: f[8],
        n_mels: f[9],
        ftype: f[10],
    };
    h.check().map_err(GgmlError::BadHparams)?;
    Ok(h)
}

/// Everything before the tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub hparams: Hparams,
    pub n_mel: i32,
    pub n_fft_bins: i32,
    pub filters: Vec<f32>,
    pub tokens: Vec<Vec<u8>>,
}

/// Reads hparams, mel filters and vocabulary, checking their sizes. Enough to know whisper.cpp
/// will not be handed an absurd allocation; whisper.cpp checks each tensor itself.
pub fn read_header<R: Read>(r: &mut R) -> Result<Header, GgmlError> {
    let hparams = read_hparams(r)?;
    let n_mel = read_i32(r, "mel filter size")?;
    let n_fft_bins = read_i32(r, "mel filter size")?;
    if !(1..=512).contains(&n_mel) || !(1..=4096).contains(&n_fft_bins) {
        return Err(GgmlError::Malformed(format!(
            "mel filter bank {n_mel} x {n_fft_bins}"
        )));
    }
    let mut raw = vec![0u8; (n_mel * n_fft_bins) as usize * 4];
    r.read_exact(&mut raw).map_err(|e| eof(e, "mel filters"))?;
    let filters = raw
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let n_tokens = read_i32(r, "token count")?;
    if n_tokens < 0 || n_tokens > hparams.n_vocab {
        return Err(GgmlError::Malformed(format!(
            "{n_tokens} tokens for a vocabulary of {}",
            hparams.n_vocab
        )));
    }
    let mut tokens = Vec::with_capacity(n_tokens as usize);
    for _ in 0..n_tokens {
        let len = read_i32(r, "token")? as u32;
        // GPT-2 tokens are a few bytes; the longest Whisper token is under 128.
        if len > 1024 {
            return Err(GgmlError::Malformed(format!("a token of {len} bytes")));
        }
        let mut t = vec![0u8; len as usize];
        r.read_exact(&mut t).map_err(|e| eof(e, "token"))?;
        tokens.push(t);
    }
    Ok(Header {
        hparams,
        n_mel,
        n_fft_bins,
        filters,
        tokens,
    })
}

/// Reads a whole f16/f32 ggml file's structure, seeking over tensor data.
pub fn inspect<R: Read + Seek>(r: &mut R) -> Result<Summary, GgmlError> {
    let Header {
        hparams,
        n_mel,
        n_fft_bins,
        filters,
        tokens,
    } = read_header(r)?;
    let file_len = r.seek(SeekFrom::End(0))?;
    // Tensors start where the header ends; positions are tracked by hand from here so error
    // messages can name byte offsets.
    let mut pos = r.seek(SeekFrom::Start(header_len(n_mel, n_fft_bins, &tokens)))?;
    let mut tensors = Vec::new();
    while pos < file_len {
        let n_dims = read_i32(r, "tensor header")?;
        let name_len = read_i32(r, "tensor header")?;
        let ty = read_i32(r, "tensor header")?;
        if !(1..=4).contains(&n_dims) || !(1..=256).contains(&name_len) {
            return Err(GgmlError::Malformed(format!(
                "tensor header at byte {pos}: {n_dims} dims, name of {name_len} bytes"
            )));
        }
        let elem_bytes: u64 = match ty {
            0 => 4,
            1 => 2,
            _ => {
                return Err(GgmlError::Malformed(format!(
                    "tensor at byte {pos} has type {ty}; only f32/f16 files are inspected"
                )))
            }
        };
        let mut ne = Vec::with_capacity(n_dims as usize);
        let mut n_elements: u64 = 1;
        for _ in 0..n_dims {
            let d = read_i32(r, "tensor shape")?;
            if d < 1 {
                return Err(GgmlError::Malformed(format!("tensor dimension {d}")));
            }
            n_elements = n_elements.saturating_mul(d as u64);
            ne.push(d);
        }
        let mut name = vec![0u8; name_len as usize];
        r.read_exact(&mut name).map_err(|e| eof(e, "tensor name"))?;
        let name = String::from_utf8(name)
            .map_err(|_| GgmlError::Malformed(format!("tensor name at byte {pos} is not UTF-8")))?;
        let data_offset = pos + 12 + 4 * n_dims as u64 + name_len as u64;
        let data_len = n_elements.saturating_mul(elem_bytes);
        let end = data_offset.saturating_add(data_len);
        if end > file_len {
            return Err(GgmlError::Truncated("tensor data"));
        }
        r.seek(SeekFrom::Start(end))?;
        tensors.push(TensorInfo {
            name,
            ne,
            ty,
            data_offset,
        });
        pos = end;
    }
    Ok(Summary {
        hparams,
        n_mel,
        n_fft_bins,
        filters,
        tokens,
        tensors,
    })
}

fn header_len(n_mel: i32, n_fft_bins: i32, tokens: &[Vec<u8>]) -> u64 {
    let fixed = 4 + 11 * 4 + 8 + (n_mel as u64 * n_fft_bins as u64) * 4 + 4;
    fixed + tokens.iter().map(|t| 4 + t.len() as u64).sum::<u64>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn hp() -> Hparams {
        Hparams {
            n_vocab: 51864,
            n_audio_ctx: 1500,
            n_audio_state: 384,
            n_audio_head: 6,
            n_audio_layer: 4,
            n_text_ctx: 448,
            n_text_state: 384,
            n_text_head: 6,
            n_text_layer: 4,
            n_mels: 80,
            ftype: FTYPE_F16,
        }
    }

    #[test]
    fn header_and_tensor_round_trip() {
        let mut out = Vec::new();
        let filters = vec![0.5f32; 2 * 3];
        write_header(
            &mut out,
            &hp(),
            2,
            3,
            &filters,
            &[b"a".to_vec(), b" b".to_vec()],
        )
        .unwrap();
        write_tensor_header(&mut out, "x.weight", &[2, 3], TensorType::F16).unwrap();
        out.extend_from_slice(&[0u8; 12]);
        write_tensor_header(&mut out, "x.bias", &[2], TensorType::F32).unwrap();
        out.extend_from_slice(&[0u8; 8]);
        let s = inspect(&mut Cursor::new(&out)).unwrap();
        assert_eq!(s.hparams, hp());
        assert_eq!((s.n_mel, s.n_fft_bins), (2, 3));
        assert_eq!(s.filters, filters);
        assert_eq!(s.tokens, vec![b"a".to_vec(), b" b".to_vec()]);
        assert_eq!(s.tensors.len(), 2);
        assert_eq!(s.tensors[0].name, "x.weight");
        assert_eq!(s.tensors[0].ne, vec![3, 2]);
        assert_eq!(s.tensors[0].ty, 1);
        assert_eq!(s.tensors[1].ne, vec![2]);
        // A cut inside the header or a tensor is an error; a cut between tensors reads as a
        // file with fewer tensors (whisper.cpp's tensor count check catches that). No panics.
        for len in 0..out.len() {
            match inspect(&mut Cursor::new(&out[..len])) {
                Err(_) => {}
                Ok(s) => assert!(s.tensors.len() < 2, "length {len}"),
            }
        }
    }

    #[test]
    fn tiny_and_base_tensor_counts() {
        assert_eq!(hp().expected_tensor_count(), 167);
        let base = Hparams {
            n_audio_layer: 6,
            n_text_layer: 6,
            ..hp()
        };
        assert_eq!(base.expected_tensor_count(), 245);
    }

    #[test]
    fn absurd_headers_are_rejected() {
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        assert!(matches!(
            read_hparams(&mut Cursor::new(&out)),
            Err(GgmlError::BadMagic { .. })
        ));
        let mut out = Vec::new();
        let bad = Hparams {
            n_audio_head: 0,
            ..hp()
        };
        write_header(&mut out, &bad, 1, 1, &[0.0], &[]).unwrap();
        assert!(matches!(
            read_hparams(&mut Cursor::new(&out)),
            Err(GgmlError::BadHparams(_))
        ));
        let mut out = Vec::new();
        let bad = Hparams {
            n_text_state: 512,
            ..hp()
        };
        write_header(&mut out, &bad, 1, 1, &[0.0], &[]).unwrap();
        assert!(read_hparams(&mut Cursor::new(&out)).is_err());
    }
}
