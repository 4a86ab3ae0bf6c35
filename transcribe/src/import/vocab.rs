//! Whisper's token vocabulary, read from CTranslate2's `vocabulary.txt` (one token per line,
//! id = line number) or, failing that, a Hugging Face `tokenizer.json`.
//!
//! Both hold GPT-2 byte-level BPE strings: every byte is shown as a printable character
//! (bytes_to_unicode). whisper.cpp wants the raw bytes, so each character is mapped back.
//! Only the ordinary tokens (ids below `<|endoftext|>`) are written; whisper.cpp numbers the
//! special tokens itself from the model's vocabulary size.

use super::ImportError;

pub const END_OF_TEXT: &str = "<|endoftext|>";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocabulary {
    /// Ordinary tokens as raw bytes, by id.
    pub tokens: Vec<Vec<u8>>,
    /// Id of `<|endoftext|>` (= number of ordinary tokens).
    pub eot_id: usize,
    /// Every entry in the source, special tokens included.
    pub total: usize,
}

impl Vocabulary {
    /// From `vocabulary.txt`. Lines are split on `\n` only: some tokens contain U+0085 or
    /// U+2028, which `str::lines`-style splitting would treat as line breaks.
    pub fn from_vocabulary_txt(text: &str) -> Result<Vocabulary, ImportError> {
        let mut entries: Vec<&str> = text.split('\n').collect();
        if entries.last() == Some(&"") {
            entries.pop();
        }
        Self::from_entries(&entries)
    }

    /// From a Hugging Face `tokenizer.json`: `model.vocab` (token -> id) plus `added_tokens`.
    pub fn from_tokenizer_json(text: &str) -> Result<Vocabulary, ImportError> {
        let bad = |reason: &str| ImportError::Vocabulary {
            reason: format!("tokenizer.json: {reason}"),
        };
        let json: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(&format!("not JSON ({e})")))?;
        let vocab = json
            .pointer("/model/vocab")
            .and_then(|v| v.as_object())
            .ok_or_else(|| bad("no model.vocab object"))?;
        let mut pairs: Vec<(usize, &str)> = Vec::with_capacity(vocab.len());
        for (token, id) in vocab {
            let id = id
                .as_u64()
                .ok_or_else(|| bad("a token id is not a number"))?;
            pairs.push((id as usize, token.as_str()));
        }
        if let Some(added) = json.get("added_tokens").and_then(|v| v.as_array()) {
            for t in added {
                let id = t.get("id").and_then(|v| v.as_u64());
                let content = t.get("content").and_then(|v| v.as_str());
                if let (Some(id), Some(content)) = (id, content) {
                    pairs.push((id as usize, content));
                }
            }
        }
        let total = pairs.iter().map(|&(id, _)| id + 1).max().unwrap_or(0);
        // Whisper vocabularies have ~52k entries; an id far beyond that is a corrupt file and
        // must not size an allocation.
        if total > 4 * pairs.len() + 16 {
            return Err(bad(&format!("token id {} is out of range", total - 1)));
        }
        let mut entries: Vec<Option<&str>> = vec![None; total];
        for (id, token) in pairs {
            entries[id] = Some(token);
        }
        let eot = entries
            .iter()
            .position(|e| *e == Some(END_OF_TEXT))
            .ok_or_else(|| bad(&format!("no {END_OF_TEXT} token")))?;
        let mut dense = Vec::with_capacity(total);
        for (id, e) in entries.iter().enumerate() {
            match e {
                Some(t) => dense.push(*t),
                None if id >= eot => dense.push(""),
                None => return Err(bad(&format!("token id {id} is missing"))),
            }
        }
        Self::from_entries(&dense)
    }

    fn from_entries(entries: &[&str]) -> Result<Vocabulary, ImportError> {
        let eot_id = entries
            .iter()
            .position(|e| *e == END_OF_TEXT)
            .ok_or_else(|| ImportError::Vocabulary {
                reason: format!("no {END_OF_TEXT} entry"),
            })?;
        let decoder = byte_decoder();
        let mut tokens = Vec::with_capacity(eot_id);
        for (id, entry) in entries[..eot_id].iter().enumerate() {
            let mut bytes = Vec::with_capacity(entry.len());
            for c in entry.chars() {
                let b = decoder.get(c as usize).copied().flatten().ok_or_else(|| {
                    ImportError::Vocabulary {
                        reason: format!(
                            "token {id} has character U+{:04X}, outside GPT-2's byte alphabet",
                            c as u32
                        ),
                    }
                })?;
                bytes.push(b);
            }
            tokens.push(bytes);
        }
        Ok(Vocabulary {
            tokens,
            eot_id,
            total: entries.len(),
        })
    }
}

