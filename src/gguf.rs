//! llama.cpp's GGUF files, read with candle's `gguf_file`: typed metadata look-ups whose errors
//! name the file and the key, and tensors dequantized to f32.
//!
//! A GGUF file is one model in one file: its configuration and its tokenizer are metadata
//! (`llama.block_count`, `tokenizer.ggml.tokens`, ...), its weights are tensors in llama.cpp's
//! names and (usually) quantized blocks. [`crate::tokenizer::Tokenizer::from_gguf`] builds the
//! tokenizer from the metadata and [`crate::models::gguf`] the Hugging Face config and weights;
//! both read through this one reader, so a damaged or unexpected file fails the same clear way.
use crate::{Error, Result};
use candle_core::quantized::gguf_file::{Content, TensorInfo, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use std::path::{Path, PathBuf};

/// An open GGUF file: its metadata and the table of its tensors (the tensor data stays on disk
/// until [`GgufFile::qtensor`] / [`GgufFile::dequantize`] reads it).
pub struct GgufFile {
    path: PathBuf,
    content: Content,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("metadata", &self.content.metadata.len())
            .field("tensors", &self.content.tensor_infos.len())
            .finish()
    }
}

/// The name GGUF's specification gives a metadata value's type, for error messages.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::U8(_) => "uint8",
        Value::I8(_) => "int8",
        Value::U16(_) => "uint16",
        Value::I16(_) => "int16",
        Value::U32(_) => "uint32",
        Value::I32(_) => "int32",
        Value::U64(_) => "uint64",
        Value::I64(_) => "int64",
        Value::F32(_) => "float32",
        Value::F64(_) => "float64",
        Value::Bool(_) => "bool",
        Value::String(_) => "string",
        Value::Array(_) => "array",
    }
}

/// An integer value of any width, as i128 (every GGUF integer fits).
fn as_int(v: &Value) -> Option<i128> {
    Some(match v {
        Value::U8(x) => *x as i128,
        Value::I8(x) => *x as i128,
        Value::U16(x) => *x as i128,
        Value::I16(x) => *x as i128,
        Value::U32(x) => *x as i128,
        Value::I32(x) => *x as i128,
        Value::U64(x) => *x as i128,
        Value::I64(x) => *x as i128,
        _ => return None,
    })
}

