//! Inline display in evcxr notebooks: a value that is the last expression of a cell is shown
//! through its `evcxr_display` method, which prints a MIME block to stdout.

/// One evcxr output block of type `mime` (e.g. `text/html`, `image/svg+xml`), as evcxr reads
/// it from stdout; a value showing several blocks prints them together.
pub fn block(mime: &str, content: &str) -> String {
    format!("EVCXR_BEGIN_CONTENT {mime}\n{content}\nEVCXR_END_CONTENT\n")
}

/// Whether this process is evcxr's (a notebook kernel runs the cells' code in a child process
/// it starts with `EVCXR_IS_RUNTIME` set): output blocks printed there render in the notebook.
pub fn in_notebook() -> bool {
    std::env::var_os("EVCXR_IS_RUNTIME").is_some()
}

/// Prints `content` as one evcxr output block of type `mime`.
pub fn emit(mime: &str, content: &str) {
    print!("{}", block(mime, content));
}

/// Escapes text for HTML (and, with [`escape_xml`], for SVG).
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// Escapes text for SVG/XML content and attribute values: [`escape_html`] and `'`.
pub fn escape_xml(s: &str) -> String {
    escape_html(s).replace('\'', "&apos;")
}

/// Shortens `s` to at most `max` characters, marking the cut with `…`.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// An HTML table with a header row; cells are escaped.
pub fn html_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = String::from("<table>\n<thead><tr>");
    for h in header {
        s.push_str(&format!("<th>{}</th>", escape_html(h)));
    }
    s.push_str("</tr></thead>\n<tbody>\n");
    for row in rows {
        s.push_str("<tr>");
        for cell in row {
            s.push_str(&format!("<td>{}</td>", escape_html(cell)));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody>\n</table>");
    s
}

/// Shows a value in evcxr: an HTML block, and a `text/plain` block for front ends without HTML.
pub fn show(html: &str, text: &str) {
    emit("text/html", html);
    emit("text/plain", text);
}

/// Shows `(name, value)` rows under `caption` as a table: HTML for the notebook, aligned text
/// for a plain-text front end.
pub fn show_fields(caption: &str, rows: &[(String, String)]) {
    show(&html_fields(caption, rows), &text_fields(caption, rows));
}

/// A two-column HTML table (`field | value`) with an optional caption; cells are escaped.
pub fn html_fields(caption: &str, rows: &[(String, String)]) -> String {
    let mut out = String::from("<table>");
    if !caption.is_empty() {
        out.push_str(&format!("<caption>{}</caption>", escape_html(caption)));
    }
    for (k, v) in rows {
        out.push_str(&format!(
            "<tr><th style=\"text-align:left\">{}</th><td style=\"text-align:left\">{}</td></tr>",
            escape_html(k),
            escape_html(v)
        ));
    }
    out.push_str("</table>");
    out
}

/// The same rows as text: `caption`, then `  field: value` per line.
pub fn text_fields(caption: &str, rows: &[(String, String)]) -> String {
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = caption.to_string();
    for (k, v) in rows {
        out.push_str(&format!("\n  {k:<width$}  {v}"));
    }
    out
}

/// A table whose rows are the given series, one column per position (tokens aligned with
/// their ids and masks). `header` names the rows.
pub fn html_aligned(caption: &str, header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::from("<table>");
    if !caption.is_empty() {
        out.push_str(&format!("<caption>{}</caption>", escape_html(caption)));
    }
    for (name, row) in header.iter().zip(rows) {
        out.push_str(&format!(
            "<tr><th style=\"text-align:left\">{}</th>",
            escape_html(name)
        ));
        for cell in row {
            out.push_str(&format!("<td>{}</td>", escape_html(cell)));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    out
}

/// The same as text: each series on one line, columns padded to the widest cell.
pub fn text_aligned(header: &[&str], rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let name_w = header.iter().map(|h| h.chars().count()).max().unwrap_or(0);
    let mut lines = Vec::new();
    for (name, row) in header.iter().zip(rows) {
        let mut line = format!("{name:<name_w$}");
        for (c, cell) in row.iter().enumerate() {
            line.push_str(&format!("  {cell:<w$}", w = widths[c]));
        }
        lines.push(line.trim_end().to_string());
    }
    lines.join("\n")
}
