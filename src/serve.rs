//! `pggan serve`: builds the page's WASM package when it is missing or older than the sources, then
//! serves the page, and nothing else, on 127.0.0.1 until the process is stopped.
//!
//! The server is hand-written (GET and HEAD, one request per connection) because each bound it needs
//! is a few lines here: a fixed pool of workers started up front, each serving one connection at a
//! time (further connections wait in the listen backlog), a request head of at most
//! `MAX_HEAD` bytes, every connection read for at most `DEADLINE` (its head, and the rest of a
//! refused request drained for at most `DRAIN`), files streamed from disk, and only requests for a
//! localhost `Host` answered. tiny_http 0.12, the obvious crate, starts a thread per busy connection
//! and stops accepting for good on the first accept error (EMFILE).

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};

use crate::{errln, outln};

/// The package `wasm-pack build --target web` writes, which `web/app.js` imports.
pub const PACKAGE: &str = "pkg/pggan_bg.wasm";

/// What the build depends on: a newer file under any of these makes the package stale.
const SOURCES: [&str; 4] = ["src", "shaders", "Cargo.toml", "Cargo.lock"];

/// Connections served at once: the page loads 6 files, so a browser never waits on the pool.
pub const WORKERS: usize = 16;
/// The longest request head (request line and headers); a longer one gets 431 once this much is read.
pub const MAX_HEAD: usize = 8 * 1024;
/// Every connection is read for at most this long, its head and whatever it drains after a refusal
/// together, so idle or slow clients cannot hold workers.
pub const DEADLINE: Duration = Duration::from_secs(10);
/// The longest a refusal drains the unread rest of a request (a body sent a byte at a time), so a
/// worker is free again within about a second of answering it.
pub const DRAIN: Duration = Duration::from_secs(1);
/// A client that stops reading a response for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a worker waits after a failed accept (EMFILE: until some connection closes).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

pub struct ServeOptions {
    /// The checkout whose page is served (and built).
    pub root: PathBuf,
    /// 0: any free port.
    pub port: u16,
    /// Build the package when it is missing or stale.
    pub build: bool,
}

/// Builds when needed, binds, prints the URL and serves until the process is stopped.
pub fn serve(opts: &ServeOptions) -> Result<()> {
    let root = opts
        .root
        .canonicalize()
        .with_context(|| format!("cannot serve {}: no such folder", opts.root.display()))?;
    if !root.join("index.html").is_file() || !root.join("web").is_dir() {
        bail!(
            "{} holds no page (index.html and web/): run pggan serve in a pggan checkout, or pass \
             --root CHECKOUT",
            root.display()
        );
    }
    if opts.build {
        if let Some(reason) = stale(&root)? {
            errln!("building the WASM package ({reason}): wasm-pack build --target web --release --no-opt");
            build(&root)?;
        }
    } else if !root.join(PACKAGE).exists() {
        bail!(
            "{} has no {PACKAGE}: run without --no-build to build it",
            root.display()
        );
    }
    let listener = TcpListener::bind(("127.0.0.1", opts.port))
        .with_context(|| format!("cannot listen on 127.0.0.1:{}; pick another --port", opts.port))?;
    let addr = listener.local_addr()?;
    // Every worker starts now, so load never asks the OS for a thread. The channel holds nothing:
    // while every worker is busy, accepting waits and new connections wait in the listen backlog.
    let (connections, queue) = sync_channel::<TcpStream>(0);
    let queue = Arc::new(Mutex::new(queue));
    for i in 0..WORKERS {
        let (queue, root) = (queue.clone(), root.clone());
        std::thread::Builder::new()
            .name(format!("serve-{i}"))
            .spawn(move || worker(&queue, &root))
            .context("cannot start the server's threads")?;
    }
    outln!("serving {} at http://{addr}/ (Ctrl-C stops)", root.display());
    // One thread accepts: a blocked accept holds a file descriptor, so more would starve the workers.
    let mut failing = false;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                failing = false;
                connections.send(stream).context("the server's threads have stopped")?;
            }
            // EMFILE and the like: wait for connections to close instead of spinning on the error.
            Err(e) => {
                if !failing {
                    errln!("cannot accept a connection ({e}); retrying every 100 ms");
                }
                failing = true;
                std::thread::sleep(ACCEPT_BACKOFF);
            }
        }
    }
}

/// Serves the connections it is handed, one at a time.
fn worker(queue: &Mutex<Receiver<TcpStream>>, root: &Path) {
    loop {
        // None once the accepting thread is gone.
        let Some(stream) = queue.lock().ok().and_then(|q| q.recv().ok()) else {
            return;
        };
        // A failed connection concerns only its client.
        let _ = handle(&stream, root);
    }
}

