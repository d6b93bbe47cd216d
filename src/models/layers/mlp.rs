//! The transformer's feed-forward blocks: `proj(dropout(act(fc x)))`, and Llama's gated one,
//! `down(silu(gate x) * up x)`.
use candle_core::Tensor;

use super::super::activation::Activation;
use super::{Ctx, Linear};
use crate::Result;

#[derive(Clone)]
pub(crate) struct Mlp {
    pub fc: Linear,
    pub proj: Linear,
    pub act: Activation,
    /// Dropout after the activation (Marian's `activation_dropout`; 0 elsewhere).
    pub act_dropout: f64,
}

impl Mlp {
    pub fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let h = self.act.forward(&self.fc.forward_t(x, ctx)?)?;
        self.proj
            .forward_t(&ctx.dropout(&h, self.act_dropout)?, ctx)
    }
}

/// Llama's SwiGLU feed-forward block (`LlamaMLP`): `down_proj(silu(gate_proj x) * up_proj x)`.
#[derive(Clone)]
pub(crate) struct GatedMlp {
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
}

impl GatedMlp {
    pub fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let h = crate::kernels::swiglu(&self.gate.forward_t(x, ctx)?, &self.up.forward_t(x, ctx)?)?;
        self.down.forward_t(&h, ctx)
    }
}
