//! What goes into a model call ([`ForwardArgs`]) and what comes out (`ModelOutput` and the
//! task outputs), with transformers' names, for every family.
use candle_core::Tensor;

/// Arguments of a full forward pass. Owned tensors (cheap clones) so it can be built once and
/// kept in a notebook variable.
#[derive(Clone, Debug)]
pub struct ForwardArgs {
    /// Token ids, `u32` (or `i64`) `[batch, seq]`.
    pub input_ids: Tensor,
    /// 1 for real tokens, 0 for padding, `[batch, seq]` (`[batch, cached + seq]` with a cache).
    pub attention_mask: Option<Tensor>,
    /// BERT's segment ids, `[batch, seq]`; zeros when absent.
    pub token_type_ids: Option<Tensor>,
    /// Position of each token, `[batch, seq]`; when absent, `past..past + seq` (GPT-2, BERT) or
    /// counted from the padding (RoBERTa). Generation with left padding sets them from the
    /// attention mask, as transformers does.
    pub position_ids: Option<Tensor>,
    /// Language models: integer `[batch, seq]`; -100 marks positions left out of the loss.
    /// Causal models shift them inside (position t predicts label t+1), as transformers does.
    /// Sequence classifiers: one class id per example (u32 or i64 `[batch]`), floats `[batch]`
    /// for regression, or floats `[batch, num_labels]` for multi-label classification.
    pub labels: Option<Tensor>,
    /// Question answering: the token index where each example's answer starts, `[batch]`
    /// (with `end_positions`, gives the loss). Indices past the sequence are ignored.
    pub start_positions: Option<Tensor>,
    /// Question answering: the token index where each example's answer ends, `[batch]`.
    pub end_positions: Option<Tensor>,
    /// Encoder–decoder models: the decoder's input ids `[batch, target_seq]` (starting with
    /// the decoder start token). When absent, the labels shifted right are used, as
    /// transformers' `shift_tokens_right` makes them (-100 becomes the padding id).
    pub decoder_input_ids: Option<Tensor>,
    /// Encoder–decoder models: 1 for real decoder tokens, 0 for padding, `[batch, target_seq]`;
    /// when absent only the causal mask applies (as in transformers).
    pub decoder_attention_mask: Option<Tensor>,
    pub output_attentions: bool,
    pub output_hidden_states: bool,
}

impl ForwardArgs {
    pub fn new(input_ids: &Tensor) -> Self {
        Self {
            input_ids: input_ids.clone(),
            attention_mask: None,
            token_type_ids: None,
            position_ids: None,
            labels: None,
            start_positions: None,
            end_positions: None,
            decoder_input_ids: None,
            decoder_attention_mask: None,
            output_attentions: false,
            output_hidden_states: false,
        }
    }
    pub fn attention_mask(mut self, mask: &Tensor) -> Self {
        self.attention_mask = Some(mask.clone());
        self
    }
    pub fn token_type_ids(mut self, ids: &Tensor) -> Self {
        self.token_type_ids = Some(ids.clone());
        self
    }
    pub fn position_ids(mut self, ids: &Tensor) -> Self {
        self.position_ids = Some(ids.clone());
        self
    }
    pub fn labels(mut self, labels: &Tensor) -> Self {
        self.labels = Some(labels.clone());
        self
    }
    /// Question answering: where each answer starts (integer `[batch]`).
    pub fn start_positions(mut self, positions: &Tensor) -> Self {
        self.start_positions = Some(positions.clone());
        self
    }
    /// Question answering: where each answer ends (integer `[batch]`).
    pub fn end_positions(mut self, positions: &Tensor) -> Self {
        self.end_positions = Some(positions.clone());
        self
    }
    /// Encoder–decoder models: the decoder's input ids (u32 or i64 `[batch, target_seq]`).
    pub fn decoder_input_ids(mut self, ids: &Tensor) -> Self {
        self.decoder_input_ids = Some(ids.clone());
        self
    }
    /// Encoder–decoder models: the decoder inputs' padding mask `[batch, target_seq]`.
    pub fn decoder_attention_mask(mut self, mask: &Tensor) -> Self {
        self.decoder_attention_mask = Some(mask.clone());
        self
    }
    pub fn output_attentions(mut self, yes: bool) -> Self {
        self.output_attentions = yes;
        self
    }
    pub fn output_hidden_states(mut self, yes: bool) -> Self {
        self.output_hidden_states = yes;
        self
    }
}

