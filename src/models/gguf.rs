//! A llama.cpp GGUF file as a Hugging Face checkpoint: the `config.json` its metadata describes
//! and every tensor dequantized to f32 under its Hugging Face name, as transformers'
//! `load_gguf_checkpoint` builds them (`modeling_gguf_pytorch_utils.py`,
//! `integrations/ggml.py`), so a model loaded from the file computes what transformers' does.
//!
//! Two things differ from a safetensors checkpoint besides the names. llama.cpp stores the
//! query and key projections of Llama-style models with their rows permuted (its rope pairs
//! neighbouring dimensions, Hugging Face's pairs the two halves of a head); [`reverse_permute`]
//! undoes that exactly as transformers' `_reverse_permute_weights`. And a file without an
//! `output` tensor ties the language-model head to the embeddings.
use super::auto::AutoModelForCausalLM;
use super::labels::LabelConfig;
use super::model::Model;
use super::params::Params;
use super::qweights::QuantizedMatrix;
use super::registry::ModelConfig;
use crate::gguf::GgufFile;
use crate::{Error, Result};
use candle_core::quantized::{GgmlDType, QTensor, ggml_file::qtensor_from_ggml};
use candle_core::{DType, Device, Tensor};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// What a GGUF file holds, in Hugging Face's terms.
#[derive(Debug)]
pub struct GgufCheckpoint {
    /// `config.json` as transformers builds it from the metadata.
    pub config: Map<String, Value>,
    /// Every tensor, dequantized to f32, under its Hugging Face name (`model.layers.0...`).
    pub tensors: BTreeMap<String, Tensor>,
}

/// Reads `path` into a [`GgufCheckpoint`] with the tensors on `device`.
pub fn load_gguf_checkpoint(path: impl AsRef<Path>, device: &Device) -> Result<GgufCheckpoint> {
    let file = GgufFile::open(path)?;
    let config = config_from_gguf(&file)?;
    let tensors = tensors_from_gguf(&file, &config, device)?;
    Ok(GgufCheckpoint { config, tensors })
}

impl AutoModelForCausalLM {
    /// A causal LM from a llama.cpp GGUF file (SmolLM2, Llama, Mistral), its weights
    /// dequantized to f32 for training and analysis: the config its metadata describes, the
    /// family the registry gives that config's `model_type`, and the tensors under their Hugging
    /// Face names ([`load_gguf_checkpoint`]); what transformers'
    /// `AutoModelForCausalLM.from_pretrained(dir, gguf_file=..., dtype=float32)` loads. The
    /// tokenizer is in the same file: [`crate::tokenizer::Tokenizer::from_gguf`].
    pub fn from_gguf(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        crate::threads::init();
        let path = path.as_ref();
        let ckpt = load_gguf_checkpoint(path, device)?;
        let config = ModelConfig::from_map(&ckpt.config, path)?;
        let labels = LabelConfig::from_config_map(&ckpt.config, path)?;
        let tensors = ckpt.tensors.into_iter().collect();
        let p = Params::loaded(tensors, Vec::new(), path, device, DType::F32);
        let (model, report) = Model::build(
            config,
            ckpt.config,
            p,
            (super::heads::Task::CausalLm, labels),
            device,
        )?;
        // A GGUF file is the whole model: a tensor left over or one made up means the config
        // and the tensors disagree, and the model would silently compute something else.
        if !report.unused.is_empty() || !report.newly_initialized.is_empty() {
            return Err(Error::Config {
                path: path.to_path_buf(),
                message: format!(
                    "the config from the metadata and the tensors disagree: tensors the model did not use {:?}, weights the file lacks {:?}",
                    report.unused, report.newly_initialized
                ),
            });
        }
        let mut model = model;
        model.gguf = Some(Arc::from(path));
        Ok(AutoModelForCausalLM(model))
    }
}

/// The architectures whose tensors and metadata this module maps.
const SUPPORTED: &str = "llama (Llama, SmolLM2, Mistral)";

/// The `model_type` transformers gives the file: its `general.architecture`, where `llama`
/// becomes `mistral` when `general.name` is `mistral` (transformers' rule, kept as it is).
fn model_type(file: &GgufFile) -> Result<&'static str> {
    let arch = file.architecture()?;
    match arch {
        "llama" if file.string("general.name")? == Some("mistral") => Ok("mistral"),
        "llama" => Ok("llama"),
        other => Err(Error::Unsupported(format!(
            "{}: GGUF architecture `{other}` is not supported; supported: {SUPPORTED}",
            file.path().display()
        ))),
    }
}

