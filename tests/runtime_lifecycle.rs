//! Lifecycle corners of the reactor API from C (`tests/c/lifecycle_test.c`,
//! plain and with ASan + UBSan): a close_ex callback that releases its
//! connection, then gbase's close callback, which still gets the socket open;
//! topics shared in any order reach every reactor of the merged group.

use std::time::Duration;
use wsconn_testkit::{build_test_programs, run_checks};

const TIMEOUT: Duration = Duration::from_secs(60);

fn lifecycle_test(name: &str) {
    build_test_programs(&["lifecycle_test", "lifecycle_test_asan"]);
    run_checks(name, &[], 20, TIMEOUT);
}

#[test]
fn lifecycle_corners_from_c() {
    lifecycle_test("lifecycle_test");
}

#[test]
fn lifecycle_corners_from_c_asan() {
    lifecycle_test("lifecycle_test_asan");
}
