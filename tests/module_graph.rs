//! The crate's modules do not import each other in a cycle, and neither do its top-level
//! modules (`nn`, `ops`, `gpu`, ...; the binary's `bin::cli` as one node).
//!
//! A module is a file under `src/`. Every path in code that starts with `crate::`,
//! `super::`, `self::` or `bitspike::` is an edge (use-trees and inline paths alike;
//! comments and string literals are skipped). A path goes to the longest prefix that is a
//! module file; when that is a facade (`mod.rs`, `lib.rs`, `main.rs`) and the next name
//! is one of its `pub use` re-exports, it goes on to the module that defines the name. A
//! facade's `mod` declarations and `pub use` lines are not edges; a module's edges to
//! itself are dropped. `main.rs` and the modules it declares are the binary, named
//! `bin::...`; there `bitspike::` is the library. Inline modules, `#[cfg(test)] mod tests`
//! included, are part of their file's module: a test's imports count like any others.
//!
//! Known limits: this reads tokens, not Rust. Paths written by macros and a parent's
//! paths to its children without `self::` (`events::read(..)` in `data/mod.rs`) are not
//! edges; `pub(in path) use` is not read as a re-export.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

/// A token (an identifier, `::` or one punctuation character) and its line.
type Tok = (String, usize);

fn word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_word(s: &str) -> bool {
    s.starts_with(word_char)
}

/// The tokens of `src`, without comments, strings and char literals.
fn tokenize(src: &str) -> Vec<Tok> {
    let c: Vec<char> = src.chars().collect();
    let at = |k: usize| c.get(k).copied().unwrap_or('\0');
    let find = |from: usize, ch: char| (from..c.len()).find(|&k| c[k] == ch).unwrap_or(c.len());
    let mut line = vec![1];
    for ch in &c {
        line.push(line[line.len() - 1] + usize::from(*ch == '\n'));
    }
    let (mut out, mut i) = (Vec::new(), 0);
    while i < c.len() {
        i = if let Some(end) = string_end(&c, i) {
            end
        } else if (c[i], at(i + 1)) == ('/', '/') {
            find(i, '\n')
        } else if (c[i], at(i + 1)) == ('/', '*') {
            let (mut depth, mut k) = (0, i);
            while k < c.len() && (depth > 0 || k == i) {
                let pair = (c[k], at(k + 1));
                depth += i32::from(pair == ('/', '*')) - i32::from(pair == ('*', '/'));
                k += if matches!(pair, ('/', '*') | ('*', '/')) {
                    2
                } else {
                    1
                };
            }
            k
        } else if c[i] == '\'' {
            // `'\''` and `'\u{1F980}'`, `'x'`, or the quote of a lifetime
            match (at(i + 1), at(i + 2)) {
                ('\\', _) => find(i + 3, '\'') + 1,
                (_, '\'') => i + 3,
                _ => i + 1,
            }
        } else {
            let len = match (c[i], at(i + 1)) {
                (':', ':') => 2,
                (ch, _) if word_char(ch) => c[i..].iter().take_while(|&&ch| word_char(ch)).count(),
                _ => 1,
            };
            if !c[i].is_whitespace() {
                out.push((c[i..i + len].iter().collect(), line[i]));
            }
            i + len
        };
    }
    out
}

/// The index after the string literal (`"..."`, `b"..."`, `r#"..."#`, ...) at `i`, if any.
fn string_end(c: &[char], i: usize) -> Option<usize> {
    let prefix = c[i..]
        .iter()
        .take(2)
        .take_while(|ch| matches!(ch, 'b' | 'c' | 'r'))
        .count();
    let raw = c[i..i + prefix].contains(&'r');
    let hashes = if raw {
        c[i + prefix..].iter().take_while(|&&h| h == '#').count()
    } else {
        0
    };
    let mut k = i + prefix + hashes;
    if c.get(k) != Some(&'"') {
        return None;
    }
    let close: Vec<char> = std::iter::once('"')
        .chain(std::iter::repeat_n('#', hashes))
        .collect();
    k += 1;
    while k < c.len() && !c[k..].starts_with(&close) {
        k += if c[k] == '\\' && !raw { 2 } else { 1 };
    }
    Some((k + close.len()).min(c.len()))
}

