//! `pggan serve`: builds the page's WASM package when it is missing or older than the sources, then
//! serves the crate root (`index.html`, `web/`, `pkg/`) on 127.0.0.1 with a small HTTP/1.1 file
//! server (GET and HEAD, one thread per connection) until the process is stopped.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};

/// The package `wasm-pack build --target web` writes, which `web/app.js` imports.
pub const PACKAGE: &str = "pkg/pggan_bg.wasm";

/// What the build depends on: a newer file under any of these makes the package stale.
const SOURCES: [&str; 4] = ["src", "shaders", "Cargo.toml", "Cargo.lock"];

pub struct ServeOptions {
    /// The folder served (and built, when it holds the crate).
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
    if opts.build {
        if let Some(reason) = stale(&root)? {
            eprintln!("building the WASM package ({reason}): wasm-pack build --target web --release --no-opt");
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
    println!(
        "serving {} at http://{}/ (Ctrl-C stops)",
        root.display(),
        listener.local_addr()?
    );
    accept(listener, root)
}

/// Serves every connection on its own thread, forever.
fn accept(listener: TcpListener, root: PathBuf) -> Result<()> {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let root = root.clone();
        std::thread::spawn(move || {
            if let Err(e) = handle(stream, &root) {
                eprintln!("request failed: {e:#}");
            }
        });
    }
    Ok(())
}

/// Why the package must be built, or `None` when it is newer than every source.
pub fn stale(root: &Path) -> Result<Option<String>> {
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

/// The file under `root` that a URL path names (`index.html` for a folder), or `None` when the
/// path is malformed or would leave `root` (`..`, encoded or not, backslashes, NUL).
pub fn resolve(root: &Path, url_path: &str) -> Option<PathBuf> {
    let path = url_path.split(['?', '#']).next()?;
    let decoded = percent_decode(path.strip_prefix('/')?)?;
    let mut file = root.to_path_buf();
    for part in decoded.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p if p.contains(['\\', '\0', ':']) => return None,
            p => file.push(p),
        }
    }
    if file.is_dir() {
        file.push("index.html");
    }
    Some(file)
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
pub fn mime(path: &Path) -> &'static str {
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

fn handle(stream: TcpStream, root: &Path) -> Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(&stream);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // The headers are not needed; read them so the client sees an orderly close.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let mut parts = request.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut out = &stream;
    if method != "GET" && method != "HEAD" {
        return respond(
            &mut out,
            "405 Method Not Allowed",
            "text/plain",
            b"only GET and HEAD",
            true,
        );
    }
    let body_wanted = method == "GET";
    match resolve(root, target).map(|f| (std::fs::read(&f), f)) {
        Some((Ok(bytes), file)) => respond(&mut out, "200 OK", mime(&file), &bytes, body_wanted),
        _ => respond(
            &mut out,
            "404 Not Found",
            "text/plain; charset=utf-8",
            format!("not found: {target}").as_bytes(),
            body_wanted,
        ),
    }
}

fn respond(out: &mut impl Write, status: &str, mime: &str, body: &[u8], with_body: bool) -> Result<()> {
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {mime}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )?;
    if with_body {
        out.write_all(body)?;
    }
    Ok(out.flush()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn temp_root(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pggan-serve-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("site/web")).unwrap();
        std::fs::write(dir.join("site/index.html"), "<p>page</p>").unwrap();
        std::fs::write(dir.join("site/web/app.js"), "export {};").unwrap();
        std::fs::write(dir.join("site/web/a b.css"), "p {}").unwrap();
        std::fs::write(dir.join("secret.txt"), "outside").unwrap();
        dir
    }

    #[test]
    fn paths_stay_inside_the_root() {
        let dir = temp_root("paths");
        let root = dir.join("site");
        assert_eq!(resolve(&root, "/"), Some(root.join("index.html")));
        assert_eq!(resolve(&root, "/web/app.js?v=2#x"), Some(root.join("web/app.js")));
        assert_eq!(resolve(&root, "/web/a%20b.css"), Some(root.join("web/a b.css")));
        assert_eq!(resolve(&root, "/./web//app.js"), Some(root.join("web/app.js")));
        for escape in [
            "/../secret.txt",
            "/web/../../secret.txt",
            "/%2e%2e/secret.txt",
            "/%2E%2E%2fsecret.txt",
            "/..%5csecret.txt",
            "/web%00.js",
            "/C:/secret.txt",
            "/bad%zz",
            "/%ff",
            "relative",
        ] {
            assert_eq!(resolve(&root, escape), None, "{escape} was let through");
        }
    }

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

    fn get(addr: std::net::SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        s.read_to_string(&mut response).unwrap();
        response
    }

    #[test]
    fn serves_files_and_refuses_the_rest() {
        let dir = temp_root("http");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let root = dir.join("site");
        std::thread::spawn(move || accept(listener, root));

        let r = get(addr, "GET /web/app.js HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("Content-Type: text/javascript; charset=utf-8\r\n"), "{r}");
        assert!(
            r.contains("Content-Length: 10\r\n") && r.ends_with("\r\n\r\nexport {};"),
            "{r}"
        );
        let r = get(addr, "GET / HTTP/1.1\r\n\r\n");
        assert!(r.contains("text/html") && r.ends_with("<p>page</p>"), "{r}");
        let r = get(addr, "HEAD /index.html HTTP/1.1\r\n\r\n");
        assert!(r.contains("Content-Length: 11\r\n") && r.ends_with("\r\n\r\n"), "{r}");
        for missing in ["/nothing.js", "/../secret.txt", "/%2e%2e/secret.txt"] {
            let r = get(addr, &format!("GET {missing} HTTP/1.1\r\n\r\n"));
            assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"), "{missing}: {r}");
            assert!(!r.contains("outside"), "{missing} escaped the root");
        }
        let r = get(addr, "POST / HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 405"), "{r}");
    }

    #[test]
    fn the_package_is_stale_when_a_source_is_newer() {
        let dir = temp_root("stale");
        let root = dir.join("site");
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
