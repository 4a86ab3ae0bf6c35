//! Reader for CTranslate2's `model.bin` (binary version 6), borrowing tensor data from the
//! caller's buffer. Every length and offset is checked: a truncated or foreign file is an
//! error naming the byte offset, never a panic or a huge allocation.
//!
//! Layout (little-endian):
//! `u32 version | str spec_name | u32 spec_revision | u32 n_variables |
//!  n × (str name | u8 rank | u32 dims[rank] | u8 dtype | u32 nbytes | data) |
//!  u32 n_aliases | n × (str alias | str target)`,
//! where `str` is a u16 length that counts a trailing NUL, then the bytes and the NUL.

use std::collections::HashMap;

use super::ImportError;

/// The only binary version whose layout is known here.
pub const BINARY_VERSION: u32 = 6;
/// The spec a Whisper model declares.
pub const WHISPER_SPEC: &str = "WhisperSpec";
/// No Whisper variable has more dimensions (conv weights have 3); more means a misread file.
const MAX_RANK: u8 = 8;
/// Aliases may chain; a longer chain is a cycle.
const MAX_ALIAS_DEPTH: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl Dtype {
    fn from_code(code: u8) -> Option<Dtype> {
        Some(match code {
            0 => Dtype::F32,
            1 => Dtype::I8,
            2 => Dtype::I16,
            3 => Dtype::I32,
            4 => Dtype::F16,
            5 => Dtype::Bf16,
            _ => return None,
        })
    }

    pub fn size_bytes(self) -> usize {
        match self {
            Dtype::I8 => 1,
            Dtype::I16 | Dtype::F16 | Dtype::Bf16 => 2,
            Dtype::F32 | Dtype::I32 => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "float32",
            Dtype::I8 => "int8",
            Dtype::I16 => "int16",
            Dtype::I32 => "int32",
            Dtype::F16 => "float16",
            Dtype::Bf16 => "bfloat16",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Variable<'a> {
    pub name: &'a str,
    /// Row-major dimensions, outermost first (numpy order). Empty for scalars.
    pub shape: Vec<usize>,
    pub dtype: Dtype,
    pub data: &'a [u8],
}

impl Variable<'_> {
    pub fn n_elements(&self) -> usize {
        self.shape.iter().product()
    }

    /// The value of an integer or boolean scalar.
    pub fn scalar_int(&self) -> Option<i64> {
        if !self.shape.is_empty() && self.n_elements() != 1 {
            return None;
        }
        let d = self.data;
        Some(match self.dtype {
            Dtype::I8 => i64::from(*d.first()? as i8),
            Dtype::I16 => i64::from(i16::from_le_bytes(d.get(..2)?.try_into().ok()?)),
            Dtype::I32 => i64::from(i32::from_le_bytes(d.get(..4)?.try_into().ok()?)),
            _ => return None,
        })
    }
}

#[derive(Debug)]
pub struct Model<'a> {
    pub spec_revision: u32,
    variables: Vec<Variable<'a>>,
    by_name: HashMap<&'a str, usize>,
    aliases: HashMap<&'a str, &'a str>,
}

