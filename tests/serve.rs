//! `pggan serve` as a user runs it (`--port 0 --no-build`), spoken to over raw TCP on 127.0.0.1: it
//! serves the page and nothing else (no dotfile, no symlink out of it, no traversal), only to a
//! localhost Host, answers malformed requests with 400 and other methods with 405, bounds the
//! request head, streams files, serves with a fixed pool of threads that slow senders cannot hold,
//! backs off at the file-descriptor limit, and serves the current folder unless told otherwise,
//! refusing one without a page.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{pggan, temp_dir};
use pggan::serve::{DEADLINE, MAX_HEAD, WORKERS};

/// Every socket of these tests gives up after this long.
const TIMEOUT: Duration = Duration::from_secs(5);
/// In every file that must never be served.
const SECRET: &str = "SECRET";

fn write(path: &Path, bytes: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// `DIR/checkout`, laid out as a pggan checkout with the package built, with what must not be served
/// around the page (the repository, sources, build outputs, runs, dotfiles, symlinks out of the
/// page), and `DIR/outside.txt` next to it.
fn checkout() -> PathBuf {
    let dir = temp_dir("serve");
    let root = dir.join("checkout");
    write(&root.join("index.html"), "<p>page</p>");
    write(&root.join("web/app.js"), "export {};");
    write(&root.join("web/a b.css"), "p {}");
    write(&root.join("pkg/pggan.js"), "export default 1;");
    // 3 MB: larger than any single buffer of the server, so it arrives in many chunks.
    let wasm: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    write(&root.join("pkg/pggan_bg.wasm"), wasm);
    for secret in [
        ".git/config",
        ".env",
        "src/lib.rs",
        "Cargo.toml",
        "target/release/pggan",
        "runs/000-emoji-64/log.jsonl",
        "pkg/.gitignore",
        "web/.secret",
    ] {
        write(&root.join(secret), SECRET);
    }
    write(&dir.join("outside.txt"), SECRET);
    let link = |target: &str, name: &str| std::os::unix::fs::symlink(target, root.join(name)).unwrap();
    link("/etc/passwd", "web/passwd");
    link("../../outside.txt", "web/outside.txt");
    link("../.git/config", "web/git");
    link("../src", "pkg/src");
    link("app.js", "web/alias.js");
    root
}

/// A running `pggan serve`, stopped when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    /// The line it printed.
    banner: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `cmd` (a `pggan serve --port 0 ...`) and waits for the URL it prints.
    fn start(mut cmd: Command) -> Server {
        let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
        let mut banner = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut banner)
            .unwrap();
        let url = banner.split_whitespace().find(|w| w.starts_with("http://"));
        let Some(addr) = url.and_then(|u| u["http://".len()..].trim_end_matches('/').parse().ok()) else {
            let _ = child.kill();
            panic!("pggan serve printed no URL: {banner:?}");
        };
        Server { child, addr, banner }
    }

    /// `pggan serve --port 0 --no-build --root root`.
    fn at(root: &Path) -> Server {
        Server::start(pggan(&[
            "serve",
            "--port",
            "0",
            "--no-build",
            "--root",
            root.to_str().unwrap(),
        ]))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect_timeout(&self.addr, TIMEOUT).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s.set_write_timeout(Some(TIMEOUT)).unwrap();
        s
    }

    /// Sends `request` as it is and reads the whole response.
    fn exchange(&self, request: &[u8]) -> Response {
        let mut s = self.connect();
        s.write_all(request).unwrap();
        read_response(&mut s)
    }

    fn request(&self, method: &str, path: &str) -> Response {
        let host = format!("127.0.0.1:{}", self.addr.port());
        self.exchange(format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
    }

    fn get(&self, path: &str) -> Response {
        self.request("GET", path)
    }
}

struct Response {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Reads until the server closes the connection.
fn read_response(s: &mut TcpStream) -> Response {
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes).unwrap();
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(&bytes)));
    let head = String::from_utf8(bytes[..end].to_vec()).unwrap();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    Response {
        status,
        head,
        body: bytes[end + 4..].to_vec(),
    }
}

/// A number from /proc/PID/status (`VmHWM`: the peak resident memory in kB; `Threads`).
fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(&format!("{field}:"))).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// User plus system CPU time of a process, in clock ticks (1/100 s on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Connections that sent only a request line, as a slow or idle client would.
fn idle_connections(server: &Server, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut s = server.connect();
            s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
            s
        })
        .collect()
}

