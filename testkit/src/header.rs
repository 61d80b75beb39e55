//! What include/wsconn.h declares, read from its text.

use std::collections::BTreeSet;

use crate::paths::root;

/// The header's text without its comments.
fn code() -> String {
    let text = std::fs::read_to_string(root().join("include").join("wsconn.h")).expect("include/wsconn.h exists");
    let mut code = String::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("/*") {
        code.push_str(&rest[..start]);
        let end = rest[start..].find("*/").expect("comments are closed");
        rest = &rest[start + end + 2..];
    }
    code.push_str(rest);
    code.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The functions the header declares: each `wsconn_…(` outside comments
/// (callback typedefs read `(*wsconn_…)(`, so they are not counted).
pub fn declared_functions() -> BTreeSet<String> {
    let code = code();
    let mut names = BTreeSet::new();
    for (at, _) in code.match_indices("wsconn_") {
        let before = &code[..at];
        if before.ends_with(|c: char| c.is_alphanumeric() || c == '_') || before.ends_with("(*") {
            continue;
        }
        let name: String = code[at..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if code[at + name.len()..].starts_with('(') {
            names.insert(name);
        }
    }
    names
}