/// A path out of a use-tree: `use a::{b as c, d::*}` has `a::b` (as `c`) and `a::d::*`.
struct Leaf {
    path: Vec<String>,
    alias: Option<String>,
    glob: bool,
    line: usize,
}

/// Reads the path or use-tree at `i` into `out`; returns the index after it.
fn tree(t: &[Tok], mut i: usize, mut path: Vec<String>, out: &mut Vec<Leaf>) -> usize {
    let tok = |k: usize| t.get(k).map_or("", |x| x.0.as_str());
    let mut line = t.get(i).map_or(0, |x| x.1);
    loop {
        match tok(i) {
            "*" => {
                out.push(Leaf {
                    path,
                    alias: None,
                    glob: true,
                    line,
                });
                return i + 1;
            }
            "{" => {
                i += 1;
                while i < t.len() && tok(i) != "}" {
                    i = if tok(i) == "," {
                        i + 1
                    } else {
                        tree(t, i, path.clone(), out).max(i + 1)
                    };
                }
                return i + 1;
            }
            w if is_word(w) => {
                if w != "self" || path.is_empty() {
                    path.push(w.to_string()); // `{self, ..}` is the prefix itself
                }
                (line, i) = (t[i].1, i + 1);
            }
            _ => break,
        }
        if tok(i) != "::" || !(is_word(tok(i + 1)) || matches!(tok(i + 1), "{" | "*")) {
            break;
        }
        i += 1;
    }
    let alias = (tok(i) == "as" && is_word(tok(i + 1))).then(|| tok(i + 1).to_string());
    let end = i + if alias.is_some() { 2 } else { 0 };
    out.push(Leaf {
        path,
        alias,
        glob: false,
        line,
    });
    end
}

/// `path` made absolute from `module`, in a crate whose `crate::` is `root`.
fn absolute(path: &[String], module: &[String], root: &[String]) -> Option<Vec<String>> {
    let ups = path.iter().take_while(|s| *s == "super").count();
    let base = match path.first()?.as_str() {
        "crate" => root,
        "bitspike" => &[],
        "self" => module,
        "super" => module.get(..module.len().checked_sub(ups)?)?,
        _ => return None,
    };
    Some([base, &path[ups.max(1)..]].concat())
}

/// One module file: its paths and, for a facade, what it re-exports.
#[derive(Default)]
struct Scan {
    refs: Vec<(Vec<String>, usize)>,
    reexports: BTreeMap<String, Vec<String>>,
    globs: Vec<Vec<String>>,
    defines: BTreeSet<String>,
}

const HEADS: [&str; 4] = ["crate", "super", "self", "bitspike"];
const ITEMS: &str = "fn struct enum trait type const static union mod";