#[test]
fn serves_the_page() {
    let root = checkout();
    let server = Server::at(&root);
    let r = server.get("/");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, b"<p>page</p>".as_slice()),
        "{}",
        r.head
    );
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"));
    for (path, mime) in [
        ("/index.html", "text/html; charset=utf-8"),
        ("/web/app.js", "text/javascript; charset=utf-8"),
        ("/web/app.js?v=2", "text/javascript; charset=utf-8"),
        ("/web/alias.js", "text/javascript; charset=utf-8"),
        ("/web/a%20b.css", "text/css; charset=utf-8"),
        ("/pkg/pggan.js", "text/javascript; charset=utf-8"),
        ("/pkg/pggan_bg.wasm", "application/wasm"),
    ] {
        let r = server.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.head);
        assert_eq!(r.header("Content-Type"), Some(mime), "{path}");
        assert_eq!(
            r.header("Content-Length"),
            Some(r.body.len().to_string().as_str()),
            "{path}"
        );
    }
    let wasm = std::fs::read(root.join("pkg/pggan_bg.wasm")).unwrap();
    assert!(
        server.get("/pkg/pggan_bg.wasm").body == wasm,
        "the package arrived changed"
    );
    let r = server.request("HEAD", "/index.html");
    assert_eq!(
        (r.status, r.header("Content-Length"), r.body.len()),
        (200, Some("11"), 0)
    );
}

#[test]
fn serves_nothing_but_the_page() {
    let root = checkout();
    let server = Server::at(&root);
    for path in [
        "/.git/config",
        "/.env",
        "/src/lib.rs",
        "/Cargo.toml",
        "/target/release/pggan",
        "/runs/000-emoji-64/log.jsonl",
        "/pkg/.gitignore",
        "/web/.secret",
        "/web/",
        "/pkg",
        "/index.html/",
        // Symlinks out of the page: out of the root, to /etc, to the repository, to the sources.
        "/web/outside.txt",
        "/web/passwd",
        "/web/git",
        "/pkg/src/lib.rs",
        // Traversal, plain and encoded.
        "/../outside.txt",
        "/web/../../outside.txt",
        "/web/../.git/config",
        "/%2e%2e/outside.txt",
        "/web/%2E%2E/%2e%2e/outside.txt",
        "/..%2foutside.txt",
        "/web/..%5c..%5coutside.txt",
        "//etc/passwd",
        "/%2fetc/passwd",
        "/web/app.js%00.txt",
    ] {
        let r = server.get(path);
        assert_eq!(r.status, 404, "{path}: {}", r.head);
        let body = String::from_utf8_lossy(&r.body);
        assert!(
            !body.contains(SECRET) && !body.contains("root:"),
            "{path} leaked: {body}"
        );
    }
}

