//! The installed library as a C programmer meets it. `make install` into a
//! temporary prefix; then, in a directory outside the source tree, a small
//! program (tests/install/echo_check.c) built with `pkg-config` (shared),
//! `pkg-config --static`, and a CMakeLists.txt using
//! `find_package(wsconn MAJOR.MINOR CONFIG REQUIRED)` (both imported
//! targets), each checked with readelf and run against c-examples/echo_server
//! for an echo, while `find_package` of the next minor version fails; then
//! `make uninstall`, which must leave no file. A second install goes through
//! DESTDIR with its own LIBDIR and INCLUDEDIR. The systemd units installed
//! with the docs pass `systemd-analyze verify` (their ExecStart pointed at
//! the built echo_server).
//!
//! Nothing here skips: a missing pkg-config, cmake, cc, readelf or make fails
//! the test (`.ci/run` installs them).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use wsconn_testkit::{build_examples, declared_functions, example, root, run, run_ok, LoggedServer as Server};

const BUILD_TIMEOUT: Duration = Duration::from_secs(900);
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
const VERSION: &str = env!("CARGO_PKG_VERSION");
const MAJOR: &str = env!("CARGO_PKG_VERSION_MAJOR");
const MINOR: &str = env!("CARGO_PKG_VERSION_MINOR");

