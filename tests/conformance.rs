//! The RFC 6455 conformance suite (`tests/conformance/run.py`, Python 3
//! standard library only, frames written by hand over raw sockets) against
//! both C example servers: `c-examples/echo_server` (reactor API) and
//! `c-examples/epoll_echo` (sans-IO API).
//!
//! Each server is started on port 0 (the port is read from its "listening
//! on 127.0.0.1:PORT" line); the suite runs every case against it; the test
//! fails if any case fails, if the suite does not finish, or if the server
//! dies or does not exit cleanly on SIGTERM afterwards. The per-section
//! results of both servers are printed (to the real stdout, so they show in
//! `cargo test` output even when the test passes). CONFORMANCE.md lists the
//! cases.
//!
//! Needs `python3` (3.8+, standard library only) and `make`/`cc` for the
//! examples; nothing is skipped when they are missing.

#[cfg(feature = "tls")]
mod certs;

use std::io::Write;
use std::process::Command;
use std::time::Duration;
use wsconn_testkit::{build_examples, example, root, run, Finished, LoggedServer};

/// The suite takes well under a minute per server; this bounds a hung run.
const SUITE_TIMEOUT: Duration = Duration::from_secs(300);
/// Passed to run.py: unfinished cases fail after this many seconds.
const SUITE_INNER_TIMEOUT_SECS: u32 = 240;

/// A server run: label, example, its arguments (the port last), the
/// suite's extra arguments.
struct Run {
    label: &'static str,
    program: &'static str,
    server_args: Vec<String>,
    suite_args: Vec<String>,
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Both servers plain; three with compression, for sections 12-13 only
/// (sections 1-11 offer no extension, so they would repeat the plain runs);
/// echo_server over TLS for sections 1-11, and with compression over TLS for
/// sections 12-13.
fn runs() -> Vec<Run> {
    let run = |label, program, server_args: &[&str], suite_args: &[&str]| Run {
        label,
        program,
        server_args: strings(server_args),
        suite_args: strings(suite_args),
    };
    let deflate_only = ["--deflate", "--filter", "12,13"];
    #[allow(unused_mut)]
    let mut runs = vec![
        run("echo_server", "echo_server", &["0"], &[]),
        run("epoll_echo", "epoll_echo", &["0"], &[]),
        run("echo_server -z", "echo_server", &["-z", "0"], &deflate_only),
        run(
            "echo dedicated 9",
            "echo_server",
            &["--deflate-dedicated", "9", "0"],
            &deflate_only,
        ),
        run("epoll_echo -z", "epoll_echo", &["-z", "0"], &deflate_only),
    ];
    #[cfg(feature = "tls")]
    {
        let (server_args, ca) = certs::echo_server_tls_args("conformance", &["127.0.0.1"]);
        runs.push(Run {
            label: "echo_server TLS",
            program: "echo_server",
            server_args,
            suite_args: vec!["--tls-ca".into(), ca],
        });
        let (mut server_args, ca) = certs::echo_server_tls_args("conformance-deflate", &["127.0.0.1"]);
        server_args.splice(0..0, strings(&["--deflate-dedicated", "9"]));
        let mut suite_args = strings(&deflate_only);
        suite_args.extend(["--tls-ca".into(), ca]);
        runs.push(Run {
            label: "echo dedicated TLS",
            program: "echo_server",
            server_args,
            suite_args,
        });
    }
    runs
}

/// One server's outcome.
struct Outcome {
    server: &'static str,
    /// The suite's output (or why it could not run).
    output: String,
    /// (section number, section name, cases, passed, failed) per table row.
    sections: Vec<(u32, String, u32, u32, u32)>,
    /// Problems: failed cases, bad exit status, server crash.
    problems: Vec<String>,
}

/// The rows of the per-section table run.py prints:
/// `  NN Section name   cases passed failed`.
fn parse_sections(output: &str) -> Vec<(u32, String, u32, u32, u32)> {
    output
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.len() < 5 {
                return None;
            }
            let section = words[0].parse::<u32>().ok()?;
            let n = words.len();
            let nums: Vec<u32> = words[n - 3..].iter().filter_map(|w| w.parse().ok()).collect();
            if nums.len() != 3 || !line.starts_with("  ") {
                return None;
            }
            Some((section, words[1..n - 3].join(" "), nums[0], nums[1], nums[2]))
        })
        .collect()
}

fn suite_command(port: u16, name: &str) -> Command {
    let mut cmd = Command::new("python3");
    cmd.env("PYTHONDONTWRITEBYTECODE", "1")
        .arg(root().join("tests").join("conformance").join("run.py"))
        .arg("--port")
        .arg(port.to_string())
        .arg("--name")
        .arg(name)
        .arg("--timeout")
        .arg(SUITE_INNER_TIMEOUT_SECS.to_string());
    cmd
}