/// The Hugging Face `config.json` of the file (transformers' `GGUF_CONFIG_MAPPING` for
/// `llama`, plus `tie_word_embeddings`, the token ids and the class name).
pub fn config_from_gguf(file: &GgufFile) -> Result<Map<String, Value>> {
    let model_type = model_type(file)?;
    let arch = file.architecture()?;
    let key = |k: &str| format!("{arch}.{k}");
    let need = |k: &str| -> Result<usize> {
        let full = key(k);
        file.required(&full, file.usize(&full))
    };
    let mut c = Map::new();
    c.insert("model_type".into(), json!(model_type));
    let class = match model_type {
        "mistral" => "MistralForCausalLM",
        _ => "LlamaForCausalLM",
    };
    c.insert("architectures".into(), json!([class]));
    let hidden = need("embedding_length")?;
    let heads = need("attention.head_count")?;
    c.insert("hidden_size".into(), json!(hidden));
    c.insert(
        "intermediate_size".into(),
        json!(need("feed_forward_length")?),
    );
    c.insert("num_hidden_layers".into(), json!(need("block_count")?));
    c.insert("num_attention_heads".into(), json!(heads));
    let kv = file
        .usize(&key("attention.head_count_kv"))?
        .unwrap_or(heads);
    c.insert("num_key_value_heads".into(), json!(kv));
    if let Some(d) = file.usize(&key("rope.dimension_count"))? {
        c.insert("head_dim".into(), json!(d));
    }
    if let Some(n) = file.usize(&key("context_length"))? {
        c.insert("max_position_embeddings".into(), json!(n));
    }
    if let Some(eps) = file.f64(&key("attention.layer_norm_rms_epsilon"))? {
        c.insert("rms_norm_eps".into(), json!(eps));
    }
    if let Some(theta) = file.f64(&key("rope.freq_base"))? {
        // Both spellings: transformers 5 writes `rope_parameters`, 4.x and most config.json
        // files on the Hub `rope_theta`.
        c.insert("rope_theta".into(), json!(theta));
        c.insert(
            "rope_parameters".into(),
            json!({"rope_theta": theta, "rope_type": "default"}),
        );
    }
    let vocab = match file.usize(&key("vocab_size"))? {
        Some(v) => v,
        // transformers: the number of tokens when the metadata has no vocab_size
        None => file
            .strings("tokenizer.ggml.tokens")?
            .map(|t| t.len())
            .ok_or_else(|| {
                file.error(format!(
                    "metadata has neither `{}` nor `tokenizer.ggml.tokens` to size the vocabulary",
                    key("vocab_size")
                ))
            })?,
    };
    c.insert("vocab_size".into(), json!(vocab));
    c.insert("hidden_act".into(), json!("silu"));
    c.insert("attention_bias".into(), json!(false));
    c.insert("mlp_bias".into(), json!(false));
    c.insert(
        "tie_word_embeddings".into(),
        json!(!file.has_tensor("output.weight")),
    );
    for (gguf, hf) in [
        ("tokenizer.ggml.bos_token_id", "bos_token_id"),
        ("tokenizer.ggml.eos_token_id", "eos_token_id"),
        ("tokenizer.ggml.padding_token_id", "pad_token_id"),
    ] {
        if let Some(id) = file.usize(gguf)? {
            c.insert(hf.into(), json!(id));
        }
    }
    Ok(c)
}

/// The Hugging Face name of a llama.cpp tensor of a Llama-style model, or `None` for a tensor
/// transformers does not load (`rope_freqs.weight`, which it recomputes from the config).
pub fn hf_name(gguf_name: &str) -> Result<Option<String>> {
    let fixed = match gguf_name {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        "rope_freqs.weight" => return Ok(None),
        _ => None,
    };
    if let Some(n) = fixed {
        return Ok(Some(n.to_string()));
    }
    let unknown = || {
        Error::Unsupported(format!(
            "GGUF tensor `{gguf_name}` has no Hugging Face name here (a Llama-style block has attn_norm, attn_q/k/v/output, ffn_norm, ffn_gate/up/down)"
        ))
    };
    let rest = gguf_name.strip_prefix("blk.").ok_or_else(unknown)?;
    let (layer, rest) = rest.split_once('.').ok_or_else(unknown)?;
    let layer: usize = layer.parse().map_err(|_| unknown())?;
    let (part, kind) = rest.rsplit_once('.').ok_or_else(unknown)?;
    if kind != "weight" && kind != "bias" {
        return Err(unknown());
    }
    let hf = match part {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return Err(unknown()),
    };
    Ok(Some(format!("model.layers.{layer}.{hf}.{kind}")))
}