/// A directory under the system's temporary directory, outside the source
/// tree; removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("wsconn-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }

    fn join(&self, path: &str) -> PathBuf {
        self.0.join(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn require_tools() {
    for (tool, package) in [
        ("pkg-config", "pkg-config"),
        ("cmake", "cmake"),
        ("cc", "gcc"),
        ("readelf", "binutils"),
        ("make", "make"),
        ("systemd-analyze", "systemd"),
    ] {
        assert!(
            Command::new(tool).arg("--version").output().is_ok(),
            "`{tool}` is not installed, and the install tests need it: .ci/run installs it \
             (on Debian: apt-get install {package})"
        );
    }
}

/// Runs `cmd` and returns its stdout; panics with its output if it fails.
fn ok(cmd: Command, what: &str) -> String {
    match run_ok(cmd, BUILD_TIMEOUT) {
        Ok(done) => done.stdout,
        Err(e) => panic!("{what}: {e}"),
    }
}

/// `make TARGET VAR=VALUE…` at the repository root, with the generated files
/// in `tmp` (installs in other tests run at the same time).
fn make(target: &str, vars: &[(&str, String)], tmp: &TempDir) {
    let mut cmd = Command::new("make");
    cmd.arg("-C").arg(root()).arg(target);
    for (name, value) in vars {
        cmd.arg(format!("{name}={value}"));
    }
    cmd.arg(format!("GENERATED={}", tmp.join("generated").display()));
    ok(cmd, &format!("make {target}"));
}

/// Every file and symlink under `dir`, relative to it.
fn files(dir: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.is_symlink() {
                pending.push(path);
            } else {
                found.insert(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    found
}

/// What `make install` must put under a prefix laid out as `lib` and `include` say.
fn expected_files(lib: &str, include: &str) -> BTreeSet<String> {
    let mut expected: BTreeSet<String> = [
        format!("{include}/wsconn.h"),
        format!("{lib}/libwsconn.so.{VERSION}"),
        format!("{lib}/libwsconn.so.{MAJOR}"),
        format!("{lib}/libwsconn.so"),
        format!("{lib}/libwsconn.a"),
        format!("{lib}/pkgconfig/wsconn.pc"),
        format!("{lib}/cmake/wsconn/wsconnConfig.cmake"),
        format!("{lib}/cmake/wsconn/wsconnConfigVersion.cmake"),
        "share/man/man3/wsconn.3".into(),
        "share/doc/wsconn/README.md".into(),
        "share/doc/wsconn/CHANGELOG.md".into(),
        "share/doc/wsconn/examples/index.html".into(),
        "share/doc/wsconn/systemd/wsconn-echo.socket".into(),
        "share/doc/wsconn/systemd/wsconn-echo.service".into(),
    ]
    .into();
    for example in files(&root().join("c-examples")) {
        if example.ends_with(".c") || example.ends_with(".h") {
            expected.insert(format!("share/doc/wsconn/examples/{example}"));
        }
    }
    expected
}

/// `readelf ARGS FILE`'s output.
fn readelf(args: &[&str], file: &Path) -> String {
    let mut cmd = Command::new("readelf");
    cmd.args(args).arg(file);
    ok(cmd, "readelf")
}

/// The NEEDED entries of an ELF file.
fn needed(file: &Path) -> Vec<String> {
    readelf(&["-d"], file)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1)?.split(']').next().map(str::to_string))
        .collect()
}

/// The installed libraries: soname, links, stripped, and the man page.
fn check_libraries(lib: &Path, man: &Path) {
    let real = lib.join(format!("libwsconn.so.{VERSION}"));
    let soname = format!("libwsconn.so.{MAJOR}");
    let dynamic = readelf(&["-d"], &real);
    assert!(
        dynamic.contains(&format!("Library soname: [{soname}]")),
        "{} has no soname {soname}:\n{dynamic}",
        real.display()
    );
    let link = |name: &str| std::fs::read_link(lib.join(name)).map(|p| p.display().to_string());
    assert_eq!(link(&soname).ok(), Some(format!("libwsconn.so.{VERSION}")));
    assert_eq!(link("libwsconn.so").ok(), Some(soname));
    for library in [real, lib.join("libwsconn.a")] {
        let sections = readelf(&["-S", "-W"], &library);
        assert!(!sections.contains(".debug_"), "{} is not stripped", library.display());
    }
    let page = std::fs::read_to_string(man).expect("wsconn.3 is installed");
    for function in declared_functions() {
        assert!(page.contains(&format!("{function}(")), "wsconn(3) lacks {function}");
    }
}

/// `pkg-config ARGS wsconn` against the installed wsconn.pc, split into words.
fn pkg_config(pc_dir: &Path, args: &[&str]) -> Vec<String> {
    let mut cmd = Command::new("pkg-config");
    cmd.env("PKG_CONFIG_PATH", pc_dir).args(args).arg("wsconn");
    ok(cmd, "pkg-config").split_whitespace().map(str::to_string).collect()
}

/// A CMake project of one C file, `echo_check.c`, using the installed package.
fn cmake_project(dir: &Path, version: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(root().join("tests/install/echo_check.c"), dir.join("echo_check.c")).unwrap();
    let lists = format!(
        "cmake_minimum_required(VERSION 3.13)\n\
         project(echo_check C)\n\
         find_package(wsconn {version} CONFIG REQUIRED)\n\
         add_executable(echo_check_cmake echo_check.c)\n\
         target_link_libraries(echo_check_cmake PRIVATE wsconn::wsconn)\n\
         add_executable(echo_check_cmake_static echo_check.c)\n\
         target_link_libraries(echo_check_cmake_static PRIVATE wsconn::wsconn_static)\n"
    );
    std::fs::write(dir.join("CMakeLists.txt"), lists).unwrap();
}

/// `cmake` configuring `dir` into `dir/build`; `find` tells it where wsconn
/// is, e.g. `CMAKE_PREFIX_PATH=PREFIX`.
fn cmake_configure(dir: &Path, find: &str) -> Command {
    let mut cmd = Command::new("cmake");
    cmd.arg("-S").arg(dir).arg("-B").arg(dir.join("build"));
    cmd.arg(format!("-D{find}")).env_remove("CMAKE_PREFIX_PATH");
    cmd
}

/// Configures and builds `dir`'s CMake project (see `cmake_configure`).
fn cmake_build(dir: &Path, find: &str) {
    ok(cmake_configure(dir, find), "cmake (configure)");
    let mut build = Command::new("cmake");
    build.arg("--build").arg(dir.join("build"));
    ok(build, "cmake --build");
}

/// `find_package(wsconn MAJOR.MINOR+1)` must fail: minor versions of 0.x
/// change the API.
fn assert_next_minor_refused(tmp: &TempDir, prefix: &Path) {
    let next_minor = MINOR.parse::<u32>().unwrap() + 1;
    let project = tmp.join("newer");
    cmake_project(&project, &format!("{MAJOR}.{next_minor}"));
    let find = format!("CMAKE_PREFIX_PATH={}", prefix.display());
    let done = run(cmake_configure(&project, &find), BUILD_TIMEOUT).expect("cmake runs");
    assert!(
        !done.status.success() && done.stderr.contains("considered but not accepted"),
        "find_package(wsconn {MAJOR}.{next_minor}) accepted {VERSION}: {}",
        done.report()
    );
}

/// `cc echo_check.c ARGS -o OUT` in `dir`.
fn cc(dir: &Path, args: &[String], out: &str) -> PathBuf {
    let mut cmd = Command::new("cc");
    cmd.current_dir(dir)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "echo_check.c"])
        .args(args)
        .args(["-o", out]);
    ok(cmd, &format!("cc for {out}"));
    dir.join(out)
}

