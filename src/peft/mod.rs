//! LoRA adapters as Hugging Face's `peft` makes them, and files `peft` reads: a
//! [`LoraConfig`] with peft's names and defaults, [`get_peft_model`] to wrap any model of the
//! crate, [`PeftModel`] to train (only the adapter trains: a few megabytes of optimiser state),
//! save (`adapter_config.json` + `adapter_model.safetensors` under peft's keys), load
//! ([`PeftModel::from_pretrained`], an adapter trained with peft included) and merge.
//!
//! ```
//! use massivetext::prelude::*;
//! let config = LlamaConfig { hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2,
//!     num_attention_heads: 4, num_key_value_heads: Some(2), ..LlamaConfig::small(100) };
//! let base = AutoModelForCausalLM::from_config(&config, &Device::Cpu)?;
//! let lora = LoraConfig { r: 8, lora_alpha: 16.0, target_modules: Some(["q_proj", "v_proj"].into()), ..Default::default() };
//! let model = get_peft_model(base, &lora)?;
//! model.print_trainable_parameters();
//! let ids = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu)?;
//! let out = model.forward_with(&ForwardArgs::new(&ids))?;
//! assert_eq!(out.logits.dims(), &[1, 3, 100]);
//! # Ok::<(), massivetext::Error>(())
//! ```
mod config;
mod model;

pub use config::{InitLoraWeights, LoraConfig, TargetModules};
pub use model::{PeftHost, PeftModel, get_peft_model};