fn scan(src: &str, module: &[String], root: &[String], facade: bool) -> Scan {
    let t = tokenize(src);
    let tok = |k: usize| t.get(k).map_or("", |x| x.0.as_str());
    let (mut s, mut i, mut depth) = (Scan::default(), 0, 0);
    let mut inline: Vec<(String, usize)> = Vec::new(); // `mod name {` and its brace depth
    while i < t.len() {
        let before = |k: usize| tok(i.wrapping_sub(k));
        match tok(i) {
            "{" => {
                depth += 1;
                if before(2) == "mod" {
                    inline.push((before(1).to_string(), depth));
                }
            }
            "}" => {
                if inline.last().is_some_and(|m| m.1 == depth) {
                    inline.pop();
                }
                depth = usize::saturating_sub(depth, 1);
            }
            w if w == "use" || (HEADS.contains(&w) && tok(i + 1) == "::" && before(1) != "::") => {
                let public = before(1) == "pub" || (before(1) == ")" && before(4) == "pub");
                let reexport = w == "use" && public && facade && inline.is_empty();
                let here: Vec<String> = module
                    .iter()
                    .chain(inline.iter().map(|m| &m.0))
                    .cloned()
                    .collect();
                let mut leaves = Vec::new();
                i = tree(&t, i + usize::from(w == "use"), Vec::new(), &mut leaves);
                for leaf in leaves {
                    let abs = absolute(&leaf.path, &here, root);
                    if !reexport {
                        s.refs.extend(abs.map(|p| (p, leaf.line)));
                        continue;
                    }
                    let target = abs.unwrap_or_else(|| [module, &leaf.path].concat());
                    if leaf.glob {
                        s.globs.push(target);
                    } else if let Some(name) = leaf.alias.or(target.last().cloned()) {
                        s.reexports.insert(name, target);
                    }
                }
                continue;
            }
            w if depth == 0 && ITEMS.split(' ').any(|k| k == w) => {
                s.defines.insert(tok(i + 1).to_string());
            }
            _ => {}
        }
        i += 1;
    }
    s
}

type Modules = BTreeMap<Vec<String>, (String, Scan)>;
/// Module -> module it references -> the file and line of the first reference.
type Graph = BTreeMap<String, BTreeMap<String, (String, usize)>>;

/// The module `path` lands in, through facades' re-exports.
fn resolve(mods: &Modules, path: &[String], hops: usize) -> Vec<String> {
    let n = (0..=path.len())
        .rev()
        .find(|&n| mods.contains_key(&path[..n]))
        .unwrap_or(0);
    let (module, rest) = path.split_at(n);
    if let (Some(name), Some((_, s)), true) = (rest.first(), mods.get(module), hops < 32) {
        let has = |g: &[String]| {
            let m = mods.get(&resolve(mods, g, hops + 1));
            m.is_some_and(|(_, c)| c.defines.contains(name) || c.reexports.contains_key(name))
        };
        let glob = || {
            s.globs
                .iter()
                .find(|g| has(g))
                .map(|g| [g.as_slice(), &rest[..1]].concat())
        };
        let target = s.reexports.get(name).cloned();
        if let Some(target) = target.or_else(|| glob().filter(|_| !s.defines.contains(name))) {
            return resolve(mods, &[target.as_slice(), &rest[1..]].concat(), hops + 1);
        }
    }
    module.to_vec()
}

fn name(module: &[String]) -> String {
    if module.is_empty() {
        "crate".into()
    } else {
        module.join("::")
    }
}

/// The graph of the crate made of these `(path under src/, source)` files.
fn build(files: &[(String, String)]) -> Graph {
    // The binary's modules: what `main.rs` declares and `lib.rs` does not.
    let defines = |root: &str| {
        let file = files.iter().find(|f| f.0 == root);
        file.map(|f| scan(&f.1, &[], &[], false).defines)
            .unwrap_or_default()
    };
    let bin: BTreeSet<String> = defines("main.rs")
        .difference(&defines("lib.rs"))
        .cloned()
        .collect();
    let mut mods = Modules::new();
    for (rel, src) in files {
        let stem = rel.strip_suffix(".rs").unwrap_or(rel);
        let stem = stem.strip_suffix("/mod").unwrap_or(stem);
        let mut module: Vec<String> = match stem {
            "lib" => vec![],
            "main" => vec!["bin".into()],
            _ => stem.split('/').map(String::from).collect(),
        };
        if module.first().is_some_and(|m| bin.contains(m)) {
            module.insert(0, "bin".into());
        }
        let root: &[String] = if module.first().is_some_and(|m| m == "bin") {
            &module[..1]
        } else {
            &[]
        };
        let facade = rel.ends_with("mod.rs") || rel == "lib.rs" || rel == "main.rs";
        let s = scan(src, &module, root, facade);
        mods.insert(module, (rel.clone(), s));
    }
    let mut g = Graph::new();
    for (module, (rel, s)) in &mods {
        for (path, line) in &s.refs {
            let to = resolve(&mods, path, 0);
            if &to != module {
                let at = (format!("src/{rel}"), *line);
                g.entry(name(module))
                    .or_default()
                    .entry(name(&to))
                    .or_insert(at);
            }
        }
    }
    g
}

