# wsconn: top-level tasks.
#
#   make build      the Rust library (target/release/libwsconn.{so,a},
#                   include/wsconn.h) and the C examples
#   make run        build the library and c-examples/$(EXAMPLE), run it on port $(PORT)
#                   (default: echo_server 9998; open http://127.0.0.1:9998/)
#   make test       installs what the tests need (`make deps`), then formatting,
#                   clippy, build, and every test (`cargo test`, and the
#                   library's unit tests without TLS), with the io_uring
#                   transport built in: the runtime's tests run again on it
#                   (WSCONN_IO=uring, the tests URING_TESTS names)
#   make deps       tests/deps.sh: the Debian packages, Rust components and cargo
#                   tools the tests need, installed where missing (quiet when all
#                   are there; names them and stops when it cannot install)
#   make venv       target/venv: a Python with `websockets`, for the interop tests
#   make install    the C library, as a C library is installed (below)
#   make uninstall  removes what `make install` put there (same variables)
#   make clean
#
# `make install` puts, under $(DESTDIR):
#   $(INCLUDEDIR)/wsconn.h
#   $(LIBDIR)/libwsconn.so.X.Y.Z, its links libwsconn.so.X (the soname) and
#     libwsconn.so, and libwsconn.a (stripped: --strip-unneeded, -g)
#   $(PKGCONFIGDIR)/wsconn.pc, $(CMAKEDIR)/wsconnConfig{,Version}.cmake
#   $(MANDIR)/man3/wsconn.3, and in $(DOCDIR): README.md, CHANGELOG.md,
#     the C examples' sources (examples/) and a systemd socket and service
#     unit pair for echo_server (systemd/, from packaging/systemd/)
# Variables (make install PREFIX=$HOME/.local; no root needed where PREFIX
# is writable):
#   PREFIX        /usr/local
#   LIBDIR        $(PREFIX)/lib
#   INCLUDEDIR    $(PREFIX)/include
#   PKGCONFIGDIR  $(LIBDIR)/pkgconfig
#   CMAKEDIR      $(LIBDIR)/cmake/wsconn
#   MANDIR        $(PREFIX)/share/man
#   DOCDIR        $(PREFIX)/share/doc/wsconn
#   DESTDIR       empty; a staging root prepended to every path above (the
#                 installed files still name the paths without it)

# Cargo features the release libraries are built with besides the defaults
# (cargo's syntax, e.g. io-uring,wsconn-clib/io-uring for the io_uring
# transport). Exported: c-examples/ and tests/c/ build the libraries the same
# way, and `make test` sets it.
CARGO_FEATURES ?=
export CARGO_FEATURES
RELEASE_BUILD = $(CARGO) build --release $(if $(CARGO_FEATURES),--features $(CARGO_FEATURES))
# The tests that run a second time on the io_uring transport in `make test`:
# those that start servers (Rust and C) and their clients, the conformance
# suite, the hostile peers, the counters and the operations (drain, hand-over)
# (the library's unit tests and the rest run on epoll). Not
# autobahn_client: it tests the client role, which runs on epoll also in a
# ring's reactor (a minute of CI for nothing the ring does).
URING_TESTS = --lib --test io_transport --test runtime_rust --test runtime_backpressure \
	--test runtime_budget --test runtime_lifecycle --test runtime_pubsub --test runtime_timeouts \
	--test runtime_topics --test runtime_upgrade --test runtime_deflate_trim --test runtime_tls \
	--test runtime_api_null --test upgrade_c --test c_example_interop --test echo_server_interop \
	--test conformance --test hostile --test memory_budget --test tls_interop \
	--test runtime_stats --test operations

# Seconds of fuzzing per target in `make test` (fuzz/README: how to fuzz for hours).
FUZZ_SECONDS ?= 10
EXAMPLE ?= echo_server
PORT    ?= 9998
CARGO   ?= cargo
PYTHON3 ?= python3
# The tests look for the venv there (testkit/src/python.rs).
VENV     = target/venv

PREFIX       ?= /usr/local
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
CMAKEDIR     ?= $(LIBDIR)/cmake/wsconn
MANDIR       ?= $(PREFIX)/share/man
DOCDIR       ?= $(PREFIX)/share/doc/wsconn
INSTALL      ?= install
STRIP        ?= strip

