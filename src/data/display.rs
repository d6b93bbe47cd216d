//! How datasets look: HF-style `Display` in a terminal, an HTML table in a notebook.
use super::{Dataset, DatasetDict};
use crate::display::{emit, escape_html, truncate};
use serde_json::Value;
use std::fmt;

/// Rows shown in a notebook table.
const PREVIEW_ROWS: usize = 5;
/// Characters shown per cell.
const CELL_CHARS: usize = 80;

fn cell_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl fmt::Display for Dataset {
    /// `Dataset({ features: ['text'], num_rows: 40000 })`, as HF prints it, plus the types.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let features: Vec<String> = self
            .features()
            .iter()
            .map(|(n, t)| format!("'{n}': {t}"))
            .collect();
        write!(
            f,
            "Dataset({{ features: {{{}}}, num_rows: {} }})",
            features.join(", "),
            self.num_rows()
        )
    }
}

impl fmt::Display for DatasetDict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "DatasetDict({{")?;
        for (name, ds) in self.iter() {
            writeln!(f, "    {name}: {ds}")?;
        }
        write!(f, "}})")
    }
}

impl Dataset {
    /// An HTML table: shape, column types and the first rows.
    pub fn to_html(&self) -> String {
        let mut h = format!(
            "<div><b>Dataset</b>: {} rows × {} columns<table><thead><tr>",
            self.num_rows(),
            self.num_columns()
        );
        for (name, dtype) in self.features() {
            h += &format!("<th>{}<br><small>{dtype}</small></th>", escape_html(&name));
        }
        h += "</tr></thead><tbody>";
        for i in 0..self.num_rows().min(PREVIEW_ROWS) {
            h += "<tr>";
            for c in 0..self.num_columns() {
                h += &format!(
                    "<td>{}</td>",
                    escape_html(&truncate(&cell_text(&self.cell(i, c)), CELL_CHARS))
                );
            }
            h += "</tr>";
        }
        if self.num_rows() > PREVIEW_ROWS {
            h += &format!(
                "<tr><td colspan=\"{}\">… {} more rows</td></tr>",
                self.num_columns().max(1),
                self.num_rows() - PREVIEW_ROWS
            );
        }
        h + "</tbody></table></div>"
    }

    /// Renders inline when a dataset is the last expression of an evcxr cell.
    pub fn evcxr_display(&self) {
        emit("text/html", &self.to_html());
    }
}

impl DatasetDict {
    /// One table per split.
    pub fn to_html(&self) -> String {
        let mut h = String::from("<div><b>DatasetDict</b>");
        for (name, ds) in self.iter() {
            h += &format!("<h4>{}</h4>{}", escape_html(name), ds.to_html());
        }
        h + "</div>"
    }

    /// Renders inline when a dataset dict is the last expression of an evcxr cell.
    pub fn evcxr_display(&self) {
        emit("text/html", &self.to_html());
    }
}
