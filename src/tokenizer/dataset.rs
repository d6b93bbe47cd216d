//! Datasets of tokens: `dataset.tokenize(&tok, "text")` and `group_texts(block_size)`.
use super::Tokenizer;
use super::train::json_kind;
use crate::data::{Column, Dataset, DatasetDict};
use crate::{Error, Result};
use serde_json::Value;

/// Rows per concatenation batch in [`Dataset::group_texts`]: `datasets.map(batched=True)`'s
/// default, which run_clm.py relies on (the remainder is dropped per batch of 1000 rows).
pub const GROUP_TEXTS_BATCH: usize = 1000;

/// Columns written by [`Dataset::tokenize`].
pub const TOKEN_COLUMNS: [&str; 3] = ["input_ids", "attention_mask", "special_tokens_mask"];

fn int_array(v: &[u32]) -> Value {
    Value::Array(v.iter().map(|&x| Value::from(x)).collect())
}

impl Dataset {
    /// Tokenize the string column `column` (in parallel) and add `input_ids`, `attention_mask`
    /// and `special_tokens_mask` columns (JSON arrays of ints), as
    /// `ds.map(lambda b: tok(b["text"], return_special_tokens_mask=True), batched=True)` does.
    /// The other columns are kept; existing token columns are replaced.
    pub fn tokenize(&self, tok: &Tokenizer, column: &str) -> Result<Dataset> {
        // Borrowed from the Arrow string buffers; the JSON values are only built to name the
        // first cell that is not a string.
        let texts = match self.column_str(column) {
            Ok(texts) => texts,
            Err(_) => {
                let values = self.column(column)?;
                let (row, v) = values
                    .iter()
                    .enumerate()
                    .find(|(_, v)| !v.is_string())
                    .unwrap_or((0, &Value::Null));
                return Err(Error::ColumnType {
                    column: column.to_string(),
                    row,
                    expected: "a string to tokenize".into(),
                    found: json_kind(v).into(),
                });
            }
        };
        let encodings = tok.encode_batch_with(&texts, &Default::default())?;
        let present: Vec<&str> = TOKEN_COLUMNS
            .iter()
            .copied()
            .filter(|c| self.column_index(c).is_ok())
            .collect();
        let mut out = self.remove_columns(&present)?;
        let mut ids = Vec::with_capacity(encodings.len());
        let mut attention = Vec::with_capacity(encodings.len());
        let mut special = Vec::with_capacity(encodings.len());
        for e in &encodings {
            ids.push(int_array(&e.ids));
            attention.push(int_array(&e.attention_mask));
            special.push(int_array(&e.special_tokens_mask));
        }
        for (name, values) in TOKEN_COLUMNS.iter().zip([ids, attention, special]) {
            out = out.with_column(name, values)?;
        }
        Ok(out)
    }

    /// Fixed-length blocks for causal-LM training, as run_clm.py's `group_texts`: per batch of
    /// [`GROUP_TEXTS_BATCH`] rows, concatenate every list column (`input_ids`,
    /// `attention_mask`, ...), drop the remainder that does not fill a block, cut into blocks of
    /// `block_size`, and add `labels` equal to `input_ids` (the model shifts them). Columns that
    /// are not lists of ints (the text) are dropped.
    pub fn group_texts(&self, block_size: usize) -> Result<Dataset> {
        if block_size == 0 {
            return Err(Error::InvalidArgument(
                "group_texts: block_size must be > 0".into(),
            ));
        }
        self.column("input_ids")?;
        let names: Vec<String> = self
            .column_names()
            .into_iter()
            .filter(|n| n != "labels")
            .filter(|n| {
                self.column(n)
                    .map(|v| v.iter().all(Value::is_array))
                    .unwrap_or(false)
            })
            .collect();
        let sources: Vec<&[Value]> = names
            .iter()
            .map(|n| self.column(n))
            .collect::<Result<_>>()?;
        let id_col =
            names
                .iter()
                .position(|n| n == "input_ids")
                .ok_or_else(|| Error::ColumnType {
                    column: "input_ids".into(),
                    row: 0,
                    expected: "lists of token ids (run tokenize first)".into(),
                    found: "other values".into(),
                })?;
        let mut out: Vec<Vec<Value>> = vec![Vec::new(); names.len()];
        let n = self.num_rows();
        let mut start = 0;
        while start < n {
            let end = (start + GROUP_TEXTS_BATCH).min(n);
            let mut concat: Vec<Vec<Value>> = vec![Vec::new(); names.len()];
            for row in start..end {
                let len = sources[id_col][row].as_array().map_or(0, Vec::len);
                for (c, src) in sources.iter().enumerate() {
                    let items = src[row].as_array().map(Vec::as_slice).unwrap_or(&[]);
                    if items.len() != len {
                        return Err(Error::ColumnType {
                            column: names[c].clone(),
                            row,
                            expected: format!("{len} values like input_ids"),
                            found: format!("{} values", items.len()),
                        });
                    }
                    concat[c].extend_from_slice(items);
                }
            }
            let total = concat[id_col].len() / block_size * block_size;
            for (c, values) in concat.into_iter().enumerate() {
                for block in values[..total].chunks(block_size) {
                    out[c].push(Value::Array(block.to_vec()));
                }
            }
            start = end;
        }
        let labels = out[id_col].clone();
        let mut columns: Vec<Column> = names
            .into_iter()
            .zip(out)
            .map(|(name, values)| Column { name, values })
            .collect();
        columns.push(Column {
            name: "labels".into(),
            values: labels,
        });
        Dataset::from_columns(columns)
    }
}

impl DatasetDict {
    /// [`Dataset::tokenize`] on every split.
    pub fn tokenize(&self, tok: &Tokenizer, column: &str) -> Result<DatasetDict> {
        self.map_splits(|ds| ds.tokenize(tok, column))
    }

    /// [`Dataset::group_texts`] on every split.
    pub fn group_texts(&self, block_size: usize) -> Result<DatasetDict> {
        self.map_splits(|ds| ds.group_texts(block_size))
    }
}