/// Runs an echo_check binary against the echo server at `url`.
fn echo(binary: &Path, url: &str, library_path: Option<&Path>) {
    let mut cmd = Command::new(binary);
    cmd.arg(url).env_remove("LD_LIBRARY_PATH");
    if let Some(dir) = library_path {
        cmd.env("LD_LIBRARY_PATH", dir);
    }
    let done = run(cmd, RUN_TIMEOUT).unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
    assert!(
        done.status.success() && done.stdout.contains("echo ok"),
        "{} found no echo: {}",
        binary.display(),
        done.report()
    );
}

#[test]
fn installed_library_builds_and_runs_external_programs() {
    require_tools();
    let tmp = TempDir::new("install");
    let prefix = tmp.join("prefix");
    let vars = [("PREFIX", prefix.display().to_string())];
    make("install", &vars, &tmp);
    assert_eq!(files(&prefix), expected_files("lib", "include"), "installed files");
    let lib = prefix.join("lib");
    check_libraries(&lib, &prefix.join("share/man/man3/wsconn.3"));

    // The external program, outside the source tree.
    let consumer = tmp.join("consumer");
    cmake_project(&consumer, &format!("{MAJOR}.{MINOR}"));
    let pc_dir = lib.join("pkgconfig");
    assert_eq!(pkg_config(&pc_dir, &["--modversion"]), [VERSION]);
    let shared_flags = pkg_config(&pc_dir, &["--cflags", "--libs"]);
    let shared = cc(&consumer, &shared_flags, "echo_check_pc");
    let mut static_flags = pkg_config(&pc_dir, &["--cflags"]);
    static_flags.push("-Wl,-Bstatic".into());
    static_flags.extend(pkg_config(&pc_dir, &["--static", "--libs"]));
    let static_ = cc(&consumer, &static_flags, "echo_check_pc_static");
    cmake_build(&consumer, &format!("CMAKE_PREFIX_PATH={}", prefix.display()));
    assert_next_minor_refused(&tmp, &prefix);
    let cmake_shared = consumer.join("build/echo_check_cmake");
    let cmake_static = consumer.join("build/echo_check_cmake_static");

    let soname = format!("libwsconn.so.{MAJOR}");
    for binary in [&shared, &cmake_shared] {
        assert!(
            needed(binary).contains(&soname),
            "{} does not need {soname}",
            binary.display()
        );
    }
    for binary in [&static_, &cmake_static] {
        let deps = needed(binary);
        assert!(
            !deps.iter().any(|d| d.starts_with("libwsconn")),
            "{} is linked against the shared library: {deps:?}",
            binary.display()
        );
    }

    build_examples();
    let mut server = Server::start(&example("echo_server"), &["0"], &[], "install-echo_server");
    let port = server.wait_for_port();
    server.wait_until_accepting(port);
    let url = format!("ws://127.0.0.1:{port}/echo");
    echo(&shared, &url, Some(&lib));
    echo(&static_, &url, None);
    echo(&cmake_shared, &url, None); // CMake gave it a runpath to the prefix
    echo(&cmake_static, &url, None);
    server.terminate();
    verify_units(&prefix.join("share/doc/wsconn/systemd"), &tmp);

    make("uninstall", &vars, &tmp);
    assert_eq!(files(&prefix), BTreeSet::new(), "files left after make uninstall");
}

