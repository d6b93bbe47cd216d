//! What a model shows of itself (`Debug`, `Display`, `evcxr_display`), the same for every
//! family: the architecture, the family's own rows (layers, width, heads, ...), then the
//! parameters, device, dtype and mode.
use candle_core::DeviceLocation;

use super::model::Model;
use crate::display;

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
        let params: usize = self
            .named_parameters()
            .iter()
            .map(|(_, v)| v.elem_count())
            .sum();
        let mut rows = vec![(
            "model_type".to_string(),
            self.config.model_type().to_string(),
        )];
        rows.extend(self.config.summary_rows());
        rows.extend([
            (
                "parameters".into(),
                format!("{} ({params})", human_count(params)),
            ),
            ("device".into(), device_name(self.device.location())),
            (
                "dtype".into(),
                format!("{:?}", self.net.dtype()).to_lowercase(),
            ),
            (
                "mode".into(),
                if self.training { "training" } else { "eval" }.into(),
            ),
        ]);
        rows
    }

    pub(crate) fn summary_text(&self) -> String {
        display::text_fields(self.architecture(), &self.summary_rows())
    }

    pub(crate) fn evcxr_display(&self) {
        let rows = self.summary_rows();
        display::show_fields(self.architecture(), &rows);
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
}