/// Answers one request; an error means the client went away or stalled.
fn handle(stream: &TcpStream, root: &Path) -> io::Result<()> {
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let connection = Connection {
        stream,
        deadline: Instant::now() + DEADLINE,
    };
    let Some(head) = connection.read_head()? else {
        let why = format!("the request head is over {} KiB", MAX_HEAD / 1024);
        return connection.refuse("431 Request Header Fields Too Large", &why);
    };
    let Some((method, target, host)) = parse(&head) else {
        return connection.refuse("400 Bad Request", "malformed request");
    };
    let Some(host) = host else {
        return connection.refuse("400 Bad Request", "one Host header is required");
    };
    if !local_host(host) {
        // A page on another site that rebinds its name to 127.0.0.1 sends its own name here.
        return connection.refuse("403 Forbidden", "only requests for localhost are served");
    }
    if method != "GET" && method != "HEAD" {
        return connection.refuse("405 Method Not Allowed", "only GET and HEAD");
    }
    let path = target[1..].split(['?', '#']).next().unwrap_or_default();
    let Some(path) = percent_decode(path) else {
        return connection.refuse("400 Bad Request", "malformed percent-encoding");
    };
    let Some(file) = resolve(root, &path) else {
        return connection.refuse("404 Not Found", "not part of the page");
    };
    match File::open(&file) {
        Ok(f) => send(stream, f, mime(&file), method == "HEAD"),
        // The file is there: out of file descriptors, most likely, which passes.
        Err(e) => connection.refuse("503 Service Unavailable", &format!("cannot open the file now ({e})")),
    }
}

/// A connection being served, and the time by which reading from it ends.
struct Connection<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
}

impl Connection<'_> {
    /// The request head without its final empty line, or `None` when it is longer than `MAX_HEAD`.
    fn read_head(&self) -> io::Result<Option<Vec<u8>>> {
        let mut head = Vec::new();
        let mut chunk = [0; 1024];
        loop {
            if let Some(end) = head_end(&head) {
                head.truncate(end);
                return Ok((end <= MAX_HEAD).then_some(head));
            }
            if head.len() > MAX_HEAD {
                return Ok(None);
            }
            match self.read(&mut chunk, self.deadline)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => head.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// An error status with a one-line explanation, then a lingering close: the unread rest of the
    /// request is drained (at most 1 MiB, for at most `DRAIN`) so that closing does not reset the
    /// connection before the client has read the answer.
    fn refuse(&self, status: &str, why: &str) -> io::Result<()> {
        let body = format!("{status}: {why}\n");
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nAllow: GET, HEAD\r\n\
             {COMMON}\r\n",
            body.len()
        );
        let mut stream = self.stream;
        stream.write_all(format!("{head}{body}").as_bytes())?;
        stream.shutdown(std::net::Shutdown::Write)?;
        let until = Instant::now() + DRAIN;
        let (mut chunk, mut left) = ([0; 4096], 1usize << 20);
        while left > 0 {
            match self.read(&mut chunk, until)? {
                0 => break,
                n => left = left.saturating_sub(n),
            }
        }
        Ok(())
    }

    /// One read, waiting at most until `until` and the connection's deadline (`TimedOut` after).
    fn read(&self, buf: &mut [u8], until: Instant) -> io::Result<usize> {
        let left = until.min(self.deadline).saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut stream = self.stream;
        stream.read(buf)
    }
}

/// Where the first empty line starts (lines end in CRLF or, tolerated, LF).
fn head_end(bytes: &[u8]) -> Option<usize> {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            if matches!(&bytes[start..i], b"" | b"\r") {
                return Some(start);
            }
            start = i + 1;
        }
    }
    None
}

/// Method, origin-form target and the Host header (`None` when absent or repeated) of a well-formed
/// HTTP/1.x request head.
fn parse(head: &[u8]) -> Option<(&str, &str, Option<&str>)> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.lines();
    let mut parts = lines.next()?.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let well_formed = parts.next().is_none()
        && !method.is_empty()
        && method.bytes().all(|b| b.is_ascii_uppercase())
        && target.starts_with('/')
        && !target.contains(|c: char| c.is_ascii_control())
        && (version == "HTTP/1.1" || version == "HTTP/1.0");
    if !well_formed {
        return None;
    }
    let mut hosts = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':')?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        if name.eq_ignore_ascii_case("host") {
            hosts.push(value.trim());
        }
    }
    Some((method, target, (hosts.len() == 1).then(|| hosts[0])))
}

/// Whether a Host header names this machine: localhost, 127.0.0.1 or [::1], with or without a port.
fn local_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    ["localhost", "127.0.0.1", "[::1]"]
        .iter()
        .any(|local| name.eq_ignore_ascii_case(local))
}

/// The file a decoded URL path (without its leading `/`) names, or `None` when it is not part of the
/// page. Both the path asked for and the file it leads to after symlinks must be page files.
fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let asked = Path::new(if path.is_empty() { "index.html" } else { path });
    if !page_file(asked) {
        return None;
    }
    let file = root.join(asked).canonicalize().ok()?;
    (page_file(file.strip_prefix(root).ok()?) && file.is_file()).then_some(file)
}

