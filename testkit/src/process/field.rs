//! The `key=value` words the C test programs print about what they did.

/// `key=value` from a line of `name value` words, parsed as a number.
pub fn field(line: &str, key: &str) -> i64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("{key}= is not a number in {line:?}"))
}
