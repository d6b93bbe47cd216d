//! Chat templates: a conversation rendered to the exact text (and ids) the model was tuned on.
//!
//! Chat models ship a Jinja template (`chat_template` in `tokenizer_config.json`, the file
//! `chat_template.jinja`, or `tokenizer.chat_template` in a GGUF file). transformers renders it
//! with jinja2; we render it with minijinja, the Jinja engine the Rust LLM servers use, set up
//! the way transformers sets up jinja2 so the text is byte for byte the same:
//! `trim_blocks` / `lstrip_blocks`, loop controls, `raise_exception`, `strftime_now`, a `tojson`
//! that writes Python's `json.dumps` (no HTML escaping), Python's string methods
//! (`.strip()`, `.startswith()`, ... through minijinja-contrib's pycompat), and the role tokens
//! (`bos_token`, `eos_token`, ...) as variables. The text is then tokenized without adding
//! special tokens, as `apply_chat_template(..., tokenize=True)` does.
//!
//! ```
//! use massivetext::prelude::*;
//! let tok = Tokenizer::train(TokenizerKind::Bpe, ["hello there"].iter(), &TrainOptions::new(300))
//!     .unwrap()
//!     .with_chat_template("{% for m in messages %}<{{ m.role }}>{{ m.content | trim }}\n{% endfor %}");
//! let chat = [ChatMessage::system("Be brief."), ChatMessage::user(" hello ")];
//! assert_eq!(tok.render_chat_template(&chat, false).unwrap(), "<system>Be brief.\n<user>hello\n");
//! ```
use super::{Tokenizer, tk_err};
use crate::{Error, Result};
use minijinja::value::Kwargs;
use minijinja::{Environment, ErrorKind, Value as JValue};
use serde_json::Value;

/// One turn of a conversation: who speaks (`system`, `user`, `assistant`, or any role the
/// template knows) and what they say.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    /// A message of any role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
    /// The system prompt.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
    /// What the user says.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
    /// What the model answered.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

impl Tokenizer {
    /// The chat template this tokenizer was loaded with, if any.
    pub fn chat_template(&self) -> Option<&str> {
        self.config_extra
            .get("chat_template")
            .and_then(Value::as_str)
    }

    /// Sets the chat template (saved as `chat_template` in `tokenizer_config.json`).
    pub fn with_chat_template(mut self, template: impl Into<String>) -> Self {
        self.config_extra
            .insert("chat_template".into(), Value::String(template.into()));
        self
    }

    /// The conversation as text, rendered with the chat template; with
    /// `add_generation_prompt`, followed by the header that starts the assistant's answer.
    /// transformers' `apply_chat_template(messages, add_generation_prompt=..., tokenize=False)`.
    pub fn render_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let template = self.chat_template().ok_or_else(|| {
            Error::Tokenizer(
                "this tokenizer has no chat template (tokenizer_config.json has no `chat_template`, and there is no chat_template.jinja); set one with `with_chat_template`".into(),
            )
        })?;
        render(
            template,
            messages,
            add_generation_prompt,
            &self.template_roles(),
        )
    }

    /// The conversation's ids: [`render_chat_template`](Self::render_chat_template), tokenized
    /// without adding special tokens (the template writes them). transformers'
    /// `apply_chat_template(messages, add_generation_prompt=..., tokenize=True)`.
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<Vec<u32>> {
        let text = self.render_chat_template(messages, add_generation_prompt)?;
        let enc = self.inner.encode(text.as_str(), false).map_err(tk_err)?;
        Ok(enc.get_ids().to_vec())
    }

    /// The role tokens a template sees as variables (`bos_token`, `eos_token`, ...).
    fn template_roles(&self) -> Vec<(&'static str, String)> {
        let s = &self.special;
        [
            ("bos_token", &s.bos_token),
            ("eos_token", &s.eos_token),
            ("unk_token", &s.unk_token),
            ("sep_token", &s.sep_token),
            ("pad_token", &s.pad_token),
            ("cls_token", &s.cls_token),
            ("mask_token", &s.mask_token),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
        .collect()
    }
}

