//! A real browser against `c-examples/echo_server`: headless chromium loads
//! the server's index page (`c-examples/index.html`), which echoes a text
//! message with non-ASCII characters, a binary message and a 64 KiB text
//! message over a WebSocket to the same server, closes with 1000, and writes
//! the outcome into `<pre id="result">`.  The test reads the DOM chromium
//! dumps and requires `<pre id="result">PASS</pre>`.
//!
//! With `echo_server -z` or `--deflate-dedicated 15` the page is loaded as
//! `/?deflate`: the browser's
//! connection must have agreed on permessage-deflate, and a 1 MiB text
//! message is echoed too.
//!
//! Who may connect (`echo_server --allow-origin`): a page served from one
//! origin opens a WebSocket to a server that allows only that origin and
//! echoes; the same page from another origin (`localhost` instead of
//! `127.0.0.1`) is refused: the page sees the socket close before it opened,
//! chromium's net log shows the Origin it sent and the 403 it got.
//!
//! Chromium is required: without it the test fails (it is not skipped), so
//! that CI cannot pass without running it.  `.ci/run` installs it; set
//! `WSCONN_CHROMIUM` to use another binary.
//!
//! How the DOM is read: `chromium --headless --dump-dom URL` serializes the
//! page at its load event.  `--virtual-time-budget` does not help here:
//! virtual time does not wait for WebSocket traffic (an echo delayed 3 s of
//! real time made a 10 s virtual budget expire after 0.7 s of real time).
//! Instead the page holds its own load event until it has a result (a
//! hidden frame whose document stays open until then), so the dump happens
//! when the test in the page has finished, in real time, bounded by the
//! page's own 8 s timeout and by this test's timeout on chromium.

mod certs;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wsconn_testkit::{build_examples, example, find_on_path, read_on_thread, root, wait_until, LoggedServer};

const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(60);

/// `$WSCONN_CHROMIUM`, or `chromium` / `chromium-browser` on PATH.
fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WSCONN_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    find_on_path("chromium").or_else(|| find_on_path("chromium-browser"))
}

/// Kills chromium and every process it started (it runs in its own process
/// group).  Errors are ignored: the group may already be gone.
fn kill_group(pgid: u32) {
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -KILL -- -{pgid} 2>/dev/null"))
        .status();
}

/// Runs chromium headless on `url` and returns the DOM it dumps.
fn dump_dom(chromium: &Path, url: &str, extra_args: &[&str]) -> Result<String, String> {
    let profile = root().join("target").join("browser-test").join(format!(
        "profile-{}-{}",
        std::process::id(),
        // One per page loaded at once: the tests of this file run in parallel.
        url.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    ));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).map_err(|e| format!("create {}: {e}", profile.display()))?;

    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .args(extra_args)
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg("--dump-dom")
    .arg(url)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0);

    let what = format!("{cmd:?}");
    let mut child = cmd.spawn().map_err(|e| format!("cannot start {what}: {e}"))?;
    let pgid = child.id();
    let out = read_on_thread(child.stdout.take());
    let err = read_on_thread(child.stderr.take());

    let status = match wait_until(&mut child, Instant::now() + CHROMIUM_TIMEOUT) {
        Ok(status) => status,
        Err(e) => {
            kill_group(pgid);
            return Err(format!("waiting for chromium: {e}"));
        }
    };
    // Helpers (zygote, renderer...) must not outlive the test.
    kill_group(pgid);
    let _ = child.wait();
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let _ = std::fs::remove_dir_all(&profile);

    let stderr_tail: String = {
        let lines: Vec<&str> = stderr.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    };
    match status {
        None => Err(format!(
            "{what} did not finish within {CHROMIUM_TIMEOUT:?} and was killed\n\
             --- stdout ---\n{stdout}\n--- stderr (last lines) ---\n{stderr_tail}"
        )),
        Some(s) if !s.success() => Err(format!(
            "{what} exited with {s}\n--- stdout ---\n{stdout}\n--- stderr (last lines) ---\n{stderr_tail}"
        )),
        Some(_) => Ok(stdout),
    }
}

/// The text of `<pre id="ID">...</pre>` in `dom`, if present.
fn pre_text<'a>(dom: &'a str, id: &str) -> Option<&'a str> {
    let open = format!("<pre id=\"{id}\">");
    let start = dom.find(&open)? + open.len();
    let len = dom[start..].find("</pre>")?;
    Some(&dom[start..start + len])
}

#[test]
fn index_page_passes_in_chromium() {
    page_passes(None, &[], "");
}

/// permessage-deflate in the shared mode, as browsers offer it.
#[test]
fn index_page_passes_in_chromium_with_deflate() {
    page_passes(None, &["-z"], "?deflate");
}

/// permessage-deflate with context takeover both ways.
#[test]
fn index_page_passes_in_chromium_with_deflate_takeover() {
    page_passes(None, &["--deflate-dedicated", "15"], "?deflate");
}

/// Over `https://` and `wss://` (a test certificate, which chromium is told
/// not to check).
#[test]
fn index_page_passes_in_chromium_over_tls() {
    page_passes(Some("browser-tls"), &[], "");
}

