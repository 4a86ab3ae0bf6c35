//! Importer tests on a miniature Whisper-shaped model (width 4, one layer each side) with a
//! full-size English vocabulary, so whisper.cpp's token-id expectations are exercised too.

use std::collections::HashMap;
use std::io::Cursor;

use super::ct2::build::Builder;
use super::*;

const D: usize = 4;
const N_MELS: usize = 2;
const AUDIO_CTX: usize = 3;
const TEXT_CTX: usize = 2;
const N_VOCAB_EN: usize = 51864;
const EOT_EN: usize = 50256;

/// Deterministic distinct values so every split can be checked.
fn values(seed: usize, n: usize) -> Vec<f32> {
    (0..n).map(|i| (seed * 1000 + i) as f32 / 8.0).collect()
}

struct Mini {
    vars: Vec<(String, Vec<usize>, Vec<f32>)>,
    skip: Option<String>,
    int8: Option<String>,
}

impl Mini {
    fn new() -> Mini {
        let mut vars = Vec::new();
        let mut seed = 0;
        let mut add = |name: &str, shape: &[usize]| {
            seed += 1;
            let n = shape.iter().product();
            vars.push((name.to_owned(), shape.to_vec(), values(seed, n)));
        };
        let norm = |add: &mut dyn FnMut(&str, &[usize]), p: &str| {
            add(&format!("{p}/gamma"), &[D]);
            add(&format!("{p}/beta"), &[D]);
        };
        let linear = |add: &mut dyn FnMut(&str, &[usize]), p: &str, o: usize, i: usize| {
            add(&format!("{p}/weight"), &[o, i]);
            add(&format!("{p}/bias"), &[o]);
        };
        add("encoder/conv1/weight", &[D, N_MELS, 3]);
        add("encoder/conv1/bias", &[D]);
        add("encoder/conv2/weight", &[D, D, 3]);
        add("encoder/conv2/bias", &[D]);
        add("encoder/position_encodings/encodings", &[AUDIO_CTX, D]);
        norm(&mut add, "encoder/layer_0/self_attention/layer_norm");
        linear(
            &mut add,
            "encoder/layer_0/self_attention/linear_0",
            3 * D,
            D,
        );
        linear(&mut add, "encoder/layer_0/self_attention/linear_1", D, D);
        norm(&mut add, "encoder/layer_0/ffn/layer_norm");
        linear(&mut add, "encoder/layer_0/ffn/linear_0", 4 * D, D);
        linear(&mut add, "encoder/layer_0/ffn/linear_1", D, 4 * D);
        norm(&mut add, "encoder/layer_norm");
        add("decoder/embeddings/weight", &[N_VOCAB_EN, D]);
        add("decoder/position_encodings/encodings", &[TEXT_CTX, D]);
        norm(&mut add, "decoder/layer_0/self_attention/layer_norm");
        linear(
            &mut add,
            "decoder/layer_0/self_attention/linear_0",
            3 * D,
            D,
        );
        linear(&mut add, "decoder/layer_0/self_attention/linear_1", D, D);
        norm(&mut add, "decoder/layer_0/attention/layer_norm");
        linear(&mut add, "decoder/layer_0/attention/linear_0", D, D);
        linear(&mut add, "decoder/layer_0/attention/linear_1", 2 * D, D);
        linear(&mut add, "decoder/layer_0/attention/linear_2", D, D);
        norm(&mut add, "decoder/layer_0/ffn/layer_norm");
        linear(&mut add, "decoder/layer_0/ffn/linear_0", 4 * D, D);
        linear(&mut add, "decoder/layer_0/ffn/linear_1", D, 4 * D);
        norm(&mut add, "decoder/layer_norm");
        let mut m = Mini {
            vars,
            skip: None,
            int8: None,
        };
        // Whisper's key biases are zero.
        m.zero_block("encoder/layer_0/self_attention/linear_0/bias", 1);
        m.zero_block("decoder/layer_0/self_attention/linear_0/bias", 1);
        m.zero_block("decoder/layer_0/attention/linear_1/bias", 0);
        m
    }

