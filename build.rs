//! Generates include/wsconn.h (see build/header.rs).
//!
//! The header is written to OUT_DIR and, when its contents changed, to
//! include/wsconn.h, except under CI=true: there the committed header is left
//! alone so that the `header_is_current` test catches a stale one, and in a
//! build whose optional C features are not the default ones (the committed
//! header is that of the default build; others find theirs in OUT_DIR). Any change under src/ reruns this, so an edited doc comment
//! anywhere reaches the header.

use std::path::PathBuf;

#[path = "build/header.rs"]
mod header;

fn main() {
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=build");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=CI");

    let enabled =
        |feature: &str| std::env::var_os(format!("CARGO_FEATURE_{}", header::feature_name(feature))).is_some();
    let default_build = header::C_FEATURES
        .iter()
        .all(|f| enabled(f) == header::DEFAULT_C_FEATURES.contains(f));
    let fresh = header::generate(&crate_dir, &enabled);
    std::fs::write(out_dir.join("wsconn.h"), &fresh).expect("OUT_DIR is writable");

    let committed = crate_dir.join("include").join("wsconn.h");
    let current = std::fs::read(&committed).unwrap_or_default();
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if fresh != current && !in_ci && default_build {
        std::fs::create_dir_all(committed.parent().expect("include/ has a parent")).expect("include/ can be made");
        std::fs::write(&committed, fresh).expect("include/wsconn.h is writable");
    }
}
