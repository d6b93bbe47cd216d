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
}

impl Activation {
    /// Parses a Hugging Face activation name (`gelu_new`, `gelu_pytorch_tanh`, `gelu`).
    pub fn from_hf(name: &str) -> Option<Self> {
        match name {
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Self::GeluNew),
            "gelu" => Some(Self::GeluErf),
            _ => None,
        }
    }

    /// The activation applied element-wise.
    pub fn forward(self, x: &Tensor) -> Result<Tensor> {
        let kind = match self {
            Self::GeluNew => Gelu::Tanh,
            Self::GeluErf => Gelu::Erf,
        };
        Ok(kernels::gelu(x, kind)?)
    }
}
