//! Dense layers, LayerNorm and RMSNorm, with the one set of builders every family uses to load or draw
//! them under a Hugging Face name.
use candle_core::Tensor;

use super::super::params::{Init, Params};
use crate::Result;
use crate::kernels;

/// A dense layer. Hugging Face stores `nn.Linear` weights as `[out, in]` and GPT-2's `Conv1D`
/// as `[in, out]`; we keep each as stored so saving writes them back unchanged.
#[derive(Clone)]
pub(crate) struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    /// `true` for GPT-2's `Conv1D` (`[in, out]`).
    pub conv1d: bool,
}

impl Linear {
    /// `x [.., in]` to `[.., out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(kernels::linear(
            x,
            &self.weight,
            self.bias.as_ref(),
            self.conv1d,
        )?)
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
    Ok(Linear {
        weight: p.get(&format!("{name}.weight"), &[d_out, d_in], Init::Normal(std))?,
        bias: Some(p.get(&format!("{name}.bias"), &[d_out], Init::Zeros)?),
        conv1d: false,
    })
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
    if bias {
        return linear(p, name, d_in, d_out, std);
    }
    Ok(Linear {
        weight: p.get(&format!("{name}.weight"), &[d_out, d_in], Init::Normal(std))?,
        bias: None,
        conv1d: false,
    })
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
