//! Resolving a model or tokenizer id to a folder: a local folder; else the Hugging Face cache
//! (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`, laid out as
//! `models--org--name/snapshots/<commit>/` with `refs/<revision>` naming the commit); else a
//! download through `hf-hub` into that cache, unless `HF_HUB_OFFLINE=1`.
//!
//! Models and tokenizers resolve through the same code ([`resolve`] with a [`RepoKind`]), so a
//! model downloaded once also brings its tokenizer files ([`TOKENIZER_FILES`]) and
//! `Tokenizer::from_pretrained` of the same id then finds them, online or not. Only safetensors
//! weights are fetched: pickled PyTorch weights can run code.
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Where and how to look for a model; [`HubOptions::from_env`] reads the Hugging Face variables.
#[derive(Clone, Debug)]
pub struct HubOptions {
    /// The cache root (the folder holding `models--org--name`).
    pub cache_dir: PathBuf,
    /// No network: only a local folder or the cache.
    pub offline: bool,
    /// Branch, tag or commit (`main` by default).
    pub revision: String,
    /// The Hub's address (`HF_ENDPOINT`; `https://huggingface.co` when `None`).
    pub endpoint: Option<String>,
}

/// What a folder must hold to be resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepoKind {
    /// `config.json` and safetensors weights (downloads the tokenizer files too).
    Model,
    /// `tokenizer.json`, or the legacy `vocab.txt` / `vocab.json` + `merges.txt`.
    Tokenizer,
}

/// The tokenizer files fetched with a model or a tokenizer, when the repository has them.
pub const TOKENIZER_FILES: [&str; 7] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
];

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

impl HubOptions {
    /// `HF_HUB_CACHE`, `HF_HOME`, `HF_HUB_OFFLINE` (and `TRANSFORMERS_OFFLINE`).
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let cache_dir = if let Some(c) = var("HF_HUB_CACHE") {
            PathBuf::from(c)
        } else if let Some(h) = var("HF_HOME") {
            PathBuf::from(h).join("hub")
        } else {
            let home = var("HOME").map(PathBuf::from).unwrap_or_default();
            var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(".cache"))
                .join("huggingface")
                .join("hub")
        };
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| truthy(&v))
            || var("TRANSFORMERS_OFFLINE").is_some_and(|v| truthy(&v));
        Self {
            cache_dir,
            offline,
            revision: "main".into(),
            endpoint: var("HF_ENDPOINT"),
        }
    }

    /// The same options at another branch, tag or commit.
    pub fn with_revision(mut self, revision: impl Into<String>) -> Self {
        self.revision = revision.into();
        self
    }

    /// The same options with the cache rooted at `cache_dir`.
    pub fn with_cache_dir(mut self, cache_dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = cache_dir.into();
        self
    }

    /// The same options, offline (`true`) or allowed to download (`false`).
    pub fn with_offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    /// The same options with another Hub address (a mirror, or a test server).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }
}

/// The files a model folder must hold.
fn is_model_dir(dir: &Path) -> bool {
    dir.join("config.json").is_file()
        && (dir.join("model.safetensors").is_file()
            || dir.join("model.safetensors.index.json").is_file())
}

/// The files a tokenizer folder must hold (one of the layouts `AutoTokenizer` reads).
pub fn is_tokenizer_dir(dir: &Path) -> bool {
    dir.join("tokenizer.json").is_file()
        || dir.join("vocab.txt").is_file()
        || (dir.join("vocab.json").is_file() && dir.join("merges.txt").is_file())
}

fn is_dir_of(dir: &Path, kind: RepoKind) -> bool {
    match kind {
        RepoKind::Model => is_model_dir(dir),
        RepoKind::Tokenizer => is_tokenizer_dir(dir),
    }
}

/// A model or tokenizer id given as `&str`, `String`, `&Path` or `PathBuf`, as text.
pub fn id_string(id: &std::ffi::OsStr) -> String {
    id.to_string_lossy().into_owned()
}

/// `org/name` → `models--org--name`, as huggingface_hub names repo folders.
pub fn repo_folder_name(id: &str) -> String {
    format!("models--{}", id.replace('/', "--"))
}

/// The snapshot folder of `id` at `revision` in the cache rooted at `cache_dir`, if it holds a
/// complete model. `revision` is a ref (`refs/<revision>` holds the commit) or a commit hash.
pub fn cached_snapshot(cache_dir: &Path, id: &str, revision: &str) -> Option<PathBuf> {
    cached_snapshot_of(cache_dir, id, revision, RepoKind::Model)
}

/// As [`cached_snapshot`], for a folder holding what `kind` needs.
pub fn cached_snapshot_of(
    cache_dir: &Path,
    id: &str,
    revision: &str,
    kind: RepoKind,
) -> Option<PathBuf> {
    let repo = cache_dir.join(repo_folder_name(id));
    let commit = std::fs::read_to_string(repo.join("refs").join(revision))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| revision.to_string());
    let snap = repo.join("snapshots").join(commit);
    is_dir_of(&snap, kind).then_some(snap)
}

/// Resolves `id` with the options from the environment (see [`HubOptions::from_env`]).
pub fn resolve_model(id: &str) -> Result<PathBuf> {
    resolve_model_with(id, &HubOptions::from_env())
}