/// The origin allow-list: `tests/browser/origin/index.html`, served by one
/// echo_server, opens a WebSocket to another that allows only
/// `http://127.0.0.1:PAGE_PORT`.
#[test]
fn only_the_allowed_origin_connects_in_chromium() {
    let chromium = require_chromium();
    build_examples();
    let page_dir = root().join("tests").join("browser").join("origin");
    let mut pages = LoggedServer::start(
        &example("echo_server"),
        &["-d", page_dir.to_str().unwrap(), "0"],
        &[],
        "echo_server-browser-origin-pages",
    );
    let page_port = pages.wait_for_port();
    let allowed = format!("http://127.0.0.1:{page_port}");
    let mut server = LoggedServer::start(
        &example("echo_server"),
        &["-v", "--allow-origin", &allowed, "0"],
        &[],
        "echo_server-browser-origin",
    );
    let ws_port = server.wait_for_port();
    let page = |host: &str| format!("http://{host}:{page_port}/?ws=ws://127.0.0.1:{ws_port}/echo");
    let run = |url: &str, args: &[&str]| {
        let dom =
            dump_dom(&chromium, url, args).unwrap_or_else(|e| panic!("{e}\n--- server log ---\n{}", server.log()));
        let result = pre_text(&dom, "result").unwrap_or("(no result element)").to_owned();
        let log = pre_text(&dom, "log").unwrap_or("").to_owned();
        (result, log)
    };

    let (result, log) = run(&page("127.0.0.1"), &[]);
    assert_eq!(
        result,
        "ECHOED",
        "from the allowed origin\n--- page log ---\n{log}\n--- server log ---\n{}",
        server.log()
    );

    // Another origin: refused before the handshake completes. The page only
    // sees a close (browsers hide the status); the net log has the rest.
    let net_log = root()
        .join("target")
        .join("browser-test")
        .join(format!("origin-netlog-{}.json", std::process::id()));
    let net_log_arg = format!("--log-net-log={}", net_log.display());
    let (result, log) = run(&page("localhost"), &[&net_log_arg]);
    let net = std::fs::read_to_string(&net_log).unwrap_or_else(|e| panic!("{}: {e}", net_log.display()));
    let _ = std::fs::remove_file(&net_log);
    assert_eq!(
        result, "REFUSED code=1006 open=false",
        "from another origin\n--- page log ---\n{log}"
    );
    assert!(
        net.contains(&format!("Origin: http://localhost:{page_port}")),
        "chromium sent the page's origin"
    );
    assert!(
        net.contains("Unexpected response code: 403"),
        "chromium got 403 for the other origin\n--- server log ---\n{}",
        server.log()
    );
    server.assert_running("after the browsers");
    let server_log = server.log();
    assert_eq!(server_log.matches("complete handshake").count(), 1, "{server_log}");
    assert!(server_log.contains("origin is not allowed"), "{server_log}");
    server.terminate();
    pages.terminate();
}

fn require_chromium() -> PathBuf {
    find_chromium().unwrap_or_else(|| {
        panic!(
            "chromium not found on PATH: install chromium (apt-get install chromium), \
             or set WSCONN_CHROMIUM to a chromium binary. This test is never skipped."
        )
    })
}

/// Loads the index page (with `query`) from echo_server started with
/// `server_args`, over TLS with the certificate tagged `tls`.
fn page_passes(tls: Option<&str>, server_args: &[&str], query: &str) {
    let chromium = require_chromium();
    build_examples();

    let args = match tls {
        Some(tag) => certs::echo_server_tls_args(tag, &["127.0.0.1"]).0,
        None => vec!["0".to_string()],
    };
    let args: Vec<&str> = server_args
        .iter()
        .copied()
        .chain(args.iter().map(String::as_str))
        .collect();
    let tag = format!(
        "echo_server-browser{}{}",
        if tls.is_some() { "-tls" } else { "" },
        server_args.concat()
    );
    let mut server = LoggedServer::start(&example("echo_server"), &args, &[], &tag);
    let port = server.wait_for_port();
    let (url, extra_args) = match tls {
        Some(_) => (
            format!("https://127.0.0.1:{port}/{query}"),
            &["--ignore-certificate-errors"][..],
        ),
        None => (format!("http://127.0.0.1:{port}/{query}"), &[][..]),
    };

    let dom = match dump_dom(&chromium, &url, extra_args) {
        Ok(dom) => dom,
        Err(e) => panic!("{e}\n--- server log ---\n{}", server.log()),
    };
    server.assert_running("while chromium ran the page");

    let result = pre_text(&dom, "result");
    let log = pre_text(&dom, "log").unwrap_or("(no log element in the DOM)");
    println!("result: {result:?}\n--- page log ---\n{log}");
    assert!(
        dom.contains(r#"<pre id="result">PASS</pre>"#),
        "the page did not pass: result {result:?}\n--- page log ---\n{log}\n\
         --- server log ---\n{}",
        server.log()
    );
    server.terminate();
}
