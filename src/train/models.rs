//! [`TrainableModel`] for the crate's own models.
use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use serde_json::Value;

use super::collator::Batch;
use super::trainer::TrainableModel;
use crate::Result;
use crate::models::{AutoModelForCausalLM, AutoModelForMaskedLM, ForwardArgs};

macro_rules! trainable {
    ($ty:ty) => {
        impl TrainableModel for $ty {
            fn varmap(&self) -> &VarMap {
                <$ty>::varmap(self)
            }

            /// Hugging Face's loss (causal models shift the labels inside). Dropout follows
            /// `train`, seeded per batch; the clone shares the weights, so this is cheap.
            fn loss(&self, batch: &Batch, train: bool) -> Result<Tensor> {
                let mut m = self.clone();
                m.set_training(train);
                if train {
                    // Dropout masks from the batch's own seed: exact resumes with dropout.
                    m.set_seed(batch.dropout_seed);
                }
                let args = ForwardArgs::new(&batch.input_ids)
                    .attention_mask(&batch.attention_mask)
                    .labels(&batch.labels);
                let out = m.forward_with(&args)?;
                out.loss.ok_or_else(|| {
                    crate::Error::InvalidArgument("the model returned no loss for labels".into())
                })
            }

            fn save_pretrained(&self, dir: &Path) -> Result<()> {
                <$ty>::save_pretrained(self, dir)
            }

            fn config_json(&self) -> Value {
                use crate::models::ModelConfig;
                let mut v = match self.config() {
                    ModelConfig::Gpt2(c) => serde_json::to_value(c),
                    ModelConfig::Bert(c) | ModelConfig::Roberta(c) => serde_json::to_value(c),
                }
                .unwrap_or(Value::Null);
                if let Some(o) = v.as_object_mut() {
                    o.insert("model_type".into(), self.config().model_type().into());
                }
                v
            }

            fn device(&self) -> Device {
                <$ty>::device(self).clone()
            }

            fn vocab_size(&self) -> Option<usize> {
                Some(self.config().vocab_size())
            }
        }
    };
}

trainable!(AutoModelForCausalLM);
trainable!(AutoModelForMaskedLM);