/// The name the template has in error messages.
const NAME: &str = "chat_template";

/// Renders `template` as transformers' `render_jinja_template` does.
pub(crate) fn render(
    template: &str,
    messages: &[ChatMessage],
    add_generation_prompt: bool,
    roles: &[(&'static str, String)],
) -> Result<String> {
    let mut env = Environment::new();
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
        .map_err(template_error)?;
    env.set_syntax(syntax);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime_now);
    env.add_filter("tojson", tojson);
    env.add_template(NAME, template).map_err(template_error)?;
    let tmpl = env.get_template(NAME).map_err(template_error)?;
    let mut ctx: std::collections::BTreeMap<&str, JValue> = roles
        .iter()
        .map(|(k, v)| (*k, JValue::from(v.as_str())))
        .collect();
    ctx.insert("messages", JValue::from(minijinja::value::Serde(messages)));
    ctx.insert("add_generation_prompt", JValue::from(add_generation_prompt));
    ctx.insert("tools", JValue::from(()));
    ctx.insert("documents", JValue::from(()));
    tmpl.render(ctx).map_err(template_error)
}

/// A template error as one line: where (line) and what.
fn template_error(e: minijinja::Error) -> Error {
    if e.kind() == ErrorKind::InvalidOperation
        && let Some(msg) = e.detail().and_then(|d| d.strip_prefix(RAISED))
    {
        return Error::Tokenizer(format!("the chat template refused the conversation: {msg}"));
    }
    let at = e.line().map(|l| format!(" line {l}")).unwrap_or_default();
    let what = match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    };
    Error::Tokenizer(format!(
        "chat template{at}: {what}; check the template's Jinja syntax and the variables it uses (messages, add_generation_prompt, bos_token, eos_token, ...)"
    ))
}

const RAISED: &str = "raise_exception: ";

/// `raise_exception(message)`: templates call it to refuse a conversation they cannot render
/// (a role out of order, an unsupported field).
fn raise_exception(message: String) -> std::result::Result<JValue, minijinja::Error> {
    Err(minijinja::Error::new(
        ErrorKind::InvalidOperation,
        format!("{RAISED}{message}"),
    ))
}

/// `strftime_now(format)`: today's date for templates that print it (Llama 3.1), in the local
/// time zone as Python's `datetime.now()`.
fn strftime_now(format: String) -> std::result::Result<String, minijinja::Error> {
    let now = jiff::Zoned::now();
    jiff::fmt::strtime::format(format.as_str(), &now).map_err(|e| {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("strftime_now(`{format}`): {e}"),
        )
    })
}

/// `tojson` as transformers overrides it: Python's `json.dumps(x, ensure_ascii=False,
/// indent=..., separators=..., sort_keys=...)`, without jinja's HTML escaping.
fn tojson(value: JValue, kwargs: Kwargs) -> std::result::Result<JValue, minijinja::Error> {
    let indent: Option<JValue> = kwargs.get("indent")?;
    let separators: Option<JValue> = kwargs.get("separators")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let _ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    kwargs.assert_all_used()?;
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => match v.as_i64() {
            Some(n) => Some(" ".repeat(n.max(0) as usize)),
            None => Some(v.as_str().unwrap_or_default().to_string()),
        },
    };
    let (item, key) = match separators {
        Some(v) if !v.is_none() => {
            let parts: Vec<String> = v
                .try_iter()?
                .map(|p| p.as_str().unwrap_or_default().to_string())
                .collect();
            match &parts[..] {
                [a, b] => (a.clone(), b.clone()),
                _ => {
                    return Err(minijinja::Error::new(
                        ErrorKind::InvalidOperation,
                        "tojson: separators must be two strings",
                    ));
                }
            }
        }
        _ => (
            if indent.is_some() { "," } else { ", " }.to_string(),
            ": ".to_string(),
        ),
    };
    let json: Value = serde_json::to_value(&value)
        .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))?;
    let mut out = String::new();
    let style = PyJson {
        indent,
        item,
        key,
        sort_keys: sort_keys.unwrap_or(false),
    };
    style.write(&json, 0, &mut out);
    Ok(JValue::from_safe_string(out))
}

