//! The state of one forward call: training mode (dropout on), the dropout stream, and what the
//! caller will read of the output.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::Tensor;

use crate::Result;
use crate::kernels;

/// The dropout random stream of a model: a seed and a count of dropout calls made with it. Each
/// call's mask is a function of `(seed, call)` alone ([`kernels::dropout_mask`]), so the same seed
/// gives the same masks on every device and kernel path. Handles made by `share` count together;
/// a deep copy starts its own count where the original stood.
#[derive(Clone, Debug)]
pub(crate) struct DropoutStream {
    pub seed: u64,
    pub calls: Arc<AtomicU64>,
}

impl DropoutStream {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            calls: Arc::new(AtomicU64::new(0)),
        }
    }

    /// An independent stream at the same place (for a deep copy of a model).
    pub fn fork(&self) -> Self {
        Self {
            seed: self.seed,
            calls: Arc::new(AtomicU64::new(self.calls.load(Ordering::Relaxed))),
        }
    }
}

/// Per-call state: training mode (dropout on), the dropout stream, and what the caller reads.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub training: bool,
    pub dropout: DropoutStream,
    /// The caller reads only each row's first position of the last hidden state (a classifier
    /// on `[CLS]` / `<s>`): an encoder may then skip padding inside and return those positions
    /// alone (`[b, 1, h]`, see `packing`).
    pub first_token_only: bool,
}

impl Ctx {
    /// Inverted dropout (`x * mask / (1 - p)`), as `torch.nn.Dropout`: identity in eval mode.
    pub fn dropout(&self, x: &Tensor, p: f64) -> Result<Tensor> {
        match self.dropout_call(p) {
            Some((p, seed, call)) => Ok(kernels::dropout(x, p, seed, call)?),
            None => Ok(x.clone()),
        }
    }

    /// `(p, seed, stream)` of the next dropout call, for a kernel that applies the dropout
    /// itself (the fused attention); `None` (and no call counted) when dropout is off.
    pub fn dropout_call(&self, p: f64) -> Option<(f64, u64, u64)> {
        if !self.training || p <= 0.0 {
            return None;
        }
        let call = self.dropout.calls.fetch_add(1, Ordering::Relaxed);
        Some((p, self.dropout.seed, call))
    }
}