fn run_against(r: &Run) -> Outcome {
    let server_name = r.label;
    let args: Vec<&str> = r.server_args.iter().map(String::as_str).collect();
    let log_name = format!("conformance-{}", server_name.replace([' ', '-'], "_"));
    let mut server = LoggedServer::start(&example(r.program), &args, &[], &log_name);
    let port = server.wait_for_port();
    server.wait_until_accepting(port);

    let mut problems = Vec::new();
    let mut command = suite_command(port, server_name);
    command.args(&r.suite_args);
    let result: Result<Finished, String> = run(command, SUITE_TIMEOUT);
    let output = match &result {
        Ok(done) => {
            let last = done.stdout.lines().last().unwrap_or_default().to_string();
            let all_passed = last.ends_with(" passed, 0 failed") && !last.starts_with("0 passed");
            if !done.status.success() || !all_passed {
                problems.push(format!(
                    "the suite against {server_name} reported {last:?} (exit {})",
                    done.status
                ));
            }
            if !done.stderr.trim().is_empty() {
                problems.push(format!("the suite wrote to stderr:\n{}", done.stderr));
            }
            done.stdout.clone()
        }
        Err(e) => {
            problems.push(format!(
                "the suite could not run against {server_name} (is python3 installed? \
                 Debian: apt-get install python3): {e}"
            ));
            e.clone()
        }
    };

    // The server must have survived every case and must still exit cleanly.
    // (Both helpers panic with the server's log; catch that to report both
    // servers' results.)
    let alive = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        server.assert_running("during the conformance suite");
        server.terminate();
    }));
    if let Err(panic) = alive {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        problems.push(format!("{server_name}: {msg}"));
    }

    let sections = parse_sections(&output);
    if sections.is_empty() && problems.is_empty() {
        problems.push(format!("no results table in the output against {server_name}"));
    }
    Outcome {
        server: server_name,
        output,
        sections,
        problems,
    }
}

/// Section × server table of passed/failed counts.
fn combined_table(outcomes: &[Outcome]) -> String {
    let mut s = String::from("RFC 6455 conformance suite (tests/conformance), passed/failed per server\n\n");
    s.push_str(&format!("  {:<32}", "section"));
    for o in outcomes {
        s.push_str(&format!(" {:>17}", o.server));
    }
    s.push('\n');
    let mut rows: Vec<(u32, String)> = Vec::new();
    for o in outcomes {
        for (num, name, ..) in &o.sections {
            if !rows.iter().any(|(n, _)| n == num) {
                rows.push((*num, name.clone()));
            }
        }
    }
    rows.sort();
    let mut totals = vec![(0u32, 0u32); outcomes.len()];
    for (num, name) in &rows {
        s.push_str(&format!("  {num:>2} {name:<29}"));
        for (i, o) in outcomes.iter().enumerate() {
            match o.sections.iter().find(|r| r.0 == *num) {
                Some((_, _, _, passed, failed)) => {
                    totals[i].0 += passed;
                    totals[i].1 += failed;
                    s.push_str(&format!(" {:>17}", format!("{passed}/{failed}")));
                }
                None => s.push_str(&format!(" {:>17}", "-")),
            }
        }
        s.push('\n');
    }
    s.push_str(&format!("     {:<29}", "total"));
    for (passed, failed) in &totals {
        s.push_str(&format!(" {:>17}", format!("{passed}/{failed}")));
    }
    s.push('\n');
    let passed: u32 = totals.iter().map(|t| t.0).sum();
    let failed: u32 = totals.iter().map(|t| t.1).sum();
    s.push_str(&format!("{passed} passed, {failed} failed\n"));
    s
}

#[test]
fn conformance_suite_against_both_servers() {
    build_examples();
    let outcomes: Vec<Outcome> = runs().iter().map(run_against).collect();

    let mut report = String::new();
    for o in &outcomes {
        report.push_str(&format!(
            "=== conformance suite against {} ===\n{}\n",
            o.server, o.output
        ));
    }
    report.push_str(&combined_table(&outcomes));
    // Straight to the process's stdout: libtest captures print!/println!
    // only, and this summary is meant to be seen on every run.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(format!("\n{report}").as_bytes());
    let _ = out.flush();

    let problems: Vec<String> = outcomes.iter().flat_map(|o| o.problems.clone()).collect();
    assert!(
        problems.is_empty(),
        "conformance failures:\n- {}\n\n{report}",
        problems.join("\n- ")
    );
}

#[test]
fn results_table_parses() {
    let sample = "Conformance results for x (127.0.0.1:1): 3 cases in 1.0 s\n\n\
                  \x20 section                           cases  passed  failed\n\
                  \x20  1 Framing                           45      44       1\n\
                  \x20 11 Opening handshake                 24      24       0\n\
                  \x20    total                             69      68       1\n\
                  68 passed, 1 failed\n";
    let rows = parse_sections(sample);
    assert_eq!(
        rows,
        vec![
            (1, "Framing".to_string(), 45, 44, 1),
            (11, "Opening handshake".to_string(), 24, 24, 0)
        ]
    );
}
