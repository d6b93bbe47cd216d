//! Dense layers, LayerNorm and RMSNorm, with the one set of builders every family uses to load or draw
//! them under a Hugging Face name. A dense layer may carry a LoRA adapter (peft's `lora.Linear`),
//! which the builders attach when the [`Params`] they build from say so: the families never see
//! it.
use candle_core::Tensor;

use super::super::params::{Init, LoraAdapter, Params};
use super::super::qweights::QuantizedMatrix;
use super::Ctx;
use crate::Result;
use crate::kernels;

/// A dense layer's matrix: a tensor (f32, or bf16 in a `with_weight_dtype` copy), or llama.cpp's
/// quantized blocks in a `with_quantized_weights` copy (inference only).
#[derive(Clone)]
pub(crate) enum LinearWeight {
    Dense(Tensor),
    Quantized(QuantizedMatrix),
}

/// A dense layer. Hugging Face stores `nn.Linear` weights as `[out, in]` and GPT-2's `Conv1D`
/// as `[in, out]`; we keep each as stored so saving writes them back unchanged.
#[derive(Clone)]
pub(crate) struct Linear {
    pub weight: LinearWeight,
    pub bias: Option<Tensor>,
    /// `true` for GPT-2's `Conv1D` (`[in, out]`).
    pub conv1d: bool,
    /// A LoRA adapter added to the layer's output (peft's `get_peft_model`).
    pub lora: Option<LoraAdapter>,
}

/// The adapter's rank-`r` middle `scale · A(x)`, through the same linear kernel as the layer
/// (so a bf16 path that casts weights there casts these too). The scale is applied here, not to
/// the `[.., out]` result: the same product, one activation of the layer's width fewer.
fn lora_middle(l: &LoraAdapter, x: &Tensor) -> Result<Tensor> {
    Ok((kernels::linear(x, &l.a, None, false)? * l.scale)?)
}

/// The update of a layer's weight, in the layer's layout: `scale · B A` (`[out, in]`),
/// transposed for a `Conv1D` (`[in, out]`), in f32: what `merge_and_unload` adds.
pub(crate) fn lora_delta(l: &LoraAdapter, conv1d: bool) -> Result<Tensor> {
    let (a, b) = (
        l.a.to_dtype(candle_core::DType::F32)?,
        l.b.to_dtype(candle_core::DType::F32)?,
    );
    let d = (b.matmul(&a)? * l.scale)?;
    Ok(if conv1d { d.t()?.contiguous()? } else { d })
}

impl Linear {
    /// A layer named `name` over `weight` and `bias`, with the adapter `p` has for that name
    /// (none unless `p` builds a LoRA model that targets it).
    pub fn named(
        p: &mut Params,
        name: &str,
        weight: Tensor,
        bias: Option<Tensor>,
        conv1d: bool,
    ) -> Result<Self> {
        let (d_in, d_out) = match (weight.dims2()?, conv1d) {
            ((i, o), true) | ((o, i), false) => (i, o),
        };
        let lora = p.lora_adapter(name, d_in, d_out, conv1d)?;
        Ok(Self {
            weight: LinearWeight::Dense(weight),
            bias,
            conv1d,
            lora,
        })
    }

    /// The weight as a tensor, `None` for quantized blocks.
    pub fn dense_weight(&self) -> Option<&Tensor> {
        match &self.weight {
            LinearWeight::Dense(w) => Some(w),
            LinearWeight::Quantized(_) => None,
        }
    }

    /// The layer's product without its adapter: the dense kernel, or the quantized matmul
    /// plus the bias.
    fn product(&self, x: &Tensor) -> Result<Tensor> {
        match &self.weight {
            LinearWeight::Dense(w) => Ok(kernels::linear(x, w, self.bias.as_ref(), self.conv1d)?),
            LinearWeight::Quantized(q) => {
                let y = q.forward(x)?;
                Ok(match &self.bias {
                    Some(b) => y.broadcast_add(&b.to_dtype(y.dtype())?)?,
                    None => y,
                })
            }
        }
    }

    /// The layer's product plus peft's low-rank update `scale · B(A(x_a))`, where `x_a` is `x`
    /// (or, in training, `x` through the adapter's dropout). A dense layer runs both products as
    /// one kernel ([`kernels::lora_linear`]), which keeps only their sum for the backward pass.
    fn with_adapter(&self, x: &Tensor, x_a: &Tensor, l: &LoraAdapter) -> Result<Tensor> {
        let h = lora_middle(l, x_a)?;
        match &self.weight {
            LinearWeight::Dense(w) => Ok(kernels::lora_linear(
                x,
                w,
                self.bias.as_ref(),
                self.conv1d,
                &h,
                &l.b,
            )?),
            LinearWeight::Quantized(_) => {
                Ok((self.product(x)? + kernels::linear(&h, &l.b, None, false)?)?)
            }
        }
    }

