//! Python source read with tree-sitter's Python grammar (the `tree-sitter-python` crate):
//! whether a snippet parses, the share of snippets that parse, and the functions of a file.
//!
//! A snippet *parses* when tree-sitter's tree of it has no `ERROR` node and no `MISSING` node
//! (a token the parser had to invent, such as the `)` of `f(x`). tree-sitter is a grammar, not
//! the compiler: it accepts what CPython's parser accepts in the common cases, but it does not
//! check names, scopes or `return` outside a function (neither does `ast.parse`), and its
//! indentation scanner is lenient where CPython is not: a `def` with an empty body
//! (`"def f(x):\n"`), a dedent to a level never opened, or an unexpected indent give no error
//! node. So a generated *function* counts only when, besides, every function it defines has at
//! least one statement in its body ([`function_parse_rate`]): a model that writes a header and
//! then stops has not written a body.
use serde::Serialize;
use tree_sitter::{Node, Parser, Tree};

use crate::{Error, Result};

/// A parser set to the Python grammar.
fn parser() -> Result<Parser> {
    let mut p = Parser::new();
    p.set_language(&tree_sitter_python::LANGUAGE.into())
        .map_err(|e| {
            Error::Unsupported(format!(
                "the tree-sitter Python grammar does not load in this build's tree-sitter ({e}); the tree-sitter and tree-sitter-python crates disagree on the ABI version"
            ))
        })?;
    Ok(p)
}

fn parse(p: &mut Parser, code: &str) -> Result<Tree> {
    p.parse(code, None).ok_or_else(|| {
        Error::InvalidArgument("tree-sitter returned no tree for the snippet".into())
    })
}

/// Whether any node of the tree is an `ERROR` or a `MISSING` node.
fn has_error(root: Node) -> bool {
    if root.has_error() {
        return true;
    }
    let mut cursor = root.walk();
    let mut stack = vec![root];
    while let Some(n) = stack.pop() {
        if n.is_error() || n.is_missing() {
            return true;
        }
        stack.extend(n.children(&mut cursor));
    }
    false
}

/// Whether `code` parses as Python (no `ERROR` or `MISSING` node in its tree).
///
/// ```
/// use massivetext::metrics::parses_as_python;
/// assert!(parses_as_python("def f(x):\n    return x + 1\n")?);
/// assert!(!parses_as_python("def f(x:\n    return x +\n")?);
/// # Ok::<(), massivetext::Error>(())
/// ```
pub fn parses_as_python(code: &str) -> Result<bool> {
    let mut p = parser()?;
    Ok(!has_error(parse(&mut p, code)?.root_node()))
}

/// How many snippets parse, of how many.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParseRate {
    /// `parsed / total`.
    pub rate: f64,
    pub parsed: usize,
    pub total: usize,
}

/// The share of `snippets` that parse as Python ([`parses_as_python`]); an error when there
/// are none.
pub fn parse_rate<S: AsRef<str>>(snippets: &[S]) -> Result<ParseRate> {
    rate(snippets, |root| !has_error(root))
}

/// The share of `snippets` whose tree passes `ok`.
fn rate<S: AsRef<str>>(snippets: &[S], ok: impl Fn(Node) -> bool) -> Result<ParseRate> {
    if snippets.is_empty() {
        return Err(Error::EmptyMetricInput {
            what: "the list of snippets".into(),
        });
    }
    let mut p = parser()?;
    let mut parsed = 0;
    for s in snippets {
        if ok(parse(&mut p, s.as_ref())?.root_node()) {
            parsed += 1;
        }
    }
    Ok(ParseRate {
        rate: parsed as f64 / snippets.len() as f64,
        parsed,
        total: snippets.len(),
    })
}

/// Whether every `function_definition` below `root` has a statement in its body.
fn bodies_filled(root: Node) -> bool {
    let mut cursor = root.walk();
    let mut stack = vec![root];
    while let Some(n) = stack.pop() {
        if n.kind() == "function_definition" {
            let filled = n.child_by_field_name("body").is_some_and(|b| {
                let mut c = b.walk();
                b.named_children(&mut c).any(|s| s.kind() != "comment")
            });
            if !filled {
                return false;
            }
        }
        stack.extend(n.children(&mut cursor));
    }
    true
}

/// Whether `code` parses as Python and each function it defines has a body (see the module
/// docs).
///
/// ```
/// use massivetext::metrics::{parses_as_python, parses_as_python_function};
/// assert!(parses_as_python("def f(x):\n")?); // tree-sitter's leniency
/// assert!(!parses_as_python_function("def f(x):\n")?);
/// assert!(parses_as_python_function("def f(x):\n    # one\n    return x\n")?);
/// # Ok::<(), massivetext::Error>(())
/// ```
pub fn parses_as_python_function(code: &str) -> Result<bool> {
    let mut p = parser()?;
    let tree = parse(&mut p, code)?;
    let root = tree.root_node();
    Ok(!has_error(root) && bodies_filled(root))
}

/// The share of generated functions that parse with their bodies
/// ([`parses_as_python_function`]); an error when there are none.
pub fn function_parse_rate<S: AsRef<str>>(snippets: &[S]) -> Result<ParseRate> {
    rate(snippets, |root| !has_error(root) && bodies_filled(root))
}

/// A function of a Python file: its source text from the start of its `def` line (indentation
/// and decorators' lines excluded) to the end of its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PythonFunction {
    pub name: String,
    /// 1-based line of `def` in the file.
    pub line: usize,
    pub source: String,
}

/// Every function definition of `source` (methods and nested functions included), in the
/// order they start; a file that does not parse gives the functions tree-sitter still finds
/// outside its error nodes.
pub fn python_functions(source: &str) -> Result<Vec<PythonFunction>> {
    let mut p = parser()?;
    let tree = parse(&mut p, source)?;
    let mut out = Vec::new();
    let mut cursor = tree.walk();
    let mut stack = vec![tree.root_node()];
    while let Some(n) = stack.pop() {
        if n.kind() == "function_definition" && !has_error(n) {
            let start = source[..n.start_byte()].rfind('\n').map_or(0, |i| i + 1);
            let name = n
                .child_by_field_name("name")
                .and_then(|x| x.utf8_text(source.as_bytes()).ok())
                .unwrap_or("")
                .to_string();
            out.push(PythonFunction {
                name,
                line: n.start_position().row + 1,
                source: source[start..n.end_byte()].to_string(),
            });
        }
        let children: Vec<Node> = n.children(&mut cursor).collect();
        stack.extend(children.into_iter().rev());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_come_with_their_indentation_and_line() {
        let src = "import os\n\nclass A:\n    def m(self):\n        return 1\n\n\ndef f(x):\n    def g():\n        pass\n    return g\n";
        let fs = python_functions(src).unwrap();
        let names: Vec<&str> = fs.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["m", "f", "g"]);
        assert_eq!(fs[0].line, 4);
        assert_eq!(fs[0].source, "    def m(self):\n        return 1");
        assert!(fs[1].source.starts_with("def f(x):\n    def g():"));
    }
}
