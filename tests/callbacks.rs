//! Issue 29, callbacks: `TrainerCallback` called at the points transformers calls it, its
//! `TrainerControl` obeyed, and `EarlyStoppingCallback` stopping where transformers' would.
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::Device;
use massivetext::models::AutoModelForCausalLM;
use massivetext::train::{
    EarlyStoppingCallback, IntervalStrategy, LogEntry, Metrics, Steps, Trainer, TrainerCallback,
    TrainerControl, TrainerState, TrainingArguments,
};
use massivetext::{Error, Result};

#[path = "common/tiny_train.rs"]
#[allow(dead_code)] // this file needs the library half only, not the CLI flags
mod tiny;
use tiny::{tiny_gpt2, windows};

/// Evaluation every 2 steps, a checkpoint after each, the best by `eval_score`.
fn early_args(dir: &Path) -> TrainingArguments {
    TrainingArguments {
        output_dir: dir.to_path_buf(),
        per_device_train_batch_size: 4,
        max_steps: Some(20),
        learning_rate: 1e-2,
        eval_strategy: IntervalStrategy::Steps,
        eval_steps: Some(Steps::Every(2)),
        save_strategy: IntervalStrategy::Steps,
        save_steps: Steps::Every(2),
        load_best_model_at_end: true,
        metric_for_best_model: Some("score".into()),
        greater_is_better: Some(true),
        disable_tqdm: true,
        ..Default::default()
    }
}

/// A trainer whose `compute_metrics` returns `scores` in turn as `eval_score`.
fn scripted(dir: &Path, scores: &'static [f64]) -> Trainer<AutoModelForCausalLM> {
    let calls = Arc::new(AtomicUsize::new(0));
    let model = AutoModelForCausalLM::from_config(tiny_gpt2(1), &Device::Cpu).unwrap();
    Trainer::new(model, early_args(dir), windows())
        .unwrap()
        .with_eval_dataset(windows())
        .unwrap()
        .with_compute_metrics(move |_| {
            let i = calls.fetch_add(1, Ordering::SeqCst);
            Ok(Metrics::from([(
                "score".to_string(),
                scores[i.min(scores.len() - 1)],
            )]))
        })
}

fn evals(t: &Trainer<AutoModelForCausalLM>) -> Vec<f64> {
    t.log_history()
        .iter()
        .filter_map(|e| e.get("eval_score").and_then(|v| v.as_f64()))
        .collect()
}

#[test]
fn early_stopping_stops_after_patience_evaluations_without_improvement() {
    let dir = tempfile::tempdir().unwrap();
    // 0.5 and 0.6 improve; 0.6 (equal) and 0.55 do not: the second miss stops the run.
    let mut t = scripted(dir.path(), &[0.5, 0.6, 0.6, 0.55, 0.9, 0.95])
        .with_callback(EarlyStoppingCallback::new(2, 0.0));
    let out = t.train().unwrap();
    assert_eq!(out.global_step, 8, "stopped at the 4th evaluation");
    assert_eq!(evals(&t), [0.5, 0.6, 0.6, 0.55]);
    assert_eq!(t.state().best_metric, Some(0.6));
    assert_eq!(t.state().best_global_step, Some(4));
    assert!(t.control().should_training_stop);
    // the run's end still happens: the summary row and trainer_state.json
    assert!(t.log_history().last().unwrap().contains_key("train_loss"));
    let saved = TrainerState::load_from_json(&dir.path().join("trainer_state.json")).unwrap();
    assert_eq!(saved.global_step, 8);
}

#[test]
fn early_stopping_threshold_counts_small_gains_as_misses() {
    let dir = tempfile::tempdir().unwrap();
    // 0.6 and 0.65 beat the best by 0.1 and 0.05, under the threshold 0.2: two misses.
    let mut t = scripted(dir.path(), &[0.5, 0.6, 0.65, 0.9])
        .with_callback(EarlyStoppingCallback::new(2, 0.2));
    let out = t.train().unwrap();
    assert_eq!(out.global_step, 6);
    assert_eq!(evals(&t), [0.5, 0.6, 0.65]);
    // the best metric itself moves with any gain, as in transformers
    assert_eq!(t.state().best_metric, Some(0.65));
}

