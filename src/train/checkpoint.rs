//! The Trainer's files: the output folder prepared before a run, the model and state saved,
//! and checkpoints written whole (through a temporary folder and a rename) and resumed exactly.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::batch_layout::{BatchLayout, resume_note};
use super::schedule::LrScheduler;
use super::state::{
    TrainerState, checkpoint_step, get_last_checkpoint, rotate_checkpoints, sorted_checkpoints,
    sweep_leftovers,
};
use super::trainer::Trainer;
use crate::io::{self, read_json, write_json};
use crate::models::PreTrainedModel;
use crate::{Error, Result};

#[derive(Serialize, Deserialize)]
struct RngState {
    seed: u64,
    global_step: usize,
    model: Option<Value>,
    /// The ranks that wrote the checkpoint (absent in older checkpoints: unknown), so that a
    /// resume on another world size can say what changed (`batch_layout`).
    #[serde(default)]
    world_size: Option<usize>,
}

impl<M: PreTrainedModel> Trainer<M> {
    /// What `train()` does first, before it writes anything (call it yourself to write files of
    /// your own into `output_dir` after the check): removes what a killed or failed run left
    /// (`tmp-checkpoint-*`, `.deleting-*`, `*.tmp`); then resumes from
    /// `args.resume_from_checkpoint` when set, or else refuses an `output_dir` that is not empty
    /// ([`Error::OutputDirNotEmpty`]) unless `args.overwrite_output_dir`, which deletes its
    /// `checkpoint-N` folders (so `"latest"` can only mean this run's). A trainer that already
    /// stepped is left as it is. Returns the checkpoint resumed from.
    ///
    /// With several data-parallel ranks, rank 0 alone sweeps and checks the folder and tells
    /// the others how that went (its error becomes theirs); then every rank resumes from the
    /// same checkpoint (on one machine, or a file system the machines share).
    pub fn prepare_output_dir(&mut self) -> Result<Option<PathBuf>> {
        if self.output_dir_ready {
            return Ok(self.resumed_from.clone());
        }
        if self.comm.world_size() > 1 {
            let checked = if self.is_main_process() {
                self.sweep_and_check_output_dir()
            } else {
                Ok(())
            };
            let mut message = match &checked {
                Ok(()) => Vec::new(),
                Err(e) => e.to_string().into_bytes(),
            };
            self.comm.broadcast_bytes(&mut message, 0)?;
            checked?;
            if !message.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "rank 0 could not prepare the output folder: {}",
                    String::from_utf8_lossy(&message)
                )));
            }
            if self.state.global_step == 0
                && let Some(r) = self.args.resume_from_checkpoint.clone()
            {
                let dir = self.resume_from_checkpoint(&r)?;
                self.resumed_from = Some(dir);
            }
            self.output_dir_ready = true;
            return Ok(self.resumed_from.clone());
        }
        self.sweep_and_check_output_dir()?;
        if self.state.global_step == 0
            && let Some(r) = self.args.resume_from_checkpoint.clone()
        {
            let dir = self.resume_from_checkpoint(&r)?;
            self.resumed_from = Some(dir);
        }
        self.output_dir_ready = true;
        Ok(self.resumed_from.clone())
    }

    /// `prepare_output_dir` without the resume: leftovers swept, and a folder that is not
    /// empty refused (or its checkpoints deleted with `overwrite_output_dir`) when the run does
    /// not resume.
    fn sweep_and_check_output_dir(&mut self) -> Result<()> {
        let out = self.args.output_dir.clone();
        io::check_no_file_in_the_way(&out)?;
        let swept = sweep_leftovers(&out)?;
        if !swept.is_empty() && !self.args.disable_tqdm {
            eprintln!(
                "removed what an interrupted run left in {}: {}",
                out.display(),
                swept
                    .iter()
                    .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if self.state.global_step == 0 && self.args.resume_from_checkpoint.is_none() {
            let mut found: Vec<String> = std::fs::read_dir(&out)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| {
                            let n = e.file_name().to_string_lossy().into_owned();
                            if e.path().is_dir() { n + "/" } else { n }
                        })
                        .collect()
                })
                .unwrap_or_default();
            if !found.is_empty() {
                if !self.args.overwrite_output_dir {
                    found.sort();
                    let shown = found.len().min(6);
                    let mut list = found[..shown].join(", ");
                    if found.len() > shown {
                        list += &format!(" and {} more", found.len() - shown);
                    }
                    return Err(Error::OutputDirNotEmpty {
                        dir: out,
                        found: list,
                    });
                }
                for cp in sorted_checkpoints(&out) {
                    io::remove_dir_atomic(&cp)?;
                }
            }
        }
        Ok(())
    }

    /// Saves the model (`config.json`, `model.safetensors`) to `output_dir`.
    pub fn save_model(&self) -> Result<()> {
        self.save_model_to(&self.args.output_dir)
    }

    /// Saves the model to `dir` (created if needed); with several ranks, rank 0 writes and the
    /// others do nothing (their weights are the same).
    pub fn save_model_to(&self, dir: &Path) -> Result<()> {
        if !self.is_main_process() {
            return Ok(());
        }
        create_dir(dir)?;
        self.model.save_pretrained(dir)?;
        write_json(&dir.join("training_args.json"), &self.args)
    }

    /// Writes `output_dir/trainer_state.json`, and `log_history.json` (the list of log entries,
    /// for a loss-curve plotter) to `logging_dir` when it is set.
    /// Rank 0 writes; other ranks do nothing.
    pub fn save_state(&self) -> Result<()> {
        if !self.is_main_process() {
            return Ok(());
        }
        create_dir(&self.args.output_dir)?;
        self.state
            .save_to_json(&self.args.output_dir.join("trainer_state.json"))?;
        if let Some(dir) = &self.args.logging_dir {
            create_dir(dir)?;
            write_json(&dir.join("log_history.json"), &self.state.log_history)?;
        }
        Ok(())
    }

    /// Writes `output_dir/checkpoint-N/` (through `tmp-checkpoint-N` and a rename) and prunes
    /// old checkpoints by `save_total_limit`, keeping the newest and the best. A failed write
    /// removes `tmp-checkpoint-N` and leaves the checkpoints already there as they were; no
    /// folder named `checkpoint-N` is ever incomplete (a replaced or pruned one is renamed to
    /// `.deleting-checkpoint-N` before it is removed).
    ///
    /// With several data-parallel ranks every rank calls it: their weights' checksums are
    /// compared first (a difference is an error naming the step: the ranks diverged), rank 0
    /// writes, and the others wait for it, so a checkpoint is whole when any rank goes on.
    pub fn save_checkpoint(&mut self) -> Result<PathBuf> {
        let out = self.args.output_dir.clone();
        let name = format!("checkpoint-{}", self.state.global_step);
        let dir = out.join(&name);
        if self.comm.world_size() > 1 {
            self.check_ranks_agree()?;
            let written = if self.is_main_process() {
                self.write_checkpoint(&out, &name).map(|_| ())
            } else {
                // the same decision rank 0 makes, so every rank's state says the same
                if self.last_eval_improved
                    && self.state.best_global_step == Some(self.state.global_step)
                {
                    self.state.best_model_checkpoint = Some(dir.display().to_string());
                }
                self.last_eval_improved = false;
                Ok(())
            };
            let mut message = match &written {
                Ok(()) => Vec::new(),
                Err(e) => e.to_string().into_bytes(),
            };
            self.comm.broadcast_bytes(&mut message, 0)?;
            written?;
            if !message.is_empty() {
                return Err(Error::Checkpoint {
                    path: dir,
                    message: format!(
                        "rank 0 could not write it: {}",
                        String::from_utf8_lossy(&message)
                    ),
                });
            }
            return Ok(dir);
        }
        self.write_checkpoint(&out, &name)
    }

    /// Every rank's weights must be bit for bit the same after the same steps: their
    /// checksums are gathered, and a difference is an error on every rank naming the step.
    fn check_ranks_agree(&self) -> Result<()> {
        let sum = weights_checksum(self.model.varmap())?;
        let all = self.comm.all_gather_u64(sum)?;
        if all.iter().all(|&x| x == all[0]) {
            return Ok(());
        }
        let odd: Vec<String> = (0..all.len())
            .filter(|&r| all[r] != all[0])
            .map(|r| r.to_string())
            .collect();
        Err(Error::InvalidArgument(format!(
            "data-parallel ranks diverged: at step {} the weights of rank(s) {} differ from rank 0's (checksums {:016x?}); the run is not data-parallel any more, so no checkpoint was written. Resume from the last checkpoint; if it happens again, report it with the launch command",
            self.state.global_step,
            odd.join(", "),
            all
        )))
    }

    /// The checkpoint's folder written by this process (see `save_checkpoint`).
    fn write_checkpoint(&mut self, out: &Path, name: &str) -> Result<PathBuf> {
        create_dir(out)?;
        let tmp = out.join(format!("tmp-{name}"));
        let dir = out.join(name);
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|source| io::write_error(&tmp, source))?;
        }
        let previous_best = self.state.best_model_checkpoint.clone();
        // Best only when these weights are the ones that scored best: evaluated at this very
        // step (a save some steps after the evaluation holds other weights).
        if self.last_eval_improved && self.state.best_global_step == Some(self.state.global_step) {
            self.state.best_model_checkpoint = Some(dir.display().to_string());
        }
        let written = create_dir(&tmp).and_then(|_| self.write_checkpoint_files(&tmp));
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&tmp);
            self.state.best_model_checkpoint = previous_best;
            return Err(e);
        }
        self.last_eval_improved = false;
        let aside = out.join(format!(".deleting-{name}"));
        let replaced = dir.exists();
        if replaced {
            io::rename(&dir, &aside)?;
        }
        io::rename(&tmp, &dir)?;
        if replaced {
            std::fs::remove_dir_all(&aside).map_err(|source| io::write_error(&aside, source))?;
        }
        if let Some(limit) = self.args.save_total_limit {
            let best = self.best_checkpoint_dir();
            rotate_checkpoints(out, limit, best.as_deref())?;
        }
        Ok(dir)
    }

    /// The folder `state.best_model_checkpoint` names, in `output_dir`. The state holds it as
    /// text (Hugging Face's `trainer_state.json`), which cannot hold a path that is not UTF-8;
    /// the folder's own name, `checkpoint-N`, always can.
    pub(super) fn best_checkpoint_dir(&self) -> Option<PathBuf> {
        let best = PathBuf::from(self.state.best_model_checkpoint.as_ref()?);
        Some(self.args.output_dir.join(best.file_name()?))
    }

    /// The files of a checkpoint, into `tmp`.
    fn write_checkpoint_files(&self, tmp: &Path) -> Result<()> {
        self.model.save_pretrained(tmp)?;
        self.optimizer.save(&tmp.join("optimizer.safetensors"))?;
        write_json(&tmp.join("scheduler.json"), &self.scheduler)?;
        write_json(
            &tmp.join("rng_state.json"),
            &RngState {
                seed: self.args.seed,
                global_step: self.state.global_step,
                // dropout masks follow each batch's seed: nothing else to restore
                model: None,
                world_size: Some(self.comm.world_size()),
            },
        )?;
        write_json(&tmp.join("training_args.json"), &self.args)?;
        self.state.save_to_json(&tmp.join("trainer_state.json"))
    }

    /// Restores model, optimiser, scheduler, RNG and trainer state from `checkpoint`: a
    /// `checkpoint-N` folder, or `"latest"` for the newest in `output_dir`. Training then
    /// continues exactly as if it had not stopped. Refused, before anything changes: a
    /// checkpoint of another architecture (its `config.json`), one past `max_steps`, one whose
    /// files disagree on the step. A checkpoint at exactly `max_steps` loads and leaves nothing
    /// to train (as in transformers), so `train()` does only its end.
    pub fn resume_from_checkpoint(&mut self, checkpoint: &str) -> Result<PathBuf> {
        let dir = if checkpoint == "latest" || checkpoint == "true" {
            get_last_checkpoint(&self.args.output_dir).ok_or_else(|| Error::Checkpoint {
                path: self.args.output_dir.clone(),
                message: "no checkpoint-N folder to resume from; train with save_steps first"
                    .into(),
            })?
        } else {
            PathBuf::from(checkpoint)
        };
        if !dir.is_dir() {
            return Err(Error::Checkpoint {
                path: dir,
                message: "is not a checkpoint folder; give output_dir/checkpoint-N or \"latest\""
                    .into(),
            });
        }
        let state = TrainerState::load_from_json(&dir.join("trainer_state.json"))?;
        let sched: LrScheduler = read_json(&dir.join("scheduler.json"))?;
        // read to check the checkpoint is whole; dropout follows each batch's own seed
        let rng: RngState = read_json(&dir.join("rng_state.json"))?;
        // Checked before anything changes: a step count the folder's files disagree on, or
        // nothing left to train.
        let step = state.global_step;
        let named = checkpoint_step(&dir);
        if named.is_some_and(|n| n != step) || rng.global_step != step || sched.last_step != step {
            return Err(Error::Checkpoint {
                path: dir.join("trainer_state.json"),
                message: format!(
                    "global_step {step} disagrees with the checkpoint (folder step {}, rng_state.json {}, scheduler.json {}); the checkpoint is damaged: resume from another checkpoint-N folder, or start over with --overwrite-output-dir",
                    named.map_or("-".to_string(), |n| n.to_string()),
                    rng.global_step,
                    sched.last_step
                ),
            });
        }
        // At max_steps exactly the run resumes with nothing left to train, as transformers
        // does: train() then does only its end (the best model loaded, the state written), which
        // finishes a run that was stopped between its last checkpoint and its last writes.
        if step > self.max_steps {
            return Err(Error::Checkpoint {
                path: dir.clone(),
                message: format!(
                    "this checkpoint is at step {step} and max_steps is {}: it is past the end of this run, so nothing was changed; raise --max-steps (max_steps) to {step} or more to continue it",
                    self.max_steps
                ),
            });
        }
        self.check_same_architecture(&dir)?;
        let layout_note = self.resume_layout_note(&dir, step, rng.world_size);
        self.load_model_weights(&dir.join(self.model.weights_file_name()))?;
        self.optimizer.load(&dir.join("optimizer.safetensors"))?;
        self.scheduler.last_step = sched.last_step;
        self.state = TrainerState {
            max_steps: self.max_steps,
            ..state
        };
        self.log_loss_sum = 0.0;
        self.log_steps = 0;
        self.log_tokens = 0;
        self.log_start = None;
        if let Some((warn, text)) = layout_note
            && self.is_main_process()
        {
            eprintln!("{}: {text}", if warn { "warning" } else { "note" });
        }
        Ok(dir)
    }

    /// What a resume from `dir` changes in the global batch (see `batch_layout`): `None` when
    /// nothing, or when the checkpoint does not say how it was made (written before it did).
    fn resume_layout_note(
        &self,
        dir: &Path,
        step: usize,
        saved_world: Option<usize>,
    ) -> Option<(bool, String)> {
        let args: Value = read_json(&dir.join("training_args.json")).ok()?;
        let n = |k: &str| args.get(k)?.as_u64().map(|v| v as usize);
        let saved = BatchLayout {
            world_size: saved_world?,
            per_device: n("per_device_train_batch_size")?,
            accumulation: n("gradient_accumulation_steps")?,
        };
        let ours = BatchLayout {
            world_size: self.comm.world_size(),
            per_device: self.args.per_device_train_batch_size,
            accumulation: self.args.gradient_accumulation_steps,
        };
        let name = dir.file_name().unwrap_or(dir.as_os_str()).to_string_lossy();
        resume_note(&name, step, saved, ours)
    }

    /// Refuses a checkpoint whose `config.json` describes another architecture than the
    /// model's (layers, widths, heads, vocabulary, positions: the whole numbers of the config,
    /// token ids aside): loading it by name would silently drop the layers this model lacks,
    /// and the run would then overwrite the finished model and rotate the checkpoint away.
    fn check_same_architecture(&self, dir: &Path) -> Result<()> {
        let path = dir.join("config.json");
        if !path.is_file() {
            return Ok(()); // a model of one's own may save none; the weights are still checked
        }
        let saved: Value = read_json(&path)?;
        let diffs = architecture_differences(&saved, &self.model.config_json());
        if diffs.is_empty() {
            return Ok(());
        }
        Err(Error::Checkpoint {
            path: dir.to_path_buf(),
            message: format!(
                "this checkpoint was saved by another architecture ({}): resuming would drop or misplace weights, so nothing was changed; resume with the checkpoint's settings (its config.json), or train the new architecture in another --output-dir (output_dir)",
                diffs.join("; ")
            ),
        })
    }

    /// Sets every model parameter from a safetensors file, by name.
    pub(super) fn load_model_weights(&self, path: &Path) -> Result<()> {
        let device = self.model.device().clone();
        let tensors =
            candle_core::safetensors::load(path, &device).map_err(|e| Error::Checkpoint {
                path: path.to_path_buf(),
                message: format!("cannot read the weights: {e}"),
            })?;
        load_varmap(self.model.varmap(), &tensors, path)
    }
}