impl<'a> Model<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Model<'a>, ImportError> {
        let mut r = Reader { bytes, pos: 0 };
        let version = r.u32("binary version")?;
        if version != BINARY_VERSION {
            return Err(ImportError::UnsupportedVersion { found: version });
        }
        let spec = r.string("spec name")?;
        if spec != WHISPER_SPEC {
            return Err(ImportError::NotWhisper {
                spec: spec.to_owned(),
            });
        }
        let spec_revision = r.u32("spec revision")?;
        let n_variables = r.u32("variable count")? as usize;
        // Each variable takes at least 8 bytes, so the count is bounded by the file size;
        // this keeps a corrupt count from reserving gigabytes.
        let mut variables = Vec::with_capacity(n_variables.min(bytes.len() / 8));
        let mut by_name = HashMap::new();
        for _ in 0..n_variables {
            let at = r.pos;
            let name = r.string("variable name")?;
            let rank = r.u8("rank")?;
            if rank > MAX_RANK {
                return Err(ImportError::BadVariable {
                    name: name.to_owned(),
                    reason: format!("rank {rank} at byte {at}"),
                });
            }
            let mut shape = Vec::with_capacity(usize::from(rank));
            for _ in 0..rank {
                shape.push(r.u32("dimension")? as usize);
            }
            let code = r.u8("dtype")?;
            let dtype = Dtype::from_code(code).ok_or_else(|| ImportError::BadVariable {
                name: name.to_owned(),
                reason: format!("unknown dtype code {code}"),
            })?;
            let nbytes = r.u32("data size")? as usize;
            let expected = shape
                .iter()
                .try_fold(dtype.size_bytes(), |acc, &d| acc.checked_mul(d));
            if expected != Some(nbytes) {
                return Err(ImportError::BadVariable {
                    name: name.to_owned(),
                    reason: format!(
                        "{nbytes} data bytes for shape {shape:?} of {}",
                        dtype.name()
                    ),
                });
            }
            let data = r.take(nbytes, "variable data")?;
            if by_name.insert(name, variables.len()).is_some() {
                return Err(ImportError::BadVariable {
                    name: name.to_owned(),
                    reason: "appears twice".to_owned(),
                });
            }
            variables.push(Variable {
                name,
                shape,
                dtype,
                data,
            });
        }
        let n_aliases = r.u32("alias count")? as usize;
        let mut aliases = HashMap::new();
        for _ in 0..n_aliases {
            let alias = r.string("alias")?;
            let target = r.string("alias target")?;
            aliases.insert(alias, target);
        }
        if r.pos != bytes.len() {
            return Err(ImportError::TrailingBytes {
                count: bytes.len() - r.pos,
            });
        }
        Ok(Model {
            spec_revision,
            variables,
            by_name,
            aliases,
        })
    }

    /// A variable by name, following aliases.
    pub fn get(&self, name: &str) -> Option<&Variable<'a>> {
        let mut name = name;
        for _ in 0..MAX_ALIAS_DEPTH {
            if let Some(&i) = self.by_name.get(name) {
                return self.variables.get(i);
            }
            name = self.aliases.get(name)?;
        }
        None
    }

    pub fn variables(&self) -> &[Variable<'a>] {
        &self.variables
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ImportError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(ImportError::Truncated {
                offset: self.pos,
                what,
            })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, ImportError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, ImportError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, ImportError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self, what: &'static str) -> Result<&'a str, ImportError> {
        let at = self.pos;
        let len = usize::from(self.u16(what)?);
        let b = self.take(len, what)?;
        let text = match b.split_last() {
            Some((0, text)) => text,
            _ => return Err(ImportError::BadString { offset: at, what }),
        };
        std::str::from_utf8(text).map_err(|_| ImportError::BadString { offset: at, what })
    }
}

/// Writes a model.bin; used by the tests to build small models.
#[cfg(test)]
pub(crate) mod build {
    use super::*;

    pub struct Builder {
        out: Vec<u8>,
        n: u32,
        body: Vec<u8>,
        aliases: Vec<(String, String)>,
    }

