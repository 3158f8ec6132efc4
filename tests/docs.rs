//! The documents the code cites are in the repository: every `docs/NAME.md` named in
//! src/, shaders/, tests/, scripts/, benches/ and the README exists, and every "section N"
//! of docs/models.md that the code cites is a heading there.

use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files(&path, out);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ["rs", "wgsl", "py", "md", "sh"].contains(&e))
        {
            out.push(path);
        }
    }
}

fn sources() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = vec![root.join("README.md")];
    for dir in ["src", "shaders", "tests", "scripts", "benches", "examples"] {
        if root.join(dir).is_dir() {
            files(&root.join(dir), &mut paths);
        }
    }
    // This file names the patterns it looks for.
    let this = root.join(file!());
    paths
        .into_iter()
        .filter(|p| *p != this)
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("a text file");
            (p, text)
        })
        .collect()
}

/// The `docs/NAME.md` file names in `text`.
fn cited_docs(text: &str) -> Vec<String> {
    text.match_indices("docs/")
        .filter_map(|(i, _)| {
            let rest = &text[i + 5..];
            let end = rest.find(".md")?;
            let name = &rest[..end];
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                .then(|| format!("{name}.md"))
        })
        .collect()
}

#[test]
fn every_cited_document_exists() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let mut cited = 0;
    for (path, text) in sources() {
        assert!(
            !text.contains(concat!("MODELS", ".md")),
            "{} cites a MODELS document that is not in the repository (docs/models.md is)",
            path.display()
        );
        for name in cited_docs(&text) {
            cited += 1;
            assert!(
                docs.join(&name).is_file(),
                "{} cites docs/{name}, which does not exist",
                path.display()
            );
        }
    }
    assert!(cited > 20, "only {cited} citations of docs/ found");
}

#[test]
fn every_cited_models_section_is_a_heading() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let models = std::fs::read_to_string(root.join("docs/models.md")).expect("docs/models.md");
    let headings: Vec<usize> = models
        .lines()
        .filter_map(|l| l.strip_prefix("## ")?.split('.').next()?.parse().ok())
        .collect();
    let mut checked = 0;
    for (path, text) in sources() {
        let flat = text
            .replace("\n//!", "")
            .replace("\n///", "")
            .replace("\n//", "");
        for (i, _) in flat.match_indices("docs/models.md section") {
            let rest = flat[i + "docs/models.md section".len()..].trim_start_matches('s');
            let digits: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            let n: usize = digits.parse().unwrap_or_else(|_| {
                panic!("{}: a section citation without a number", path.display())
            });
            checked += 1;
            assert!(
                headings.contains(&n),
                "{} cites docs/models.md section {n}, which has no heading",
                path.display()
            );
        }
    }
    assert!(checked > 10, "only {checked} section citations found");
}
