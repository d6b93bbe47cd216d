//! `from_pretrained` and `save`: the folder layouts Hugging Face writes, read the way
//! `AutoTokenizer` reads them.
use super::{SpecialTokens, Tokenizer, tk_err};
use crate::hub::{self, HubOptions, RepoKind};
use crate::{Error, Result};
use serde_json::{Map, Value};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use tokenizers::AddedToken;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::processors::template::TemplateProcessing;

const TOKENIZER_JSON: &str = "tokenizer.json";
const CONFIG_JSON: &str = "tokenizer_config.json";
const SPECIAL_MAP_JSON: &str = "special_tokens_map.json";

/// Which legacy layout a folder holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Legacy {
    Bert,
    Gpt2,
    Roberta,
}

impl Tokenizer {
    /// Load a tokenizer from a folder (or a model id already in the Hugging Face cache,
    /// `~/.cache/huggingface/hub`).
    ///
    /// Reads `tokenizer.json` when present; otherwise BERT's `vocab.txt` (with `do_lower_case`
    /// from `tokenizer_config.json`, default true) or GPT-2 / RoBERTa's `vocab.json` +
    /// `merges.txt` (RoBERTa when `tokenizer_config.json` / `config.json` say so, or the
    /// vocabulary has `<s>`, `</s>` and `<mask>`), built exactly as `AutoTokenizer` builds them.
    ///
    /// A path to a file loads that file and nothing else: a tokenizer JSON file of any name
    /// (`tok2k.json`) is read as `tokenizer.json` is (with the folder's `tokenizer_config.json`
    /// only when the file is the folder's own `tokenizer.json`); `vocab.txt`, `vocab.json` or
    /// `merges.txt` load that legacy layout of the folder. A named file that cannot be read is an
    /// error, never replaced by another file of its folder.
    ///
    /// `dir_or_id` is a `&str`, `String`, `&Path` or `PathBuf`. An id resolves as
    /// `AutoModel*::from_pretrained` does ([`crate::hub`]): the Hugging Face cache
    /// (`HF_HUB_CACHE` / `HF_HOME`, revision `main`), else a download of the tokenizer files
    /// unless `HF_HUB_OFFLINE` is set.
    pub fn from_pretrained(dir_or_id: impl AsRef<OsStr>) -> Result<Self> {
        Self::from_pretrained_hub(dir_or_id, &HubOptions::from_env())
    }

    /// As [`from_pretrained`](Self::from_pretrained) at a branch, tag or commit of the Hub
    /// repository.
    pub fn from_pretrained_revision(id: impl AsRef<OsStr>, revision: &str) -> Result<Self> {
        Self::from_pretrained_hub(id, &HubOptions::from_env().with_revision(revision))
    }

