//! `trainer_state.json` and the checkpoint folders, laid out as Hugging Face lays them out:
//! `output_dir/checkpoint-N/` with `config.json`, `model.safetensors`, optimiser, scheduler and
//! RNG state, `trainer_state.json` and `training_args.json`. A checkpoint is written under
//! `tmp-checkpoint-N` and renamed when complete, so a crash never leaves a half checkpoint.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::io::{remove_dir_atomic, sweep_deleting, write_atomic, write_error};
use crate::{Error, Result};

/// One `log_history` entry: `{"loss": .., "grad_norm": .., "learning_rate": .., "epoch": ..,
/// "step": ..}` for training logs, `{"eval_loss": .., ...}` for evaluations.
pub type LogEntry = Map<String, Value>;

/// Hugging Face's `TrainerState`, with the same JSON keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainerState {
    pub best_global_step: Option<usize>,
    pub best_metric: Option<f64>,
    pub best_model_checkpoint: Option<String>,
    pub epoch: f64,
    pub eval_steps: usize,
    pub global_step: usize,
    pub is_hyper_param_search: bool,
    pub is_local_process_zero: bool,
    pub is_world_process_zero: bool,
    pub log_history: Vec<LogEntry>,
    pub logging_steps: usize,
    pub max_steps: usize,
    pub num_input_tokens_seen: u64,
    pub num_train_epochs: usize,
    pub save_steps: usize,
    pub total_flos: f64,
    pub train_batch_size: usize,
    pub trial_name: Option<String>,
    pub trial_params: Option<Value>,
}

impl Default for TrainerState {
    fn default() -> Self {
        TrainerState {
            best_global_step: None,
            best_metric: None,
            best_model_checkpoint: None,
            epoch: 0.0,
            eval_steps: 500,
            global_step: 0,
            is_hyper_param_search: false,
            is_local_process_zero: true,
            is_world_process_zero: true,
            log_history: Vec::new(),
            logging_steps: 500,
            max_steps: 0,
            num_input_tokens_seen: 0,
            num_train_epochs: 0,
            save_steps: 500,
            total_flos: 0.0,
            train_batch_size: 0,
            trial_name: None,
            trial_params: None,
        }
    }
}

impl TrainerState {
    pub fn to_json_string(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Writes `trainer_state.json` (temp + rename).
    pub fn save_to_json(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_json_string().as_bytes())
    }

    pub fn load_from_json(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| Error::Parse {
            path: path.to_path_buf(),
            line: e.line() as u64,
            column: e.column() as u64,
            message: e.to_string(),
        })
    }

    /// `(step, value)` of every log entry that has `key` (e.g. `"loss"`, `"eval_loss"`).
    pub fn series(&self, key: &str) -> Vec<(f64, f64)> {
        self.log_history
            .iter()
            .filter_map(|e| {
                let v = e.get(key)?.as_f64()?;
                let s = e.get("step")?.as_f64()?;
                Some((s, v))
            })
            .collect()
    }
}

/// The step number of a `checkpoint-N` folder name.
pub fn checkpoint_step(path: &Path) -> Option<usize> {
    path.file_name()?
        .to_str()?
        .strip_prefix("checkpoint-")?
        .parse()
        .ok()
}

/// `checkpoint-N` folders of `output_dir`, oldest first (by step).
pub fn sorted_checkpoints(output_dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(output_dir) else {
        return Vec::new();
    };
    let mut v: Vec<(usize, PathBuf)> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .filter_map(|p| checkpoint_step(&p).map(|s| (s, p)))
        .collect();
    v.sort();
    v.into_iter().map(|(_, p)| p).collect()
}

/// The newest checkpoint of `output_dir` (Hugging Face `get_last_checkpoint`).
pub fn get_last_checkpoint(output_dir: &Path) -> Option<PathBuf> {
    sorted_checkpoints(output_dir).pop()
}

/// Removes what a killed or failed run left in `output_dir`: `tmp-checkpoint-*` folders (a
/// checkpoint being written), `.deleting-*` folders (a checkpoint being deleted) and `*.tmp`
/// files (a file being written). Returns what was removed.
pub fn sweep_leftovers(output_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut removed = sweep_deleting(output_dir)?;
    let Ok(rd) = std::fs::read_dir(output_dir) else {
        return Ok(removed);
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("tmp-checkpoint-") && p.is_dir() {
            std::fs::remove_dir_all(&p).map_err(|source| write_error(&p, source))?;
            removed.push(p);
        } else if name.ends_with(".tmp") && p.is_file() {
            std::fs::remove_file(&p).map_err(|source| write_error(&p, source))?;
            removed.push(p);
        }
    }
    Ok(removed)
}

/// Deletes the oldest checkpoints so that at most `limit` remain, never the newest (needed to
/// resume) nor `best` (Hugging Face `rotate_checkpoints`).
pub fn rotate_checkpoints(output_dir: &Path, limit: usize, best: Option<&Path>) -> Result<()> {
    if limit == 0 {
        return Ok(());
    }
    let cps = sorted_checkpoints(output_dir);
    if cps.len() <= limit {
        return Ok(());
    }
    let name = |p: &Path| p.file_name().map(|n| n.to_os_string());
    let newest = cps.last().and_then(|p| name(p));
    let best = best
        .and_then(name)
        .filter(|b| cps.iter().any(|p| name(p).as_ref() == Some(b)));
    let protected = |p: &PathBuf| {
        let n = name(p);
        n == newest || (best.is_some() && n == best)
    };
    let keep = limit.max(1 + usize::from(best.is_some() && best != newest));
    let mut remaining = cps.len();
    for p in &cps {
        if remaining <= keep {
            break;
        }
        if !protected(p) {
            // renamed aside first: a kill never leaves a half-deleted `checkpoint-N`
            remove_dir_atomic(p)?;
            remaining -= 1;
        }
    }
    Ok(())
}
