//! Everything a notebook needs: `use massivetext::prelude::*;`.
//!
//! candle's `Tensor`, `Device` and `DType` are re-exported so that a notebook needs no second
//! `:dep` with a matching candle version.
// data
pub use crate::data::{
    Column, DataFiles, Dataset, DatasetDict, FromCell, IntoColumn, IterableDataset, LoadOptions,
    MapOptions, Row, RowExt, SampleBy, TestSize, concatenate, load_dataset, load_dataset_with,
    load_streaming, load_streaming_with,
};
pub use crate::hub::HubOptions;
pub use crate::{Error, Result};
pub use candle_core::{D, DType, Device, IndexOp, Tensor};
pub use serde_json::{Value, json};
// tokenizer
pub use crate::tokenizer::{
    BatchEncoding, ChatMessage, DecodeOptions, EncodeOptions, Encoding, Padding, PaddingSide,
    ShardBuildOptions, SpecialTokens, TokenShards, Tokenizer, TokenizerKind, TrainOptions,
    Truncation,
};
// models
pub use crate::models::{
    AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForQuestionAnswering,
    AutoModelForSeq2SeqLM, AutoModelForSequenceClassification, BaseModelOutput, BertConfig,
    DeviceExt, ForwardArgs, Gpt2Config, KvCache, LabelConfig, LlamaConfig, MarianConfig,
    ModelConfig, ModelOutput, PreTrainedModel, ProblemType, QuestionAnsweringModelOutput,
    RobertaConfig, Task, best_device, mean_pooling,
};
// LoRA adapters (peft)
pub use crate::peft::{LoraConfig, PeftModel, get_peft_model};
// train
pub use crate::train::{
    Batch, Collator, DataCollatorForLanguageModeling, DataCollatorForSeq2Seq,
    DataCollatorWithPadding, EarlyStoppingCallback, EvalOutput, EvalPrediction, Example,
    IntervalStrategy, LogEntry, Metrics, PredictionOutput, SchedulerType, Steps, TokenWindows,
    TrainData, TrainOutput, Trainer, TrainerCallback, TrainerControl, TrainerState,
    TrainingArguments, get_last_checkpoint,
};
// metrics
pub use crate::metrics::{
    Average, Bleu, BleuScore, BootstrapAggregator, Chrf, ChrfScore, RougeOptions, RougeScorer,
    RougeScores, Smoothing, Tokenize, accuracy, corpus_bleu, corpus_chrf, f1_score,
    precision_score, recall_score, sentence_bleu, sentence_chrf,
};
pub use crate::metrics::{
    EvalResult, Evaluator, MeanPerplexityOptions, Perplexity, SlidingWindow, mean_perplexity,
    mean_perplexity_of_texts, perplexity, perplexity_of_blocks, perplexity_of_text,
};
// generation
pub use crate::generate::{
    EarlyStopping, FimTokens, GenerationConfig, GenerationMixin, PipelineOptions, fim_prompt,
    pipeline,
};
// viz
pub use crate::viz::{
    AttentionGrid, AttentionHeatmap, AttentionMap, ConfusionMatrix, EmbeddingPlot, HeadOverview,
    Normalize, Pca, TokenScores, TrainingCurves, TranslationAttention,
};