    /// As [`from_pretrained`](Self::from_pretrained) with explicit hub options (cache folder,
    /// offline, revision, endpoint).
    pub fn from_pretrained_hub(dir_or_id: impl AsRef<OsStr>, opts: &HubOptions) -> Result<Self> {
        crate::threads::init();
        let given = Path::new(dir_or_id.as_ref());
        let dir = resolve_dir(given, opts)?;
        let named = given.is_file().then(|| given.to_path_buf());
        let file_name = named
            .as_ref()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned());
        let legacy_file = matches!(
            file_name.as_deref(),
            Some("vocab.txt" | "vocab.json" | "merges.txt")
        );
        if let (Some(path), Some(name)) = (&named, &file_name)
            && !legacy_file
            && name != TOKENIZER_JSON
        {
            if !name.ends_with(".json")
                || [CONFIG_JSON, SPECIAL_MAP_JSON, "config.json"].contains(&name.as_str())
            {
                return Err(Error::TokenizerParse {
                    path: path.clone(),
                    message: "is not a tokenizer file: give a tokenizer JSON file (as tokenizer.json is), a vocab.txt, vocab.json or merges.txt, or the folder that holds them".into(),
                });
            }
            // A tokenizer JSON of its own name: the folder's config files describe its
            // tokenizer.json, not this file.
            return Self::from_tokenizer_json(path, &Map::new(), &Map::new());
        }
        let mut config = read_json_object(&dir.join(CONFIG_JSON))?;
        read_chat_template(&dir, &mut config)?;
        let special_map = read_json_object(&dir.join(SPECIAL_MAP_JSON))?;
        if !legacy_file && dir.join(TOKENIZER_JSON).is_file() {
            return Self::from_tokenizer_json(&dir.join(TOKENIZER_JSON), &config, &special_map);
        }
        Self::from_legacy(&dir, config, special_map)
    }

    /// `tokenizer.json` (or a file of that format) with the folder's config files.
    fn from_tokenizer_json(
        path: &Path,
        config: &Map<String, Value>,
        special_map: &Map<String, Value>,
    ) -> Result<Self> {
        let (model_max_length, class) = max_length_and_class(config);
        let mut inner =
            tokenizers::Tokenizer::from_file(path).map_err(|e| Error::TokenizerParse {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        // Truncation and padding are per call here (as in `tokenizer(text, truncation=...)`).
        inner.with_truncation(None).map_err(tk_err)?;
        inner.with_padding(None);
        let guessed = guess_special_tokens(&inner);
        let special = merge_special(&guessed, config, special_map, true);
        let extra = passthrough_config(config);
        Ok(Tokenizer::from_parts(
            inner,
            special,
            model_max_length,
            class.as_deref().unwrap_or("PreTrainedTokenizerFast"),
            extra,
        ))
    }

    /// BERT's `vocab.txt` or GPT-2 / RoBERTa's `vocab.json` + `merges.txt` in `dir`.
    fn from_legacy(
        dir: &Path,
        config: Map<String, Value>,
        special_map: Map<String, Value>,
    ) -> Result<Self> {
        let (model_max_length, class) = max_length_and_class(&config);
        let dir = dir.to_path_buf();
        let kind = legacy_kind(&dir, &config, class.as_deref())?;
        let (mut inner, defaults, class_name) = match kind {
            Legacy::Bert => (build_bert(&dir, &config)?, bert_defaults(), "BertTokenizer"),
            Legacy::Gpt2 => (
                build_byte_level(&dir, &config, false)?,
                gpt2_defaults(),
                "GPT2Tokenizer",
            ),
            Legacy::Roberta => (
                build_byte_level(&dir, &config, true)?,
                roberta_defaults(),
                "RobertaTokenizer",
            ),
        };
        let special = merge_special(&defaults, &config, &special_map, false);
        // AutoTokenizer registers every role token (and `additional_special_tokens`) as a special
        // added token: never split, never normalised, matched in raw text.
        let mut added: Vec<AddedToken> = special
            .all()
            .into_iter()
            .map(|t| AddedToken::from(t, true))
            .collect();
        for src in [&config, &special_map] {
            if let Some(Value::Array(extra)) = src.get("additional_special_tokens") {
                added.extend(
                    extra
                        .iter()
                        .filter_map(token_str)
                        .map(|t| AddedToken::from(t, true)),
                );
            }
        }
        inner.add_special_tokens(added).map_err(tk_err)?;
        if kind == Legacy::Roberta {
            let cls = special.cls_token.clone().unwrap_or_else(|| "<s>".into());
            let sep = special.sep_token.clone().unwrap_or_else(|| "</s>".into());
            let (cls_id, sep_id) = (inner.token_to_id(&cls), inner.token_to_id(&sep));
            let (Some(cls_id), Some(sep_id)) = (cls_id, sep_id) else {
                return Err(Error::TokenizerFiles {
                    dir,
                    message: format!("RoBERTa tokens `{cls}` / `{sep}` have no id"),
                });
            };
            let trim = config
                .get("trim_offsets")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let prefix = add_prefix_space(&config);
            inner.with_post_processor(Some(
                RobertaProcessing::new((sep, sep_id), (cls, cls_id))
                    .trim_offsets(trim)
                    .add_prefix_space(prefix),
            ));
        }
        if kind == Legacy::Bert {
            let cls = special.cls_token.clone().unwrap_or_else(|| "[CLS]".into());
            let sep = special.sep_token.clone().unwrap_or_else(|| "[SEP]".into());
            let cls_id = inner.token_to_id(&cls).unwrap_or(2);
            let sep_id = inner.token_to_id(&sep).unwrap_or(3);
            let template = TemplateProcessing::builder()
                .try_single(format!("{cls}:0 $A:0 {sep}:0"))
                .and_then(|b| b.try_pair(format!("{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1")))
                .map_err(tk_err)?
                .special_tokens(vec![(cls.as_str(), cls_id), (sep.as_str(), sep_id)])
                .build()
                .map_err(tk_err)?;
            inner.with_post_processor(Some(template));
        }
        let mut extra = passthrough_config(&config);
        if kind == Legacy::Bert {
            extra.insert("do_lower_case".into(), Value::Bool(do_lower_case(&config)));
        } else {
            extra.insert(
                "add_prefix_space".into(),
                Value::Bool(add_prefix_space(&config)),
            );
        }
        Ok(Tokenizer::from_parts(
            inner,
            special,
            model_max_length,
            class_name,
            extra,
        ))
    }

    /// Write `tokenizer.json`, `tokenizer_config.json` and `special_tokens_map.json` into `dir`
    /// (created if needed). Each file is written atomically (`crate::io::write_atomic`), so a
    /// crash never leaves a half-written file behind.
    ///
    /// `AutoTokenizer.from_pretrained(dir)` loads the folder with the same ids, and so does
    /// [`Tokenizer::from_pretrained`].
    pub fn save_pretrained(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        crate::io::create_dir_all(dir)?;
        let tokenizer_json = self.inner.to_string(true).map_err(tk_err)?;
        let special = serde_json::to_value(&self.special).map_err(tk_err)?;
        let mut config = Map::new();
        config.insert(
            "tokenizer_class".into(),
            Value::String(self.tokenizer_class.clone()),
        );
        if let Some(n) = self.model_max_length {
            config.insert("model_max_length".into(), Value::from(n));
        }
        for (k, v) in &self.config_extra {
            config.insert(k.clone(), v.clone());
        }
        if let Value::Object(m) = &special {
            for (k, v) in m {
                config.insert(k.clone(), v.clone());
            }
        }
        // A role this tokenizer lacks is written as `null`, so that loading the folder does not
        // guess one from the vocabulary (a Llama vocabulary has `<s>`, not a CLS token).
        for role in ROLES {
            config.entry(role).or_insert(Value::Null);
        }
        let files = [
            (TOKENIZER_JSON, tokenizer_json),
            (
                CONFIG_JSON,
                serde_json::to_string_pretty(&Value::Object(config)).map_err(tk_err)?,
            ),
            (
                SPECIAL_MAP_JSON,
                serde_json::to_string_pretty(&special).map_err(tk_err)?,
            ),
        ];
        for (name, text) in &files {
            crate::io::write_atomic(&dir.join(name), text.as_bytes())?;
        }
        Ok(())
    }
}

/// `model_max_length` and `tokenizer_class` of `tokenizer_config.json`.
fn max_length_and_class(config: &Map<String, Value>) -> (Option<usize>, Option<String>) {
    let model_max_length = config
        .get("model_max_length")
        .and_then(Value::as_u64)
        // Python writes int(1e30) when there is no limit.
        .filter(|&n| n < (1u64 << 53))
        .map(|n| n as usize);
    let class = config
        .get("tokenizer_class")
        .and_then(Value::as_str)
        .map(str::to_string);
    (model_max_length, class)
}

pub(crate) use crate::io::read_error as io_err;

/// A folder (or a file in it), or a model id resolved through [`crate::hub`].
fn resolve_dir(p: &Path, opts: &HubOptions) -> Result<PathBuf> {
    if p.is_dir() {
        return Ok(p.to_path_buf());
    }
    if p.is_file() {
        // Accept a path to tokenizer.json / vocab.txt itself.
        if let Some(parent) = p.parent() {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            return Ok(parent.to_path_buf());
        }
    }
    let id = p.to_string_lossy();
    hub::resolve(&id, opts, RepoKind::Tokenizer).map_err(|e| Error::TokenizerFiles {
        dir: p.to_path_buf(),
        message: format!(
            "no such folder, and no tokenizer of that id: {e}; pass a folder holding tokenizer.json (or vocab.txt, or vocab.json + merges.txt)"
        ),
    })
}

/// Parse a JSON object file; a missing file is an empty object, a corrupt one an error with
/// the line and column.
fn read_json_object(path: &Path) -> Result<Map<String, Value>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(e) => return Err(io_err(path, e)),
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Error::TokenizerParse {
            path: path.to_path_buf(),
            message: "expected a JSON object".into(),
        }),
        Err(e) => Err(Error::TokenizerParse {
            path: path.to_path_buf(),
            message: format!("line {} column {}: {e}", e.line(), e.column()),
        }),
    }
}

