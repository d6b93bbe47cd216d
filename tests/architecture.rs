//! The house rule of docs/architecture.md, checked on every test run: no two files of `src/`,
//! and no two of its top-level folders (each folder and each loose file one node), import each
//! other in a loop. The imports are read from the text: `use crate::…`, `use super::…` and
//! `use self::…` (braces expanded), the same paths written inline in code, and `#[path]` on a
//! `mod` line, which gives a module a file under another name. A folder's face (`mod.rs`) and
//! the crate root are left out of the file graph, as they only gather and re-export; they
//! count in the folder graph. Macros and paths that go through the crate's own name are not
//! seen.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Files of `src/` (relative paths, `/`-separated) and their text without comments.
fn read_tree(src: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, src: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, src, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let rel = p
                    .strip_prefix(src)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                let text = std::fs::read_to_string(&p).unwrap();
                out.insert(rel, strip_comments(&text));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(src, src, &mut out);
    out
}

fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_face(file: &str) -> bool {
    matches!(
        file.rsplit('/').next(),
        Some("mod.rs" | "lib.rs" | "main.rs")
    )
}

/// The module path a file stands for (`train/trainer.rs` → `[train, trainer]`).
fn module_path(file: &str) -> Vec<String> {
    let mut parts: Vec<String> = file
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_string)
        .collect();
    if is_face(file) {
        parts.pop();
    }
    parts
}

/// A use-tree (`a::{b, c::{d, e}}`) as its paths.
fn expand(tree: &str) -> Vec<Vec<String>> {
    let tree = tree.trim();
    if let Some(open) = tree.find('{')
        && tree.ends_with('}')
    {
        let prefix: Vec<String> = tree[..open]
            .split("::")
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().to_string())
            .collect();
        let body = &tree[open + 1..tree.len() - 1];
        let (mut depth, mut start, mut out) = (0, 0, Vec::new());
        let mut items = Vec::new();
        for (i, c) in body.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(&body[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        items.push(&body[start..]);
        for item in items.into_iter().filter(|i| !i.trim().is_empty()) {
            for sub in expand(item) {
                out.push(prefix.iter().cloned().chain(sub).collect());
            }
        }
        return out;
    }
    let name = tree.split(" as ").next().unwrap_or(tree);
    vec![
        name.split("::")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    ]
}

/// Every path a file names: its `use` trees and the `crate::` / `super::` paths in its code.
fn named_paths(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut code = String::new();
    let mut rest = text;
    while let Some(i) = find_word(rest, "use") {
        code.push_str(&rest[..i]);
        let after = &rest[i + 3..];
        match after.find(';') {
            Some(end) if after.starts_with(char::is_whitespace) => {
                out.extend(expand(&after[..end]));
                rest = &after[end + 1..];
            }
            _ => {
                code.push_str("use");
                rest = after;
            }
        }
    }
    code.push_str(rest);
    for root in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(root).map(|i| i + from) {
            let word_start = i == 0 || !is_ident(code[..i].chars().next_back().unwrap());
            let end = code[i..]
                .find(|c: char| !(is_ident(c) || c == ':'))
                .map_or(code.len(), |e| i + e);
            if word_start {
                out.push(
                    code[i..end]
                        .split("::")
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                );
            }
            from = end.max(i + 1);
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The byte offset of `word` standing alone in `text`.
fn find_word(text: &str, word: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find(word).map(|i| i + from) {
        let before = text[..i].chars().next_back().is_none_or(|c| !is_ident(c));
        let after = text[i + word.len()..]
            .chars()
            .next()
            .is_none_or(|c| !is_ident(c));
        if before && after {
            return Some(i);
        }
        from = i + word.len();
    }
    None
}

/// `#[path = "x/mod.rs"] mod name;` in the crate root: `name` → the module path of the file.
fn path_aliases(files: &BTreeMap<String, String>) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for root in ["lib.rs", "main.rs"] {
        let Some(text) = files.get(root) else {
            continue;
        };
        let mut rest = text.as_str();
        while let Some(i) = rest.find("#[path") {
            let after = &rest[i..];
            let (Some(q1), Some(semi)) = (after.find('"'), after.find(';')) else {
                break;
            };
            let q2 = q1 + 1 + after[q1 + 1..].find('"').unwrap_or(0);
            let file = after[q1 + 1..q2].to_string();
            let name = after[..semi]
                .split_whitespace()
                .last()
                .unwrap_or("")
                .to_string();
            out.insert(name, module_path(&file));
            rest = &after[semi..];
        }
    }
    out
}

/// The file a module path names: the deepest prefix that is a file (a folder's `mod.rs` only
/// when `faces`).
fn resolve(path: &[String], files: &BTreeMap<String, String>, faces: bool) -> Option<String> {
    (1..=path.len()).rev().find_map(|n| {
        let p = path[..n].join("/");
        let file = format!("{p}.rs");
        let face = format!("{p}/mod.rs");
        if files.contains_key(&file) {
            Some(file)
        } else if files.contains_key(&face) {
            faces.then_some(face)
        } else {
            None
        }
    })
}

/// The import graph: file → files it imports (`folders`: folder or loose file → others).
fn graph(files: &BTreeMap<String, String>, folders: bool) -> BTreeMap<String, BTreeSet<String>> {
    let aliases = path_aliases(files);
    let node = |f: &str| -> String {
        if folders {
            let first = f.split('/').next().unwrap_or(f);
            first.trim_end_matches(".rs").to_string()
        } else {
            f.to_string()
        }
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, text) in files {
        if !folders && is_face(file) {
            continue;
        }
        let here = module_path(file);
        edges.entry(node(file)).or_default();
        for path in named_paths(text) {
            let target: Vec<String> = match path.first().map(String::as_str) {
                Some("crate") => path[1..].to_vec(),
                Some("super") => {
                    let ups = path.iter().take_while(|p| *p == "super").count();
                    let base = &here[..here.len().saturating_sub(ups)];
                    base.iter().chain(&path[ups..]).cloned().collect()
                }
                Some("self") => here.iter().chain(&path[1..]).cloned().collect(),
                _ => continue,
            };
            let target = match target.first().and_then(|t| aliases.get(t)) {
                Some(real) => real.iter().chain(&target[1..]).cloned().collect(),
                None => target,
            };
            let Some(t) = resolve(&target, files, folders) else {
                continue;
            };
            if t == *file || (!folders && is_face(&t)) || node(&t) == node(file) {
                continue;
            }
            edges.entry(node(file)).or_default().insert(node(&t));
        }
    }
    edges
}

/// Each import loop as the nodes it passes through, first node repeated at the end.
fn loops(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Tarjan's strongly connected components, then one loop through each.
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        components: Vec<Vec<&'a str>>,
    }
    fn strong<'a>(v: &'a str, s: &mut State<'a>) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.edges.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                strong(w, s);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w);
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.components.push(component);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            strong(v, &mut s);
        }
    }
    s.components
        .iter()
        .map(|component| {
            // the shortest way from the first node back to it, inside the component
            let inside: BTreeSet<&str> = component.iter().copied().collect();
            let start = *component.iter().min().unwrap();
            let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
            let mut queue = std::collections::VecDeque::from([start]);
            let mut last = start;
            'search: while let Some(v) = queue.pop_front() {
                for w in edges[v].iter().map(String::as_str) {
                    if w == start {
                        last = v;
                        break 'search;
                    }
                    if inside.contains(w) && !came_from.contains_key(w) {
                        came_from.insert(w, v);
                        queue.push_back(w);
                    }
                }
            }
            let mut path = vec![last.to_string()];
            let mut v = last;
            while v != start {
                v = came_from[v];
                path.push(v.to_string());
            }
            path.reverse();
            path.push(start.to_string());
            path
        })
        .collect()
}