    fn put_str(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    impl Builder {
        pub fn new() -> Self {
            let mut out = Vec::new();
            out.extend_from_slice(&BINARY_VERSION.to_le_bytes());
            put_str(&mut out, WHISPER_SPEC);
            out.extend_from_slice(&3u32.to_le_bytes());
            Builder {
                out,
                n: 0,
                body: Vec::new(),
                aliases: Vec::new(),
            }
        }

        pub fn raw(&mut self, name: &str, shape: &[usize], dtype_code: u8, data: &[u8]) {
            put_str(&mut self.body, name);
            self.body.push(shape.len() as u8);
            for &d in shape {
                self.body.extend_from_slice(&(d as u32).to_le_bytes());
            }
            self.body.push(dtype_code);
            self.body
                .extend_from_slice(&(data.len() as u32).to_le_bytes());
            self.body.extend_from_slice(data);
            self.n += 1;
        }

        /// An f16 variable holding `values`.
        pub fn f16(&mut self, name: &str, shape: &[usize], values: &[f32]) {
            let data: Vec<u8> = values
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect();
            self.raw(name, shape, 4, &data);
        }

        pub fn i16_scalar(&mut self, name: &str, v: i16) {
            self.raw(name, &[], 2, &v.to_le_bytes());
        }

        pub fn alias(&mut self, alias: &str, target: &str) {
            self.aliases.push((alias.to_owned(), target.to_owned()));
        }

        pub fn finish(mut self) -> Vec<u8> {
            self.out.extend_from_slice(&self.n.to_le_bytes());
            self.out.extend_from_slice(&self.body);
            self.out
                .extend_from_slice(&(self.aliases.len() as u32).to_le_bytes());
            for (a, t) in &self.aliases {
                put_str(&mut self.out, a);
                put_str(&mut self.out, t);
            }
            self.out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::build::Builder;
    use super::*;

    fn small() -> Vec<u8> {
        let mut b = Builder::new();
        b.f16(
            "decoder/embeddings/weight",
            &[2, 3],
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        );
        b.i16_scalar("decoder/num_heads", 6);
        b.alias("decoder/projection/weight", "decoder/embeddings/weight");
        b.finish()
    }

    #[test]
    fn parses_variables_scalars_and_aliases() {
        let bytes = small();
        let m = Model::parse(&bytes).unwrap();
        assert_eq!(m.spec_revision, 3);
        assert_eq!(m.variables().len(), 2);
        let w = m.get("decoder/projection/weight").unwrap();
        assert_eq!(w.name, "decoder/embeddings/weight");
        assert_eq!(w.shape, vec![2, 3]);
        assert_eq!(w.dtype, Dtype::F16);
        assert_eq!(m.get("decoder/num_heads").unwrap().scalar_int(), Some(6));
        assert!(m.get("nope").is_none());
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = small();
        for len in 0..bytes.len() {
            assert!(Model::parse(&bytes[..len]).is_err(), "length {len}");
        }
    }

    #[test]
    fn foreign_files_are_rejected_with_a_reason() {
        let mut bytes = small();
        bytes[0] = 5;
        assert!(matches!(
            Model::parse(&bytes),
            Err(ImportError::UnsupportedVersion { found: 5 })
        ));

        let mut b = Vec::new();
        b.extend_from_slice(&6u32.to_le_bytes());
        b.extend_from_slice(&16u16.to_le_bytes());
        b.extend_from_slice(b"TransformerSpec\0");
        assert!(matches!(
            Model::parse(&b),
            Err(ImportError::NotWhisper { .. })
        ));

        let mut bytes = small();
        bytes.push(0);
        assert!(matches!(
            Model::parse(&bytes),
            Err(ImportError::TrailingBytes { count: 1 })
        ));

        assert!(Model::parse(b"PK\x03\x04 this is a zip, not a model").is_err());
    }

    #[test]
    fn size_mismatch_and_bad_dtype_are_rejected() {
        let mut b = Builder::new();
        b.raw("x", &[4], 4, &[0; 6]);
        assert!(matches!(
            Model::parse(&b.finish()),
            Err(ImportError::BadVariable { .. })
        ));
        let mut b = Builder::new();
        b.raw("x", &[1], 9, &[0; 2]);
        assert!(matches!(
            Model::parse(&b.finish()),
            Err(ImportError::BadVariable { .. })
        ));
        // Dimensions whose product overflows.
        let mut b = Builder::new();
        b.raw(
            "x",
            &[u32::MAX as usize, u32::MAX as usize, u32::MAX as usize],
            0,
            &[],
        );
        assert!(matches!(
            Model::parse(&b.finish()),
            Err(ImportError::BadVariable { .. })
        ));
    }

    #[test]
    fn alias_cycles_end() {
        let mut b = Builder::new();
        b.alias("a", "b");
        b.alias("b", "a");
        let bytes = b.finish();
        let m = Model::parse(&bytes).unwrap();
        assert!(m.get("a").is_none());
    }
}