/// Undoes llama.cpp's row permutation of a query or key projection with `heads` heads:
/// rows `(head, dim, pair)` back to `(head, pair, dim)` (transformers'
/// `_reverse_permute_weights`; works for a weight `[rows, cols]` and a bias `[rows]`).
pub fn reverse_permute(w: &Tensor, heads: usize) -> Result<Tensor> {
    let dims = w.dims().to_vec();
    let rows = dims[0];
    if heads == 0 || !rows.is_multiple_of(2 * heads) {
        return Err(Error::InvalidConfig(format!(
            "a query/key projection of {rows} rows does not split into {heads} heads of pairs"
        )));
    }
    let dim = rows / heads / 2;
    let mut split = vec![heads, dim, 2];
    split.extend_from_slice(&dims[1..]);
    Ok(w.reshape(split)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)?)
}

/// Every tensor of the file, dequantized to f32 and renamed, with the query and key rows
/// un-permuted (`config` gives the head counts).
pub fn tensors_from_gguf(
    file: &GgufFile,
    config: &Map<String, Value>,
    device: &Device,
) -> Result<BTreeMap<String, Tensor>> {
    let count = |k: &str| {
        config
            .get(k)
            .and_then(Value::as_u64)
            .map(|n| n as usize)
            .ok_or_else(|| file.error(format!("the config has no `{k}`")))
    };
    let heads = count("num_attention_heads")?;
    let kv_heads = count("num_key_value_heads")?;
    let mut out = BTreeMap::new();
    for name in file.tensor_names() {
        let Some(hf) = hf_name(name).map_err(|e| file.error(e.to_string()))? else {
            continue;
        };
        let mut t = file.dequantize(name, device)?;
        if name.contains(".attn_q.") {
            t = reverse_permute(&t, heads).map_err(|e| file.error(format!("`{name}`: {e}")))?;
        } else if name.contains(".attn_k.") {
            t = reverse_permute(&t, kv_heads).map_err(|e| file.error(format!("`{name}`: {e}")))?;
        }
        out.insert(hf, t);
    }
    Ok(out)
}

/// Whether a tensor of this storage type is kept in its blocks by `with_quantized_weights`
/// (float types are dequantized as usual).
fn is_block_quantized(dtype: GgmlDType) -> bool {
    !matches!(dtype, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16)
}

/// The quantized matrices of the file under their Hugging Face names, as `with_quantized_weights`
/// multiplies by them: every block-quantized 2-D weight of a block (`model.layers.N...`) and
/// the output head (`lm_head.weight`; the embeddings' blocks when the file ties the head). The
/// query and key rows are un-permuted in their blocks as [`reverse_permute`] does for tensors
/// (a block never crosses a row). `config` gives the head counts.
pub(crate) fn quantized_from_gguf(
    file: &GgufFile,
    config: &Map<String, Value>,
    device: &Device,
) -> Result<HashMap<String, QuantizedMatrix>> {
    let count = |k: &str| {
        config
            .get(k)
            .and_then(Value::as_u64)
            .map(|n| n as usize)
            .ok_or_else(|| file.error(format!("the config has no `{k}`")))
    };
    let heads = count("num_attention_heads")?;
    let kv_heads = count("num_key_value_heads")?;
    let tied = !file.has_tensor("output.weight");
    let mut out = HashMap::new();
    for name in file.tensor_names() {
        let Some(hf) = hf_name(name).map_err(|e| file.error(e.to_string()))? else {
            continue;
        };
        let hf = match hf.as_str() {
            "model.embed_tokens.weight" if tied => "lm_head.weight".to_string(),
            "model.embed_tokens.weight" => continue,
            _ => hf,
        };
        if !hf.ends_with(".weight")
            || file.tensor_shape(name)?.len() != 2
            || !is_block_quantized(file.tensor_dtype(name)?)
        {
            continue;
        }
        let mut q = file.qtensor(name, &Device::Cpu)?;
        let permute = |q: &QTensor, heads: usize| {
            permute_rows(q, heads).map_err(|e| file.error(format!("`{name}`: {e}")))
        };
        if name.contains(".attn_q.") {
            q = permute(&q, heads)?;
        } else if name.contains(".attn_k.") {
            q = permute(&q, kv_heads)?;
        }
        let q = if device.is_cpu() {
            q
        } else {
            let bytes = q.data()?;
            qtensor_from_ggml(q.dtype(), &bytes, q.shape().dims().to_vec(), device)?
        };
        out.insert(hf, QuantizedMatrix(Arc::new(q)));
    }
    Ok(out)
}

