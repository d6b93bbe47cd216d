//! Everything a notebook needs: `use massivetext::prelude::*;`.
pub use crate::data::{Dataset, DatasetDict, load_dataset};
pub use crate::models::{
    AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, BaseModelOutput, BertConfig, DeviceExt,
    ForwardArgs, Gpt2Config, KvCache, ModelConfig, ModelOutput, RobertaConfig, best_device,
    mean_pooling,
};
pub use crate::{Error, Result};
pub use candle_core::{DType, Device, Tensor};