#[test]
fn answers_only_requests_for_localhost() {
    let server = Server::at(&checkout());
    let port = server.addr.port();
    let request = |host: &str| format!("GET /index.html HTTP/1.1\r\nHost: {host}\r\n\r\n");
    for host in [
        "localhost".to_string(),
        "LocalHost".to_string(),
        format!("localhost:{port}"),
        "127.0.0.1".to_string(),
        format!("127.0.0.1:{port}"),
        "[::1]".to_string(),
        format!("[::1]:{port}"),
    ] {
        let r = server.exchange(request(&host).as_bytes());
        assert_eq!(r.status, 200, "Host: {host}: {}", r.head);
    }
    // What a page on another site sends after rebinding its name to 127.0.0.1.
    for host in [
        "evil.example",
        &format!("evil.example:{port}"),
        "localhost.evil.example",
        "127.0.0.1.nip.io",
        "127.0.0.2",
        "0.0.0.0",
        "::1",
        "localhost:",
        "localhost:80x",
        "",
    ] {
        let r = server.exchange(request(host).as_bytes());
        assert_eq!(r.status, 403, "Host: {host}: {}", r.head);
        assert!(!String::from_utf8_lossy(&r.body).contains("page"), "Host: {host}");
    }
    let r = server.exchange(b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(r.status, 400, "no Host: {}", r.head);
    let r = server.exchange(b"GET / HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n");
    assert_eq!(r.status, 400, "two Hosts: {}", r.head);
}

#[test]
fn malformed_requests_get_400_other_methods_405() {
    let server = Server::at(&checkout());
    let host = "Host: localhost\r\n";
    for request in [
        "\r\n\r\n".to_string(),
        "garbage\r\n\r\n".to_string(),
        "GET\r\n\r\n".to_string(),
        "GET /\r\n\r\n".to_string(),
        format!("GET / HTTP/2.0\r\n{host}\r\n"),
        format!("GET / HTTP/1.1 extra\r\n{host}\r\n"),
        format!("GET  / HTTP/1.1\r\n{host}\r\n"),
        format!("get / HTTP/1.1\r\n{host}\r\n"),
        format!("GET index.html HTTP/1.1\r\n{host}\r\n"),
        format!("GET http://localhost/ HTTP/1.1\r\n{host}\r\n"),
        format!("GET / HTTP/1.1\r\n{host}no colon\r\n\r\n"),
        format!("GET / HTTP/1.1\r\n{host}: no name\r\n\r\n"),
        "GET / HTTP/1.1\r\nHost : localhost\r\n\r\n".to_string(),
        format!("GET /%zz HTTP/1.1\r\n{host}\r\n"),
        format!("GET /web/%ff.js HTTP/1.1\r\n{host}\r\n"),
    ] {
        let r = server.exchange(request.as_bytes());
        assert_eq!(r.status, 400, "{request:?}: {}", r.head);
    }
    let r = server.exchange(b"GET /\xff HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(r.status, 400, "not UTF-8: {}", r.head);
    // Bare LF line ends are tolerated.
    assert_eq!(server.exchange(b"GET / HTTP/1.0\nHost: localhost\n\n").status, 200);
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT"] {
        let r = server.request(method, "/index.html");
        assert_eq!(
            (r.status, r.header("Allow")),
            (405, Some("GET, HEAD")),
            "{method}: {}",
            r.head
        );
    }
    // A body the server does not read does not cost the client its answer.
    let body = "x".repeat(100_000);
    let post = format!("POST / HTTP/1.1\r\n{host}Content-Length: {}\r\n\r\n{body}", body.len());
    assert_eq!(server.exchange(post.as_bytes()).status, 405);
}

#[test]
fn request_heads_are_bounded() {
    let server = Server::at(&checkout());
    // A request line with no end: the answer comes while it is still being sent, and the server
    // stops reading, far short of the 256 MiB on offer.
    let mut s = server.connect();
    let mut writer = s.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let chunk = [b'a'; 64 * 1024];
        writer.write_all(b"GET /").unwrap();
        let mut sent = 0usize;
        while sent < 256 << 20 && writer.write_all(&chunk).is_ok() {
            sent += chunk.len();
        }
        sent
    });
    let mut head = Vec::new();
    let mut byte = [0];
    while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).expect("no answer to an endless request line") == 1 {
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
    let sent = sender.join().unwrap();
    assert!(sent < 64 << 20, "the server read {sent} bytes of one request line");
    let peak_kb = proc_status(server.pid(), "VmHWM");
    assert!(peak_kb < 64 << 10, "the server's memory peaked at {peak_kb} kB");

    // Headers count too; a head just under the bound is served.
    let pad = |n: usize| format!("GET / HTTP/1.1\r\nHost: localhost\r\nX-Pad: {}\r\n\r\n", "p".repeat(n));
    assert_eq!(server.exchange(pad(MAX_HEAD + 1).as_bytes()).status, 431);
    assert_eq!(server.exchange(pad(MAX_HEAD - 100).as_bytes()).status, 200);
}

