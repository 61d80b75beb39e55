//! How include/wsconn.h is made: cbindgen over the whole crate, plus the
//! `wsconn_result` enum written from its one list (`src/ffi/result_codes.rs`,
//! where a macro makes the Rust enum that cbindgen cannot see). Used by
//! build.rs and by the test that checks the committed header.

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

/// The header's text, generated from the sources under `crate_dir`.
pub fn generate(crate_dir: &Path) -> Vec<u8> {
    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml is valid");
    config.after_includes = Some(result_enum());
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen can generate the header");
    let mut text = Vec::new();
    bindings.write(&mut text);
    text
}
