//! A Python that can `import websockets`, for the interop scripts in
//! `tests/interop/`: `$WSCONN_PYTHON`, or a venv in `target/venv` made on
//! first use.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::paths::root;
use crate::process::{run, run_ok};

fn has_websockets(python: &Path) -> bool {
    let mut cmd = Command::new(python);
    cmd.args(["-c", "import websockets"]);
    matches!(run(cmd, Duration::from_secs(60)), Ok(f) if f.status.success())
}

/// A Python interpreter that can `import websockets`: `$WSCONN_PYTHON`, or
/// `target/venv/bin/python`, creating the venv (once per test process).
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = PYTHON.get_or_init(|| {
        if let Some(p) = std::env::var_os("WSCONN_PYTHON") {
            let p = PathBuf::from(p);
            return if has_websockets(&p) {
                Ok(p)
            } else {
                Err(format!("WSCONN_PYTHON={} cannot `import websockets`", p.display()))
            };
        }

        let venv = root().join("target").join("venv");
        let python = venv.join("bin").join("python");
        if !python.exists() {
            let mut cmd = Command::new("python3");
            cmd.arg("-m").arg("venv").arg(&venv);
            run_ok(cmd, Duration::from_secs(300))
                .map_err(|e| format!("creating the venv failed (on Debian: apt-get install python3-venv): {e}"))?;
        }
        if !has_websockets(&python) {
            let mut cmd = Command::new(venv.join("bin").join("pip"));
            cmd.args(["install", "-q", "websockets>=12"]);
            run_ok(cmd, Duration::from_secs(600))
                .map_err(|e| format!("installing websockets into the venv failed: {e}"))?;
            if !has_websockets(&python) {
                return Err(format!(
                    "{} still cannot `import websockets` after pip install",
                    python.display()
                ));
            }
        }
        Ok(python)
    });
    match result {
        Ok(p) => p.clone(),
        Err(e) => panic!("no Python with `websockets`: {e}"),
    }
}

/// A Python command for one of the scripts in `tests/interop/`.
pub fn python_script(script: &str) -> Command {
    let mut cmd = Command::new(python());
    cmd.env("PYTHONDONTWRITEBYTECODE", "1")
        .arg(root().join("tests").join("interop").join(script));
    cmd
}