fn check(src: &Path) -> Vec<String> {
    let files = read_tree(src);
    let mut found = Vec::new();
    for folders in [false, true] {
        for l in loops(&graph(&files, folders)) {
            let what = if folders { "folders" } else { "files" };
            found.push(format!("import loop between {what}: {}", l.join(" -> ")));
        }
    }
    found
}

#[test]
fn no_import_loop_between_files_or_folders_of_src() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = check(&src);
    assert!(
        found.is_empty(),
        "a module imports only from the layers below it (docs/architecture.md):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_finds_loops_it_is_shown() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    let write = |name: &str, text: &str| {
        let p = src.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "lib.rs",
        "pub mod low;\n#[path = \"high/mod.rs\"]\nmod high_layer;\npub mod high { pub use crate::high_layer::*; }\n",
    );
    write("low/mod.rs", "mod a;\nmod b;\n");
    write(
        "low/a.rs",
        "use super::b::B; // a comment: crate::high::C\n",
    );
    write("low/b.rs", "pub struct B;\n");
    write("high/mod.rs", "mod c;\n");
    write("high/c.rs", "use crate::low::{self, a::A};\n");
    assert!(check(src).is_empty(), "{:?}", check(src));

    // files: b imports a, which imports b
    write("low/b.rs", "pub struct B(crate::low::a::A);\n");
    assert_eq!(
        check(src),
        ["import loop between files: low/a.rs -> low/b.rs -> low/a.rs"]
    );
    // folders: low imports high (through the #[path] alias), which imports low; the files
    // a -> b -> c -> a close a loop too
    write("low/b.rs", "use crate::high_layer::c;\n");
    assert_eq!(
        check(src),
        [
            "import loop between files: high/c.rs -> low/a.rs -> low/b.rs -> high/c.rs",
            "import loop between folders: high -> low -> high"
        ]
    );
}