/// Inverse of GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the
/// other 68 bytes (controls, space, DEL, NBSP, soft hyphen) are shown as U+0100 + n in byte
/// order. Indexed by code point.
fn byte_decoder() -> [Option<u8>; 324] {
    let mut table = [None; 324];
    let printable = |b: u8| matches!(b, 33..=126 | 161..=172 | 174..=255);
    let mut n = 0;
    for b in 0..=255u8 {
        if printable(b) {
            table[usize::from(b)] = Some(b);
        } else {
            table[256 + n] = Some(b);
            n += 1;
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_byte_level_tokens() {
        // "Ġ" (U+0120) is the space byte, "Ċ" (U+010A) the newline byte.
        let text = "a\nĠthe\nĊ\nÃ©\n<|endoftext|>\n<|startoftranscript|>\n";
        let v = Vocabulary::from_vocabulary_txt(text).unwrap();
        assert_eq!(v.eot_id, 4);
        assert_eq!(v.total, 6);
        assert_eq!(
            v.tokens,
            vec![
                b"a".to_vec(),
                b" the".to_vec(),
                b"\n".to_vec(),
                "é".as_bytes().to_vec()
            ]
        );
    }

    #[test]
    fn splits_on_newline_only() {
        // U+0085 and U+2028 inside a token are outside the byte alphabet, so the error shows the
        // line was not split there (it would be a different token count otherwise).
        let err = Vocabulary::from_vocabulary_txt("x\u{2028}y\n<|endoftext|>").unwrap_err();
        assert!(err.to_string().contains("U+2028"), "{err}");
    }

    #[test]
    fn every_byte_round_trips() {
        let d = byte_decoder();
        let mut seen = [false; 256];
        for b in d.iter().flatten() {
            assert!(!seen[usize::from(*b)]);
            seen[usize::from(*b)] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(d[0x120], Some(b' '));
        assert_eq!(d[0x100], Some(0));
    }

    #[test]
    fn missing_end_of_text_is_an_error() {
        assert!(matches!(
            Vocabulary::from_vocabulary_txt("a\nb\n"),
            Err(ImportError::Vocabulary { .. })
        ));
        assert!(Vocabulary::from_vocabulary_txt("").is_err());
    }

    #[test]
    fn reads_tokenizer_json() {
        let json = r#"{"model": {"type": "BPE", "vocab": {"a": 0, "Ġb": 1}},
                       "added_tokens": [{"id": 2, "content": "<|endoftext|>"},
                                        {"id": 3, "content": "<|startoftranscript|>"}]}"#;
        let v = Vocabulary::from_tokenizer_json(json).unwrap();
        assert_eq!(v.eot_id, 2);
        assert_eq!(v.total, 4);
        assert_eq!(v.tokens, vec![b"a".to_vec(), b" b".to_vec()]);
    }

    #[test]
    fn bad_tokenizer_json_is_an_error() {
        for bad in [
            "not json",
            "{}",
            r#"{"model": {"vocab": {"a": "zero"}}}"#,
            r#"{"model": {"vocab": {"a": 0, "<|endoftext|>": 4000000000}}}"#,
            r#"{"model": {"vocab": {"a": 0, "<|endoftext|>": 2}}}"#,
        ] {
            assert!(Vocabulary::from_tokenizer_json(bad).is_err(), "{bad}");
        }
    }
}
