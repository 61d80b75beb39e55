//! Generates include/wsconn.h from the FFI sources with cbindgen.
//!
//! The header is written to OUT_DIR and, when its contents changed, to
//! include/wsconn.h, except under CI=true: there the committed header is left
//! alone so that the `header_is_current` test catches a stale one.

use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=CI");

    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml is valid");
    let bindings = cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen can generate the header");
    let generated = out_dir.join("wsconn.h");
    bindings.write_to_file(&generated);

    let committed = crate_dir.join("include").join("wsconn.h");
    let fresh = std::fs::read(&generated).expect("generated header is readable");
    let current = std::fs::read(&committed).unwrap_or_default();
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if fresh != current && !in_ci {
        std::fs::create_dir_all(committed.parent().expect("include/ has a parent")).expect("include/ can be made");
        std::fs::write(&committed, fresh).expect("include/wsconn.h is writable");
    }
}
