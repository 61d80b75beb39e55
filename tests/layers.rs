//! The three layers, checked by reading the sources: `proto` (sans-IO) uses
//! neither `runtime` nor `ffi`; `runtime` does not use `ffi`; nothing outside
//! `ffi` mentions a C type, a C function pointer or `extern "C"`; and every
//! exported C function runs inside the panic boundary.

use std::path::{Path, PathBuf};
use wsconn_testkit::{root, rust_files};

fn src() -> PathBuf {
    root().join("src")
}

/// Every `.rs` file under `dir`, with its code (comment lines dropped: docs may
/// name what the code must not use).
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    rust_files(dir)
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let code: Vec<&str> = text.lines().filter(|l| !l.trim_start().starts_with("//")).collect();
            (path, code.join("\n"))
        })
        .collect()
}

/// Fails listing every file of `dir` whose code contains one of `forbidden`.
fn forbid(dir: &Path, forbidden: &[&str], rule: &str) {
    let mut offenders = Vec::new();
    for (path, code) in sources(dir) {
        for word in forbidden {
            if code.contains(word) {
                offenders.push(format!("{} uses {word}", path.display()));
            }
        }
    }
    assert!(offenders.is_empty(), "{rule}:\n{}", offenders.join("\n"));
}

/// What marks C in Rust code.
const C_WORDS: &[&str] = &[
    "extern \"C\"",
    "CString",
    "CStr",
    "c_void",
    "c_char",
    "c_int",
    "no_mangle",
    "repr(C)",
];

#[test]
fn proto_uses_no_other_layer() {
    let forbidden = [
        "crate::runtime",
        "crate::ffi",
        "super::super::runtime",
        "super::super::ffi",
    ];
    forbid(
        &src().join("proto"),
        &forbidden,
        "the protocol core must not use the runtime or the C API",
    );
}

#[test]
fn runtime_does_not_use_the_c_api() {
    forbid(
        &src().join("runtime"),
        &["crate::ffi", "super::super::ffi"],
        "the runtime must not use the C API",
    );
}

#[test]
fn only_ffi_knows_c() {
    forbid(&src().join("proto"), C_WORDS, "C types belong in src/ffi");
    forbid(&src().join("runtime"), C_WORDS, "C types belong in src/ffi");
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let code: String = lib.lines().filter(|l| !l.trim_start().starts_with("//")).collect();
    for word in C_WORDS {
        assert!(!code.contains(word), "src/lib.rs uses {word}");
    }
}

/// The body of the function starting at `code[start..]` (from its first `{`
/// to the matching `}`).
fn body(code: &str, start: usize) -> &str {
    let open = start + code[start..].find('{').expect("a body");
    let mut depth = 0;
    for (i, c) in code[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &code[open..open + i + 1];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced braces")
}

#[test]
fn every_exported_function_runs_inside_the_panic_boundary() {
    let files = sources(&src().join("ffi"));
    // Helpers that wrap their callers' work in the boundary, themselves or
    // through another such helper.
    let mut guarded: Vec<String> = vec!["ffi_boundary!".into()];
    loop {
        let known = guarded.len();
        for (_, code) in &files {
            for (at, _) in code.match_indices("fn ") {
                let name: String = code[at + 3..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let call = format!("{name}(");
                let text = body(code, at);
                if !code[..at].ends_with("extern \"C\" ")
                    && !guarded.contains(&call)
                    && guarded.iter().any(|g| text.contains(g.as_str()))
                {
                    guarded.push(call);
                }
            }
        }
        if guarded.len() == known {
            break;
        }
    }
    let mut exported = 0;
    for (path, code) in &files {
        for (at, _) in code
            .match_indices("pub unsafe extern \"C\" fn ")
            .chain(code.match_indices("pub extern \"C\" fn "))
        {
            let text = body(code, at);
            let name: String = code[at..]
                .split("fn ")
                .nth(1)
                .unwrap()
                .chars()
                .take_while(|c| *c != '(')
                .collect();
            assert!(
                guarded.iter().any(|g| text.contains(g.as_str())),
                "{name} ({}) does not run inside ffi_boundary!",
                path.display()
            );
            exported += 1;
        }
    }
    assert!(exported >= 72, "only {exported} exported functions found");
}
