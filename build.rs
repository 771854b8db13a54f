//! Passes the commit the crate is built from to its code as `PGGAN_COMMIT` (the first line of a
//! run's log.txt), where it is built from a git checkout of pggan and git is installed; elsewhere
//! (a crate archive, no git) it passes nothing and the build goes on.

use std::path::Path;
use std::process::Command;

/// git's answer in the crate's folder, or `None` where git is missing or fails.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    out.status.success().then(|| text.trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // Only a checkout of pggan itself: not another repository the crate happens to sit in.
    let top = git(&["rev-parse", "--show-toplevel"]).and_then(|t| Path::new(&t).canonicalize().ok());
    if top.is_none() || top != Path::new(env!("CARGO_MANIFEST_DIR")).canonicalize().ok() {
        return;
    }
    // Run again when HEAD moves: a checkout changes HEAD, a commit appends to HEAD's log.
    for name in ["HEAD", "logs/HEAD"] {
        if let Some(path) = git(&["rev-parse", "--git-path", name]).filter(|p| Path::new(p).exists()) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    if let Some(commit) = git(&["rev-parse", "--short", "HEAD"]) {
        println!("cargo:rustc-env=PGGAN_COMMIT={commit}");
    }
}