/// The page is `index.html` and the files under `web/` and the WASM package `pkg/`, none of them a
/// dotfile or in a dot folder (`pkg/.gitignore`).
fn page_file(relative: &Path) -> bool {
    let mut parts = relative.components();
    let top = match parts.next() {
        Some(Component::Normal(top)) if top == "index.html" => parts.next().is_none(),
        Some(Component::Normal(top)) => top == "web" || top == "pkg",
        _ => false,
    };
    top && relative
        .components()
        .all(|c| matches!(c, Component::Normal(p) if !p.as_encoded_bytes().starts_with(b".")))
}

/// Headers that every response carries.
const COMMON: &str = "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n";

/// A 200 with the file streamed from disk (in the kernel's or `io::copy`'s chunks, never whole).
fn send(mut stream: &TcpStream, file: File, mime: &str, head_only: bool) -> io::Result<()> {
    let len = file.metadata()?.len();
    let head = format!("HTTP/1.1 200 OK\r\nContent-Type: {mime}\r\nContent-Length: {len}\r\n{COMMON}\r\n");
    stream.write_all(head.as_bytes())?;
    if !head_only {
        // `take`: a file that grows while it is sent (wasm-pack rebuilding) still matches its length.
        io::copy(&mut file.take(len), &mut stream)?;
    }
    stream.flush()
}

/// Why the package must be built, or `None` when it is newer than every source.
fn stale(root: &Path) -> Result<Option<String>> {
    let Ok(built) = root.join(PACKAGE).metadata().and_then(|m| m.modified()) else {
        return Ok(Some(format!("no {PACKAGE}")));
    };
    let mut newest: Option<(SystemTime, PathBuf)> = None;
    for source in SOURCES {
        newest_file(&root.join(source), &mut newest)?;
    }
    Ok(newest
        .filter(|(t, _)| *t > built)
        .map(|(_, p)| format!("{} is newer than {PACKAGE}", p.display())))
}

fn newest_file(path: &Path, newest: &mut Option<(SystemTime, PathBuf)>) -> Result<()> {
    let Ok(meta) = path.metadata() else { return Ok(()) };
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).with_context(|| format!("cannot read {}", path.display()))? {
            newest_file(&entry?.path(), newest)?;
        }
    } else {
        let t = meta.modified()?;
        if newest.as_ref().is_none_or(|(n, _)| t > *n) {
            *newest = Some((t, path.to_path_buf()));
        }
    }
    Ok(())
}

fn build(root: &Path) -> Result<()> {
    // --no-opt: wasm-opt would be downloaded from GitHub, which offline machines cannot do.
    let status = Command::new("wasm-pack")
        .args(["build", "--target", "web", "--release", "--no-opt"])
        .current_dir(root)
        .status();
    match status {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "wasm-pack is not installed: run tests/run.sh (it installs wasm-pack and the matching \
             wasm-bindgen-cli), or cargo install wasm-pack --version 0.15.1"
        ),
        Err(e) => Err(e).context("cannot run wasm-pack"),
        Ok(s) if !s.success() => bail!("wasm-pack build failed ({s}); its output is above"),
        Ok(_) => Ok(()),
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The Content-Type for a file name (browsers require `application/wasm` for streaming
/// compilation and a JavaScript type for modules).
fn mime(path: &Path) -> &'static str {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" | "map" => "application/json",
        "txt" | "md" | "ts" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        "ico" => "image/x-icon",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_types() {
        for (file, want) in [
            ("pkg/pggan_bg.wasm", "application/wasm"),
            ("pkg/pggan.js", "text/javascript; charset=utf-8"),
            ("web/app.MJS", "text/javascript; charset=utf-8"),
            ("index.html", "text/html; charset=utf-8"),
            ("web/style.css", "text/css; charset=utf-8"),
            ("x.png", "image/png"),
            ("x.json", "application/json"),
            ("checkpoint.safetensors", "application/octet-stream"),
            ("LICENSE", "application/octet-stream"),
        ] {
            assert_eq!(mime(Path::new(file)), want, "{file}");
        }
    }

    #[test]
    fn the_package_is_stale_when_a_source_is_newer() {
        let root = std::env::temp_dir().join(format!("pggan-serve-stale-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        assert_eq!(stale(&root).unwrap().unwrap(), format!("no {PACKAGE}"));
        std::fs::create_dir_all(root.join("src/deep")).unwrap();
        std::fs::create_dir_all(root.join("pkg")).unwrap();
        let now = SystemTime::now();
        let at = |path: &str, secs_ago: u64| {
            let f = std::fs::File::create(root.join(path)).unwrap();
            f.set_modified(now - Duration::from_secs(secs_ago)).unwrap();
        };
        at("src/deep/lib.rs", 100);
        at("Cargo.toml", 200);
        at(PACKAGE, 50);
        assert_eq!(stale(&root).unwrap(), None);
        at("src/deep/lib.rs", 10);
        let reason = stale(&root).unwrap().unwrap();
        assert!(reason.contains("lib.rs") && reason.contains("newer"), "{reason}");
    }
}
