//! Resolving a model id to a folder holding `config.json` and safetensors weights: a local
//! folder; else the Hugging Face cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`, laid out as `models--org--name/snapshots/<revision>/` with
//! `refs/main` naming the revision); else a download through `hf-hub` into that cache, unless
//! `HF_HUB_OFFLINE=1`. Only safetensors are fetched: pickled PyTorch weights can run code.
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
}

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
        }
    }
}

/// The files a model folder must hold.
fn is_model_dir(dir: &Path) -> bool {
    dir.join("config.json").is_file()
        && (dir.join("model.safetensors").is_file()
            || dir.join("model.safetensors.index.json").is_file())
}

/// `org/name` → `models--org--name`, as huggingface_hub names repo folders.
pub fn repo_folder_name(id: &str) -> String {
    format!("models--{}", id.replace('/', "--"))
}

/// The snapshot folder of `id` at `revision` in the cache rooted at `cache_dir`, if it holds a
/// complete model. `revision` is a ref (`refs/<revision>` holds the commit) or a commit hash.
pub fn cached_snapshot(cache_dir: &Path, id: &str, revision: &str) -> Option<PathBuf> {
    let repo = cache_dir.join(repo_folder_name(id));
    let commit = std::fs::read_to_string(repo.join("refs").join(revision))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| revision.to_string());
    let snap = repo.join("snapshots").join(commit);
    is_model_dir(&snap).then_some(snap)
}

/// Resolves `id` with the options from the environment (see [`HubOptions::from_env`]).
pub fn resolve_model(id: &str) -> Result<PathBuf> {
    resolve_model_with(id, &HubOptions::from_env())
}

/// Resolves `id`: a local folder, then the cache in `opts.cache_dir`, then (unless offline) a
/// download into that cache.
pub fn resolve_model_with(id: &str, opts: &HubOptions) -> Result<PathBuf> {
    let local = Path::new(id);
    if local.is_dir() {
        if is_model_dir(local) {
            return Ok(local.to_path_buf());
        }
        return Err(Error::ModelNotFound {
            id: id.into(),
            looked: local.display().to_string(),
            hint: "the folder exists but lacks config.json or model.safetensors (pytorch_model.bin is not loaded: only safetensors)".into(),
        });
    }
    let repo_dir = opts.cache_dir.join(repo_folder_name(id));
    if let Some(snap) = cached_snapshot(&opts.cache_dir, id, &opts.revision) {
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
            hint: "HF_HUB_OFFLINE is set, so nothing was downloaded; download the model while online, or pass a folder with config.json and model.safetensors".into(),
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
    download(id, opts).map_err(|message| Error::Hub {
        id: id.into(),
        message: format!("{message} (also looked in: {looked})"),
    })
}

fn download(id: &str, opts: &HubOptions) -> std::result::Result<PathBuf, String> {
    use hf_hub::api::sync::ApiBuilder;
    use hf_hub::{Repo, RepoType};
    let mut builder = ApiBuilder::from_env()
        .with_cache_dir(opts.cache_dir.clone())
        .with_progress(false);
    if let Ok(endpoint) = std::env::var("HF_ENDPOINT") {
        builder = builder.with_endpoint(endpoint);
    }
    let api = builder.build().map_err(|e| e.to_string())?;
    let repo = api.repo(Repo::with_revision(
        id.to_string(),
        RepoType::Model,
        opts.revision.clone(),
    ));
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
