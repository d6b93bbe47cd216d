//! Forward passes that record no graph of gradients across layers, for the library's own
//! evaluation and generation (what `torch.no_grad()` is to transformers' `evaluate`).
//!
//! candle records an op's inputs in its output whenever one of them is a variable or has
//! such an input, and has no switch to turn that off. A model with trainable weights (any model
//! being fine-tuned, and a LoRA model's adapters) therefore keeps every activation of a forward
//! pass alive until its output is dropped, even where nothing will ever call `backward`:
//! scoring four 128-token blocks of SmolLM2-135M with LoRA adapters held about 1.5 GB of
//! activations that way, more than the whole LoRA training step. While a [`NoGrad`] guard
//! lives, the stacks cut the graph after each layer ([`super::run_layers`]), so a pass holds
//! one layer's activations.
//!
//! The switch is the crate's, not the user's: results computed inside still carry the graph
//! of the ops after the last layer (the final norm and the head), so a `backward` through them
//! would see gradients of those alone. Only callers that never differentiate turn it on.
use std::cell::Cell;

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// While alive, forward passes on this thread cut the graph after every layer; dropping it
/// (also on an early return or a panic) restores the mode it found. Bound to its thread.
pub(crate) struct NoGrad {
    was: bool,
    _thread: std::marker::PhantomData<*const ()>,
}

impl NoGrad {
    pub(crate) fn enter() -> Self {
        NoGrad {
            was: GRAD_ENABLED.with(|g| g.replace(false)),
            _thread: std::marker::PhantomData,
        }
    }
}

impl Drop for NoGrad {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.was));
    }
}

/// Whether forward passes on this thread keep their graph (`false` while a [`NoGrad`] is alive).
pub(crate) fn grad_enabled() -> bool {
    GRAD_ENABLED.with(Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_grad_is_scoped_and_nests() {
        assert!(grad_enabled());
        {
            let _outer = NoGrad::enter();
            assert!(!grad_enabled());
            {
                let _inner = NoGrad::enter();
                assert!(!grad_enabled());
            }
            assert!(!grad_enabled());
        }
        assert!(grad_enabled());
        let caught = std::panic::catch_unwind(|| {
            let _g = NoGrad::enter();
            panic!("inside");
        });
        assert!(caught.is_err());
        assert!(grad_enabled());
    }
}