/// [`reverse_permute`] of a quantized matrix `[rows, cols]`: whole rows of blocks moved from
/// llama.cpp's order `(head, dim, pair)` to Hugging Face's `(head, pair, dim)`.
pub(crate) fn permute_rows(q: &QTensor, heads: usize) -> Result<QTensor> {
    let (rows, cols) = q.shape().dims2()?;
    let dtype = q.dtype();
    if heads == 0 || !rows.is_multiple_of(2 * heads) {
        return Err(Error::InvalidConfig(format!(
            "a query/key projection of {rows} rows does not split into {heads} heads of pairs"
        )));
    }
    if !cols.is_multiple_of(dtype.block_size()) {
        return Err(Error::InvalidConfig(format!(
            "a {dtype:?} matrix of {cols} columns is not whole blocks of {}",
            dtype.block_size()
        )));
    }
    let row_bytes = cols / dtype.block_size() * dtype.type_size();
    let data = q.data()?;
    if data.len() != rows * row_bytes {
        return Err(Error::InvalidConfig(format!(
            "a {dtype:?} matrix [{rows}, {cols}] holds {} bytes, expected {}",
            data.len(),
            rows * row_bytes
        )));
    }
    let dim = rows / heads / 2;
    let mut out = Vec::with_capacity(data.len());
    for r in 0..rows {
        let (h, pair, d) = (r / (2 * dim), (r / dim) % 2, r % dim);
        let old = h * 2 * dim + d * 2 + pair;
        out.extend_from_slice(&data[old * row_bytes..(old + 1) * row_bytes]);
    }
    Ok(qtensor_from_ggml(
        dtype,
        &out,
        vec![rows, cols],
        &q.device(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_as_transformers_maps_them() {
        let n = |s: &str| hf_name(s).unwrap();
        assert_eq!(
            n("blk.7.attn_q.weight").unwrap(),
            "model.layers.7.self_attn.q_proj.weight"
        );
        assert_eq!(
            n("blk.0.ffn_norm.weight").unwrap(),
            "model.layers.0.post_attention_layernorm.weight"
        );
        assert_eq!(
            n("blk.12.ffn_down.weight").unwrap(),
            "model.layers.12.mlp.down_proj.weight"
        );
        assert_eq!(n("token_embd.weight").unwrap(), "model.embed_tokens.weight");
        assert_eq!(n("rope_freqs.weight"), None);
        let e = hf_name("blk.0.attn_qkv.weight").unwrap_err().to_string();
        assert!(e.contains("attn_qkv"), "{e}");
        assert!(hf_name("blk.x.attn_q.weight").is_err());
    }

    #[test]
    fn reverse_permute_pairs_halves_as_numpy_does() {
        // 2 heads of 4 rows: llama.cpp's rows (h, d, p) -> Hugging Face's (h, p, d)
        let w = Tensor::arange(0f32, 8., &Device::Cpu)
            .unwrap()
            .reshape((8, 1))
            .unwrap();
        let r = reverse_permute(&w, 2)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(r, vec![0., 2., 1., 3., 4., 6., 5., 7.]);
        assert!(reverse_permute(&w, 3).is_err());
    }

    #[test]
    fn permute_rows_moves_quantized_rows_as_reverse_permute_moves_tensor_rows() {
        // 8 rows of 32 (one Q8_0 block each), row r filled with r: a permutation of whole rows
        // keeps each row's block, so dequantizing commutes with it exactly
        let w = Tensor::arange(0f32, 8., &Device::Cpu)
            .unwrap()
            .reshape((8, 1))
            .unwrap()
            .broadcast_as((8, 32))
            .unwrap()
            .contiguous()
            .unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let moved = permute_rows(&q, 2)
            .unwrap()
            .dequantize(&Device::Cpu)
            .unwrap();
        let want = reverse_permute(&q.dequantize(&Device::Cpu).unwrap(), 2).unwrap();
        let d = (moved - want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(d, 0.0);
        assert!(permute_rows(&q, 3).is_err());
    }
}
