//! Everything a notebook needs: `use massivetext::prelude::*;`.
// data
pub use crate::data::{
    Column, DataFiles, Dataset, DatasetDict, IterableDataset, LoadOptions, Row, SampleBy,
    concatenate, load_dataset, load_dataset_with, load_streaming, load_streaming_with,
};
pub use crate::{Error, Result};
// tokenizer
pub use crate::tokenizer::{
    EncodeOptions, Encoding, Padding, ShardBuildOptions, SpecialTokens, TokenShards, Tokenizer,
    TokenizerKind, TrainOptions, Truncation,
};
// models
pub use crate::models::{
    AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, BaseModelOutput, BertConfig, DeviceExt,
    ForwardArgs, Gpt2Config, KvCache, ModelConfig, ModelOutput, RobertaConfig, best_device,
    mean_pooling,
};
pub use candle_core::{DType, Device, Tensor};
// train
pub use crate::train::{
    DataCollatorForLanguageModeling, IntervalStrategy, SchedulerType, TokenWindows, TrainableModel,
    Trainer, TrainingArguments,
};
// metrics