impl GgufFile {
    /// Reads the header, metadata and tensor table of `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = std::fs::File::open(&path).map_err(|e| crate::io::read_error(&path, e))?;
        let mut reader = std::io::BufReader::new(file);
        let content = Content::read(&mut reader).map_err(|e| Error::Config {
            path: path.clone(),
            message: format!(
                "not a readable GGUF file ({e}); give a llama.cpp .gguf file, downloaded again if it was cut short"
            ),
        })?;
        Ok(GgufFile { path, content })
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An error about this file.
    pub fn error(&self, message: impl Into<String>) -> Error {
        Error::Config {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    fn wrong_type(&self, key: &str, v: &Value, expected: &str) -> Error {
        self.error(format!(
            "metadata `{key}` is a {}, expected {expected}",
            type_name(v)
        ))
    }

    /// The raw metadata value of `key`, when present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    /// Every metadata key, sorted.
    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.content.metadata.keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    }

    /// A value that must be present: `found` of it, or an error naming the missing key.
    pub fn required<T>(&self, key: &str, found: Result<Option<T>>) -> Result<T> {
        found?.ok_or_else(|| self.error(format!("metadata `{key}` is missing")))
    }

    /// The string `key`, if present.
    pub fn string(&self, key: &str) -> Result<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.wrong_type(key, v, "a string")),
        }
    }

    /// The non-negative integer `key` (of any integer width), if present.
    pub fn usize(&self, key: &str) -> Result<Option<usize>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match as_int(v).and_then(|x| usize::try_from(x).ok()) {
                Some(x) => Ok(Some(x)),
                None => Err(self.wrong_type(key, v, "a non-negative integer")),
            },
        }
    }

    /// The number `key` (float or integer), if present. A float32 becomes the f64 of the same
    /// value, as Python's `float(numpy.float32)` gives it.
    pub fn f64(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::F32(x)) => Ok(Some(*x as f64)),
            Some(Value::F64(x)) => Ok(Some(*x)),
            Some(v) => match as_int(v) {
                Some(x) => Ok(Some(x as f64)),
                None => Err(self.wrong_type(key, v, "a number")),
            },
        }
    }

    /// The boolean `key`, if present.
    pub fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong_type(key, v, "a bool")),
        }
    }

    fn array(&self, key: &str) -> Result<Option<&Vec<Value>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(v) => Err(self.wrong_type(key, v, "an array")),
        }
    }

    /// The array of strings `key`, if present.
    pub fn strings(&self, key: &str) -> Result<Option<Vec<&str>>> {
        let Some(a) = self.array(key)? else {
            return Ok(None);
        };
        a.iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.as_str()),
                v => Err(self.wrong_type(&format!("{key}[{i}]"), v, "a string")),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// The array of integers `key`, if present.
    pub fn ints(&self, key: &str) -> Result<Option<Vec<i64>>> {
        let Some(a) = self.array(key)? else {
            return Ok(None);
        };
        a.iter()
            .enumerate()
            .map(
                |(i, v)| match as_int(v).and_then(|x| i64::try_from(x).ok()) {
                    Some(x) => Ok(x),
                    None => Err(self.wrong_type(&format!("{key}[{i}]"), v, "an integer")),
                },
            )
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// The array of numbers `key` (`tokenizer.ggml.scores`), if present, each as [`f64`](Self::f64)
    /// reads one.
    pub fn floats(&self, key: &str) -> Result<Option<Vec<f64>>> {
        let Some(a) = self.array(key)? else {
            return Ok(None);
        };
        a.iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::F32(x) => Ok(*x as f64),
                Value::F64(x) => Ok(*x),
                v => as_int(v)
                    .map(|x| x as f64)
                    .ok_or_else(|| self.wrong_type(&format!("{key}[{i}]"), v, "a number")),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// `general.architecture` (`llama`, `qwen2`, ...), which every GGUF file states.
    pub fn architecture(&self) -> Result<&str> {
        self.required("general.architecture", self.string("general.architecture"))
    }

    /// Every tensor's name, sorted.
    pub fn tensor_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .content
            .tensor_infos
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        names
    }

    /// Whether the file holds a tensor of that name.
    pub fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.content
            .tensor_infos
            .get(name)
            .ok_or_else(|| self.error(format!("has no tensor `{name}`")))
    }

    /// A tensor's shape in row-major order (`token_embd.weight`: `[vocab, hidden]`; llama.cpp
    /// writes the dimensions the other way round, and candle turns them back).
    pub fn tensor_shape(&self, name: &str) -> Result<Vec<usize>> {
        Ok(self.info(name)?.shape.dims().to_vec())
    }

    /// A tensor's storage type (`Q4_1`, `Q8_0`, `F32`, ...).
    pub fn tensor_dtype(&self, name: &str) -> Result<GgmlDType> {
        Ok(self.info(name)?.ggml_dtype)
    }

    /// A tensor as stored (quantized blocks stay quantized), on `device`.
    pub fn qtensor(&self, name: &str, device: &Device) -> Result<QTensor> {
        let info = self.info(name)?;
        let file =
            std::fs::File::open(&self.path).map_err(|e| crate::io::read_error(&self.path, e))?;
        let mut reader = std::io::BufReader::new(file);
        info.read(&mut reader, self.content.tensor_data_offset, device)
            .map_err(|e| self.error(format!("cannot read tensor `{name}`: {e}")))
    }

    /// A tensor dequantized to f32, on `device`.
    pub fn dequantize(&self, name: &str, device: &Device) -> Result<Tensor> {
        let q = self.qtensor(name, device)?;
        q.dequantize(device)
            .map_err(|e| self.error(format!("cannot dequantize tensor `{name}`: {e}")))
    }
}