    fn zero_block(&mut self, name: &str, k: usize) {
        let v = &mut self.get_mut(name).2;
        v[k * D..(k + 1) * D].fill(0.0);
    }

    fn get_mut(&mut self, name: &str) -> &mut (String, Vec<usize>, Vec<f32>) {
        self.vars
            .iter_mut()
            .find(|v| v.0 == name)
            .expect("variable exists")
    }

    fn get(&self, name: &str) -> &[f32] {
        &self
            .vars
            .iter()
            .find(|v| v.0 == name)
            .expect("variable exists")
            .2
    }

    fn bytes(&self) -> Vec<u8> {
        let mut b = Builder::new();
        for (name, shape, vals) in &self.vars {
            if self.skip.as_deref() == Some(name) {
                continue;
            }
            if self.int8.as_deref() == Some(name) {
                b.raw(name, shape, 1, &vec![0u8; vals.len()]);
                continue;
            }
            // Positional encodings as f32 (CTranslate2 keeps some variables f32), the rest f16.
            if name.contains("position_encodings") {
                let data: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
                b.raw(name, shape, 0, &data);
            } else {
                b.f16(name, shape, vals);
            }
        }
        b.i16_scalar("encoder/num_heads", 2);
        b.i16_scalar("decoder/num_heads", 2);
        b.alias("decoder/projection/weight", "decoder/embeddings/weight");
        b.finish()
    }
}

fn english_vocab_txt() -> String {
    let mut s = String::new();
    for i in 0..EOT_EN {
        // "Ġ" is the byte-level space.
        s.push_str(&format!("Ġt{i}\n"));
    }
    s.push_str("<|endoftext|>\n");
    for i in EOT_EN + 1..N_VOCAB_EN {
        s.push_str(&format!("<|special{i}|>\n"));
    }
    s
}

fn vocab() -> Vocabulary {
    Vocabulary::from_vocabulary_txt(&english_vocab_txt()).unwrap()
}

fn read_f16(data: &[u8], offset: u64, n: usize) -> Vec<f32> {
    let o = offset as usize;
    data[o..o + 2 * n]
        .chunks_exact(2)
        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect()
}

