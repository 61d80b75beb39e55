//! Node.js with the `ws` library (npm package `ws`, pinned by
//! `tests/interop/node/package-lock.json`), for the scripts in
//! `tests/interop/node/`: `node_modules` is installed with `npm ci` on first
//! use, so `cargo test` works alone. A missing `node` or `npm` fails the test
//! (on Debian: apt-get install nodejs npm).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::paths::{find_on_path, root};
use crate::process::{run, run_ok};

/// `tests/interop/node`.
pub fn node_dir() -> PathBuf {
    root().join("tests").join("interop").join("node")
}

fn tool_version(tool: &str) -> Result<String, String> {
    let mut cmd = Command::new(tool);
    cmd.arg("--version");
    match run(cmd, Duration::from_secs(60)) {
        Ok(done) if done.status.success() => Ok(done.stdout.trim().to_string()),
        Ok(done) => Err(format!("`{tool} --version` failed: {}", done.report())),
        Err(e) => Err(e),
    }
}

/// Absolute path of `node`, after making sure `ws` is installed (once per
/// test process).
pub fn node() -> PathBuf {
    static NODE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = NODE.get_or_init(|| {
        let version = tool_version("node")
            .map_err(|e| format!("Node.js is needed (on Debian: apt-get install nodejs npm): {e}"))?;
        let major: u32 = version
            .trim_start_matches('v')
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| format!("cannot read the node version {version:?}"))?;
        if major < 18 {
            return Err(format!(
                "node {version} is too old: ws 8 and these scripts need node >= 18"
            ));
        }
        let ws = node_dir().join("node_modules").join("ws").join("package.json");
        if !ws.exists() {
            tool_version("npm").map_err(|e| format!("npm is needed (on Debian: apt-get install npm): {e}"))?;
            let mut npm = Command::new("npm");
            npm.current_dir(node_dir())
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]);
            run_ok(npm, Duration::from_secs(300))
                .map_err(|e| format!("installing ws in {} failed: {e}", node_dir().display()))?;
            if !ws.exists() {
                return Err(format!("npm ci succeeded but {} is missing", ws.display()));
            }
        }
        // LoggedServer::start wants a path that exists: resolve `node` on PATH.
        find_on_path("node").ok_or_else(|| "node runs but is not found on PATH".to_string())
    });
    match result {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// A `node` command running `tests/interop/node/SCRIPT` from that directory.
pub fn node_script(script: &str) -> Command {
    let mut cmd = Command::new(node());
    cmd.current_dir(node_dir()).arg(node_dir().join(script));
    cmd
}
