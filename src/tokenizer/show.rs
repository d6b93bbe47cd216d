//! What a tokenizer, an [`Encoding`] and a [`BatchEncoding`] show as the last value of a
//! notebook cell: an HTML table (tokens aligned with their ids and masks) and a text fallback.
use super::Tokenizer;
use super::batch::BatchEncoding;
use super::encode::Encoding;
use crate::display;

/// Tokens shown per sequence before the rest is summarised.
const MAX_TOKENS: usize = 64;
/// Sequences of a batch shown before the rest is summarised.
const MAX_SEQUENCES: usize = 8;

const HEADER: [&str; 4] = ["token", "input_ids", "attention_mask", "token_type_ids"];

fn aligned_rows(e: &Encoding) -> Vec<Vec<String>> {
    let n = e.len().min(MAX_TOKENS);
    let mut rows = vec![
        e.tokens[..n].to_vec(),
        e.ids[..n].iter().map(u32::to_string).collect(),
        e.attention_mask[..n].iter().map(u32::to_string).collect(),
        e.type_ids[..n].iter().map(u32::to_string).collect(),
    ];
    if e.len() > n {
        for r in &mut rows {
            r.push("…".into());
        }
    }
    rows
}

impl Encoding {
    /// Tokens over their ids, attention mask and token type ids, one column per token.
    pub fn to_text(&self) -> String {
        format!(
            "Encoding ({} tokens)\n{}",
            self.len(),
            display::text_aligned(&HEADER, &aligned_rows(self))
        )
    }

    /// Renders as an aligned table in an evcxr notebook.
    pub fn evcxr_display(&self) {
        let rows = aligned_rows(self);
        let caption = format!("Encoding ({} tokens)", self.len());
        display::show(
            &display::html_aligned(&caption, &HEADER, &rows),
            &self.to_text(),
        );
    }
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl BatchEncoding {
    fn caption(&self) -> String {
        format!(
            "BatchEncoding: {} sequences × {} tokens (input_ids, attention_mask, token_type_ids: u32 {:?}, {})",
            self.len(),
            self.seq_len(),
            self.input_ids.dims(),
            format!("{:?}", self.input_ids.device().location()).to_lowercase()
        )
    }

    /// Every sequence (up to 8) as aligned tokens, ids and masks.
    pub fn to_text(&self) -> String {
        let mut out = self.caption();
        for (i, e) in self.encodings.iter().take(MAX_SEQUENCES).enumerate() {
            out.push_str(&format!(
                "\n[{i}]\n{}",
                display::text_aligned(&HEADER, &aligned_rows(e))
            ));
        }
        if self.len() > MAX_SEQUENCES {
            out.push_str(&format!("\n… {} more", self.len() - MAX_SEQUENCES));
        }
        out
    }

    /// Renders as one aligned table per sequence in an evcxr notebook.
    pub fn evcxr_display(&self) {
        let mut html = format!("<div><b>{}</b>", display::escape_html(&self.caption()));
        for (i, e) in self.encodings.iter().take(MAX_SEQUENCES).enumerate() {
            html.push_str(&display::html_aligned(
                &format!("[{i}]"),
                &HEADER,
                &aligned_rows(e),
            ));
        }
        if self.len() > MAX_SEQUENCES {
            html.push_str(&format!("<p>… {} more</p>", self.len() - MAX_SEQUENCES));
        }
        html.push_str("</div>");
        display::show(&html, &self.to_text());
    }
}

impl std::fmt::Display for BatchEncoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl Tokenizer {
    /// Class, vocabulary size, maximum length, padding side and each special token with its id.
    pub fn summary_rows(&self) -> Vec<(String, String)> {
        let mut rows = vec![
            ("class".to_string(), self.tokenizer_class().to_string()),
            ("vocab_size".into(), self.vocab_size().to_string()),
            (
                "model_max_length".into(),
                self.model_max_length()
                    .map_or("none".into(), |n| n.to_string()),
            ),
            ("padding_side".into(), self.padding_side().as_str().into()),
        ];
        let s = self.special_tokens();
        for (role, tok) in [
            ("bos_token", &s.bos_token),
            ("eos_token", &s.eos_token),
            ("unk_token", &s.unk_token),
            ("sep_token", &s.sep_token),
            ("pad_token", &s.pad_token),
            ("cls_token", &s.cls_token),
            ("mask_token", &s.mask_token),
        ] {
            if let Some(t) = tok {
                let id = self
                    .token_to_id(t)
                    .map_or("not in vocabulary".into(), |i| i.to_string());
                rows.push((role.into(), format!("{t} ({id})")));
            }
        }
        rows
    }

    /// Renders the summary as a table in an evcxr notebook.
    pub fn evcxr_display(&self) {
        let rows = self.summary_rows();
        display::show_fields("Tokenizer", &rows);
    }
}

impl std::fmt::Display for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&display::text_fields("Tokenizer", &self.summary_rows()))
    }
}