/// The graph of top-level modules (`bin::cli` for the binary's).
fn collapse(g: &Graph) -> Graph {
    let top = |m: &str| {
        m.split("::")
            .take(if m.starts_with("bin::") { 2 } else { 1 })
            .collect::<Vec<_>>()
            .join("::")
    };
    let mut out = Graph::new();
    for (a, tos) in g {
        for (b, at) in tos.iter().filter(|(b, _)| top(a) != top(b)) {
            out.entry(top(a))
                .or_default()
                .entry(top(b))
                .or_insert_with(|| at.clone());
        }
    }
    out
}

/// Each strongly connected component, with the shortest cycle through its first module.
fn cycles(g: &Graph) -> Vec<(BTreeSet<String>, Vec<String>)> {
    let reach = |from: &str| {
        let (mut seen, mut todo) = (BTreeSet::new(), vec![from.to_string()]);
        while let Some(v) = todo.pop() {
            for w in g.get(&v).into_iter().flat_map(|t| t.keys()) {
                if seen.insert(w.clone()) {
                    todo.push(w.clone());
                }
            }
        }
        seen
    };
    let (mut done, mut found) = (BTreeSet::new(), Vec::new());
    for v in g.keys().filter(|v| reach(v).contains(*v)) {
        if done.contains(v) {
            continue;
        }
        let comp: BTreeSet<String> = reach(v)
            .into_iter()
            .filter(|u| reach(u).contains(v))
            .collect();
        let (mut prev, mut queue) = (BTreeMap::<&String, &String>::new(), VecDeque::from([v]));
        while let Some(u) = queue.pop_front() {
            if g[u].contains_key(v) {
                let mut path = vec![v, u];
                while let Some(&p) = prev.get(path[path.len() - 1]) {
                    path.push(p);
                }
                found.push((comp.clone(), path.into_iter().rev().cloned().collect()));
                break;
            }
            for w in g[u].keys().filter(|w| comp.contains(*w)) {
                if !prev.contains_key(w) {
                    prev.insert(w, u);
                    queue.push_back(w);
                }
            }
        }
        done.extend(comp);
    }
    found
}

fn describe(g: &Graph, what: &str) -> Vec<String> {
    let show = |(comp, cycle): &(BTreeSet<String>, Vec<String>)| {
        let mut text = format!("{what}: {}", cycle.join(" -> "));
        for w in cycle.windows(2) {
            let (file, line) = &g[&w[0]][&w[1]];
            text += &format!("\n    {} -> {}  at {file}:{line}", w[0], w[1]);
        }
        let rest: Vec<_> = comp
            .iter()
            .filter(|m| !cycle.contains(m))
            .cloned()
            .collect();
        if !rest.is_empty() {
            text += &format!("\n    (same component: {})", rest.join(", "));
        }
        text
    };
    cycles(g).iter().map(show).collect()
}

fn read_dir(dir: &Path, src: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            read_dir(&p, src, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let rel = p
                .strip_prefix(src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            out.push((rel, std::fs::read_to_string(&p).unwrap()));
        }
    }
}

