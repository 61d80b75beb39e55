//! The committed include/wsconn.h must be what cbindgen generates from the sources
//! now (build.rs writes the fresh one to OUT_DIR; outside CI it also refreshes the
//! committed copy, which must then be committed).

#[test]
fn committed_header_matches_generated() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/wsconn.h"));
    let committed_path = concat!(env!("CARGO_MANIFEST_DIR"), "/include/wsconn.h");
    let committed = std::fs::read_to_string(committed_path).expect("include/wsconn.h exists");
    assert!(
        committed == generated,
        "include/wsconn.h is stale: build outside CI (cargo build) to regenerate it, then commit it"
    );
}

#[test]
fn header_declares_every_exported_function() {
    let header = include_str!(concat!(env!("OUT_DIR"), "/wsconn.h"));
    let sources = ["src/ffi/result.rs", "src/ffi/config.rs", "src/ffi/session.rs"];
    let mut count = 0;
    for file in sources {
        let text = std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        for line in text.lines() {
            let Some(rest) = line.split("extern \"C\" fn ").nth(1) else {
                continue;
            };
            let name = rest.split('(').next().unwrap();
            assert!(name.starts_with("wsconn_"), "{name} lacks the wsconn_ prefix");
            assert!(header.contains(&format!("{name}(")), "{name} missing from the header");
            let lines: Vec<&str> = header.lines().collect();
            let at = lines.iter().position(|l| l.contains(&format!("{name}("))).unwrap();
            assert_eq!(lines[at - 1].trim(), "*/", "{name} has no doc comment in the header");
            count += 1;
        }
    }
    assert!(count >= 20, "only {count} exported functions found");
}
