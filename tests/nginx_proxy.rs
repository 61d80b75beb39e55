//! nginx as a reverse proxy in front of `c-examples/echo_server`: the
//! WebSocket upgrade passes through nginx (`tests/nginx/nginx.conf.in`:
//! `proxy_http_version 1.1` and the Upgrade/Connection headers), the Python
//! `websockets` client (`tests/interop/echo_client.py`) runs every echo check
//! through the proxy, and a plain `GET /` through nginx returns the example's
//! index page. The same over TLS on either side: nginx terminating `wss://`
//! in front of a plain echo_server, and nginx speaking TLS (verified against
//! the test CA) to an echo_server serving it.
//!
//! nginx runs from a temporary directory (`-p DIR`, pid file, logs and temp
//! paths inside it) as whatever user runs the tests; nothing under /etc or
//! /var is touched.  Nothing is skipped: without nginx the test fails and says
//! what to install (on Debian: apt-get install nginx).

mod certs;

use std::fs::{self, File};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};
use wsconn_testkit::{
    build_examples, example, find_on_path, free_port, http_request, python_script, root, run, run_ok, signal,
    wait_until, LoggedServer,
};

const PY_CLIENT_TIMEOUT: Duration = Duration::from_secs(180);
const NGINX_START_TIMEOUT: Duration = Duration::from_secs(15);
const NGINX_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The nginx binary: `nginx` on PATH, else /usr/sbin/nginx (Debian's, often
/// not on a non-root user's PATH).
fn nginx_binary() -> PathBuf {
    let found = find_on_path("nginx").or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.is_file()));
    found.unwrap_or_else(|| {
        panic!("nginx not found (neither on PATH nor /usr/sbin/nginx): on Debian, apt-get install nginx")
    })
}

/// A fresh directory under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "wsconn-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Where TLS is used around nginx: nowhere, between the client and nginx, or
/// between nginx and echo_server.
#[derive(Clone, Copy, PartialEq)]
enum Tls {
    None,
    Front,
    Upstream,
}

/// Renders tests/nginx/nginx.conf.in into DIR/nginx.conf.
fn render_config(dir: &Path, listen_port: u16, upstream_port: u16, tls: Tls) -> PathBuf {
    let template_path = root().join("tests").join("nginx").join("nginx.conf.in");
    let template =
        fs::read_to_string(&template_path).unwrap_or_else(|e| panic!("read {}: {e}", template_path.display()));
    let dir_str = dir.to_str().expect("temp dir path is UTF-8");
    assert!(
        !dir_str.contains(|c: char| c.is_whitespace() || c == ';'),
        "unusable temp dir {dir_str}"
    );
    let config = template
        .replace("@DIR@", dir_str)
        .replace("@LISTEN_PORT@", &listen_port.to_string())
        .replace("@UPSTREAM_PORT@", &upstream_port.to_string())
        .replace("@LISTEN_TLS@", if tls == Tls::Front { " ssl" } else { "" })
        .replace("@UPSTREAM_SCHEME@", if tls == Tls::Upstream { "https" } else { "http" });
    let leftover: Vec<&str> = config
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains('@'))
        .collect();
    assert!(leftover.is_empty(), "placeholders left in the config: {leftover:?}");
    let path = dir.join("nginx.conf");
    fs::write(&path, config).expect("write nginx.conf");
    path
}

/// The ids of `pid`'s child processes (from /proc).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces.
            fs::read_to_string(format!("/proc/{child}/stat")).ok().and_then(|s| {
                let after = s.rsplit_once(')')?.1.trim_start().to_string();
                after.split_whitespace().nth(1)?.parse::<u32>().ok()
            }) == Some(pid)
        })
        .collect()
}