#[test]
fn module_graph_has_no_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    read_dir(&src, &src, &mut files);
    let g = build(&files);
    assert!(
        g.len() > 10,
        "only {} modules with imports: is the parser broken?",
        g.len()
    );
    let top = collapse(&g);
    println!("top-level module edges (first reference):");
    for (a, tos) in &top {
        for (b, (file, line)) in tos {
            println!("  {a} -> {b}  ({file}:{line})");
        }
    }
    let mut problems = describe(&g, "modules");
    problems.extend(describe(&top, "top-level modules"));
    assert!(
        problems.is_empty(),
        "{} import cycle(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn parser_reads_use_trees_super_and_facades_and_skips_comments() {
    let paths = |src: &str, module: &str| {
        let module: Vec<String> = module.split("::").map(String::from).collect();
        let refs = scan(src, &module, &[], false).refs.into_iter();
        refs.map(|(p, line)| format!("{}@{line}", p.join("::")))
            .collect::<Vec<_>>()
    };
    let tree = "use crate::ops::{self, attention::{Foo, Bar as B}, LifConfig};";
    let want = [
        "ops@1",
        "ops::attention::Foo@1",
        "ops::attention::Bar@1",
        "ops::LifConfig@1",
    ];
    assert_eq!(paths(tree, "x"), want);
    let up = "fn f() { super::super::data::load(x) }\nmod tests { use super::super::q::*; }";
    assert_eq!(paths(up, "a::b::c"), ["a::data::load@1", "a::b::q@2"]);
    let noise = r###"// crate::a
        /// crate::b
        //! crate::c
        /* crate::d /* nested */ crate::e */ let s = "crate::f \" crate::g";
        let r = r##"crate::h "# crate::i"##; let b = b"crate::j";
        let c = '"'; let q = '\''; fn f<'a>(x: &'a str) -> Self { Self::new() }
        <crate::real::Path<u8> as T>::f(); pub(crate) fn g() {}"###;
    assert_eq!(paths(noise, "x"), ["real::Path@7"]);

    let files = "@lib.rs pub mod m; pub mod user;
        @m/mod.rs pub mod inner; pub mod other; pub mod deep; pub fn own() {}
        pub use inner::{Thing as Alias, helper}; pub use other::*; pub use self::deep::Deep;
        @m/inner.rs pub struct Thing; pub fn helper() {}
        @m/other.rs pub fn spare() {}
        @m/deep/mod.rs mod leaf; pub use leaf::Deep;
        @m/deep/leaf.rs pub struct Deep;
        @user.rs use crate::m::Alias;
        fn f() { crate::m::spare(); crate::m::own(); crate::m::Deep; crate::m::helper() }
        @main.rs mod cli; fn main() { cli::run() }
        @cli/mod.rs mod sub; use bitspike::m::Alias;
        @cli/sub.rs use crate::cli::run;";
    let mut files: Vec<(String, String)> = files
        .split('@')
        .skip(1)
        .map(|f| {
            let (path, src) = f.split_once(' ').unwrap();
            (path.to_string(), src.to_string())
        })
        .collect();
    let g = build(&files);
    let edges = |m: &str| {
        g[m].iter()
            .map(|(to, (f, l))| format!("{to}@{f}:{l}"))
            .collect::<Vec<_>>()
    };
    let want = [
        "m@src/user.rs:2",
        "m::deep::leaf@src/user.rs:2",
        "m::inner@src/user.rs:1",
        "m::other@src/user.rs:2",
    ];
    assert_eq!(edges("user"), want);
    assert_eq!(edges("bin::cli"), ["m::inner@src/cli/mod.rs:1"]);
    assert_eq!(edges("bin::cli::sub"), ["bin::cli@src/cli/sub.rs:1"]);
    assert_eq!(
        g.len(),
        3,
        "facades' `mod` and `pub use` lines are not edges: {g:?}"
    );
    assert!(cycles(&g).is_empty() && cycles(&collapse(&g)).is_empty());

    files[3].1 += "fn back() { crate::user::f() }";
    let g = build(&files);
    let found: Vec<_> = cycles(&g).into_iter().map(|c| c.1).collect();
    assert_eq!(found, [["m::other", "user", "m::other"].map(String::from)]);
    let top =
        "top: m -> user -> m\n    m -> user  at src/m/other.rs:2\n    user -> m  at src/user.rs:2";
    assert_eq!(describe(&collapse(&g), "top"), [top]);
}
