//! `cargo xtask lint`: the two structure rules a compiler does not check.
//!
//! 1. **No source file over 1,000 lines** (`MAX_LINES`) in the `src/` of
//!    every package of the workspace (crates/*, crates/*/*, xtask, benches).
//!    A file that long holds more than one mechanism; split it by what each
//!    part does.
//! 2. **No import cycle between the modules of one crate**: a module never
//!    uses a module that uses it back, directly or through others. A cycle
//!    means neither module can be read, tested or changed alone.
//!
//! How the cycle check works (a lexer and a path resolver, not a compiler):
//! - Each crate root (`src/lib.rs`, `src/main.rs`, `src/bin/*.rs`) is
//!   followed through its `mod NAME;` declarations (honouring `#[path]`) to
//!   the module tree, one node per file. Inline `mod NAME { .. }` blocks
//!   (`mod tests`) belong to the node of their file.
//! - Each file is lexed with comments, strings and char literals removed.
//!   Every path is collected: the leaves of each `use` tree (`use
//!   crate::{a::B, c::*}` gives `crate::a::B` and `crate::c::*`) and every
//!   `x::y::z` path in the code (`crate::p::f()`, `super::T`, `$crate::m`,
//!   `<T as crate::t::Tr>`).
//! - A path is resolved to the file-module it reaches: it starts at the crate
//!   root (`crate`, `$crate`), the parent (`super`, which first leaves any
//!   inline module it is written in), the module itself (`self`), or a child
//!   module named by its first segment; then it descends while the next
//!   segment names a child module. When the next segment is not a module, the
//!   `use` declarations of the module reached are consulted: a name that
//!   module re-exports (`pub use crate::x::Name;` in `lib.rs`) is followed to
//!   where it comes from, so `crate::Error` counts as a use of `error.rs`,
//!   not of `lib.rs`. A name the module defines itself is a use of that
//!   module. Paths to other crates (std, dependencies) are not edges.
//! - Each resolved use from file-module A to a different file-module B is an
//!   edge A -> B (a `mod b;` declaration alone is not). Strongly connected
//!   components (Tarjan) with more than one module are cycles; each is
//!   printed as one cycle, each edge with the file and line of its first use.
//!
//! Known limits, accepted because the code base does not use them: paths
//! built by macros from pieces, `use` inside function bodies resolving
//! relative to an inline module's glob imports, and `#[path]` on inline
//! modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

mod lex;

use self::lex::{lex, Tok};
use crate::process::{fail, subdirs, workspace_root, Error};

pub(crate) const LINT_HELP: &str = "\
cargo xtask lint: source files over 1,000 lines and import cycles

USAGE:
    cargo xtask lint

