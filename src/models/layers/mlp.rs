//! The transformer's feed-forward block: `proj(dropout(act(fc x)))`.
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
        let h = self.act.forward(&self.fc.forward(x)?)?;
        self.proj.forward(&ctx.dropout(&h, self.act_dropout)?)
    }
}