    /// `x [.., in]` to `[.., out]`; an adapter is added without its dropout (inference, and
    /// the task heads, whose callers have no training state).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match &self.lora {
            None => self.product(x),
            Some(l) => self.with_adapter(x, x, l),
        }
    }

    /// As [`forward`](Self::forward), with the adapter's dropout in training mode (peft's
    /// `lora_dropout`): the call of the attention and MLP blocks.
    pub fn forward_t(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        match &self.lora {
            None => self.product(x),
            Some(l) => self.with_adapter(x, &ctx.dropout(x, l.dropout)?, l),
        }
    }
}

/// An `nn.Linear` (`[out, in]` weight drawn from normal(0, `std`), zero bias) named `name`,
/// loaded or drawn by `p`.
pub(crate) fn linear(
    p: &mut Params,
    name: &str,
    d_in: usize,
    d_out: usize,
    std: f64,
) -> Result<Linear> {
    let weight = p.get(&format!("{name}.weight"), &[d_out, d_in], Init::Normal(std))?;
    let bias = p.get(&format!("{name}.bias"), &[d_out], Init::Zeros)?;
    Linear::named(p, name, weight, Some(bias), false)
}

/// GPT-2's `Conv1D` (`[in, out]` weight drawn from normal(0, `std`), zero bias) named `name`.
pub(crate) fn conv1d(
    p: &mut Params,
    name: &str,
    d_in: usize,
    d_out: usize,
    std: f64,
) -> Result<Linear> {
    let weight = p.get(&format!("{name}.weight"), &[d_in, d_out], Init::Normal(std))?;
    let bias = p.get(&format!("{name}.bias"), &[d_out], Init::Zeros)?;
    Linear::named(p, name, weight, Some(bias), true)
}

/// An `nn.Linear` as [`linear`], with a bias only when `bias` (Llama's `attention_bias`,
/// `mlp_bias`; Qwen2's biased q/k/v beside an unbiased `o_proj`).
pub(crate) fn linear_maybe_bias(
    p: &mut Params,
    name: &str,
    (d_in, d_out): (usize, usize),
    std: f64,
    bias: bool,
) -> Result<Linear> {
    let key = format!("{name}.weight");
    if let Some(q) = p.quantized(&key, d_in, d_out)? {
        // a `with_quantized_weights` copy: the matrix stays in its blocks; the bias (if any)
        // and the norms are read as tensors
        let bias = match bias {
            true => Some(p.get(&format!("{name}.bias"), &[d_out], Init::Zeros)?),
            false => None,
        };
        return Ok(Linear {
            weight: LinearWeight::Quantized(q),
            bias,
            conv1d: false,
            lora: None,
        });
    }
    if bias {
        return linear(p, name, d_in, d_out, std);
    }
    let weight = p.get(&key, &[d_out, d_in], Init::Normal(std))?;
    Linear::named(p, name, weight, None, false)
}

/// An `nn.LayerNorm` of width `d` (ones and zeros when drawn) named `name`.
pub(crate) fn layer_norm(p: &mut Params, name: &str, d: usize, eps: f64) -> Result<LayerNorm> {
    Ok(LayerNorm {
        weight: p.get(&format!("{name}.weight"), &[d], Init::Ones)?,
        bias: p.get(&format!("{name}.bias"), &[d], Init::Zeros)?,
        eps,
    })
}

#[derive(Clone)]
pub(crate) struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f64,
}

impl LayerNorm {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(kernels::layer_norm(x, &self.weight, &self.bias, self.eps)?)
    }
}

/// An RMSNorm of width `d` (Llama's `LlamaRMSNorm`: a scale, no bias; ones when drawn) named
/// `name`.
pub(crate) fn rms_norm(p: &mut Params, name: &str, d: usize, eps: f64) -> Result<RmsNorm> {
    Ok(RmsNorm {
        weight: p.get(&format!("{name}.weight"), &[d], Init::Ones)?,
        eps,
    })
}

#[derive(Clone)]
pub(crate) struct RmsNorm {
    pub weight: Tensor,
    pub eps: f64,
}

impl RmsNorm {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(kernels::rms_norm(x, &self.weight, self.eps)?)
    }
}