Fails when a .rs file under the src/ of any workspace package (crates/*,
xtask, benches) is longer than 1,000 lines, or when the modules of one crate
import each other in a cycle (`use crate::..`, `crate::..`, `super::..`
paths; see the top of xtask/src/lint.rs for how paths are resolved).
Prints every offending file and every cycle with the lines that make it.

OPTIONS:
    -h, --help    print this message
";

/// The longest a source file may be.
pub(crate) const MAX_LINES: usize = 1000;

/// Runs both checks over the workspace; Err lists every violation.
pub(crate) fn lint() -> Result<(), Error> {
    let root = workspace_root();
    let packages = packages(&root);
    let mut problems = Vec::new();
    let mut files = 0;
    let mut crates = 0;
    for pkg in &packages {
        let src = pkg.join("src");
        let mut rs = Vec::new();
        collect_rs(&src, &mut rs);
        rs.sort();
        for file in &rs {
            files += 1;
            let lines = std::fs::read_to_string(file).map_or(0, |s| s.lines().count());
            if lines > MAX_LINES {
                problems.push(format!(
                    "{}: {lines} lines (the limit is {MAX_LINES})",
                    rel(&root, file)
                ));
            }
        }
        for crate_root in crate_roots(&src) {
            crates += 1;
            let graph = Graph::load(&crate_root);
            for cycle in graph.cycles() {
                let name = pkg.file_name().map_or_else(String::new, |n| {
                    let kind = crate_root
                        .file_name()
                        .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
                    format!("{} ({kind})", n.to_string_lossy())
                });
                let mut msg = format!(
                    "{name}: import cycle {}",
                    cycle
                        .iter()
                        .map(|e| graph.name(e.from))
                        .chain(cycle.first().map(|e| graph.name(e.from)))
                        .collect::<Vec<_>>()
                        .join(" -> ")
                );
                msg.push_str(&format!("\n    (all the modules in this knot: {})", {
                    let mut m: Vec<String> = graph
                        .knot_of(cycle[0].from)
                        .into_iter()
                        .map(|id| graph.name(id))
                        .collect();
                    m.sort();
                    m.join(", ")
                }));
                for e in &cycle {
                    msg.push_str(&format!(
                        "\n    {} -> {}: {}:{}: {}",
                        graph.name(e.from),
                        graph.name(e.to),
                        rel(&root, &graph.nodes[e.from].file),
                        e.line,
                        e.path
                    ));
                }
                problems.push(msg);
            }
        }
    }
    if problems.is_empty() {
        println!(
            "lint: {files} files in {crates} crates: none over {MAX_LINES} lines, no import cycle"
        );
        return Ok(());
    }
    for p in &problems {
        eprintln!("lint: {p}");
    }
    fail(format!(
        "lint found {} problem(s) (files over {MAX_LINES} lines, import cycles)",
        problems.len()
    ))
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

/// Every directory with a Cargo.toml and a src/ under crates/ (two levels),
/// plus xtask and benches.
fn packages(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut consider = |dir: PathBuf| {
        if dir.join("Cargo.toml").is_file() && dir.join("src").is_dir() {
            out.push(dir);
        }
    };
    for d in subdirs(&root.join("crates")) {
        for sub in subdirs(&d) {
            consider(sub);
        }
        consider(d);
    }
    consider(root.join("xtask"));
    consider(root.join("benches"));
    out.sort();
    out
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            collect_rs(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn crate_roots(src: &Path) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = ["lib.rs", "main.rs"]
        .iter()
        .map(|f| src.join(f))
        .filter(|p| p.is_file())
        .collect();
    for p in std::fs::read_dir(src.join("bin"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let p = p.path();
        if p.extension().is_some_and(|e| e == "rs") {
            roots.push(p);
        } else if p.join("main.rs").is_file() {
            roots.push(p.join("main.rs"));
        }
    }
    roots
}

// ---------------------------------------------------------------------------
// What one file says
// ---------------------------------------------------------------------------

/// A path written in a file, with where it starts resolving.
#[derive(Debug)]
struct PathUse {
    segs: Vec<String>,
    /// How many inline `mod x { }` blocks it is written inside.
    inline_depth: usize,
    line: usize,
}

#[derive(Default, Debug)]
struct FileFacts {
    /// `mod NAME;` declarations: name and `#[path]` if any.
    children: Vec<(String, Option<String>)>,
    paths: Vec<PathUse>,
    /// Names brought in by top-level `use` declarations: name -> full path.
    /// Keyed by the name as seen from outside the file: `Name` for the
    /// file's own top level, `inner::Name` for a `use` inside an inline
    /// `mod inner { }` (how `$crate::__private::Item` re-exports resolve);
    /// the value's usize is the inline depth the path is written at.
    imports: BTreeMap<String, (Vec<String>, usize)>,
    /// `#[macro_export] macro_rules! NAME`: these live at the crate root
    /// (`crate::NAME!`) but are defined, and used, from this file.
    exported_macros: Vec<String>,
}

fn ident(t: Option<&(Tok, usize)>) -> Option<&str> {
    match t {
        Some((Tok::Ident(s), _)) => Some(s),
        _ => None,
    }
}

fn facts(src: &str) -> FileFacts {
    let toks = lex(src);
    let mut f = FileFacts::default();
    let mut depth = 0usize; // brace depth
    let mut inline: Vec<usize> = Vec::new(); // brace depths of inline modules
    let mut inline_names: Vec<String> = Vec::new();
    let mut fn_depth: Option<usize> = None; // inside a fn body: uses are local
    let mut pending_path: Option<String> = None;
    let mut macro_export = false;
    let mut i = 0;
    while i < toks.len() {
        let (tok, line) = &toks[i];
        match tok {
            Tok::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Tok::Punct('}') => {
                if inline.last() == Some(&depth) {
                    inline.pop();
                    inline_names.pop();
                }
                if fn_depth == Some(depth) {
                    fn_depth = None;
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            Tok::Punct('#') => {
                if toks.get(i + 1).map(|t| &t.0) == Some(&Tok::Punct('['))
                    && ident(toks.get(i + 2)) == Some("macro_export")
                {
                    macro_export = true;
                }
                // #[path = "x.rs"]
                if toks.get(i + 1).map(|t| &t.0) == Some(&Tok::Punct('['))
                    && ident(toks.get(i + 2)) == Some("path")
                    && toks.get(i + 3).map(|t| &t.0) == Some(&Tok::Punct('='))
                {
                    if let Some((Tok::Str(s), _)) = toks.get(i + 4) {
                        pending_path = Some(s.clone());
                    }
                }
                i += 1;
            }
            Tok::Ident(w) if w == "macro_rules" => {
                if macro_export {
                    if let Some(name) = ident(toks.get(i + 2)) {
                        f.exported_macros.push(name.to_string());
                    }
                }
                macro_export = false;
                i += 1;
            }
            Tok::Ident(w) if w == "mod" => {
                if let Some(name) = ident(toks.get(i + 1)) {
                    match toks.get(i + 2).map(|t| &t.0) {
                        Some(Tok::Punct(';')) if inline.is_empty() => {
                            f.children.push((name.to_string(), pending_path.take()));
                        }
                        Some(Tok::Punct('{')) => {
                            inline.push(depth + 1);
                            inline_names.push(name.to_string());
                        }
                        _ => {}
                    }
                }
                pending_path = None;
                i += 2;
            }
            Tok::Ident(w) if w == "fn" => {
                // The next `{` at this depth opens the body.
                let mut j = i + 1;
                while j < toks.len() && !matches!(toks[j].0, Tok::Punct('{') | Tok::Punct(';')) {
                    j += 1;
                }
                if fn_depth.is_none() && toks.get(j).map(|t| &t.0) == Some(&Tok::Punct('{')) {
                    fn_depth = Some(depth + 1);
                }
                i += 1;
            }
            Tok::Ident(w) if w == "use" => {
                let mut j = i + 1;
                let mut leaves = Vec::new();
                use_tree(&toks, &mut j, Vec::new(), &mut leaves);
                let top = fn_depth.is_none();
                for (segs, alias) in leaves {
                    if top {
                        let name = alias.or_else(|| segs.last().cloned());
                        if let Some(name) = name {
                            if name != "*" && name != "self" && name != "_" {
                                let mut key = inline_names.join("::");
                                if !key.is_empty() {
                                    key.push_str("::");
                                }
                                key.push_str(&name);
                                f.imports.insert(key, (segs.clone(), inline.len()));
                            }
                        }
                    }
                    f.paths.push(PathUse {
                        segs,
                        inline_depth: inline.len(),
                        line: *line,
                    });
                }
                // skip to the `;`
                while j < toks.len() && toks[j].0 != Tok::Punct(';') {
                    j += 1;
                }
                i = j + 1;
            }
            Tok::Ident(_) | Tok::Punct('$') => {
                // A path: [$]ident (:: ident)*; a lone identifier is not one.
                let start = i;
                let mut segs = Vec::new();
                let mut j = i;
                if toks[j].0 == Tok::Punct('$') {
                    if ident(toks.get(j + 1)) != Some("crate") {
                        i += 1;
                        continue;
                    }
                    j += 1;
                }
                // A path that continues one (`a::b` after `::`) was consumed.
                let preceded_by_sep = start > 0 && toks[start - 1].0 == Tok::Sep;
                while let Some(s) = ident(toks.get(j)) {
                    segs.push(s.to_string());
                    if toks.get(j + 1).map(|t| &t.0) == Some(&Tok::Sep) {
                        j += 2;
                    } else {
                        j += 1;
                        break;
                    }
                }
                if segs.len() > 1 && !preceded_by_sep {
                    f.paths.push(PathUse {
                        segs,
                        inline_depth: inline.len(),
                        line: *line,
                    });
                }
                i = j.max(start + 1);
            }
            _ => i += 1,
        }
    }
    f
}

/// Parses a use tree at `*j`, pushing (full path, alias) per leaf.
fn use_tree(
    toks: &[(Tok, usize)],
    j: &mut usize,
    prefix: Vec<String>,
    out: &mut Vec<(Vec<String>, Option<String>)>,
) {
    let mut segs = prefix;
    if toks.get(*j).map(|t| &t.0) == Some(&Tok::Sep) {
        *j += 1; // leading `::`: an extern crate path
        segs.push("::".to_string());
    }
    loop {
        match toks.get(*j).map(|t| &t.0) {
            Some(Tok::Ident(s)) => {
                segs.push(s.clone());
                *j += 1;
                if toks.get(*j).map(|t| &t.0) == Some(&Tok::Sep) {
                    *j += 1;
                    continue;
                }
                let alias = if ident(toks.get(*j)) == Some("as") {
                    *j += 2;
                    ident(toks.get(*j - 1)).map(str::to_string)
                } else {
                    None
                };
                if segs.last().map(String::as_str) == Some("self") {
                    segs.pop();
                    let alias = alias.or_else(|| segs.last().cloned());
                    out.push((segs, alias));
                } else {
                    out.push((segs, alias));
                }
                return;
            }
            Some(Tok::Punct('*')) => {
                *j += 1;
                segs.push("*".to_string());
                out.push((segs, None));
                return;
            }
            Some(Tok::Punct('{')) => {
                *j += 1;
                loop {
                    match toks.get(*j).map(|t| &t.0) {
                        Some(Tok::Punct('}')) => {
                            *j += 1;
                            return;
                        }
                        Some(Tok::Punct(',')) => *j += 1,
                        None | Some(Tok::Punct(';')) => return,
                        _ => {
                            let before = *j;
                            use_tree(toks, j, segs.clone(), out);
                            if *j == before {
                                *j += 1;
                            }
                        }
                    }
                }
            }
            _ => return,
        }
    }
}

// ---------------------------------------------------------------------------
// The module graph of one crate
// ---------------------------------------------------------------------------

struct Node {
    /// Module path from the root, e.g. ["sched", "observe"]; empty: the root.
    path: Vec<String>,
    file: PathBuf,
    facts: FileFacts,
    children: BTreeMap<String, usize>,
    parent: Option<usize>,
}

/// An edge: `from` uses `to`, first at `line` of `from`'s file.
#[derive(Clone)]
struct Edge {
    from: usize,
    to: usize,
    line: usize,
    path: String,
}

struct Graph {
    nodes: Vec<Node>,
    edges: BTreeMap<(usize, usize), Edge>,
}

impl Graph {
    fn load(root_file: &Path) -> Graph {
        let mut g = Graph {
            nodes: Vec::new(),
            edges: BTreeMap::new(),
        };
        g.add(root_file.to_path_buf(), Vec::new(), None, true);
        for from in 0..g.nodes.len() {
            let uses: Vec<(Vec<String>, usize, usize)> = g.nodes[from]
                .facts
                .paths
                .iter()
                .map(|p| (p.segs.clone(), p.inline_depth, p.line))
                .collect();
            for (segs, inline_depth, line) in uses {
                let Some(to) = g.resolve(from, &segs, inline_depth, 0) else {
                    continue;
                };
                if to != from {
                    g.edges.entry((from, to)).or_insert(Edge {
                        from,
                        to,
                        line,
                        path: segs.join("::"),
                    });
                }
            }
        }
        g
    }

    /// Adds the module in `file` and, recursively, its `mod x;` children.
    /// `owns_dir`: the file is a crate root or a mod.rs, whose children live
    /// beside it rather than in a directory named after it.
    fn add(
        &mut self,
        file: PathBuf,
        path: Vec<String>,
        parent: Option<usize>,
        owns_dir: bool,
    ) -> usize {
        let src = std::fs::read_to_string(&file).unwrap_or_default();
        let facts = facts(&src);
        let id = self.nodes.len();
        let children_decl = facts.children.clone();
        self.nodes.push(Node {
            path: path.clone(),
            file: file.clone(),
            facts,
            children: BTreeMap::new(),
            parent,
        });
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let child_dir = if owns_dir {
            dir.clone()
        } else {
            dir.join(file.file_stem().unwrap_or_default())
        };
        for (name, explicit) in children_decl {
            let (child_file, child_owns) = match explicit {
                Some(p) => (dir.join(p), false),
                None => {
                    let flat = child_dir.join(format!("{name}.rs"));
                    if flat.is_file() {
                        (flat, false)
                    } else {
                        (child_dir.join(&name).join("mod.rs"), true)
                    }
                }
            };
            if !child_file.is_file() {
                continue;
            }
            let mut child_path = path.clone();
            child_path.push(name.clone());
            let child = self.add(child_file, child_path, Some(id), child_owns);
            self.nodes[id].children.insert(name, child);
        }
        id
    }

    fn name(&self, id: usize) -> String {
        if self.nodes[id].path.is_empty() {
            "crate".to_string()
        } else {
            self.nodes[id].path.join("::")
        }
    }

    /// The file-module a path written in `from` reaches, if any.
    fn resolve(
        &self,
        from: usize,
        segs: &[String],
        inline_depth: usize,
        hops: u32,
    ) -> Option<usize> {
        if hops > 8 {
            return None;
        }
        let mut rest = segs;
        let mut at = match rest.first().map(String::as_str) {
            Some("crate") => {
                rest = &rest[1..];
                0
            }
            Some("self") => {
                rest = &rest[1..];
                from
            }
            Some("super") => {
                let mut at = from;
                let mut inline = inline_depth;
                while rest.first().map(String::as_str) == Some("super") {
                    rest = &rest[1..];
                    if inline > 0 {
                        inline -= 1;
                    } else {
                        at = self.nodes[at].parent?;
                    }
                }
                at
            }
            Some(first) if inline_depth == 0 => {
                let child = self.nodes[from].children.get(first)?;
                rest = &rest[1..];
                *child
            }
            _ => return None,
        };
        while let Some(seg) = rest.first() {
            if let Some(&child) = self.nodes[at].children.get(seg.as_str()) {
                at = child;
                rest = &rest[1..];
                continue;
            }
            if seg == "*" {
                break;
            }
            if at == 0 {
                let exporter = self
                    .nodes
                    .iter()
                    .position(|n| n.facts.exported_macros.iter().any(|m| m == seg));
                if let Some(node) = exporter {
                    return Some(node);
                }
            }
            // A name the module imports (at its top level, or in an inline
            // module: `inner::Name`): follow it to where it comes from.
            for n in 1..=rest.len() {
                let key = rest[..n].join("::");
                if let Some((target, depth)) = self.nodes[at].facts.imports.get(&key) {
                    let mut full = target.clone();
                    full.extend(rest[n..].iter().cloned());
                    if full.first().map(String::as_str) == Some("::") {
                        return None;
                    }
                    // None: re-exported from another crate, not an edge.
                    return self.resolve(at, &full, *depth, hops + 1);
                }
            }
            break;
        }
        Some(at)
    }

    /// Every module on some cycle through `id` (its strongly connected
    /// component).
    fn knot_of(&self, id: usize) -> Vec<usize> {
        let mut adj = vec![BTreeSet::new(); self.nodes.len()];
        for &(a, b) in self.edges.keys() {
            adj[a].insert(b);
        }
        tarjan(&adj)
            .into_iter()
            .find(|c| c.contains(&id))
            .unwrap_or_default()
    }

    /// One cycle per strongly connected component of more than one module.
    fn cycles(&self) -> Vec<Vec<Edge>> {
        let n = self.nodes.len();
        let mut adj = vec![BTreeSet::new(); n];
        for &(a, b) in self.edges.keys() {
            adj[a].insert(b);
        }
        let sccs = tarjan(&adj);
        let mut out = Vec::new();
        for scc in sccs.into_iter().filter(|s| s.len() > 1) {
            let members: BTreeSet<usize> = scc.iter().copied().collect();
            let start = *members.iter().next().unwrap_or(&0);
            // Shortest cycle through `start` inside the component (BFS).
            let mut prev = vec![usize::MAX; n];
            let mut queue = std::collections::VecDeque::from([start]);
            let mut found = None;
            'bfs: while let Some(u) = queue.pop_front() {
                for &v in &adj[u] {
                    if !members.contains(&v) {
                        continue;
                    }
                    if v == start {
                        found = Some(u);
                        break 'bfs;
                    }
                    if prev[v] == usize::MAX {
                        prev[v] = u;
                        queue.push_back(v);
                    }
                }
            }
            let Some(mut last) = found else { continue };
            let mut cycle = vec![self.edges[&(last, start)].clone()];
            while last != start {
                let p = prev[last];
                cycle.push(self.edges[&(p, last)].clone());
                last = p;
            }
            cycle.reverse();
            out.push(cycle);
        }
        out
    }
}

/// Tarjan's strongly connected components.
fn tarjan(adj: &[BTreeSet<usize>]) -> Vec<Vec<usize>> {
    struct St<'a> {
        adj: &'a [BTreeSet<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut St<'_>, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on[v] = true;
        for &w in s.adj[v].iter() {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on[w] => s.low[v] = s.low[v].min(iw),
                _ => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            s.out.push(comp);
        }
    }
    let n = adj.len();
    let mut s = St {
        adj,
        index: vec![None; n],
        low: vec![0; n],
        on: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(src: &str) -> Vec<String> {
        facts(src).paths.iter().map(|p| p.segs.join("::")).collect()
    }

    #[test]
    fn use_trees_expand_to_leaves() {
        assert_eq!(
            paths("use crate::{a::B, c::{self, D as E}, f::*};"),
            ["crate::a::B", "crate::c", "crate::c::D", "crate::f::*"]
        );
        let f = facts("pub use crate::x::Name; use super::y as z;");
        assert_eq!(f.imports["Name"].0, ["crate", "x", "Name"]);
        assert_eq!(f.imports["z"].0, ["super", "y"]);
    }

    #[test]
    fn code_paths_skip_comments_and_strings() {
        let src = "// crate::a::X\n/* super::b */ let s = \"crate::c::Y\"; crate::d::f(); $crate::e::g!(); x.y; 'a'; 'lt;";
        assert_eq!(paths(src), ["crate::d::f", "crate::e::g"]);
    }

    #[test]
    fn inline_modules_and_path_attributes() {
        let f = facts(
            "#[path = \"arm.rs\"]\nmod arch;\nmod a;\n#[cfg(test)]\nmod tests { use super::*; }",
        );
        assert_eq!(
            f.children,
            [
                ("arch".to_string(), Some("arm.rs".to_string())),
                ("a".to_string(), None)
            ]
        );
        assert_eq!(f.paths[0].inline_depth, 1);
    }

    /// Builds a crate in a temporary directory and returns its cycles as
    /// module names.
    fn cycles_of(files: &[(&str, &str)]) -> Vec<Vec<String>> {
        let dir = std::env::temp_dir().join(format!(
            "xtask-lint-{}-{}",
            std::process::id(),
            files.len() * 1000 + files.iter().map(|f| f.1.len()).sum::<usize>()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for (name, text) in files {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let g = Graph::load(&dir.join("lib.rs"));
        let out = g
            .cycles()
            .iter()
            .map(|c| c.iter().map(|e| g.name(e.from)).collect())
            .collect();
        let _ = std::fs::remove_dir_all(&dir);
        out
    }

    #[test]
    fn finds_a_cycle_through_super_and_crate() {
        let c = cycles_of(&[
            ("lib.rs", "mod hub; mod leaf;"),
            ("hub.rs", "mod obs; use crate::leaf::f; fn g() { obs::h() }"),
            ("hub/obs.rs", "use super::State; pub fn h() {}"),
            ("leaf.rs", "pub fn f() {}"),
        ]);
        assert_eq!(c, [["hub", "hub::obs"]]);
    }

    #[test]
    fn re_exports_through_the_root_are_followed() {
        // leaf uses crate::Error, which lib.rs re-exports from error.rs:
        // leaf -> error, not leaf -> crate. No cycle.
        let c = cycles_of(&[
            (
                "lib.rs",
                "mod error; mod leaf; pub use error::Error; pub use leaf::f;",
            ),
            ("error.rs", "pub struct Error;"),
            ("leaf.rs", "use crate::Error; pub fn f() -> Error { Error }"),
        ]);
        assert!(c.is_empty(), "{c:?}");
        // A helper defined in lib.rs itself is a use of the root: a cycle.
        let c = cycles_of(&[
            ("lib.rs", "mod leaf; pub use leaf::f; fn helper() {}"),
            ("leaf.rs", "pub fn f() { crate::helper() }"),
        ]);
        assert_eq!(c, [["crate", "leaf"]]);
    }

    #[test]
    fn exported_macros_belong_to_their_file() {
        let c = cycles_of(&[
            ("lib.rs", "mod sel; pub use sel::f;"),
            ("sel.rs", "pub fn f() {} #[macro_export] macro_rules! m { () => { $crate::__inner!() } } #[macro_export] macro_rules! __inner { () => {} }"),
        ]);
        assert!(c.is_empty(), "{c:?}");
    }

    #[test]
    fn re_exports_through_an_inline_module_are_followed() {
        // A macro in sel.rs names `$crate::__private::Arm`, which lib.rs
        // re-exports from sel.rs in an inline module: sel -> sel, no edge.
        let c = cycles_of(&[
            (
                "lib.rs",
                "mod sel; pub mod __private { pub use crate::sel::Arm; }",
            ),
            (
                "sel.rs",
                "pub struct Arm; #[macro_export] macro_rules! s { () => { $crate::__private::Arm } }",
            ),
        ]);
        assert!(c.is_empty(), "{c:?}");
    }

    #[test]
    fn tests_modules_using_super_star_are_no_edge() {
        let c = cycles_of(&[
            ("lib.rs", "mod a; mod b;"),
            (
                "a.rs",
                "pub fn x() {} #[cfg(test)] mod tests { use super::*; use crate::b::y; }",
            ),
            ("b.rs", "pub fn y() {}"),
        ]);
        assert!(c.is_empty(), "{c:?}");
    }
}
