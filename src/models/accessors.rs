//! The accessors every `AutoModel…` type shares (device, parameters, training mode, dropout
//! seed), written once for the wrappers of both inner models (`Model` for the self-attention
//! stacks, `Marian` for the encoder–decoder): each has the fields `device`, `varmap`,
//! `training` and `dropout` and a `named_parameters()` method.

/// Expands, inside `impl Wrapper { … }` of a one-field wrapper, to the shared accessors.
macro_rules! weights_and_mode {
    () => {
        pub fn device(&self) -> &candle_core::Device {
            &self.0.device
        }

        /// The VarMap holding every parameter under its Hugging Face name. Handles made by
        /// `share()` hold the same one; a `clone()` has its own.
        pub fn varmap(&self) -> &candle_nn::VarMap {
            &self.0.varmap
        }

        /// Every trainable parameter with its Hugging Face name, sorted by name (buffers
        /// such as Marian's `final_logits_bias` are not among them, as in transformers).
        pub fn named_parameters(&self) -> Vec<(String, candle_core::Var)> {
            self.0.named_parameters()
        }

        pub fn num_parameters(&self) -> usize {
            self.named_parameters()
                .iter()
                .map(|(_, v)| v.elem_count())
                .sum()
        }

        /// Training mode: dropout on.
        pub fn train(&mut self) {
            self.0.training = true;
        }

        /// Evaluation mode: dropout off (what `from_pretrained` returns).
        pub fn eval(&mut self) {
            self.0.training = false;
        }

        pub fn set_training(&mut self, training: bool) {
            self.0.training = training;
        }

        pub fn is_training(&self) -> bool {
            self.0.training
        }

        /// Reseeds the dropout stream (for exactly repeatable training runs).
        pub fn set_seed(&mut self, seed: u64) {
            self.0.dropout = $crate::models::layers::DropoutStream::new(seed);
        }
    };
}
pub(crate) use weights_and_mode;