/// The installed socket and service units, as systemd reads them, with the
/// service's program pointed at the built echo_server (the unit names an
/// install path that nothing here installs).
fn verify_units(installed: &Path, tmp: &TempDir) {
    let units = tmp.join("units");
    std::fs::create_dir_all(&units).unwrap();
    let socket = std::fs::read_to_string(installed.join("wsconn-echo.socket")).unwrap();
    assert!(
        socket.contains("\nListenStream=127.0.0.1:9998\n") && socket.contains("\nAccept=no\n"),
        "{socket}"
    );
    std::fs::write(units.join("wsconn-echo.socket"), socket).unwrap();
    let service = std::fs::read_to_string(installed.join("wsconn-echo.service")).unwrap();
    let program = "/usr/local/bin/echo_server ";
    assert!(service.contains(&format!("\nExecStart={program}")), "{service}");
    assert!(service.contains("\nKillSignal=SIGTERM\n"), "{service}");
    let built = format!("{} ", example("echo_server_static").display());
    std::fs::write(units.join("wsconn-echo.service"), service.replace(program, &built)).unwrap();
    let mut verify = Command::new("systemd-analyze");
    verify
        .current_dir(&units)
        .args(["verify", "./wsconn-echo.socket", "./wsconn-echo.service"]);
    let done = run(verify, RUN_TIMEOUT).unwrap_or_else(|e| panic!("systemd-analyze: {e}"));
    assert!(
        done.status.success() && done.stderr.trim().is_empty(),
        "systemd-analyze verify: {}",
        done.report()
    );
}

#[test]
fn destdir_install_stages_everything_and_names_the_final_paths() {
    require_tools();
    let tmp = TempDir::new("install-destdir");
    let stage = tmp.join("stage");
    // Nothing may be written there: every file goes under DESTDIR.
    let prefix = format!("/opt/wsconn-test-{}", std::process::id());
    let vars = [
        ("DESTDIR", stage.display().to_string()),
        ("PREFIX", prefix.clone()),
        ("LIBDIR", format!("{prefix}/lib64")),
        ("INCLUDEDIR", format!("{prefix}/include/wsconn")),
    ];
    make("install", &vars, &tmp);
    assert!(
        !Path::new(&prefix).exists(),
        "make install wrote outside DESTDIR, into {prefix}"
    );
    let staged = stage.join(prefix.trim_start_matches('/'));
    let expected: BTreeSet<String> = expected_files("lib64", "include/wsconn")
        .into_iter()
        .map(|f| format!("{}/{f}", prefix.trim_start_matches('/')))
        .collect();
    assert_eq!(files(&stage), expected, "staged files");
    check_libraries(&staged.join("lib64"), &staged.join("share/man/man3/wsconn.3"));

    // The installed files name the final paths, never the staging directory.
    let pc = std::fs::read_to_string(staged.join("lib64/pkgconfig/wsconn.pc")).unwrap();
    assert!(pc.contains(&format!("libdir={prefix}/lib64\n")), "{pc}");
    assert!(pc.contains(&format!("includedir={prefix}/include/wsconn\n")), "{pc}");
    for file in ["lib64/pkgconfig/wsconn.pc", "lib64/cmake/wsconn/wsconnConfig.cmake"] {
        let text = std::fs::read_to_string(staged.join(file)).unwrap();
        assert!(
            !text.contains(&stage.display().to_string()),
            "{file} names DESTDIR:\n{text}"
        );
    }
    // The CMake package finds its files relative to itself, so it works staged
    // (lib64 is not on Debian's search path: wsconn_DIR names the package).
    cmake_project(&tmp.join("consumer"), &format!("{MAJOR}.{MINOR}"));
    let package = staged.join("lib64/cmake/wsconn");
    cmake_build(&tmp.join("consumer"), &format!("wsconn_DIR={}", package.display()));

    make("uninstall", &vars, &tmp);
    assert_eq!(files(&stage), BTreeSet::new(), "files left after make uninstall");
}
