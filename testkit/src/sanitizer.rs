//! AddressSanitizer and UndefinedBehaviorSanitizer: how the `_asan` builds
//! are run, and how their reports are recognized.

use std::process::Command;

/// Settings for the `_asan` programs: leaks and every UBSan report are
/// errors, UBSan prints stacks. Harmless for the plain programs.
pub const SANITIZER_ENV: &[(&str, &str)] = &[
    ("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:halt_on_error=1"),
    ("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1"),
    ("LSAN_OPTIONS", "report_objects=1"),
];

/// Applies [`SANITIZER_ENV`] to `cmd`.
pub fn sanitizer_env(cmd: &mut Command) {
    cmd.envs(SANITIZER_ENV.iter().copied());
}

/// The first line of a sanitizer report in `output`, if there is one.
pub fn sanitizer_report(output: &str) -> Option<String> {
    const MARKERS: &[&str] = &[
        "AddressSanitizer",
        "LeakSanitizer",
        "UndefinedBehaviorSanitizer",
        "runtime error:",
        "SUMMARY: ",
    ];
    output
        .lines()
        .find(|line| MARKERS.iter().any(|m| line.contains(m)))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_recognized_and_clean_output_is_not() {
        let asan = "ok\n==42==ERROR: AddressSanitizer: heap-use-after-free on address\nmore";
        assert_eq!(
            sanitizer_report(asan).as_deref(),
            Some("==42==ERROR: AddressSanitizer: heap-use-after-free on address")
        );
        assert!(sanitizer_report("x.c:3:5: runtime error: signed integer overflow").is_some());
        assert!(sanitizer_report("==1==ERROR: LeakSanitizer: detected memory leaks").is_some());
        assert_eq!(sanitizer_report("listening on 9001\n12 passed, 0 failed\n"), None);
    }
}