/// A token given either as a string or as a serialised `AddedToken` (`{"content": ...}`).
fn token_str(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(m) => m.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

/// The role-token keys of `tokenizer_config.json`.
const ROLES: [&str; 7] = [
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
];

/// Role tokens: `base`, overridden by `tokenizer_config.json`, then `special_tokens_map.json`.
/// An explicit `null` removes a role (GPT-2's `pad_token: null`).
fn merge_special(
    base: &SpecialTokens,
    config: &Map<String, Value>,
    special_map: &Map<String, Value>,
    _has_tokenizer_json: bool,
) -> SpecialTokens {
    let mut s = base.clone();
    for src in [config, special_map] {
        for (key, slot) in [
            ("bos_token", &mut s.bos_token),
            ("eos_token", &mut s.eos_token),
            ("unk_token", &mut s.unk_token),
            ("sep_token", &mut s.sep_token),
            ("pad_token", &mut s.pad_token),
            ("cls_token", &mut s.cls_token),
            ("mask_token", &mut s.mask_token),
        ] {
            match src.get(key) {
                Some(Value::Null) => *slot = None,
                Some(v) => {
                    if let Some(t) = token_str(v) {
                        *slot = Some(t);
                    }
                }
                None => {}
            }
        }
    }
    s
}

/// The chat template into `config["chat_template"]`: transformers 5 saves it as its own file,
/// `chat_template.jinja`, which wins over the key; a list of named templates (the older layout)
/// gives its `default`.
fn read_chat_template(dir: &Path, config: &mut Map<String, Value>) -> Result<()> {
    let file = dir.join("chat_template.jinja");
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            config.insert("chat_template".into(), Value::String(text));
            return Ok(());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&file, e)),
    }
    match config.get("chat_template") {
        None | Some(Value::Null) | Some(Value::String(_)) => Ok(()),
        Some(Value::Array(named)) => {
            let names: Vec<&str> = named
                .iter()
                .filter_map(|t| t.get("name").and_then(Value::as_str))
                .collect();
            let default = named
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                .and_then(|t| t.get("template"))
                .and_then(Value::as_str)
                .ok_or_else(|| Error::TokenizerParse {
                    path: dir.join(CONFIG_JSON),
                    message: format!(
                        "`chat_template` lists templates named {names:?} but none is named `default`; set one with `with_chat_template`"
                    ),
                })?
                .to_string();
            config.insert("chat_template".into(), Value::String(default));
            Ok(())
        }
        Some(_) => Err(Error::TokenizerParse {
            path: dir.join(CONFIG_JSON),
            message:
                "`chat_template` must be a string (a Jinja template) or a list of {name, template}"
                    .into(),
        }),
    }
}

