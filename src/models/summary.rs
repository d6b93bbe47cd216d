//! What a model shows of itself (`Debug`, `Display`, `evcxr_display`) and
//! `resize_token_embeddings`: the parts of the `AutoModel*` face that read or reshape the whole
//! model rather than run it.
use candle_core::{DType, DeviceLocation, Tensor, Var};

use super::heads::Head;
use super::model::Model;
use crate::display;
use crate::{Error, Result};

pub(crate) fn device_name(loc: DeviceLocation) -> String {
    match loc {
        DeviceLocation::Cpu => "cpu".into(),
        DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// `124439808` → `124.4M`.
pub(crate) fn human_count(n: usize) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.1}B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 10_000 => format!("{:.1}K", n as f64 / 1e3),
        n => n.to_string(),
    }
}

impl Model {
    /// The facts a summary shows, as `(field, value)` rows.
    pub(crate) fn summary_rows(&self) -> Vec<(String, String)> {
        let (layers, hidden, heads) = self.config.dims();
        let params: usize = self
            .named_parameters()
            .iter()
            .map(|(_, v)| v.elem_count())
            .sum();
        let word = &self.core.embeddings.word;
        vec![
            ("model_type".into(), self.config.model_type().into()),
            ("layers".into(), layers.to_string()),
            ("hidden_size".into(), hidden.to_string()),
            ("heads".into(), heads.to_string()),
            ("vocab_size".into(), self.config.vocab_size().to_string()),
            (
                "max_positions".into(),
                self.config.max_positions().to_string(),
            ),
            (
                "parameters".into(),
                format!("{} ({params})", human_count(params)),
            ),
            ("device".into(), device_name(self.device.location())),
            ("dtype".into(), format!("{:?}", word.dtype()).to_lowercase()),
            (
                "mode".into(),
                if self.training { "training" } else { "eval" }.into(),
            ),
        ]
    }

    pub(crate) fn summary_text(&self) -> String {
        display::text_fields(self.architecture(), &self.summary_rows())
    }

    pub(crate) fn evcxr_display(&self) {
        let rows = self.summary_rows();
        display::show(
            &display::html_fields(self.architecture(), &rows),
            &display::text_fields(self.architecture(), &rows),
        );
    }

    pub(crate) fn fmt_debug(
        &self,
        name: &str,
        f: &mut std::fmt::Formatter<'_>,
    ) -> std::fmt::Result {
        let mut d = f.debug_struct(name);
        d.field("architecture", &self.architecture());
        for (k, v) in self.summary_rows() {
            d.field(&k, &v);
        }
        d.finish()
    }

    /// The VarMap name of the parameter whose tensor is `t`.
    fn var_name(&self, t: &Tensor) -> Result<String> {
        self.named_parameters()
            .into_iter()
            .find(|(_, v)| v.as_tensor().id() == t.id())
            .map(|(n, _)| n)
            .ok_or_else(|| {
                Error::InvalidArgument(
                    "resize_token_embeddings: the embedding table is not among the model's parameters".into(),
                )
            })
    }

    /// Replaces the parameter holding `old` by `new` (same name); returns the new tensor.
    fn replace_param(&self, old: &Tensor, new: &Tensor) -> Result<Tensor> {
        let name = self.var_name(old)?;
        let var = Var::from_tensor(new)?;
        let out = var.as_tensor().clone();
        self.varmap
            .data()
            .lock()
            .map_err(|_| Error::InvalidArgument("the model's VarMap lock is poisoned".into()))?
            .insert(name, var);
        Ok(out)
    }

    /// See `AutoModel*::resize_token_embeddings`.
    pub(crate) fn resize_token_embeddings(&mut self, new_size: usize) -> Result<()> {
        if new_size == 0 {
            return Err(Error::InvalidArgument(
                "resize_token_embeddings: the new vocabulary size must be at least 1".into(),
            ));
        }
        let word = self.core.embeddings.word.clone();
        let new_word = resize_rows(&word, new_size)?;
        self.core.embeddings.word = self.replace_param(&word, &new_word)?;
        let bias = match &self.head {
            Head::MaskedLm { bias, .. } => Some(bias.clone()),
            Head::TiedLm { bias } => bias.clone(),
            _ => None,
        };
        if let Some(bias) = bias {
            let new_bias = resize_rows(&bias, new_size)?;
            let new_bias = self.replace_param(&bias, &new_bias)?;
            match &mut self.head {
                Head::MaskedLm { bias, .. } => *bias = new_bias,
                Head::TiedLm { bias } => *bias = Some(new_bias),
                _ => {}
            }
        }
        self.config.set_vocab_size(new_size);
        Ok(())
    }
}

/// The first `n` rows of `t` (`[rows, ..]`), or all of them followed by copies of their mean.
fn resize_rows(t: &Tensor, n: usize) -> Result<Tensor> {
    let rows = t.dim(0)?;
    if n <= rows {
        return Ok(t.narrow(0, 0, n)?.contiguous()?);
    }
    let dtype = t.dtype();
    let mean = t.to_dtype(DType::F32)?.mean_keepdim(0)?;
    let mut shape = t.dims().to_vec();
    shape[0] = n - rows;
    let extra = mean.broadcast_as(shape)?.to_dtype(dtype)?.contiguous()?;
    Ok(Tensor::cat(&[t, &extra], 0)?)
}