/// A checksum of every weight's bits, in name order (xxh3): equal on ranks whose weights are
/// bit for bit equal.
fn weights_checksum(varmap: &VarMap) -> Result<u64> {
    use std::hash::Hasher;
    let data = varmap
        .data()
        .lock()
        .map_err(|_| Error::InvalidArgument("the model's VarMap lock is poisoned".into()))?;
    let mut named: Vec<_> = data.iter().collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = twox_hash::XxHash3_64::with_seed(0);
    for (name, var) in named {
        h.write(name.as_bytes());
        let v = var
            .as_tensor()
            .flatten_all()?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1::<f32>()?;
        for x in v {
            h.write_u32(x.to_bits());
        }
    }
    Ok(h.finish())
}

/// Sets each `VarMap` variable from `tensors` by name (shapes checked).
fn load_varmap(varmap: &VarMap, tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| Error::InvalidArgument("the model's VarMap lock is poisoned".into()))?;
    for (name, var) in data.iter() {
        let t = tensors.get(name).ok_or_else(|| Error::Checkpoint {
            path: path.to_path_buf(),
            message: format!("weight `{name}` is missing; the checkpoint belongs to another model"),
        })?;
        if t.dims() != var.dims() {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                message: format!(
                    "weight `{name}` has shape {:?}, the model expects {:?}",
                    t.dims(),
                    var.dims()
                ),
            });
        }
        var.set(&t.to_dtype(var.dtype())?)?;
    }
    Ok(())
}

/// The architecture keys on which two `config.json` objects differ, as
/// `"n_layer 2 in the checkpoint, n_layer 1 in this run"`: the whole numbers (sizes and counts)
/// and `model_type`; token ids, rates and flags may change between runs.
fn architecture_differences(saved: &Value, ours: &Value) -> Vec<String> {
    let (Some(a), Some(b)) = (saved.as_object(), ours.as_object()) else {
        return Vec::new();
    };
    let mut keys: Vec<&String> = a.keys().filter(|k| b.contains_key(*k)).collect();
    keys.sort();
    keys.into_iter()
        .filter(|k| !k.contains("token_id"))
        .filter_map(|k| {
            let (x, y) = (&a[k], &b[k]);
            let sized = x.is_u64() || y.is_u64() || k.as_str() == "model_type";
            (sized && x != y).then(|| format!("{k} {x} in the checkpoint, {k} {y} in this run"))
        })
        .collect()
}

fn create_dir(dir: &Path) -> Result<()> {
    io::create_dir_all(dir)
}