/// Keys of `tokenizer_config.json` we keep when saving again.
fn passthrough_config(config: &Map<String, Value>) -> Map<String, Value> {
    let mut m = Map::new();
    for key in [
        "do_lower_case",
        "add_prefix_space",
        "trim_offsets",
        "strip_accents",
        "padding_side",
        "chat_template",
    ] {
        if let Some(v) = config.get(key) {
            m.insert(key.to_string(), v.clone());
        }
    }
    m
}

/// Role tokens guessed from the vocabulary, for a bare `tokenizer.json`.
pub(crate) fn guess_special_tokens(inner: &tokenizers::Tokenizer) -> SpecialTokens {
    let first = |candidates: &[&str]| {
        candidates
            .iter()
            .find(|t| inner.token_to_id(t).is_some())
            .map(|t| t.to_string())
    };
    SpecialTokens {
        bos_token: first(&["<s>", "<|endoftext|>"]),
        eos_token: first(&["</s>", "<|endoftext|>"]),
        unk_token: first(&["[UNK]", "<unk>", "<|endoftext|>"]),
        sep_token: first(&["[SEP]", "</s>"]),
        pad_token: first(&["[PAD]", "<pad>"]),
        cls_token: first(&["[CLS]", "<s>"]),
        mask_token: first(&["[MASK]", "<mask>"]),
    }
}