#[test]
fn early_stopping_says_what_the_arguments_lack() {
    let dir = tempfile::tempdir().unwrap();
    let model = AutoModelForCausalLM::from_config(tiny_gpt2(1), &Device::Cpu).unwrap();
    let args = TrainingArguments {
        load_best_model_at_end: false,
        metric_for_best_model: Some("loss".into()),
        greater_is_better: None,
        ..early_args(dir.path())
    };
    let mut t = Trainer::new(model, args, windows())
        .unwrap()
        .with_eval_dataset(windows())
        .unwrap()
        .with_callback(EarlyStoppingCallback::default());
    let e = t.train().unwrap_err();
    assert!(matches!(e, Error::InvalidConfig(_)), "{e:?}");
    assert!(
        e.to_string().contains("load_best_model_at_end = true"),
        "{e}"
    );
    assert_eq!(t.state().global_step, 0, "refused before the first step");
}

/// Records the calls, asks for a save at step 3 and stops once 5 rows were logged.
#[derive(Clone, Default)]
struct Recorder {
    calls: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn note(&self, what: &str, s: &TrainerState) {
        self.calls
            .lock()
            .unwrap()
            .push(format!("{what} {}", s.global_step));
    }
}

impl TrainerCallback for Recorder {
    fn on_train_begin(
        &mut self,
        _: &TrainingArguments,
        s: &TrainerState,
        _: &mut TrainerControl,
    ) -> Result<()> {
        self.note("begin", s);
        Ok(())
    }
    fn on_step_end(
        &mut self,
        _: &TrainingArguments,
        s: &TrainerState,
        c: &mut TrainerControl,
    ) -> Result<()> {
        self.note("step", s);
        c.should_save = s.global_step == 3;
        Ok(())
    }
    fn on_log(
        &mut self,
        _: &TrainingArguments,
        s: &TrainerState,
        c: &mut TrainerControl,
        logs: &LogEntry,
    ) -> Result<()> {
        assert!(logs.contains_key("loss"), "{logs:?}");
        self.note("log", s);
        c.should_training_stop = s.log_history.len() >= 5;
        Ok(())
    }
    fn on_save(
        &mut self,
        _: &TrainingArguments,
        s: &TrainerState,
        _: &mut TrainerControl,
    ) -> Result<()> {
        self.note("save", s);
        Ok(())
    }
    fn on_train_end(
        &mut self,
        _: &TrainingArguments,
        s: &TrainerState,
        _: &mut TrainerControl,
    ) -> Result<()> {
        self.note("end", s);
        Ok(())
    }
}

#[test]
fn a_callback_is_called_in_order_and_its_control_is_obeyed() {
    let dir = tempfile::tempdir().unwrap();
    let model = AutoModelForCausalLM::from_config(tiny_gpt2(1), &Device::Cpu).unwrap();
    let args = TrainingArguments {
        output_dir: dir.path().to_path_buf(),
        per_device_train_batch_size: 4,
        max_steps: Some(20),
        logging_steps: Steps::Every(1),
        save_strategy: IntervalStrategy::No,
        disable_tqdm: true,
        ..Default::default()
    };
    let rec = Recorder::default();
    let mut t = Trainer::new(model, args, windows())
        .unwrap()
        .with_callback(rec.clone());
    let out = t.train().unwrap();
    assert_eq!(out.global_step, 5, "stopped once five rows were logged");
    let calls = rec.calls.lock().unwrap().clone();
    let want = [
        "begin 0", "step 1", "log 1", "step 2", "log 2", "step 3", "log 3", "save 3", "step 4",
        "log 4", "step 5", "log 5", "end 5",
    ];
    assert_eq!(calls, want);
    // the save asked for at step 3, though save_strategy is "no"
    assert!(dir.path().join("checkpoint-3").is_dir());
    assert!(!dir.path().join("checkpoint-2").exists());
}

/// An error from a callback stops training with that error.
#[derive(Clone)]
struct Fails;

impl TrainerCallback for Fails {
    fn on_step_end(
        &mut self,
        _: &TrainingArguments,
        s: &TrainerState,
        _: &mut TrainerControl,
    ) -> Result<()> {
        if s.global_step == 2 {
            return Err(Error::InvalidArgument("the callback refused step 2".into()));
        }
        Ok(())
    }
}

#[test]
fn a_callback_error_stops_training_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = AutoModelForCausalLM::from_config(tiny_gpt2(1), &Device::Cpu).unwrap();
    let args = TrainingArguments {
        output_dir: dir.path().to_path_buf(),
        per_device_train_batch_size: 4,
        max_steps: Some(20),
        save_strategy: IntervalStrategy::No,
        disable_tqdm: true,
        ..Default::default()
    };
    let mut t = Trainer::new(model, args, windows()).unwrap();
    t.add_callback(Fails);
    let e = t.train().unwrap_err();
    assert!(e.to_string().contains("the callback refused step 2"), "{e}");
    assert_eq!(t.state().global_step, 2);
}
