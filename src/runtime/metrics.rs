//! The counters in Prometheus' text exposition format (version 0.0.4): one
//! family per metric with its HELP and TYPE lines, counters named `_total`,
//! one series per reason, class or direction as a label; and, if asked, the
//! process's resident memory and open file descriptors (the names
//! Prometheus' client libraries use).

use std::fmt::Write;

use crate::runtime::stats::Stats;

/// The Content-Type of the text this module writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

type Read = fn(&Stats) -> u64;

/// A metric family: name, type, help, and its series (labels, value).
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    series: &'static [(&'static str, Read)],
}

const fn counter(name: &'static str, help: &'static str, series: &'static [(&'static str, Read)]) -> Family {
    Family {
        name,
        kind: "counter",
        help,
        series,
    }
}

const fn gauge(name: &'static str, help: &'static str, series: &'static [(&'static str, Read)]) -> Family {
    Family {
        name,
        kind: "gauge",
        help,
        series,
    }
}

/// Every field of [`Stats`], once (a test checks).
const FAMILIES: &[Family] = &[
    gauge(
        "wsconn_connections_open",
        "WebSocket connections open (handshake done, not ended yet).",
        &[("", |s| s.connections_open)],
    ),
    gauge(
        "wsconn_handshakes_pending",
        "Connections whose opening handshake has not completed.",
        &[("", |s| s.handshakes_pending)],
    ),
    counter(
        "wsconn_connections_accepted_total",
        "Server connections started on accepted sockets.",
        &[("", |s| s.connections_accepted)],
    ),
    counter(
        "wsconn_connections_dialed_total",
        "Client connections started.",
        &[("", |s| s.connections_dialed)],
    ),
    counter(
        "wsconn_handshakes_completed_total",
        "Opening handshakes completed.",
        &[("", |s| s.handshakes_completed)],
    ),
    counter(
        "wsconn_handshakes_refused_total",
        "Server opening handshakes refused, by reason.",
        &[
            ("reason=\"bad_request\"", |s| s.refused_bad_request),
            ("reason=\"origin\"", |s| s.refused_origin),
            ("reason=\"program\"", |s| s.refused_program),
            ("reason=\"limits\"", |s| s.refused_limits),
            ("reason=\"tls\"", |s| s.refused_tls),
            ("reason=\"timeout\"", |s| s.refused_timeout),
            ("reason=\"draining\"", |s| s.refused_draining),
        ],
    ),
    counter(
        "wsconn_client_handshakes_failed_total",
        "Client connections that failed before they opened.",
        &[("", |s| s.client_handshakes_failed)],
    ),
    counter(
        "wsconn_http_requests_total",
        "Plain HTTP requests answered.",
        &[("", |s| s.http_requests)],
    ),
    counter(
        "wsconn_messages_total",
        "Data messages received and sent.",
        &[
            ("direction=\"in\"", |s| s.messages_in),
            ("direction=\"out\"", |s| s.messages_out),
        ],
    ),
    counter(
        "wsconn_payload_bytes_total",
        "Bytes of data messages received (inflated) and sent (as given).",
        &[
            ("direction=\"in\"", |s| s.payload_bytes_in),
            ("direction=\"out\"", |s| s.payload_bytes_out),
        ],
    ),
    counter(
        "wsconn_wire_bytes_total",
        "Bytes read from and written to sockets.",
        &[
            ("direction=\"in\"", |s| s.wire_bytes_in),
            ("direction=\"out\"", |s| s.wire_bytes_out),
        ],
    ),
    counter(
        "wsconn_compressed_messages_total",
        "Data messages received and sent compressed (permessage-deflate).",
        &[
            ("direction=\"in\"", |s| s.compressed_messages_in),
            ("direction=\"out\"", |s| s.compressed_messages_out),
        ],
    ),
    counter(
        "wsconn_closes_total",
        "Open connections that ended, by how.",
        &[
            ("class=\"normal\"", |s| s.closes_normal),
            ("class=\"going_away\"", |s| s.closes_going_away),
            ("class=\"protocol\"", |s| s.closes_protocol),
            ("class=\"policy\"", |s| s.closes_policy),
            ("class=\"too_big\"", |s| s.closes_too_big),
            ("class=\"timeout\"", |s| s.closes_timeout),
            ("class=\"eof_io\"", |s| s.closes_eof_io),
            ("class=\"other\"", |s| s.closes_other),
        ],
    ),
    counter(
        "wsconn_pings_total",
        "Pings received and sent.",
        &[
            ("direction=\"in\"", |s| s.pings_in),
            ("direction=\"out\"", |s| s.pings_out),
        ],
    ),
    counter(
        "wsconn_pongs_total",
        "Pongs received and sent.",
        &[
            ("direction=\"in\"", |s| s.pongs_in),
            ("direction=\"out\"", |s| s.pongs_out),
        ],
    ),
    gauge(
        "wsconn_budget_bytes",
        "Bytes the connections hold in buffers (the memory budget's sum).",
        &[("", |s| s.budget_bytes)],
    ),
    gauge(
        "wsconn_budget_waiting_connections",
        "Connections not read because the memory budget is spent.",
        &[("", |s| s.budget_waiting)],
    ),
    counter(
        "wsconn_budget_pauses_total",
        "Times a connection stopped being read because the memory budget was spent.",
        &[("", |s| s.budget_pauses)],
    ),
    counter(
        "wsconn_publishes_total",
        "Messages published.",
        &[("", |s| s.publishes)],
    ),
    counter(
        "wsconn_published_deliveries_total",
        "Published messages queued to a subscriber.",
        &[("", |s| s.published_deliveries)],
    ),
    counter(
        "wsconn_slow_subscribers_total",
        "Slow subscribers skipped (a message missed) or closed.",
        &[
            ("action=\"skipped\"", |s| s.slow_skipped),
            ("action=\"closed\"", |s| s.slow_closed),
        ],
    ),
    counter(
        "wsconn_proxy_header_failures_total",
        "Connections with a missing or malformed PROXY protocol header.",
        &[("", |s| s.proxy_header_failures)],
    ),
    counter(
        "wsconn_inflate_ratio_closes_total",
        "Connections closed for a compressed message inflating beyond the allowed ratio.",
        &[("", |s| s.inflate_ratio_closes)],
    ),
    gauge(
        "wsconn_reconnects_waiting",
        "Client connections waiting to reconnect.",
        &[("", |s| s.reconnects_waiting)],
    ),
    gauge(
        "wsconn_draining",
        "Reactors draining or drained.",
        &[("", |s| s.draining)],
    ),
    counter(
        "wsconn_drain_cut_total",
        "Connections cut at a drain's deadline.",
        &[("", |s| s.drain_cut)],
    ),
    counter(
        "wsconn_accept_failures_total",
        "accept() failures (out of file descriptors, ...).",
        &[("", |s| s.accept_failures)],
    ),
    counter(
        "wsconn_log_suppressed_total",
        "Log lines suppressed by the rate limit.",
        &[("", |s| s.log_suppressed)],
    ),
];