/// Resolves `id`: a local folder, then the cache in `opts.cache_dir`, then (unless offline) a
/// download into that cache.
pub fn resolve_model_with(id: &str, opts: &HubOptions) -> Result<PathBuf> {
    resolve(id, opts, RepoKind::Model)
}

/// Resolves a tokenizer `id` with the options from the environment.
pub fn resolve_tokenizer(id: &str) -> Result<PathBuf> {
    resolve(id, &HubOptions::from_env(), RepoKind::Tokenizer)
}

/// Resolves `id` to a folder holding what `kind` needs: a local folder, then the cache in
/// `opts.cache_dir` at `opts.revision`, then (unless offline) a download into that cache. A
/// model download also fetches the tokenizer files the repository has.
pub fn resolve(id: &str, opts: &HubOptions, kind: RepoKind) -> Result<PathBuf> {
    let local = Path::new(id);
    let what = match kind {
        RepoKind::Model => {
            "config.json or model.safetensors (pytorch_model.bin is not loaded: only safetensors)"
        }
        RepoKind::Tokenizer => "tokenizer.json, vocab.txt, or vocab.json + merges.txt",
    };
    if local.is_dir() {
        if is_dir_of(local, kind) {
            return Ok(local.to_path_buf());
        }
        return Err(Error::ModelNotFound {
            id: id.into(),
            looked: local.display().to_string(),
            hint: format!("the folder exists but lacks {what}"),
        });
    }
    let repo_dir = opts.cache_dir.join(repo_folder_name(id));
    if let Some(snap) = cached_snapshot_of(&opts.cache_dir, id, &opts.revision, kind) {
        return Ok(snap);
    }
    let looked = format!(
        "local folder `{}`, Hugging Face cache `{}`",
        local.display(),
        repo_dir.display()
    );
    if opts.offline {
        return Err(Error::ModelNotFound {
            id: id.into(),
            looked,
            hint: format!(
                "HF_HUB_OFFLINE is set, so nothing was downloaded; download it while online (revision `{}`), or pass a folder with {what}",
                opts.revision
            ),
        });
    }
    let path_like = id.starts_with(['.', '/', '~', '\\']) || id.matches('/').count() > 1;
    if path_like {
        return Err(Error::ModelNotFound {
            id: id.into(),
            looked,
            hint: "this looks like a path, not a Hub id".into(),
        });
    }
    download(id, opts, kind).map_err(|message| Error::Hub {
        id: id.into(),
        message: format!("{message} (also looked in: {looked})"),
    })
}

/// Without the `download` feature (a notebook's lean build): says how to get the files instead.
#[cfg(not(feature = "download"))]
fn download(
    _id: &str,
    _opts: &HubOptions,
    _kind: RepoKind,
) -> std::result::Result<PathBuf, String> {
    Err(
        "not found locally, and this build of massivetext cannot download: it was built without \
         the `download` feature (as in the notebooks' `massivetext-notebook`); add \
         `features = [\"download\"]` to the `:dep` line, or pass a local folder"
            .into(),
    )
}

#[cfg(feature = "download")]
fn download(id: &str, opts: &HubOptions, kind: RepoKind) -> std::result::Result<PathBuf, String> {
    use hf_hub::api::sync::ApiBuilder;
    use hf_hub::{Repo, RepoType};
    let mut builder = ApiBuilder::from_env()
        .with_cache_dir(opts.cache_dir.clone())
        .with_progress(false);
    if let Some(endpoint) = &opts.endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    let api = builder.build().map_err(|e| e.to_string())?;
    let repo = api.repo(Repo::with_revision(
        id.to_string(),
        RepoType::Model,
        opts.revision.clone(),
    ));
    // The tokenizer files the repository has (a missing one is not an error: each layout
    // needs only some of them).
    let mut folder = None;
    for f in TOKENIZER_FILES {
        if let Ok(p) = repo.get(f) {
            folder = p.parent().map(Path::to_path_buf);
        }
    }
    if kind == RepoKind::Tokenizer {
        return match folder {
            Some(dir) if is_tokenizer_dir(&dir) => Ok(dir),
            _ => Err(format!(
                "the repository has none of the tokenizer files ({})",
                TOKENIZER_FILES.join(", ")
            )),
        };
    }
    let config = repo.get("config.json").map_err(|e| e.to_string())?;
    match repo.get("model.safetensors") {
        Ok(_) => {}
        Err(single_err) => {
            let index = repo.get("model.safetensors.index.json").map_err(|_| {
                format!("no model.safetensors in the repository ({single_err}); only safetensors weights are loaded")
            })?;
            let text = std::fs::read_to_string(&index).map_err(|e| e.to_string())?;
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            let mut shards: Vec<String> = v
                .get("weight_map")
                .and_then(|m| m.as_object())
                .map(|m| {
                    m.values()
                        .filter_map(|f| f.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            shards.sort();
            shards.dedup();
            for s in shards {
                repo.get(&s).map_err(|e| e.to_string())?;
            }
        }
    }
    config
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| "the downloaded config.json has no parent folder".into())
}
