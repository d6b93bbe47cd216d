//! Running a stack of layers: each layer's KV-cache slot handed out, the hidden states and
//! attention probabilities collected when asked for, and the cache's length advanced once all
//! layers have seen the new tokens. Every family's stack loops through here.
use candle_core::Tensor;

use super::{CacheSlot, KvCache};
use crate::Result;

/// What the caller wants back besides the last hidden state.
#[derive(Clone, Copy)]
pub(crate) struct Collect {
    pub hidden_states: bool,
    pub attentions: bool,
}

/// The states a stack collected: its input then each layer's output (when asked), and each
/// layer's attention probabilities (when asked).
pub(crate) struct Collected {
    pub hidden_states: Option<Vec<Tensor>>,
    pub attentions: Option<Vec<Tensor>>,
}

/// Runs `layers` layers over `x`: `layer(i, x, slot, want_probs)` returns the layer's output and
/// (when asked) its attention probabilities. With a `cache`, layer `i` gets its slot and the
/// cache then counts `t` more tokens. Returns the last output (before any final norm, which the
/// caller applies and pushes with [`Collected::finish`]).
pub(crate) fn run_layers(
    mut x: Tensor,
    layers: usize,
    mut cache: Option<&mut KvCache>,
    collect: Collect,
    mut layer: impl FnMut(
        usize,
        &Tensor,
        Option<CacheSlot<'_>>,
        bool,
    ) -> Result<(Tensor, Option<Tensor>)>,
) -> Result<(Tensor, Collected)> {
    let t = x.dim(1)?;
    let past = cache.as_ref().map(|c| c.len).unwrap_or(0);
    if let Some(c) = cache.as_deref_mut()
        && c.layers.len() != layers
    {
        c.layers = vec![None; layers];
    }
    let grad_enabled = super::grad_enabled();
    let mut hidden = collect.hidden_states.then(Vec::new);
    let mut attns = collect.attentions.then(Vec::new);
    for i in 0..layers {
        if let Some(h) = hidden.as_mut() {
            h.push(x.clone());
        }
        let slot = cache.as_deref_mut().map(|c| CacheSlot {
            past,
            reserve: c.reserve,
            kv: &mut c.layers[i],
        });
        let (y, probs) = layer(i, &x, slot, collect.attentions)?;
        // Outside training's backward, each layer's graph goes as soon as it has run.
        x = if grad_enabled { y } else { y.detach() };
        if let (Some(a), Some(p)) = (attns.as_mut(), probs) {
            a.push(if grad_enabled { p } else { p.detach() });
        }
    }
    if let Some(c) = cache {
        c.len = past + t;
    }
    Ok((
        x,
        Collected {
            hidden_states: hidden,
            attentions: attns,
        },
    ))
}

impl Collected {
    /// Pushes the stack's final output (after its final norm, if any) to the hidden states.
    pub fn finish(mut self, last: &Tensor) -> Self {
        if let Some(h) = self.hidden_states.as_mut() {
            h.push(last.clone());
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::layers::NoGrad;
    use candle_core::{DType, Device, Var};

    #[test]
    fn without_grad_no_layer_output_keeps_the_graph() {
        let w = Var::from_vec(vec![2f32, 3., 4.], (1, 1, 3), &Device::Cpu).unwrap();
        let collect = Collect {
            hidden_states: true,
            attentions: false,
        };
        let run = || {
            let x = Tensor::ones((1, 1, 3), DType::F32, &Device::Cpu).unwrap();
            run_layers(x, 2, None, collect, |_, x, _, _| {
                Ok((x.mul(w.as_tensor())?, None))
            })
            .unwrap()
        };
        let (y, _) = run();
        assert!(y.track_op(), "training keeps the graph");
        let (z, states) = {
            let _g = NoGrad::enter();
            run()
        };
        assert!(!z.track_op());
        let states = states.hidden_states.unwrap();
        assert!(states.iter().all(|h| !h.track_op()));
        let (a, b): (Vec<f32>, Vec<f32>) = (
            y.flatten_all().unwrap().to_vec1().unwrap(),
            z.flatten_all().unwrap().to_vec1().unwrap(),
        );
        assert_eq!(a, b);
        assert_eq!(a, vec![4., 9., 16.]);
    }
}