/// Top-level folders that hold people's and machines' own files (home folders, root's, a
/// work or scratch disk): a path under one of them in the repository works only on the machine
/// it was written on. System paths (`/tmp`, `/proc`, `/usr/bin/env`) and placeholders such as
/// `/path/to/venv` are fine.
const MACHINE_FOLDERS: [&str; 8] = [
    "home", "root", "Users", "work", "mnt", "scratch", "srv", "opt",
];

/// Each `/FOLDER/` of [`MACHINE_FOLDERS`] in `text` that starts an absolute path (not a part of
/// a relative path, a URL, `$HOME/…` or `~/…`), as `line: text`.
fn machine_paths(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        for folder in MACHINE_FOLDERS {
            let needle = format!("/{folder}/");
            let mut from = 0;
            while let Some(at) = line[from..].find(&needle).map(|k| from + k) {
                let before = line[..at].chars().next_back();
                let absolute =
                    before.is_none_or(|c| !(c.is_alphanumeric() || "_.~$}-/\\".contains(c)));
                if absolute {
                    found.push(format!("{}: {}", i + 1, line.trim()));
                }
                from = at + needle.len();
            }
        }
    }
    found
}

/// The repository's own text files: everything under the manifest folder but version control,
/// build output (a folder with cargo's `CACHEDIR.TAG`, or named `target`), virtual environments
/// and `Cargo.lock`.
fn repository_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name == ".git" {
                // version control (a folder, or in a worktree a file naming one)
            } else if p.is_dir() {
                let skip = [
                    "target",
                    "node_modules",
                    ".venv",
                    "venv",
                    ".ipynb_checkpoints",
                ]
                .contains(&name.as_str())
                    || p.join("CACHEDIR.TAG").exists()
                    || p.join("pyvenv.cfg").exists();
                if !skip {
                    stack.push(p);
                }
            } else if name != "Cargo.lock" {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn no_file_of_the_repository_names_a_folder_of_a_machine() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for path in repository_files(root) {
        // binary files (fonts, pictures) are not text
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let rel = path.strip_prefix(root).unwrap().display().to_string();
        found.extend(
            machine_paths(&text)
                .into_iter()
                .map(|l| format!("{rel}:{l}")),
        );
    }
    assert!(
        found.is_empty(),
        "the repository must not depend on one machine's folders: find data through MASSIVETEXT_DATA or the folder beside the repository (docs), temporary files under std::env::temp_dir():\n{}",
        found.join("\n")
    );
}

#[test]
fn the_machine_path_check_finds_what_it_is_shown() {
    // written in pieces, so this file does not itself hold such a path
    let home = format!("/{}/alice/data.txt", "home");
    let work = format!("let p = \"/{}/shared/data\";", "work");
    assert_eq!(machine_paths(&home), [format!("1: {home}")]);
    assert_eq!(machine_paths(&format!("x\n{work}")), [format!("2: {work}")]);
    for fine in [
        "/tmp/x /proc/self/status /usr/bin/env",
        "$HOME/.cargo ~/.cache ${CARGO_HOME}/bin",
        "/path/to/venv/bin/python ../shared/data",
        "https://github.com/owner/repo/home/x.rs",
        "notebooks/home/x",
    ] {
        assert!(machine_paths(fine).is_empty(), "{fine}");
    }
}

/// Issue 30, item 16: a release binary must not carry the build machine's folders. Debug info
/// holds the path of every source file compiled (the build folder, cargo's registry), so the
/// release profile has none, and `profiling` (release with line tables) is the profile for
/// `perf`.
#[test]
fn release_builds_carry_no_debug_info() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let cargo: toml::Table = toml::from_str(&text).unwrap();
    let profile = |name: &str| cargo["profile"][name].as_table().cloned();
    let release = profile("release").expect("a [profile.release] table");
    let debug = release.get("debug").cloned();
    assert!(
        matches!(
            debug,
            Some(toml::Value::Boolean(false)) | Some(toml::Value::Integer(0))
        ),
        "[profile.release] debug = {debug:?}: it bakes the build machine's paths into the binary"
    );
    assert_eq!(
        release.get("strip").and_then(|v| v.as_str()),
        Some("debuginfo"),
        "the standard library's own debug info is stripped too"
    );
    let profiling = profile("profiling").expect("a [profile.profiling] table for perf");
    assert_eq!(
        profiling.get("inherits").and_then(|v| v.as_str()),
        Some("release")
    );
}
