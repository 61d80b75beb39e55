//! The committed include/wsconn.h must be exactly what the sources generate now.
//! The header is made afresh here, the way build.rs makes it (both use
//! build/header.rs), so a stale header fails even when build.rs did not run
//! (in CI it never rewrites the committed copy).

#[path = "../build/header.rs"]
mod header;

use wsconn_testkit::{root, rust_files};

fn committed_header() -> String {
    std::fs::read_to_string(root().join("include/wsconn.h")).expect("include/wsconn.h exists")
}

#[test]
fn committed_header_matches_the_sources() {
    let fresh = String::from_utf8(header::generate(root())).expect("the header is UTF-8");
    assert!(
        committed_header() == fresh,
        "include/wsconn.h is stale: build outside CI (cargo build) to regenerate it, then commit it"
    );
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