# The one version (Cargo.toml's [workspace.package]); the soname is its major.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
MAJOR   := $(firstword $(subst ., ,$(VERSION)))
SO_FILE  = libwsconn.so.$(VERSION)
SONAME   = libwsconn.so.$(MAJOR)
# wsconn.pc, the CMake package and the man page, made for the paths above
# (a directory of its own for installs that run side by side, as the tests do).
GENERATED ?= target/install-files
EXAMPLES  = $(wildcard c-examples/*.c c-examples/*.h) c-examples/index.html
UNITS     = packaging/systemd/wsconn-echo.socket packaging/systemd/wsconn-echo.service

build:
	$(RELEASE_BUILD)
	$(MAKE) -C c-examples

# Builds only the example it runs (chat_server needs libhiredis-dev, echo_server nothing).
run:
	$(if $(filter chat_server,$(EXAMPLE)),bash tests/deps.sh hiredis)
	$(RELEASE_BUILD)
	$(MAKE) -C c-examples $(EXAMPLE)
	exec ./c-examples/$(EXAMPLE) $(PORT)

# The interop tests would create the venv themselves; doing it here first
# keeps `cargo test` output free of pip and surfaces a pip failure early.
test: CARGO_FEATURES = io-uring,wsconn-clib/io-uring
# Every build of `make test` starts from what the last left (or from nothing,
# in CI): incremental state would only take disk (gigabytes of it).
test: export CARGO_INCREMENTAL ?= 0
test: deps venv
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets --features io-uring -- -D warnings
	$(CARGO) clippy --no-default-features --all-targets -- -D warnings
	$(RELEASE_BUILD)
	$(MAKE) -C c-examples
	WSCONN_IO=uring $(CARGO) test --features $(CARGO_FEATURES) $(URING_TESTS)
	$(CARGO) test --features $(CARGO_FEATURES)
	$(CARGO) test -p wsconn --no-default-features --lib
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash fuzz/run-ci.sh
	bash fuzz/run-miri.sh

# The release build, generated files made for these paths, then the copies
# (see the top of this file).
install:
	$(RELEASE_BUILD)
	VERSION=$(VERSION) PREFIX=$(PREFIX) LIBDIR=$(LIBDIR) INCLUDEDIR=$(INCLUDEDIR) \
		CMAKEDIR=$(CMAKEDIR) CARGO=$(CARGO) PYTHON3=$(PYTHON3) \
		sh packaging/generate.sh $(GENERATED)
	$(INSTALL) -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) \
		$(DESTDIR)$(CMAKEDIR) $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(DOCDIR)/examples \
		$(DESTDIR)$(DOCDIR)/systemd
	$(INSTALL) -m 644 include/wsconn.h $(DESTDIR)$(INCLUDEDIR)/wsconn.h
	$(INSTALL) -m 755 target/release/libwsconn.so $(DESTDIR)$(LIBDIR)/$(SO_FILE)
	$(STRIP) --strip-unneeded $(DESTDIR)$(LIBDIR)/$(SO_FILE)
	ln -sfn $(SO_FILE) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sfn $(SONAME) $(DESTDIR)$(LIBDIR)/libwsconn.so
	$(INSTALL) -m 644 target/release/libwsconn.a $(DESTDIR)$(LIBDIR)/libwsconn.a
	$(STRIP) -g $(DESTDIR)$(LIBDIR)/libwsconn.a
	$(INSTALL) -m 644 $(GENERATED)/wsconn.pc $(DESTDIR)$(PKGCONFIGDIR)/wsconn.pc
	$(INSTALL) -m 644 $(GENERATED)/wsconnConfig.cmake $(GENERATED)/wsconnConfigVersion.cmake \
		$(DESTDIR)$(CMAKEDIR)
	$(INSTALL) -m 644 $(GENERATED)/wsconn.3 $(DESTDIR)$(MANDIR)/man3/wsconn.3
	$(INSTALL) -m 644 README.md CHANGELOG.md $(DESTDIR)$(DOCDIR)
	$(INSTALL) -m 644 $(EXAMPLES) $(DESTDIR)$(DOCDIR)/examples
	$(INSTALL) -m 644 $(UNITS) $(DESTDIR)$(DOCDIR)/systemd

# Removes exactly the files `make install` writes, then the directories that
# are wsconn's own (shared ones such as $(LIBDIR) stay, even when empty).
OWN_DIRS = $(wildcard $(DESTDIR)$(CMAKEDIR) $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR)/systemd \
	$(DESTDIR)$(DOCDIR))
uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/wsconn.h \
		$(addprefix $(DESTDIR)$(LIBDIR)/,$(SO_FILE) $(SONAME) libwsconn.so libwsconn.a) \
		$(DESTDIR)$(PKGCONFIGDIR)/wsconn.pc \
		$(addprefix $(DESTDIR)$(CMAKEDIR)/,wsconnConfig.cmake wsconnConfigVersion.cmake) \
		$(DESTDIR)$(MANDIR)/man3/wsconn.3 \
		$(addprefix $(DESTDIR)$(DOCDIR)/,README.md CHANGELOG.md) \
		$(addprefix $(DESTDIR)$(DOCDIR)/examples/,$(notdir $(EXAMPLES))) \
		$(addprefix $(DESTDIR)$(DOCDIR)/systemd/,$(notdir $(UNITS)))
	$(if $(OWN_DIRS),rmdir --ignore-fail-on-non-empty $(OWN_DIRS))

deps:
	@bash tests/deps.sh

venv:
	@if ! $(VENV)/bin/python -c 'import websockets' 2>/dev/null; then \
		echo "creating $(VENV) with websockets"; \
		$(PYTHON3) -m venv $(VENV) && \
		$(VENV)/bin/pip install -q 'websockets>=12' && \
		$(VENV)/bin/python -c 'import websockets'; \
	fi

# Benchmarks (not part of `make test`): wsconn against tokio-tungstenite,
# fastwebsockets and libwebsockets, side by side, the permessage-deflate rows
# against uWebSockets.js and the TLS (wss://) rows against libwebsockets on
# OpenSSL; then publish/subscribe fan-out against uWebSockets.js and the Redis
# relay (benches/fanout.sh). BENCH_ARGS=--quick for a ~2 minute smoke run of
# the first (--no-deflate / --no-tls without the deflate / TLS rows,
# --deflate-only / --tls-only with only them), FANOUT_ARGS=--quick for the
# second. Needs: apt-get install libwebsockets-dev pkg-config python3-venv openssl
bench:
	bash benches/run.sh $(BENCH_ARGS)
	bash benches/fanout.sh $(FANOUT_ARGS)

# The regression guard: every row of wsconn's servers in benches/results/latest.json
# against BASE (a results file saved from an earlier `make bench` on this
# machine), flagged when more than 5 % worse. Before a change:
#   cp benches/results/latest.json /tmp/base.json
# after it: make bench && make bench-compare BASE=/tmp/base.json
BASE ?= benches/results/baseline.json
bench-compare:
	python3 benches/compare.py $(BASE) benches/results/latest.json

clean:
	$(MAKE) -C c-examples clean
	$(CARGO) clean

.PHONY: build run test deps install uninstall venv bench bench-compare clean