/// Python's `json.dumps` layout.
struct PyJson {
    indent: Option<String>,
    item: String,
    key: String,
    sort_keys: bool,
}

impl PyJson {
    fn newline(&self, depth: usize, out: &mut String) {
        if let Some(ind) = &self.indent {
            out.push('\n');
            for _ in 0..depth {
                out.push_str(ind);
            }
        }
    }

    fn write(&self, v: &Value, depth: usize, out: &mut String) {
        match v {
            Value::Array(items) if !items.is_empty() => {
                out.push('[');
                for (i, x) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(&self.item);
                    }
                    self.newline(depth + 1, out);
                    self.write(x, depth + 1, out);
                }
                self.newline(depth, out);
                out.push(']');
            }
            Value::Object(map) if !map.is_empty() => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                if self.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                }
                out.push('{');
                for (i, (k, x)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push_str(&self.item);
                    }
                    self.newline(depth + 1, out);
                    out.push_str(&serde_json::to_string(k).unwrap_or_default());
                    out.push_str(&self.key);
                    self.write(x, depth + 1, out);
                }
                self.newline(depth, out);
                out.push('}');
            }
            Value::Number(n) if n.is_f64() => {
                // Python writes floats with repr: 1.0, not 1
                let f = n.as_f64().unwrap_or_default();
                if f.fract() == 0.0 && f.abs() < 1e16 {
                    out.push_str(&format!("{f:.1}"));
                } else {
                    out.push_str(&n.to_string());
                }
            }
            other => out.push_str(&serde_json::to_string(other).unwrap_or_default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(t: &str, m: &[ChatMessage], gen_prompt: bool) -> Result<String> {
        render(t, m, gen_prompt, &[("bos_token", "<s>".into())])
    }

    #[test]
    fn roles_python_methods_and_json_render_as_jinja2_does() {
        let m = [ChatMessage::user("  Hi  ")];
        let t = "{{ bos_token }}{% for x in messages %}{{ x['content'].strip() }}|{{ x.role.upper() }}{% endfor %}{% if add_generation_prompt %}>{% endif %}";
        assert_eq!(r(t, &m, true).unwrap(), "<s>Hi|USER>");
        assert_eq!(r(t, &m, false).unwrap(), "<s>Hi|USER");
        let j = r("{{ messages[0] | tojson }}", &m, false).unwrap();
        assert_eq!(j, r#"{"role": "user", "content": "  Hi  "}"#);
        let j = r(
            "{{ {'a': [1, 2.0], 'b': '<é>'} | tojson(indent=2) }}",
            &m,
            false,
        )
        .unwrap();
        assert_eq!(
            j,
            "{\n  \"a\": [\n    1,\n    2.0\n  ],\n  \"b\": \"<é>\"\n}"
        );
    }

    #[test]
    fn trim_and_lstrip_blocks_as_transformers_sets_them() {
        let t = "{% for x in messages %}\n  {% if true %}\n[{{ x.content }}]\n  {% endif %}\n{% endfor %}";
        let m = [ChatMessage::user("a"), ChatMessage::assistant("b")];
        assert_eq!(r(t, &m, false).unwrap(), "[a]\n[b]\n");
    }

    #[test]
    fn bad_templates_name_the_line_and_raise_exception_its_message() {
        let e = r("ok\n{% for x in messages %}\n{{ x.content }", &[], false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3") && e.contains("syntax"), "{e}");
        let e = r(
            "{% if messages[0].role != 'system' %}{{ raise_exception('first message must be system') }}{% endif %}",
            &[ChatMessage::user("x")],
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("refused") && e.contains("first message must be system"),
            "{e}"
        );
    }
}
