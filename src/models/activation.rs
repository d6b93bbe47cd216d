//! The activation functions named in Hugging Face configs (`activation_function`, `hidden_act`),
//! mapped onto the kernels.
use candle_core::Tensor;

use crate::Result;
use crate::kernels::{self, Gelu};

/// An activation a config can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`: GPT-2's `gelu_new`.
    GeluNew,
    /// `0.5 x (1 + erf(x / sqrt 2))`: BERT's and RoBERTa's `gelu`.
    GeluErf,
    /// `x sigmoid(x)`: `swish` / `silu` (Marian's opus-mt checkpoints).
    Silu,
    /// `max(x, 0)`.
    Relu,
}

impl Activation {
    /// Parses a Hugging Face activation name (`gelu_new`, `gelu_pytorch_tanh`, `gelu`,
    /// `swish`, `silu`, `relu`), as transformers' `ACT2FN` maps them.
    pub fn from_hf(name: &str) -> Option<Self> {
        match name {
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Self::GeluNew),
            "gelu" => Some(Self::GeluErf),
            "swish" | "silu" => Some(Self::Silu),
            "relu" => Some(Self::Relu),
            _ => None,
        }
    }

    /// The names [`from_hf`](Self::from_hf) accepts, for error messages.
    pub const SUPPORTED: &'static str =
        "gelu_new, gelu_pytorch_tanh, gelu_fast, gelu, swish, silu, relu";

    /// The activation applied element-wise.
    pub fn forward(self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::GeluNew => kernels::gelu(x, Gelu::Tanh)?,
            Self::GeluErf => kernels::gelu(x, Gelu::Erf)?,
            Self::Silu => kernels::silu(x)?,
            Self::Relu => kernels::relu(x)?,
        })
    }
}