fn bert_defaults() -> SpecialTokens {
    SpecialTokens {
        unk_token: Some("[UNK]".into()),
        sep_token: Some("[SEP]".into()),
        pad_token: Some("[PAD]".into()),
        cls_token: Some("[CLS]".into()),
        mask_token: Some("[MASK]".into()),
        ..Default::default()
    }
}

fn gpt2_defaults() -> SpecialTokens {
    let eot = Some("<|endoftext|>".to_string());
    SpecialTokens {
        bos_token: eot.clone(),
        eos_token: eot.clone(),
        unk_token: eot,
        ..Default::default()
    }
}

fn roberta_defaults() -> SpecialTokens {
    SpecialTokens {
        bos_token: Some("<s>".into()),
        eos_token: Some("</s>".into()),
        unk_token: Some("<unk>".into()),
        sep_token: Some("</s>".into()),
        pad_token: Some("<pad>".into()),
        cls_token: Some("<s>".into()),
        mask_token: Some("<mask>".into()),
    }
}

fn do_lower_case(config: &Map<String, Value>) -> bool {
    config
        .get("do_lower_case")
        .and_then(Value::as_bool)
        .unwrap_or(true)
}

fn add_prefix_space(config: &Map<String, Value>) -> bool {
    config
        .get("add_prefix_space")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn legacy_kind(dir: &Path, config: &Map<String, Value>, class: Option<&str>) -> Result<Legacy> {
    let has = |f: &str| dir.join(f).is_file();
    if has("vocab.txt") && !has("vocab.json") {
        return Ok(Legacy::Bert);
    }
    if has("vocab.json") {
        if !has("merges.txt") {
            return Err(Error::TokenizerFiles {
                dir: dir.to_path_buf(),
                message: "vocab.json is there but merges.txt is missing; a GPT-2 / RoBERTa tokenizer needs both".into(),
            });
        }
        let model_type = read_json_object(&dir.join("config.json"))?
            .get("model_type")
            .and_then(Value::as_str)
            .map(str::to_lowercase);
        let class = class.map(str::to_lowercase);
        let says = |name: &str| {
            class.as_deref().is_some_and(|c| c.contains(name))
                || model_type.as_deref().is_some_and(|m| m.contains(name))
        };
        if says("roberta") || says("bart") || says("longformer") {
            return Ok(Legacy::Roberta);
        }
        if says("gpt2") || says("gpt") {
            return Ok(Legacy::Gpt2);
        }
        // No class given: RoBERTa's role tokens in the vocabulary, or the config naming them.
        let vocab_text = std::fs::read_to_string(dir.join("vocab.json"))
            .map_err(|e| io_err(&dir.join("vocab.json"), e))?;
        let roberta_tokens = ["\"<s>\"", "\"</s>\"", "\"<mask>\""]
            .iter()
            .all(|t| vocab_text.contains(t))
            || config.get("cls_token").and_then(token_str).as_deref() == Some("<s>");
        return Ok(if roberta_tokens {
            Legacy::Roberta
        } else {
            Legacy::Gpt2
        });
    }
    let present: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    Err(Error::TokenizerFiles {
        dir: dir.to_path_buf(),
        message: format!(
            "found none of tokenizer.json, vocab.txt, vocab.json + merges.txt (files here: {}); save the tokenizer with save_pretrained / Tokenizer::save first",
            if present.is_empty() {
                "none".to_string()
            } else {
                present.join(", ")
            }
        ),
    })
}

fn build_bert(dir: &Path, config: &Map<String, Value>) -> Result<tokenizers::Tokenizer> {
    let path = dir.join("vocab.txt");
    let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => Error::TokenizerParse {
            path: path.clone(),
            message: "not valid UTF-8".into(),
        },
        _ => io_err(&path, e),
    })?;
    if text.trim().is_empty() {
        return Err(Error::TokenizerParse {
            path,
            message: "the vocabulary is empty".into(),
        });
    }
    let unk = config
        .get("unk_token")
        .and_then(token_str)
        .unwrap_or_else(|| "[UNK]".into());
    let model = WordPiece::from_file(&path.to_string_lossy())
        .unk_token(unk)
        .continuing_subword_prefix("##".into())
        .max_input_chars_per_word(100)
        .build()
        .map_err(|e| Error::TokenizerParse {
            path: path.clone(),
            message: e.to_string(),
        })?;
    let lowercase = do_lower_case(config);
    let strip_accents = config.get("strip_accents").and_then(Value::as_bool);
    let chinese = config
        .get("tokenize_chinese_chars")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let mut tok = tokenizers::Tokenizer::new(model);
    tok.with_normalizer(Some(BertNormalizer::new(
        true,
        chinese,
        strip_accents,
        lowercase,
    )))
    .map_err(tk_err)?;
    tok.with_pre_tokenizer(Some(BertPreTokenizer));
    tok.with_decoder(Some(WordPieceDecoder::new("##".into(), true)));
    Ok(tok)
}

