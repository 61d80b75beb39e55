#![allow(dead_code)]
//! The real proxies the tests go through, started on 127.0.0.1 and killed
//! when dropped: Debian's tinyproxy (HTTP CONNECT, with BasicAuth),
//! microsocks (SOCKS5, with -u/-P) and haproxy terminating TLS in front of
//! tinyproxy (an `https://` proxy).
//!
//! microsocks runs with a small getaddrinfo wrapper preloaded, so that it
//! alone resolves `PROXY_ONLY_NAME` (to 127.0.0.1): a name only the proxy
//! knows, for `socks5h://`.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wsconn_testkit::{free_port, root, KilledOnDrop};

pub const PROXY_ONLY_NAME: &str = "wsconn-proxy-only.test";
pub const USER: &str = "user";
pub const PASSWORD: &str = "secret";

/// A directory of its own for a test's files.
pub fn dir(tag: &str) -> PathBuf {
    let dir = root()
        .join("target")
        .join("client-proxies")
        .join(format!("{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits until something accepts connections on `port`.
fn wait_for(port: u16, what: &str, child: &mut KilledOnDrop, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!(
                "{what} exited ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A proxy process and its port.
pub struct Proxy {
    pub port: u16,
    _child: KilledOnDrop,
}

fn spawn(what: &str, mut cmd: Command, port: u16, log: PathBuf) -> Proxy {
    let file = std::fs::File::create(&log).unwrap();
    cmd.stdin(Stdio::null()).stdout(file.try_clone().unwrap()).stderr(file);
    let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let mut child = KilledOnDrop(child);
    wait_for(port, what, &mut child, &log);
    Proxy { port, _child: child }
}

/// tinyproxy asking for `USER`/`PASSWORD` (Basic).
pub fn tinyproxy(dir: &Path) -> Proxy {
    let port = free_port();
    let config = dir.join("tinyproxy.conf");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 100\nAllow 127.0.0.1\n\
             BasicAuth {USER} {PASSWORD}\nLogLevel Connect\n"
        ),
    )
    .unwrap();
    let mut cmd = Command::new("tinyproxy");
    cmd.arg("-d").arg("-c").arg(&config);
    spawn("tinyproxy", cmd, port, dir.join("tinyproxy.log"))
}

/// microsocks asking for `USER`/`PASSWORD`, resolving `PROXY_ONLY_NAME`.
pub fn microsocks(dir: &Path) -> Proxy {
    let shim = dir.join("proxy_only_name.so");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/client/proxy_only_name.c");
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&shim)
        .arg(&source)
        .arg("-ldl")
        .status()
        .expect("cc");
    assert!(built.success(), "building {}", source.display());
    let port = free_port();
    let mut cmd = Command::new("microsocks");
    cmd.args(["-i", "127.0.0.1", "-p", &port.to_string(), "-u", USER, "-P", PASSWORD])
        .env("LD_PRELOAD", &shim);
    spawn("microsocks", cmd, port, dir.join("microsocks.log"))
}

/// haproxy serving TLS (`cert_and_key`: PEM, the certificate first) on its
/// port and passing the plaintext to `backend`.
pub fn tls_front(dir: &Path, cert_and_key: &str, backend: u16) -> Proxy {
    let port = free_port();
    let pem = dir.join("front.pem");
    std::fs::write(&pem, cert_and_key).unwrap();
    let config = dir.join("haproxy.cfg");
    std::fs::write(
        &config,
        format!(
            "global\n    maxconn 200\n\
             defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\
             frontend tls\n    bind 127.0.0.1:{port} ssl crt {}\n    default_backend plain\n\
             backend plain\n    server proxy 127.0.0.1:{backend}\n",
            pem.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new("haproxy");
    cmd.arg("-db").arg("-f").arg(&config);
    spawn("haproxy", cmd, port, dir.join("haproxy.log"))
}