/// Output of a language model (`CausalLMOutput` / `MaskedLMOutput` in transformers) or a
/// sequence classifier (`SequenceClassifierOutput`).
#[derive(Clone, Debug)]
pub struct ModelOutput {
    /// `[batch, seq, vocab]` for a language model, `[batch, num_labels]` for a sequence
    /// classifier, `[batch, seq, 2]` (start, end) for a QA model seen through
    /// `PreTrainedModel`.
    pub logits: Tensor,
    /// The scalar loss when labels (or answer positions) were given.
    pub loss: Option<Tensor>,
    /// Per layer, `[batch, heads, seq, keys]`, when asked for.
    pub attentions: Option<Vec<Tensor>>,
    /// Embedding output then each layer's output (`n_layer + 1` tensors), when asked for.
    pub hidden_states: Option<Vec<Tensor>>,
}

/// transformers' name for a sequence classifier's output: logits `[batch, num_labels]`.
pub type SequenceClassifierOutput = ModelOutput;

/// Output of an extractive question-answering model (`QuestionAnsweringModelOutput`).
#[derive(Clone, Debug)]
pub struct QuestionAnsweringModelOutput {
    /// The mean of the start and end cross-entropies, when positions were given.
    pub loss: Option<Tensor>,
    /// `[batch, seq]`: how likely each token is to start the answer.
    pub start_logits: Tensor,
    /// `[batch, seq]`: how likely each token is to end the answer.
    pub end_logits: Tensor,
    pub attentions: Option<Vec<Tensor>>,
    pub hidden_states: Option<Vec<Tensor>>,
}

/// Output of a bare model (`BaseModelOutputWithPooling`).
#[derive(Clone, Debug)]
pub struct BaseModelOutput {
    /// `[batch, seq, hidden]`.
    pub last_hidden_state: Tensor,
    /// BERT's pooler output `[batch, hidden]`, when the model has a pooler.
    pub pooler_output: Option<Tensor>,
    pub attentions: Option<Vec<Tensor>>,
    pub hidden_states: Option<Vec<Tensor>>,
}

/// Output of an encoder–decoder (`Seq2SeqLMOutput`): the decoder's logits and loss, and, when
/// asked for, the attentions of the encoder, of the decoder and from the decoder onto the
/// encoder (`cross_attentions`), each per layer `[batch, heads, queries, keys]`.
#[derive(Clone, Debug)]
pub struct Seq2SeqLMOutput {
    /// `[batch, target_seq, vocab]`.
    pub logits: Tensor,
    /// The scalar loss when labels were given.
    pub loss: Option<Tensor>,
    /// The encoder's last hidden state `[batch, source_seq, d_model]`.
    pub encoder_last_hidden_state: Tensor,
    /// Per encoder layer, `[batch, heads, source_seq, source_seq]`.
    pub encoder_attentions: Option<Vec<Tensor>>,
    /// Per decoder layer, `[batch, heads, target_seq, target_seq]` (causal).
    pub decoder_attentions: Option<Vec<Tensor>>,
    /// Per decoder layer, `[batch, heads, target_seq, source_seq]`.
    pub cross_attentions: Option<Vec<Tensor>>,
    /// The encoder's embedding output then each layer's output.
    pub encoder_hidden_states: Option<Vec<Tensor>>,
    /// The decoder's embedding output then each layer's output.
    pub decoder_hidden_states: Option<Vec<Tensor>>,
}