/// A running nginx (master and workers); stopped on drop, also on panic.
struct Nginx {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Nginx {
    /// Validates and starts nginx with the rendered config in `dir`, on a
    /// free port (retrying if another process took the port meanwhile).
    fn start(nginx: &Path, dir: &Path, upstream_port: u16, tls: Tls) -> Nginx {
        let mut last_error = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let conf = render_config(dir, port, upstream_port, tls);
            let error_log = dir.join("error.log");
            let common = |cmd: &mut Command| {
                cmd.arg("-p").arg(dir).arg("-c").arg(&conf).arg("-e").arg(&error_log);
            };
            let mut test = Command::new(nginx);
            common(&mut test);
            test.arg("-t");
            if let Err(e) = run_ok(test, Duration::from_secs(30)) {
                panic!(
                    "nginx -t rejected the config: {e}\n--- config ---\n{}",
                    fs::read_to_string(&conf).unwrap()
                );
            }

            let out = File::create(dir.join("stdout.log")).expect("create nginx stdout log");
            let mut cmd = Command::new(nginx);
            common(&mut cmd);
            cmd.arg("-g")
                .arg("daemon off;")
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out);
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", nginx.display()));
            let mut ngx = Nginx {
                child,
                dir: dir.to_path_buf(),
                port,
            };
            match ngx.wait_until_accepting() {
                Ok(()) => return ngx,
                Err(e) => {
                    last_error = e;
                    if !last_error.contains("Address already in use") {
                        break;
                    }
                }
            }
        }
        panic!("nginx did not start: {last_error}");
    }

    fn logs(&self) -> String {
        let read = |name: &str| fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!(
            "--- nginx error.log ---\n{}--- nginx access.log ---\n{}--- nginx stdout/stderr ---\n{}",
            read("error.log"),
            read("access.log"),
            read("stdout.log")
        )
    }

    fn wait_until_accepting(&mut self) -> Result<(), String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + NGINX_START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("nginx exited at start: {status}\n{}", self.logs()));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "nginx not accepting on {addr} after {NGINX_START_TIMEOUT:?}\n{}",
                    self.logs()
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM to the master (it stops its workers), then SIGKILL to the
    /// master and its workers if it is still there.
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let workers = children_of(self.child.id());
        // Errors are ignored: the master may have exited meanwhile.
        let _ = signal(self.child.id(), "TERM");
        if let Ok(Some(_)) = wait_until(&mut self.child, Instant::now() + NGINX_STOP_TIMEOUT) {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for w in workers {
            let _ = signal(w, "KILL");
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits (bounded) until `path`'s content satisfies `ok`.
fn wait_for_file(path: &Path, ok: impl Fn(&str) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if ok(&fs::read_to_string(path).unwrap_or_default()) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn echo_server_behind_nginx() {
    behind_nginx(Tls::None);
}

/// nginx terminates TLS: Python's `wss://` client, a plain echo_server.
#[test]
fn wss_to_nginx_in_front_of_a_plain_echo_server() {
    behind_nginx(Tls::Front);
}

/// A plain client, nginx speaking TLS to an echo_server that serves it.
#[test]
fn nginx_in_front_of_a_tls_echo_server() {
    behind_nginx(Tls::Upstream);
}

fn behind_nginx(tls: Tls) {
    let nginx = nginx_binary();
    build_examples();
    let python = python_script("echo_client.py"); // creates the venv first if needed

    // A test CA and a certificate for nginx or echo_server (nginx reads the
    // files whether it uses them or not).
    let tmp = TempDir::new("nginx");
    let ca = certs::TestCa::new("wsconn test CA");
    let leaf = ca.leaf(&["localhost", "127.0.0.1"]);
    let cert = certs::write(&tmp.0, "cert.pem", &leaf.cert_pem);
    let key = certs::write(&tmp.0, "key.pem", &leaf.key_pem);
    let ca_file = certs::write(&tmp.0, "ca.pem", &ca.cert_pem);

    let mut args = vec!["0"];
    if tls == Tls::Upstream {
        args = vec!["--tls-cert", &cert, "--tls-key", &key, "0"];
    }
    let tag = match tls {
        Tls::None => "nginx-upstream-echo_server",
        Tls::Front => "nginx-tls-front-upstream-echo_server",
        Tls::Upstream => "nginx-tls-upstream-echo_server",
    };
    let mut server = LoggedServer::start(&example("echo_server"), &args, &[], tag);
    let upstream_port = server.wait_for_port();
    server.wait_until_accepting(upstream_port);

    let mut proxy = Nginx::start(&nginx, &tmp.0, upstream_port, tls);
    let port = proxy.port;

    // 1. WebSocket through the proxy: every check of the Python client.
    let url = match tls {
        Tls::Front => format!("wss://localhost:{port}/echo"),
        _ => format!("ws://127.0.0.1:{port}/echo"),
    };
    let mut client = python;
    client.env("SSL_CERT_FILE", &ca_file).arg(&url);
    let done = run(client, PY_CLIENT_TIMEOUT).unwrap_or_else(|e| panic!("{e}\n{}", proxy.logs()));
    let report = format!(
        "{}\n--- echo_server log ---\n{}{}",
        done.report(),
        server.log(),
        proxy.logs()
    );
    assert!(
        done.status.success(),
        "echo_client.py {url} through nginx failed: {report}"
    );
    let last = done.stdout.lines().last().unwrap_or_default();
    let passed: u32 = last
        .strip_suffix(" passed, 0 failed")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected summary {last:?}: {report}"));
    assert!(passed >= 12, "only {passed} checks passed: {report}");
    if tls == Tls::Front {
        proxy.stop();
        server.assert_running("after the proxied checks");
        return server.terminate();
    }

    // 2. Plain HTTP through the proxy: the index page, and a 404.
    let index = fs::read(root().join("c-examples").join("index.html")).expect("read c-examples/index.html");
    let get = |path: &str| {
        http_request(
            port,
            &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"),
        )
        .unwrap_or_else(|e| panic!("GET {path} through nginx: {e}\n{}", proxy.logs()))
    };
    let page = get("/");
    assert_eq!(page.status, 200, "GET / through nginx\n{}", proxy.logs());
    assert!(
        page.header("Server").is_some_and(|s| s.starts_with("nginx")),
        "GET / did not come through nginx: {:?}",
        page.headers
    );
    assert!(
        page.body == index,
        "GET / through nginx: body of {} bytes is not index.html ({} bytes)",
        page.body.len(),
        index.len()
    );
    let missing = get("/no-such-page");
    assert_eq!(missing.status, 404, "GET /no-such-page through nginx\n{}", proxy.logs());

    // 3. nginx logged the upgrade (status 101) and the page; no errors.
    let access = tmp.0.join("access.log");
    assert!(
        wait_for_file(&access, |log| log.contains("\"GET /echo HTTP/1.1\" 101 ")
            && log.contains("\"GET / HTTP/1.1\" 200 ")),
        "access.log lacks the upgrade (101) or the page (200)\n{}",
        proxy.logs()
    );
    let errors = fs::read_to_string(tmp.0.join("error.log")).unwrap_or_default();
    let bad: Vec<&str> = errors
        .lines()
        .filter(|l| {
            ["[error]", "[crit]", "[alert]", "[emerg]"]
                .iter()
                .any(|lvl| l.contains(lvl))
        })
        .collect();
    assert!(bad.is_empty(), "nginx logged errors: {bad:#?}\n{}", proxy.logs());

    proxy.stop();
    server.assert_running("after the proxied checks");
    server.terminate();
}
