//! The command line explains itself: every flag of every command (walked from `pggan --help` down)
//! has a description and shows a default only as `[default: ...]`, `train`'s defaults are the
//! configuration's, `--adapter` is offered exactly where a GPU is opened, and every command's long
//! help has examples, each of which runs here with tiny sizes and paths of the test's own
//! substituted (`serve`: started, asked for its page, stopped).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{pggan, run_pggan, temp_dir, TINY_16};
use pggan::train::config::TrainConfig;

/// `pggan PATH --help`.
fn long_help(path: &[String]) -> String {
    let out = pggan(&[path.iter().map(String::as_str).collect(), vec!["--help"]].concat())
        .output()
        .unwrap();
    assert!(out.status.success(), "pggan {path:?} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

/// Every command with its long help, parents before their subcommands: `[]` (`pggan` itself),
/// `["train"]`, ..., `["metrics", "swd"]`, ...
fn commands() -> Vec<(Vec<String>, String)> {
    let mut found = Vec::new();
    let mut todo = vec![Vec::new()];
    while let Some(path) = todo.pop() {
        let help = long_help(&path);
        let subcommands = help
            .lines()
            .skip_while(|l| *l != "Commands:")
            .skip(1)
            .take_while(|l| !l.is_empty())
            // A description's wrapped lines are indented further than the names.
            .filter(|l| indent(l) == 2)
            .filter_map(|l| l.split_whitespace().next())
            .filter(|c| *c != "help");
        // Reversed onto the stack, so that they are walked in the order shown.
        let children: Vec<Vec<String>> = subcommands
            .map(|c| [path.clone(), vec![c.to_string()]].concat())
            .collect();
        todo.extend(children.into_iter().rev());
        found.push((path, help));
    }
    found
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The flags of a long help, each with its description: the lines under its own, indented further
/// (clap's long help writes each flag on a line and its text below it).
fn flags(help: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = help.lines().collect();
    let is_flag = |l: &str| indent(l) < 10 && l.trim_start().starts_with('-');
    let mut flags = Vec::new();
    for (i, line) in lines.iter().enumerate().filter(|(_, l)| is_flag(l)) {
        let text: Vec<&str> = lines[i + 1..]
            .iter()
            .take_while(|l| !is_flag(l) && (l.is_empty() || indent(l) >= 10))
            .map(|l| l.trim())
            .collect();
        flags.push((line.trim().to_string(), text.join("\n").trim().to_string()));
    }
    flags
}

/// The example commands of a long help: the lines after `Examples:` that start with `pggan`.
fn examples(help: &str) -> Vec<Vec<String>> {
    help.lines()
        .skip_while(|l| *l != "Examples:")
        .map(str::trim)
        .filter(|l| *l == "pggan" || l.starts_with("pggan "))
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

#[test]
fn every_flag_is_described_with_defaults_in_brackets_and_every_command_has_examples() {
    let commands = commands();
    let names: Vec<String> = commands.iter().map(|(p, _)| p.join(" ")).collect();
    for expected in [
        "train",
        "generate",
        "metrics swd",
        "metrics msssim",
        "bench train",
        "serve",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected} not found in {names:?}");
    }
    for (path, help) in &commands {
        let name = format!("pggan {}", path.join(" "));
        for (flag, text) in flags(help) {
            // A text that is only clap's `[default: ...]` or `[env: ...]` describes nothing.
            assert!(
                !text.is_empty() && !text.starts_with('['),
                "{name}: {flag} has no description:\n{help}"
            );
        }
        let lower = help.to_lowercase();
        let prose = ["by default", "defaults to", "(default", "default is"];
        assert!(
            lower.matches("default:").count() == help.matches("[default: ").count()
                && prose.iter().all(|p| !lower.contains(p)),
            "{name} shows a default otherwise than as [default: ...]:\n{help}"
        );
        let examples = examples(help);
        assert!(!examples.is_empty(), "{name} has no example:\n{help}");
        for example in examples {
            assert!(
                example[1..].starts_with(path),
                "{name}'s example {example:?} is not one of {name}"
            );
        }
    }
    // `--adapter` on the commands that open a GPU, and only there.
    for (path, help) in &commands {
        let gpu = ["train", "generate", "interpolate", "metrics", "bench", "selftest"]
            .contains(&path.first().map_or("", String::as_str));
        assert_eq!(help.contains("--adapter"), gpu, "pggan {}:\n{help}", path.join(" "));
    }
    let out = run_pggan(&["info", "--adapter", "x"]);
    assert!(
        out.status.code() == Some(2)
            && String::from_utf8_lossy(&out.stderr).contains("unexpected argument '--adapter'"),
        "info took --adapter"
    );
}

/// `train`'s defaults apply to new runs only (a resumed run keeps its own), so they are not clap's;
/// the help shows them as clap shows its own, from the configuration's defaults.
#[test]
fn train_help_shows_the_configurations_defaults() {
    let help = long_help(&["train".to_string()]);
    let described: Vec<(String, String)> = flags(&help);
    let text = |flag: &str| -> &str {
        let found = described.iter().find(|(f, _)| f.starts_with(&format!("--{flag} ")));
        &found.unwrap_or_else(|| panic!("no --{flag} in\n{help}")).1
    };
    let c = TrainConfig::default();
    for (flag, value) in [
        ("max-res", c.net.max_res.to_string()),
        ("channels", c.net.channels.to_string()),
        ("fmap-base", c.net.fmap_base.to_string()),
        ("lr", c.adam.lr.to_string()),
        ("phase-kimg", c.schedule.phase_kimg.to_string()),
        ("swd-images", c.swd_images.to_string()),
        ("precision", c.precision.name().to_string()),
        ("data", c.data.clone()),
        ("beta2", c.adam.beta2.to_string()),
        ("ema-beta", c.ema_beta.to_string()),
    ] {
        assert!(
            text(flag).ends_with(&format!("\n\n[default: {value}]")),
            "--{flag}: {:?}",
            text(flag)
        );
    }
}

/// Where the examples' paths lead in the test: its own image folder, run, page and files.
struct Sandbox {
    root: PathBuf,
    images: PathBuf,
    run: PathBuf,
    page: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        let root = temp_dir("examples");
        let images = root.join("photos");
        std::fs::create_dir_all(&images).unwrap();
        for i in 0..8u8 {
            image::RgbImage::from_fn(16, 16, |x, y| image::Rgb([i * 30, x as u8 * 16, y as u8 * 16]))
                .save(images.join(format!("{i}.png")))
                .unwrap();
        }
        let page = root.join("checkout");
        for (file, text) in [
            ("index.html", "<p>page</p>"),
            ("web/app.js", "export {};"),
            ("pkg/pggan.js", "export default 1;"),
            ("pkg/pggan_bg.wasm", "\0asm"),
        ] {
            std::fs::create_dir_all(page.join(file).parent().unwrap()).unwrap();
            std::fs::write(page.join(file), text).unwrap();
        }
        let runs = root.join("base");
        let mut args = vec![
            "train",
            "--data",
            images.to_str().unwrap(),
            "--out",
            runs.to_str().unwrap(),
        ];
        args.extend(TINY_16);
        assert!(run_pggan(&args).status.success(), "the tiny run failed");
        // The prepared file the examples of `train` read (those of `dataset` come after them).
        let prepared = root.join("photos-256.pggan");
        let args = [
            "dataset",
            "prepare",
            images.to_str().unwrap(),
            prepared.to_str().unwrap(),
            "--res",
            "16",
        ];
        assert!(run_pggan(&args).status.success(), "preparing the folder failed");
        Sandbox {
            run: runs.join("000-photos-16"),
            root,
            images,
            page,
        }
    }

    /// `example` with the sandbox's paths for the files it reads and writes, and tiny sizes for its
    /// work; a flag the example names gets the test's value, a missing one is added. `n` numbers the
    /// files it writes.
    fn substitute(&self, example: &[String], n: usize) -> Vec<String> {
        let path = |p: &Path| p.to_str().unwrap().to_string();
        let written = |name: &str| path(&self.root.join(format!("{n}-{name}")));
        let cache = path(&self.root.join("cache"));
        let command: Vec<&str> = example[1..]
            .iter()
            .map(String::as_str)
            .take_while(|a| !a.starts_with('-'))
            .collect();
        let pairs = |flags: &[&str]| -> Vec<(String, String)> {
            flags.chunks(2).map(|p| (p[0].to_string(), p[1].to_string())).collect()
        };
        // The files an example names, and the counts that name what it reads.
        let read = [
            ("--checkpoint", path(&self.run)),
            ("--resume", path(&self.run)),
            ("--data", path(&self.images)),
            ("--real", path(&self.images)),
            ("--fake", path(&self.images)),
            ("--images", path(&self.images)),
            ("--onnx", written("g.onnx")),
            ("--onnx-d", written("d.onnx")),
            ("--seeds", "0-3".into()),
            ("--levels", "8".into()),
            ("--res", "16".into()),
        ];
        // Where it writes, and its sizes: always (added where the example leaves them out).
        let mut set: Vec<(String, String)> = match command.as_slice() {
            ["train"] => [
                pairs(&TINY_16.iter().copied().filter(|a| *a != "--quiet").collect::<Vec<_>>()),
                pairs(&["--out", &written("runs"), "--cache", &cache]),
            ]
            .concat(),
            ["generate"] => pairs(&["--out", &written("generated"), "--count", "4"]),
            ["interpolate"] => pairs(&["--out", &written("walk.gif"), "--frames", "4"]),
            ["metrics", ..] => pairs(&["--count", "16", "--cache", &cache]),
            ["bench", "train"] => pairs(&[
                "--resolution",
                "8",
                "--fmap-base",
                "16",
                "--fmap-max",
                "8",
                "--latent",
                "8",
                "--minibatch",
                "4",
                "--steps",
                "1",
                "--warmup",
                "0",
            ]),
            ["bench", "kernels"] => pairs(&["--batch", "1", "--max-channels", "8", "--reps", "1"]),
            ["bench", "launches"] => pairs(&["--launches", "100", "--rounds", "2"]),
            ["bench", "data"] => pairs(&["--steps", "1"]),
            ["bench", "quality"] => pairs(&[
                "--resolution",
                "4",
                "--phase-kimg",
                "0.008",
                "--swd-images",
                "16",
                "--cache",
                &cache,
            ]),
            ["serve"] => pairs(&["--port", "0", "--root", &path(&self.page)]),
            ["dataset", "info", ..] if example.iter().any(|a| a == "--grid") => {
                pairs(&["--grid", &written("grid.png")])
            }
            _ => Vec::new(),
        };
        if command == ["metrics", "msssim"] {
            set.extend(pairs(&["--pairs", "4"]));
        }
        // Positional paths: the image folder, and prepared files shared by the examples (one
        // prepares what the next reads).
        let mut args: Vec<String> = example[1..]
            .iter()
            .map(|a| match a.as_str() {
                "photos" => path(&self.images),
                f if f.ends_with(".pggan") => path(&self.root.join(f)),
                _ => a.clone(),
            })
            .collect();
        let mut put = |flag: &str, value: &str, add: bool| match args.iter().position(|a| a == flag) {
            Some(i) => args[i + 1] = value.to_string(),
            None if add => args.extend([flag.to_string(), value.to_string()]),
            None => {}
        };
        for (flag, value) in &read {
            // A prepared file is trained on as the example says: the one an earlier example wrote.
            if *flag != "--data" || !example.iter().any(|a| a.ends_with(".pggan")) {
                put(flag, value, false);
            }
        }
        for (flag, value) in &set {
            put(flag, value, true);
        }
        // Switches: a run without a progress bar, a page served as it is, a report to read.
        let switch = match command.as_slice() {
            ["train"] => Some("--quiet"),
            ["serve"] => Some("--no-build"),
            ["bench", "precision"] => Some("--json"),
            _ => None,
        };
        args.extend(switch.filter(|s| !args.iter().any(|a| a == s)).map(String::from));
        args
    }
}

/// Starts `pggan args` (a `serve`), asks for its page and stops it.
fn serve_once(args: &[&str]) {
    let mut child = pggan(args).stdout(Stdio::piped()).spawn().unwrap();
    let mut banner = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    let addr = banner
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .map(|a| a.trim_end_matches('/').to_string());
    let response = addr.map(|addr| {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
            .unwrap();
        let mut bytes = Vec::new();
        s.read_to_end(&mut bytes).unwrap();
        String::from_utf8_lossy(&bytes).into_owned()
    });
    let _ = child.kill();
    let _ = child.wait();
    let response = response.unwrap_or_else(|| panic!("pggan {args:?} printed no URL: {banner:?}"));
    assert!(
        response.starts_with("HTTP/1.1 200") && response.ends_with("<p>page</p>"),
        "{response}"
    );
}

/// `bench precision` fails by design where the adapter lacks cooperative matrices (lavapipe): it ran
/// as it should where every check that could run passed and none failed to run.
fn precision_ran(args: &[&str], stdout: &[u8]) -> bool {
    let report: Option<serde_json::Value> = serde_json::from_slice(stdout).ok();
    args[..2] == ["bench", "precision"]
        && report.is_some_and(|r| {
            r["failed"] == serde_json::json!([])
                && r["rows"]
                    .as_array()
                    .is_some_and(|rows| !rows.is_empty() && rows.iter().all(|row| row["pass"] == true))
        })
}

#[test]
fn every_example_runs() {
    let sandbox = Sandbox::new();
    let mut seen = HashSet::new();
    let all = commands().into_iter().flat_map(|(_, help)| examples(&help));
    for (n, example) in all.filter(|e| seen.insert(e.join(" "))).enumerate() {
        let args = sandbox.substitute(&example, n);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        if args[0] == "serve" {
            serve_once(&args);
            continue;
        }
        let out = run_pggan(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() || precision_ran(&args, &out.stdout),
            "{} (from {}) failed:\n{stdout}",
            args.join(" "),
            example.join(" ")
        );
    }
    let _ = std::fs::remove_dir_all(&sandbox.root);
}