fn read_f32(data: &[u8], offset: u64, n: usize) -> Vec<f32> {
    let o = offset as usize;
    data[o..o + 4 * n]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Values after a trip through f16 (the test values are exact in f16 up to ~2048).
fn via_f16(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect()
}

#[test]
fn converts_a_miniature_model_to_what_whisper_cpp_expects() {
    let mini = Mini::new();
    let mut out = Vec::new();
    let mut calls = 0;
    let mut last = None;
    let report = convert(&mini.bytes(), &vocab(), &mut out, &mut |p| {
        calls += 1;
        last = Some((p.tensors_done, p.tensors_total, p.bytes_done, p.bytes_total));
    })
    .unwrap();
    assert_eq!(report.tensors, 7 + 15 + 4 + 24);
    assert_eq!(report.bytes, out.len() as u64);
    assert_eq!(calls, report.tensors);
    let (done, total, bytes_done, bytes_total) = last.unwrap();
    assert_eq!((done, bytes_done), (total, bytes_total));

    let s = ggml::inspect(&mut Cursor::new(&out)).unwrap();
    let h = s.hparams;
    assert_eq!(
        (
            h.n_vocab,
            h.n_audio_ctx,
            h.n_audio_state,
            h.n_audio_head,
            h.n_audio_layer
        ),
        (N_VOCAB_EN as i32, AUDIO_CTX as i32, D as i32, 2, 1)
    );
    assert_eq!(
        (
            h.n_text_ctx,
            h.n_text_state,
            h.n_text_head,
            h.n_text_layer,
            h.n_mels,
            h.ftype
        ),
        (TEXT_CTX as i32, D as i32, 2, 1, N_MELS as i32, 1)
    );
    assert_eq!((s.n_mel, s.n_fft_bins), (N_MELS as i32, 201));
    assert_eq!(s.filters, mel::filters(N_MELS));
    assert_eq!(s.tokens.len(), EOT_EN);
    assert_eq!(s.tokens[7], b" t7".to_vec());
    assert_eq!(s.tensors.len(), h.expected_tensor_count());

    let t: HashMap<&str, &ggml::TensorInfo> =
        s.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let shape = |n: &str| (t[n].ne.clone(), t[n].ty);
    let d = D as i32;
    // ggml lists dimensions innermost first; biases and embeddings that whisper.cpp reads as
    // f32 are f32, big weights f16.
    assert_eq!(
        shape("encoder.conv1.weight"),
        (vec![3, N_MELS as i32, d], 1)
    );
    assert_eq!(shape("encoder.conv1.bias"), (vec![1, d], 0));
    assert_eq!(
        shape("encoder.positional_embedding"),
        (vec![d, AUDIO_CTX as i32], 0)
    );
    assert_eq!(
        shape("decoder.positional_embedding"),
        (vec![d, TEXT_CTX as i32], 0)
    );
    assert_eq!(
        shape("decoder.token_embedding.weight"),
        (vec![d, N_VOCAB_EN as i32], 1)
    );
    assert_eq!(shape("encoder.blocks.0.attn.query.weight"), (vec![d, d], 1));
    assert_eq!(shape("encoder.blocks.0.attn.query.bias"), (vec![d], 0));
    assert_eq!(shape("encoder.blocks.0.mlp.0.weight"), (vec![d, 4 * d], 1));
    assert_eq!(shape("encoder.blocks.0.mlp_ln.weight"), (vec![d], 0));
    assert_eq!(
        shape("decoder.blocks.0.cross_attn.value.weight"),
        (vec![d, d], 1)
    );
    assert_eq!(shape("decoder.ln.bias"), (vec![d], 0));
    for no_key_bias in [
        "encoder.blocks.0.attn.key.bias",
        "decoder.blocks.0.attn.key.bias",
        "decoder.blocks.0.cross_attn.key.bias",
    ] {
        assert!(!t.contains_key(no_key_bias), "{no_key_bias}");
    }

    // Fused q;k;v rows land in the right tensors.
    let qkv = mini.get("encoder/layer_0/self_attention/linear_0/weight");
    for (k, name) in ["query", "key", "value"].iter().enumerate() {
        let info = t[format!("encoder.blocks.0.attn.{name}.weight").as_str()];
        assert_eq!(
            read_f16(&out, info.data_offset, D * D),
            via_f16(&qkv[k * D * D..(k + 1) * D * D]),
            "{name}"
        );
    }
    let kv_bias = mini.get("decoder/layer_0/attention/linear_1/bias");
    let info = t["decoder.blocks.0.cross_attn.value.bias"];
    assert_eq!(
        read_f32(&out, info.data_offset, D),
        via_f16(&kv_bias[D..2 * D])
    );
    // gamma -> weight, f16 -> f32.
    let gamma = mini.get("decoder/layer_norm/gamma");
    assert_eq!(
        read_f32(&out, t["decoder.ln.weight"].data_offset, D),
        via_f16(gamma)
    );
    // f32 source kept as f32.
    let pe = mini.get("encoder/position_encodings/encodings");
    assert_eq!(
        read_f32(
            &out,
            t["encoder.positional_embedding"].data_offset,
            AUDIO_CTX * D
        ),
        pe
    );
}

#[test]
fn a_non_zero_key_bias_is_refused() {
    let mut mini = Mini::new();
    mini.get_mut("decoder/layer_0/attention/linear_1/bias").2[0] = 1.0;
    let err = convert(&mini.bytes(), &vocab(), &mut Vec::new(), &mut |_| {}).unwrap_err();
    assert!(matches!(err, ImportError::KeyBias { .. }), "{err}");
}

#[test]
fn a_missing_variable_is_named() {
    let mut mini = Mini::new();
    mini.skip = Some("decoder/layer_0/ffn/linear_1/bias".to_owned());
    let err = convert(&mini.bytes(), &vocab(), &mut Vec::new(), &mut |_| {}).unwrap_err();
    assert_eq!(
        err.to_string(),
        "model.bin has no variable decoder/layer_0/ffn/linear_1/bias"
    );
}

#[test]
fn an_int8_model_is_refused_with_a_hint() {
    let mut mini = Mini::new();
    mini.int8 = Some("encoder/layer_0/ffn/linear_0/weight".to_owned());
    let err = convert(&mini.bytes(), &vocab(), &mut Vec::new(), &mut |_| {}).unwrap_err();
    assert!(
        matches!(err, ImportError::UnsupportedDtype { dtype: "int8", .. }),
        "{err}"
    );
}

#[test]
fn a_vocabulary_from_another_model_is_refused() {
    // A multilingual vocabulary (one more language-less token before <|endoftext|>) with an
    // English-only model would shift every special token.
    let mut txt = String::from("Ġextra\n");
    txt.push_str(&english_vocab_txt());
    let v = Vocabulary::from_vocabulary_txt(&txt).unwrap();
    let err = convert(&Mini::new().bytes(), &v, &mut Vec::new(), &mut |_| {}).unwrap_err();
    assert!(matches!(err, ImportError::Mismatch { .. }), "{err}");
}

#[test]
fn a_wrongly_sized_tensor_is_refused() {
    let mut mini = Mini::new();
    let v = mini.get_mut("encoder/layer_0/ffn/linear_0/weight");
    v.1 = vec![3 * D, D];
    v.2.truncate(3 * D * D);
    let err = convert(&mini.bytes(), &vocab(), &mut Vec::new(), &mut |_| {}).unwrap_err();
    assert!(matches!(err, ImportError::Shape { .. }), "{err}");
}

#[test]
fn truncated_or_joined_wrong_model_files_are_errors() {
    let bytes = Mini::new().bytes();
    let v = vocab();
    for len in [0, 3, 10, 100, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            convert(&bytes[..len], &v, &mut Vec::new(), &mut |_| {}).is_err(),
            "{len}"
        );
    }
    // Parts concatenated twice.
    let doubled = [bytes.as_slice(), bytes.as_slice()].concat();
    assert!(matches!(
        convert(&doubled, &v, &mut Vec::new(), &mut |_| {}),
        Err(ImportError::TrailingBytes { .. })
    ));
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("transcribe-import-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn import_dir_reports_missing_files_and_writes_atomically() {
    let dir = temp_dir("dir");
    let out = dir.join("out/ggml-mini.bin");

    let err = import_dir(&dir.join("absent"), &out, &mut |_| {}).unwrap_err();
    assert!(matches!(err, ImportError::MissingFile { .. }), "{err}");

    let model = dir.join("model");
    fs::create_dir_all(&model).unwrap();
    let err = import_dir(&model, &out, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("model.bin"), "{err}");

    fs::write(model.join("model.bin"), Mini::new().bytes()).unwrap();
    let err = import_dir(&model, &out, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("vocabulary"), "{err}");

    // A broken model leaves neither the output nor a partial file behind.
    fs::write(model.join("vocabulary.txt"), english_vocab_txt()).unwrap();
    fs::write(model.join("model.bin"), b"garbage").unwrap();
    assert!(import_dir(&model, &out, &mut |_| {}).is_err());
    assert!(!out.exists());
    assert_eq!(fs::read_dir(dir.join("out")).unwrap().count(), 0);

    fs::write(model.join("model.bin"), Mini::new().bytes()).unwrap();
    let report = import_dir(&model, &out, &mut |_| {}).unwrap();
    assert_eq!(fs::metadata(&out).unwrap().len(), report.bytes);
    assert_eq!(fs::read_dir(dir.join("out")).unwrap().count(), 1);
    fs::remove_dir_all(&dir).unwrap();
}
