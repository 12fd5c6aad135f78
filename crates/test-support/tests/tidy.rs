//! Repository checks that run with `cargo test`: module docs, forbidden macros and
//! attributes, the core's freedom from IO, and docs that name every crate.

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("a readable directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn crate_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(root().join("crates"))
        .expect("crates/")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.join("Cargo.toml").exists())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_module_has_docs_and_no_forbidden_constructs() {
    let mut files = Vec::new();
    for dir in crate_dirs() {
        for sub in ["src", "tests"] {
            if dir.join(sub).exists() {
                rust_files(&dir.join(sub), &mut files);
            }
        }
    }
    assert!(files.len() > 20, "found the sources");
    let forbidden = [
        concat!("#[should", "_panic"),
        concat!("#[ig", "nore"),
        concat!("to", "do!("),
        concat!("db", "g!("),
        concat!("unimple", "mented!("),
    ];
    let mut problems = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).expect("a readable source");
        if !text.starts_with("//!") {
            problems.push(format!(
                "{}: does not start with //! module docs",
                file.display()
            ));
        }
        for pattern in forbidden {
            if text.contains(pattern) {
                problems.push(format!("{}: contains {pattern}", file.display()));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_binary_prints_to_standard_output_only_through_its_macros() {
    let mut files = Vec::new();
    rust_files(&root().join("crates/cli/src"), &mut files);
    for file in files {
        let text = fs::read_to_string(&file).expect("a readable source");
        for (number, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            let code = line.replace("eprintln!", "").replace("eprint!", "");
            assert!(
                !code.contains("println!") && !code.contains("print!("),
                "{}:{}: print with outln!/out! (crate::output), which return a closed pipe as \
                 an error instead of panicking",
                file.display(),
                number + 1
            );
        }
    }
}

#[test]
fn the_core_does_no_io_and_reads_no_clock() {
    let mut files = Vec::new();
    rust_files(&root().join("crates/core/src"), &mut files);
    let forbidden = [
        "std::fs",
        "std::net",
        "tokio",
        "Timestamp::now",
        "SystemTime",
        "std::env",
        "serde",
    ];
    for file in files {
        let text = fs::read_to_string(&file).expect("a readable source");
        for pattern in forbidden {
            assert!(
                !text.contains(pattern),
                "{} uses {pattern}: the core must stay pure",
                file.display()
            );
        }
    }
    let manifest =
        fs::read_to_string(root().join("crates/core/Cargo.toml")).expect("core manifest");
    for dependency in ["tokio", "rusqlite", "axum", "serde"] {
        assert!(
            !manifest.contains(dependency),
            "core depends on {dependency}"
        );
    }
}

#[test]
fn architecture_names_every_crate_and_readme_keeps_its_commands() {
    let architecture = fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    for dir in crate_dirs() {
        let manifest = fs::read_to_string(dir.join("Cargo.toml")).expect("a manifest");
        let name = manifest
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .and_then(|l| l.strip_suffix('"'))
            .expect("a package name");
        assert!(
            architecture.contains(&format!("`{name}`")),
            "ARCHITECTURE.md does not describe `{name}`"
        );
    }
    let readme = fs::read_to_string(root().join("README.md")).expect("README.md");
    let ci = fs::read_to_string(root().join(".ci/run")).expect(".ci/run");
    assert!(
        readme.contains("cargo run --release -- demo"),
        "README shows the demo command"
    );
    assert!(
        readme.contains("./scripts/test.sh"),
        "README shows the test command"
    );
    assert!(
        ci.contains("./scripts/test.sh"),
        ".ci/run runs the README's test command"
    );
}

/// The top-level module a source file belongs to (`usage` for `src/usage/sqlite.rs`), or
/// `None` for the crate root.
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// The crate modules a source names (`crate::billing::…`, `use crate::{db, error}`), test
/// code left out.
fn named_modules(text: &str) -> Vec<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let mut names = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let item = item.trim();
                let name = item.split("::").next().unwrap_or(item);
                names.push(name.to_owned());
            }
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()))
                .unwrap_or(rest.len());
            names.push(rest[..end].to_owned());
        }
    }
    names
}

#[test]
fn no_crate_has_modules_that_depend_on_each_other_in_a_loop() {
    use std::collections::{BTreeMap, BTreeSet};
    for dir in crate_dirs() {
        let src = dir.join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for file in &files {
            let Some(module) = top_module(&src, file) else {
                continue;
            };
            let text = fs::read_to_string(file).expect("a readable source");
            graph.entry(module.clone()).or_default().extend(
                named_modules(&text)
                    .into_iter()
                    .filter(|name| *name != module),
            );
        }
        let modules: BTreeSet<String> = graph.keys().cloned().collect();
        for deps in graph.values_mut() {
            deps.retain(|name| modules.contains(name));
        }
        // A depth-first walk from every module; reaching the start again is a loop.
        for start in &modules {
            let mut stack = vec![vec![start.clone()]];
            let mut seen = BTreeSet::new();
            while let Some(path) = stack.pop() {
                let last = path.last().expect("a non-empty path");
                for next in &graph[last] {
                    assert!(
                        next != start,
                        "{}: modules depend on each other in a loop: {} -> {next}",
                        dir.display(),
                        path.join(" -> ")
                    );
                    if seen.insert(next.clone()) {
                        let mut longer = path.clone();
                        longer.push(next.clone());
                        stack.push(longer);
                    }
                }
            }
        }
    }
}
