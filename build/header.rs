//! How include/wsconn.h is made: cbindgen over the whole crate, plus what
//! cbindgen cannot see: the version macros (from Cargo.toml's version), the
//! `WSCONN_HAS_*` feature macros, and the `wsconn_result` enum written from its
//! one list (`src/ffi/result_codes.rs`, where a macro makes the Rust enum).
//! Used by build.rs and by the test that checks the committed header.

use std::fmt::Write;
use std::path::Path;

/// One row of the result-code list, as the header shows it.
struct Code {
    doc: &'static [&'static str],
    name: &'static str,
    value: i32,
}

/// Reads the list into `ENUM_DOC`, `ENUM_NAME` and `CODES` (the messages and
/// the Rust errors of each row are the library's business, not the header's).
macro_rules! result_codes {
    (
        $(#[doc = $enum_doc:literal])*
        enum $enum:ident;
        $(
        $(#[doc = $doc:literal])*
        $name:ident = $value:literal, $message:literal $(, [$($from:pat),+])? ;
    )*) => {
        const ENUM_DOC: &[&str] = &[$($enum_doc),*];
        const ENUM_NAME: &str = stringify!($enum);
        const CODES: &[Code] = &[$(Code { doc: &[$($doc),*], name: stringify!($name), value: $value }),*];
    };
}

include!("../src/ffi/result_codes.rs");

/// A doc comment as cbindgen writes one, indented by `indent`.
fn doc_comment(out: &mut String, lines: &[&str], indent: &str) {
    let _ = writeln!(out, "{indent}/**");
    for line in lines {
        let _ = writeln!(out, "{indent} *{}", line.trim_end());
    }
    let _ = writeln!(out, "{indent} */");
}

/// Cargo features that add optional parts to the C API. Each gets a
/// `WSCONN_HAS_<NAME>` macro, 1 in a build with the feature, else 0, so that
/// programs can `#if`. The committed header is that of the default build.
pub const C_FEATURES: &[&str] = &["tls"];

/// The `C_FEATURES` a default build has (Cargo.toml's `default`).
pub const DEFAULT_C_FEATURES: &[&str] = &["tls"];

/// The version macros: this header's version, which `wsconn_version()`
/// returns too when the header and the library match.
fn version_macros() -> String {
    let mut out = String::from("\n");
    doc_comment(
        &mut out,
        &[" The version of the API this header declares (Cargo.toml's version)."],
        "",
    );
    for (name, value) in [
        ("MAJOR", env!("CARGO_PKG_VERSION_MAJOR")),
        ("MINOR", env!("CARGO_PKG_VERSION_MINOR")),
        ("PATCH", env!("CARGO_PKG_VERSION_PATCH")),
    ] {
        let _ = writeln!(out, "#define WSCONN_VERSION_{name} {value}");
    }
    let _ = writeln!(out, "#define WSCONN_VERSION_STRING \"{}\"", env!("CARGO_PKG_VERSION"));
    out
}

/// A feature's name as cargo spells it in `CARGO_FEATURE_<NAME>` and the
/// header in `WSCONN_HAS_<NAME>`.
pub fn feature_name(feature: &str) -> String {
    feature.to_uppercase().replace('-', "_")
}

/// `WSCONN_HAS_<NAME>` for each of `features`, 1 where `enabled` says so.
pub fn feature_macros(features: &[&str], enabled: &dyn Fn(&str) -> bool) -> String {
    let mut out = String::new();
    if features.is_empty() {
        return out;
    }
    out.push('\n');
    doc_comment(
        &mut out,
        &[" Optional parts: 1 when the library was built with them, else 0."],
        "",
    );
    for feature in features {
        let _ = writeln!(
            out,
            "#define WSCONN_HAS_{} {}",
            feature_name(feature),
            u8::from(enabled(feature))
        );
    }
    out
}

/// The `wsconn_result` enum in C, in the form cbindgen gives the other enums.
fn result_enum() -> String {
    let mut out = String::from("\n");
    doc_comment(&mut out, ENUM_DOC, "");
    let _ = writeln!(
        out,
        "enum {ENUM_NAME}\n#ifdef __cplusplus\n  : int32_t\n#endif // __cplusplus\n {{"
    );
    for code in CODES {
        doc_comment(&mut out, code.doc, "  ");
        let _ = writeln!(out, "  {} = {},", code.name, code.value);
    }
    let _ = write!(
        out,
        "}};\n#ifndef __cplusplus\ntypedef int32_t {ENUM_NAME};\n#endif // __cplusplus"
    );
    out
}

/// The header's text, generated from the sources under `crate_dir`, for a
/// build with the `C_FEATURES` that `enabled` names.
pub fn generate(crate_dir: &Path, enabled: &dyn Fn(&str) -> bool) -> Vec<u8> {
    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml is valid");
    config.after_includes = Some(version_macros() + &feature_macros(C_FEATURES, enabled) + &result_enum());
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen can generate the header");
    let mut text = Vec::new();
    bindings.write(&mut text);
    text
}
