//! LoRA at the level of the generic model: the model rebuilt over its own weights, frozen, with
//! adapters in the layers peft's rules pick (`get_peft_model`), and an adapted model's updates
//! merged back into plain weights (`merge_and_unload`). The rules themselves (peft's
//! `LoraConfig`) live in `crate::peft`; this file only builds.
use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Tensor};

use super::layers::lora_delta;
use super::model::Model;
use super::params::{LoraAdapter, LoraReport, LoraSpec, Params};
use crate::{Error, Result};

impl Model {
    /// This model's network rebuilt with the adapters of `spec`. Its weights are shared with
    /// `self`, outside the graph of gradients (never copied, never changed); the new model's
    /// VarMap holds only what trains, under peft's saved names.
    pub(crate) fn with_lora(&self, spec: LoraSpec) -> Result<(Model, LoraReport)> {
        self.refuse_quantized("LoRA (get_peft_model)")?;
        let tensors: HashMap<String, Tensor> = self
            .tensors()
            .into_iter()
            .map(|(n, t)| (n, t.detach()))
            .collect();
        let mut p = Params::loaded(
            tensors,
            Vec::new(),
            Path::new("<base model>"),
            &self.device,
            self.dtypes.0,
        )
        .with_lora(spec);
        if let Some(w) = self.dtypes.1 {
            p = p.with_weight_dtype(w);
        }
        let net = self.config.build(&mut p, self.task, &self.labels)?;
        let report = p
            .lora_report()
            .ok_or_else(|| Error::InvalidArgument("the LoRA build recorded nothing".into()))?;
        let model = Model {
            config: self.config.clone(),
            extra: self.extra.clone(),
            net,
            task: self.task,
            varmap: p.varmap,
            device: self.device.clone(),
            dtypes: self.dtypes,
            training: self.training,
            dropout: self.dropout.clone(),
            generation: self.generation.clone(),
            labels: self.labels.clone(),
            compute_dtype: self.compute_dtype,
            gguf: self.gguf.clone(),
            quantized: None,
        };
        Ok((model, report))
    }

    /// `self` (the base model) with the trained tensors of an adapted model folded in: each
    /// adapted weight plus `scale · B A` (transposed for a `Conv1D`), each trained bias or
    /// whole module as trained. A new, independent model with no adapters.
    pub(crate) fn merged_with(
        &self,
        adapter: &Model,
        report: &LoraReport,
        scale: f64,
    ) -> Result<Model> {
        let mut tensors: HashMap<String, Tensor> = self
            .tensors()
            .into_iter()
            .map(|(n, t)| (n, t.detach()))
            .collect();
        let trained: HashMap<String, Tensor> = adapter
            .named_parameters()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().detach()))
            .collect();
        let get = |key: &str| {
            trained.get(key).cloned().ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "merge_and_unload: the adapter has no parameter `{key}`"
                ))
            })
        };
        for (key, name) in &report.trained {
            if !(key.ends_with(".lora_A.weight") || key.ends_with(".lora_B.weight")) {
                tensors.insert(name.clone(), get(key)?);
            }
        }
        for (module, conv1d) in &report.adapted {
            let prefix = format!("{}{module}", super::params::PEFT_PREFIX);
            let a = get(&format!("{prefix}.lora_A.weight"))?;
            let b = get(&format!("{prefix}.lora_B.weight"))?;
            let adapter = LoraAdapter {
                a,
                b,
                scale,
                dropout: 0.0,
            };
            let delta = lora_delta(&adapter, *conv1d)?;
            let wname = format!("{module}.weight");
            let w = tensors.get(&wname).ok_or_else(|| {
                Error::InvalidArgument(format!("merge_and_unload: no weight `{wname}`"))
            })?;
            let merged = (w.to_dtype(DType::F32)? + delta)?.to_dtype(w.dtype())?;
            tensors.insert(wname, merged);
        }
        let mut m = self.rebuilt(tensors, self.dtypes)?;
        m.training = adapter.training;
        Ok(m)
    }
}
