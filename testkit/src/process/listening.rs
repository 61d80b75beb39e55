//! The line a server prints once it accepts connections, and how long to
//! wait for it.

use std::time::Duration;

/// How long a server may take to print its "listening on" line: a bound on a
/// hung start, not a measure of anything.
pub const SERVER_START_TIMEOUT: Duration = Duration::from_secs(20);

/// The port of a `[NAME ]listening on [HOST:]PORT` line, as every server of
/// the tests prints it once it accepts connections (it was started on port 0).
pub fn listening_port(line: &str) -> Option<u16> {
    let (_, rest) = line.split_once("listening on ")?;
    rest.trim().rsplit(':').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_the_line() {
        assert_eq!(listening_port("listening on 40123"), Some(40123));
        assert_eq!(listening_port("echo_server listening on 127.0.0.1:9998\n"), Some(9998));
        assert_eq!(listening_port("autobahn_standin listening on 127.0.0.1:1"), Some(1));
        assert_eq!(listening_port("open fd=7"), None);
        assert_eq!(listening_port("listening on 127.0.0.1:"), None);
    }
}
