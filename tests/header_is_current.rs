//! The committed include/wsconn.h must be exactly what the sources generate now
//! (for the default build). The header is made afresh here,
//! the way build.rs makes it (both use build/header.rs), so a stale header
//! fails even when build.rs did not run (in CI it never rewrites the committed
//! copy).

#[path = "../build/header.rs"]
mod header;

use wsconn_testkit::{root, rust_files};

fn committed_header() -> String {
    std::fs::read_to_string(root().join("include/wsconn.h")).expect("include/wsconn.h exists")
}

#[test]
fn committed_header_matches_the_sources() {
    let fresh = String::from_utf8(header::generate(root(), &|f| header::DEFAULT_C_FEATURES.contains(&f)))
        .expect("the header is UTF-8");
    assert!(
        committed_header() == fresh,
        "include/wsconn.h is stale: build outside CI (cargo build) to regenerate it, then commit it"
    );
}

#[test]
fn version_macros_match_cargo_toml() {
    let header = committed_header();
    let version = env!("CARGO_PKG_VERSION");
    for (name, value) in [
        ("MAJOR", env!("CARGO_PKG_VERSION_MAJOR")),
        ("MINOR", env!("CARGO_PKG_VERSION_MINOR")),
        ("PATCH", env!("CARGO_PKG_VERSION_PATCH")),
    ] {
        let line = format!("#define WSCONN_VERSION_{name} {value}\n");
        assert!(header.contains(&line), "the header lacks {line:?}");
    }
    assert!(header.contains(&format!("#define WSCONN_VERSION_STRING \"{version}\"\n")));
}

#[test]
fn each_optional_feature_gets_a_macro_of_1_or_0() {
    let text = header::feature_macros(&["tls", "per-message-deflate"], &|f| f == "tls");
    assert!(text.contains("#define WSCONN_HAS_TLS 1\n"), "{text}");
    assert!(text.contains("#define WSCONN_HAS_PER_MESSAGE_DEFLATE 0\n"), "{text}");
    assert_eq!(header::feature_macros(&[], &|_| true), "");
}

#[test]
fn optional_c_features_are_cargo_features() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let features = manifest.split("\n[features]\n").nth(1).unwrap_or("");
    let features = features.split("\n[").next().unwrap_or("");
    for feature in header::C_FEATURES {
        assert!(
            features
                .lines()
                .any(|l| l.split('=').next().map(str::trim) == Some(*feature)),
            "C_FEATURES lists {feature}, which Cargo.toml's [features] does not declare"
        );
    }
}

#[test]
fn header_declares_and_documents_every_exported_function() {
    let header = committed_header();
    let lines: Vec<&str> = header.lines().collect();
    let mut count = 0;
    for file in rust_files(&root().join("src/ffi")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines() {
            let Some(rest) = line.split("extern \"C\" fn ").nth(1) else {
                continue;
            };
            if line.trim_start().starts_with("//") || line.contains("Option<") || !line.contains("pub ") {
                continue; // comments and callback types
            }
            let name = rest.split('(').next().unwrap();
            assert!(name.starts_with("wsconn_"), "{name} lacks the wsconn_ prefix");
            let at = lines
                .iter()
                .position(|l| l.contains(&format!(" {name}(")) || l.contains(&format!("*{name}(")))
                .unwrap_or_else(|| panic!("{name} ({}) missing from the header", file.display()));
            assert_eq!(lines[at - 1].trim(), "*/", "{name} has no doc comment in the header");
            count += 1;
        }
    }
    assert!(count >= 72, "only {count} exported functions found");
}