#[test]
fn files_are_streamed_not_read_whole() {
    let root = checkout();
    // Sparse: 64 MiB of zeros that cost the disk nothing.
    let size = 64u64 << 20;
    std::fs::File::create(root.join("pkg/big.wasm"))
        .unwrap()
        .set_len(size)
        .unwrap();
    let server = Server::at(&root);
    // Eight slow downloads at once: each client reads a little and stops.
    let slow: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut s = server.connect();
            s.write_all(b"GET /pkg/big.wasm HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .unwrap();
            s.read_exact(&mut [0; 64 * 1024]).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let peak_kb = proc_status(server.pid(), "VmHWM");
    assert!(peak_kb < 48 << 10, "the server's memory peaked at {peak_kb} kB");
    drop(slow);
    let r = server.get("/pkg/big.wasm");
    assert_eq!((r.status, r.body.len() as u64), (200, size));
    assert!(r.body.iter().all(|&b| b == 0));
}

#[test]
fn a_fixed_pool_serves_every_connection() {
    let server = Server::at(&checkout());
    let pid = server.pid();
    // The workers and the thread that accepts.
    let threads = WORKERS as u64 + 1;
    assert_eq!(proc_status(pid, "Threads"), threads, "threads at start");
    // Every worker busy with an idle client: one more connection waits in the backlog...
    let mut idle = idle_connections(&server, WORKERS);
    std::thread::sleep(Duration::from_millis(300));
    let mut waiting = server.connect();
    waiting
        .write_all(b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    waiting.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let e = waiting
        .read(&mut [0; 1])
        .expect_err("answered while every worker was busy");
    assert!(matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{e}");
    assert_eq!(
        proc_status(pid, "Threads"),
        threads,
        "a thread was started for a connection"
    );
    // ...and is served as soon as one closes.
    let started = Instant::now();
    idle.pop().unwrap().shutdown(Shutdown::Both).unwrap();
    waiting.set_read_timeout(Some(TIMEOUT)).unwrap();
    let r = read_response(&mut waiting);
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(started.elapsed() < TIMEOUT);
    drop(idle);

    // A burst of clients four times the pool: all served, by the same threads.
    let clients: Vec<_> = (0..4 * WORKERS)
        .map(|_| {
            let addr = server.addr;
            std::thread::spawn(move || {
                let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
                s.set_read_timeout(Some(TIMEOUT)).unwrap();
                s.write_all(b"GET /pkg/pggan_bg.wasm HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    .unwrap();
                read_response(&mut s).status
            })
        })
        .collect();
    for client in clients {
        assert_eq!(client.join().unwrap(), 200);
    }
    assert_eq!(proc_status(pid, "Threads"), threads, "threads after the burst");
}

#[test]
fn idle_connections_are_closed_at_the_deadline() {
    let server = Server::at(&checkout());
    let mut idle = idle_connections(&server, 1).pop().unwrap();
    idle.set_read_timeout(Some(DEADLINE + TIMEOUT)).unwrap();
    let started = Instant::now();
    let n = idle
        .read(&mut [0; 64])
        .expect("the server kept an idle connection open");
    assert_eq!(n, 0, "an idle connection got an answer");
    let waited = started.elapsed();
    assert!(waited > DEADLINE - Duration::from_secs(1), "closed after {waited:?}");
}

/// Slow senders cannot hold the pool: as many connections as workers, each a POST that announces
/// 100 MB of body and then sends a byte every 0.5 s, are answered 405 and closed after at most
/// `DRAIN` of draining, so a GET sent while they hold every worker is answered within 2 s; none
/// is kept past `DEADLINE`.
#[test]
fn slow_senders_do_not_hold_the_pool() {
    let server = Server::at(&checkout());
    let senders: Vec<_> = (0..WORKERS)
        .map(|_| {
            let mut s = server.connect();
            s.write_all(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000000\r\n\r\n")
                .unwrap();
            // How long the server kept the connection: until a byte can no longer be sent.
            std::thread::spawn(move || {
                let start = Instant::now();
                while s.write_all(b"x").is_ok() && start.elapsed() < DEADLINE + TIMEOUT {
                    std::thread::sleep(Duration::from_millis(500));
                }
                start.elapsed()
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let r = server.get("/index.html");
    let waited = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(waited < Duration::from_secs(2), "the GET waited {waited:?}");
    for sender in senders {
        let kept = sender.join().unwrap();
        assert!(kept < DEADLINE, "a slow sender was kept {kept:?}");
    }
}

#[test]
fn backs_off_at_the_file_descriptor_limit() {
    let root = checkout();
    // 12 descriptors: stdin, stdout, stderr, the listener and 8 connections, fewer than the workers.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "ulimit -n 12 && exec \"$0\" \"$@\"", env!("CARGO_BIN_EXE_pggan")])
        .args(["serve", "--port", "0", "--no-build", "--root", root.to_str().unwrap()])
        .stderr(Stdio::piped());
    let mut server = Server::start(cmd);
    let pid = server.pid();
    let idle = idle_connections(&server, 12);
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(pid) - before;
    assert!(
        used < 20,
        "{used} ticks of CPU in 1 s at the descriptor limit: spinning"
    );
    // Once clients leave, the waiting connections and new ones are served.
    drop(idle);
    let r = server.get("/index.html");
    assert_eq!(r.status, 200, "{}", r.head);
    let _ = server.child.kill();
    let mut stderr = String::new();
    server.child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(
        stderr.contains("cannot accept a connection (Too many open files"),
        "{stderr}"
    );
}

#[test]
fn serves_the_current_folder_and_refuses_one_without_a_page() {
    let root = checkout();
    let mut cmd = pggan(&["serve", "--port", "0", "--no-build"]);
    cmd.current_dir(&root);
    let server = Server::start(cmd);
    assert!(
        server.banner.contains(root.canonicalize().unwrap().to_str().unwrap()),
        "{}",
        server.banner
    );
    assert_eq!(server.get("/web/app.js").body, b"export {};");

    let refused = |cwd: &Path, args: &[&str]| {
        let out = pggan(args).current_dir(cwd).stdin(Stdio::null()).output().unwrap();
        assert!(!out.status.success(), "pggan {args:?} served {}", cwd.display());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let empty = temp_dir("serve-empty");
    let e = refused(&empty, &["serve", "--port", "0", "--no-build"]);
    assert!(
        e.contains("holds no page (index.html and web/)") && e.contains("--root"),
        "{e}"
    );
    let e = refused(&empty, &["serve", "--port", "0", "--root", "no-such-folder"]);
    assert!(e.contains("no-such-folder: no such folder"), "{e}");
    std::fs::remove_dir_all(root.join("pkg")).unwrap();
    let e = refused(&root, &["serve", "--port", "0", "--no-build"]);
    assert!(e.contains("has no pkg/pggan_bg.wasm: run without --no-build"), "{e}");
}
