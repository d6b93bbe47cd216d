//! Whether a job's model and batch fit in this machine's memory, checked before anything is
//! allocated: an allocation the system refuses aborts the process (Rust's allocator has no
//! error path), so `--block-size 1000000000` would end in "memory allocation failed" and a
//! core dump instead of a message. The estimate is rough (within a factor of about two of the
//! peak) and only refuses what cannot fit at all: more than the machine's whole memory.
use crate::models::ModelSize;
use crate::{Error, Result};

/// The machine's memory, from `/proc/meminfo` (Linux); `None` where it cannot be read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MachineMemory {
    pub total_bytes: u64,
    pub available_bytes: u64,
}

impl MachineMemory {
    /// Reads `/proc/meminfo`.
    pub fn read() -> Option<Self> {
        let text = std::fs::read_to_string("/proc/meminfo").ok()?;
        let field = |name: &str| -> Option<u64> {
            let line = text.lines().find(|l| l.starts_with(name))?;
            let kib: u64 = line[name.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            Some(kib * 1024)
        };
        let total_bytes = field("MemTotal:")?;
        Some(MachineMemory {
            total_bytes,
            available_bytes: field("MemAvailable:").unwrap_or(total_bytes),
        })
    }
}

/// Bytes as GiB with one decimal.
pub fn gib(bytes: f64) -> String {
    format!("{:.1} GiB", bytes / (1u64 << 30) as f64)
}

/// The memory a training run of a transformer needs, split as the refusal shows it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainingMemory {
    /// Parameters, their gradients and AdamW's two moments: 4 × 4 bytes a parameter (f32).
    pub model_bytes: f64,
    /// The activations kept for the backward pass of one batch, and its logits.
    pub batch_bytes: f64,
}

impl TrainingMemory {
    /// A model of `size` (from its config: [`ModelConfig::size`](crate::models::ModelConfig::size))
    /// over `vocab` tokens, trained on batches of `batch` sequences of `seq` tokens. In f64, so
    /// absurd sizes do not overflow.
    pub fn for_model(size: ModelSize, vocab: usize, batch: usize, seq: usize) -> Self {
        let (e, ffn, h, l) = (
            size.hidden_size as f64,
            size.intermediate_size as f64,
            size.heads as f64,
            size.layers as f64,
        );
        let tokens = batch as f64 * seq as f64;
        // per layer and token: about eight widths of activations (attention's inputs and
        // outputs, norms, residuals), the MLP's intermediate activation before and after its
        // nonlinearity, and the attention scores and probabilities of each head
        let per_layer = tokens * (8.0 * e + 2.0 * ffn + 2.0 * h * seq as f64);
        // logits, their softmax and gradient
        let logits = tokens * vocab as f64 * 3.0;
        TrainingMemory {
            model_bytes: size.parameters * 16.0,
            batch_bytes: (l * per_layer + logits + tokens * e * 4.0) * 4.0,
        }
    }

    pub fn total_bytes(&self) -> f64 {
        self.model_bytes + self.batch_bytes
    }

    /// An error when the run needs more than `machine`'s whole memory, naming both figures and
    /// `advice` (the flags that shrink it); a warning on stderr when it needs more than is
    /// available now. Nothing is checked when the machine's memory is unknown.
    pub fn check(&self, machine: Option<MachineMemory>, advice: &str) -> Result<()> {
        let Some(m) = machine else {
            return Ok(());
        };
        let needed = self.total_bytes();
        let figures = format!(
            "this run needs about {} of memory ({} for the model's parameters, gradients and AdamW state, {} for a batch's activations) and this machine has {} ({} available now)",
            gib(needed),
            gib(self.model_bytes),
            gib(self.batch_bytes),
            gib(m.total_bytes as f64),
            gib(m.available_bytes as f64)
        );
        if needed > m.total_bytes as f64 {
            return Err(Error::InvalidConfig(format!(
                "{figures}; nothing was allocated: {advice}"
            )));
        }
        if needed > m.available_bytes as f64 {
            eprintln!(
                "massivetext: warning: {figures}; the run may be killed when memory runs out"
            );
        }
        Ok(())
    }
}