fn build_byte_level(
    dir: &Path,
    config: &Map<String, Value>,
    _roberta: bool,
) -> Result<tokenizers::Tokenizer> {
    let vocab_path = dir.join("vocab.json");
    let merges_path = dir.join("merges.txt");
    // Validate both files ourselves first, to name the file and line that is wrong.
    let vocab_text = std::fs::read_to_string(&vocab_path).map_err(|e| io_err(&vocab_path, e))?;
    serde_json::from_str::<std::collections::HashMap<String, u32>>(&vocab_text).map_err(|e| {
        Error::TokenizerParse {
            path: vocab_path.clone(),
            message: format!(
                "line {} column {}: {e} (expected an object of token -> id)",
                e.line(),
                e.column()
            ),
        }
    })?;
    let merges_text = std::fs::read_to_string(&merges_path).map_err(|e| io_err(&merges_path, e))?;
    for (i, line) in merges_text.lines().enumerate() {
        if line.starts_with("#version") || line.is_empty() {
            continue;
        }
        if line.split(' ').count() != 2 {
            return Err(Error::TokenizerParse {
                path: merges_path.clone(),
                message: format!(
                    "line {}: expected two space-separated tokens, found `{line}`",
                    i + 1
                ),
            });
        }
    }
    let model = BPE::from_file(
        &vocab_path.to_string_lossy(),
        &merges_path.to_string_lossy(),
    )
    .continuing_subword_prefix(String::new())
    .end_of_word_suffix(String::new())
    .fuse_unk(false)
    .build()
    .map_err(|e| Error::TokenizerParse {
        path: merges_path.clone(),
        message: e.to_string(),
    })?;
    let prefix = add_prefix_space(config);
    let mut tok = tokenizers::Tokenizer::new(model);
    tok.with_pre_tokenizer(Some(ByteLevel::new(prefix, true, true)));
    tok.with_decoder(Some(ByteLevelDecoder::default()));
    // GPT-2 in transformers: an empty template (no special tokens, offsets untouched).
    let template = TemplateProcessing::builder()
        .try_single("$A:0")
        .and_then(|b| b.try_pair("$A:0 $B:1"))
        .map_err(tk_err)?
        .build()
        .map_err(tk_err)?;
    tok.with_post_processor(Some(template));
    Ok(tok)
}
