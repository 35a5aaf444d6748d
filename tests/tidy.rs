//! Hygiene checks on the repository itself, run with the rest of `cargo test`.
//!
//! They keep the architecture honest mechanically: the dependency direction
//! server → txn → storage, the lints that make "no unwrap on client or file input"
//! enforceable, and small habits (no ignored tests, no absolute paths).

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// The `[dependencies]` table of a manifest, as raw lines (dev-dependencies excluded).
fn normal_dependencies(manifest: &str) -> Vec<String> {
    let mut in_deps = false;
    let mut out = Vec::new();
    for line in manifest.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_deps = trimmed == "[dependencies]";
            continue;
        }
        if in_deps && !trimmed.is_empty() && !trimmed.starts_with('#') {
            out.push(trimmed.to_string());
        }
    }
    out
}

fn depends_on(manifest: &str, name: &str) -> bool {
    normal_dependencies(manifest).iter().any(|line| {
        let key = line.split(['=', '.']).next().unwrap_or("").trim();
        key == name || line.contains(&format!("package = \"{name}\""))
    })
}

#[test]
fn storage_depends_on_nothing_of_ours_nor_tokio() {
    let manifest = read("storage/Cargo.toml");
    for forbidden in ["txn", "tierkv-txn", "tierkv", "tokio", "redis"] {
        assert!(
            !depends_on(&manifest, forbidden),
            "storage/Cargo.toml must not depend on {forbidden}"
        );
    }
}

#[test]
fn txn_depends_on_storage_only_and_not_on_tokio() {
    let manifest = read("txn/Cargo.toml");
    assert!(depends_on(&manifest, "storage"), "txn builds on storage");
    for forbidden in ["tierkv", "tokio", "redis"] {
        assert!(
            !depends_on(&manifest, forbidden),
            "txn/Cargo.toml must not depend on {forbidden}"
        );
    }
}

#[test]
fn server_reaches_storage_only_through_txn() {
    let manifest = read("Cargo.toml");
    assert!(depends_on(&manifest, "txn"), "the server builds on txn");
    assert!(
        !depends_on(&manifest, "storage"),
        "the server may list storage only as a dev-dependency"
    );
}

#[test]
fn library_crates_deny_unwrap_and_missing_docs() {
    for lib in ["storage/src/lib.rs", "txn/src/lib.rs"] {
        let text = read(lib);
        for lint in [
            "clippy::unwrap_used",
            "clippy::indexing_slicing",
            "missing_docs",
        ] {
            assert!(text.contains(lint), "{lib} must deny {lint}");
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_ignored_tests_and_no_absolute_paths() {
    let mut files = Vec::new();
    for dir in ["src", "storage", "txn", "tools", "tests", "benches"] {
        rust_files(&root().join(dir), &mut files);
    }
    assert!(!files.is_empty());
    let ignore_attr = ["#[", "ignore]"].concat();
    let abs_path = ["\"/", "work/"].concat();
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        assert!(
            !text.contains(&ignore_attr),
            "{} has an ignored test: fix it or delete it",
            file.display()
        );
        assert!(
            !text.contains(&abs_path),
            "{} hard-codes an absolute path of this machine",
            file.display()
        );
    }
}

#[test]
fn every_module_has_a_header_comment() {
    let mut files = Vec::new();
    for dir in ["src", "storage/src", "txn/src"] {
        rust_files(&root().join(dir), &mut files);
    }
    for file in files {
        if file.ends_with("main.rs") {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap();
        assert!(
            text.trim_start().starts_with("//!"),
            "{} must open with a //! comment naming its job and invariant",
            file.display()
        );
    }
}
