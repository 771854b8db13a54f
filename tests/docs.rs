//! The documents as a newcomer meets them: the README stays under its size limit and shows both
//! commands on its first screen, its command table names every command of `pggan --help`, and every
//! relative link of every document (the README, DESIGN.md, docs/, bench/README.md) leads to a file
//! that exists, and to a heading of it where the link names one.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::path::{Path, PathBuf};

use common::run_pggan;

/// The README's size limit, in bytes: a user reads it in five minutes.
const README_LIMIT: usize = 25_000;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).unwrap()
}

#[test]
fn readme_is_short_and_starts_with_both_commands() {
    let text = readme();
    assert!(
        text.len() < README_LIMIT,
        "README.md is {} bytes, over the limit of {README_LIMIT}",
        text.len()
    );
    let head: String = text.lines().take(40).collect::<Vec<_>>().join("\n");
    for command in ["cargo run --release", "tests/run.sh"] {
        assert!(head.contains(command), "the README's first 40 lines lack `{command}`");
    }
}

/// The subcommands listed under "Commands:" in a `--help` output, `help` aside.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

fn help(args: &[&str]) -> String {
    let out = run_pggan(args);
    assert!(out.status.success(), "pggan {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn readme_command_table_names_every_command() {
    let text = readme();
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("| `pggan ")).collect();
    let top = subcommands(&help(&["--help"]));
    assert!(top.len() >= 9, "too few commands read from `pggan --help`: {top:?}");
    let mut missing = Vec::new();
    for command in &top {
        let nested = subcommands(&help(&[command, "--help"]));
        let names: Vec<String> = if nested.is_empty() {
            vec![command.clone()]
        } else {
            nested.iter().map(|n| format!("{command} {n}")).collect()
        };
        for name in names {
            if !rows.iter().any(|r| r.starts_with(&format!("| `pggan {name}`"))) {
                missing.push(name);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the README's command table has no row for: {missing:?}"
    );
}

/// GitHub's anchor of a heading: lower case, punctuation other than `-` and `_` dropped, spaces as
/// `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The targets of the Markdown links `[text](target)` in `text`, code blocks left out.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            if let Some(end) = rest.find(')') {
                out.push(rest[..end].to_string());
                rest = &rest[end..];
            }
        }
    }
    out
}

fn documents() -> Vec<PathBuf> {
    let mut docs = vec![
        root().join("README.md"),
        root().join("DESIGN.md"),
        root().join("bench/README.md"),
    ];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            docs.push(path);
        }
    }
    docs
}

#[test]
fn every_relative_link_leads_somewhere() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        for link in links(&text) {
            if link.contains("://") {
                continue;
            }
            let (file, fragment) = link.split_once('#').unwrap_or((&link, ""));
            let target = if file.is_empty() {
                doc.clone()
            } else {
                doc.parent().unwrap().join(file)
            };
            checked += 1;
            if !target.exists() {
                broken.push(format!("{}: {link} (no such file)", doc.display()));
                continue;
            }
            if !fragment.is_empty() {
                let headings = std::fs::read_to_string(&target).unwrap_or_default();
                let found = headings
                    .lines()
                    .filter(|l| l.starts_with('#'))
                    .any(|l| anchor(l.trim_start_matches('#')) == fragment);
                if !found {
                    broken.push(format!("{}: {link} (no such heading)", doc.display()));
                }
            }
        }
    }
    assert!(
        checked >= 20,
        "too few links found ({checked}): is the link parser broken?"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}