/// The process's resident memory and open file descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessStats {
    pub resident_bytes: u64,
    pub open_fds: u64,
}

impl ProcessStats {
    /// Read from /proc/self (`None` where there is no /proc).
    pub fn read() -> Option<ProcessStats> {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        // The directory's own fd, open while it is read, is not counted.
        let open = std::fs::read_dir("/proc/self/fd").ok()?.count().saturating_sub(1);
        Some(ProcessStats {
            resident_bytes: pages * u64::try_from(page).ok()?,
            open_fds: open as u64,
        })
    }
}

/// Appends the exposition of `stats` to `out`, then `process`'s if given.
pub fn write_prometheus(out: &mut String, stats: &Stats, process: Option<ProcessStats>) {
    for family in FAMILIES {
        let series: Vec<(&str, u64)> = family.series.iter().map(|(l, read)| (*l, read(stats))).collect();
        write_family(out, family.name, family.kind, family.help, &series);
    }
    if let Some(p) = process {
        write_family(
            out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            &[("", p.resident_bytes)],
        );
        write_family(
            out,
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            &[("", p.open_fds)],
        );
    }
}

fn write_family(out: &mut String, name: &str, kind: &str, help: &str, series: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in series {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field once, as a series of its own: fields set to distinct
    /// values each show up in exactly one line.
    #[test]
    // Safe code (formatting): long under Miri, which has nothing to find in it.
    #[cfg_attr(miri, ignore)]
    fn every_field_is_one_series() {
        let names = Stats::NAMES;
        let values: Vec<u64> = (0..names.len() as u64).map(|i| 1000 + i).collect();
        let stats = Stats::from_values(&values);
        let mut text = String::new();
        write_prometheus(&mut text, &stats, None);
        let series: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(series.len(), names.len(), "{text}");
        for (name, value) in names.iter().zip(&values) {
            let hits = series.iter().filter(|l| l.ends_with(&format!(" {value}"))).count();
            assert_eq!(hits, 1, "{name} ({value}) in\n{text}");
        }
        for family in FAMILIES {
            assert_eq!(
                family.kind == "counter",
                family.name.ends_with("_total"),
                "{}",
                family.name
            );
            assert!(text.contains(&format!("# TYPE {} {}\n", family.name, family.kind)));
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "reads /proc: not run under Miri")]
    fn process_figures_are_read() {
        let p = ProcessStats::read().expect("/proc/self");
        assert!(p.resident_bytes > 1 << 20, "{p:?}");
        assert!(p.open_fds >= 3, "{p:?}");
        let mut text = String::new();
        write_prometheus(&mut text, &Stats::default(), Some(p));
        assert!(text.contains(&format!("\nprocess_open_fds {}\n", p.open_fds)));
    }
}
