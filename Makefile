# wsconn: top-level tasks.
#
#   make build   the Rust library (target/release/libwsconn.{so,a},
#                include/wsconn.h) and the C examples
#   make run     build, then run c-examples/$(EXAMPLE) on port $(PORT)
#                (default: echo_server 9998; open http://127.0.0.1:9998/)
#   make test    formatting, clippy, build, and every test (`cargo test`, and
#                the library's unit tests without TLS)
#   make venv    target/venv: a Python with `websockets`, for the interop tests
#   make clean

# Seconds of fuzzing per target in `make test` (fuzz/README: how to fuzz for hours).
FUZZ_SECONDS ?= 20
EXAMPLE ?= echo_server
PORT    ?= 9998
CARGO   ?= cargo
PYTHON3 ?= python3
# tests/c_example_interop.rs looks for the venv there.
VENV     = target/venv

build:
	$(CARGO) build --release
	$(MAKE) -C c-examples

run: build
	exec ./c-examples/$(EXAMPLE) $(PORT)

# The interop tests would create the venv themselves; doing it here first
# keeps `cargo test` output free of pip and surfaces a pip failure early.
test: venv
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy --no-default-features --all-targets -- -D warnings
	$(CARGO) build --release
	$(MAKE) -C c-examples
	$(CARGO) test
	$(CARGO) test --no-default-features --lib
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash fuzz/run-ci.sh
	bash fuzz/run-miri.sh

venv:
	@if ! $(VENV)/bin/python -c 'import websockets' 2>/dev/null; then \
		echo "creating $(VENV) with websockets"; \
		$(PYTHON3) -m venv $(VENV) && \
		$(VENV)/bin/pip install -q 'websockets>=12' && \
		$(VENV)/bin/python -c 'import websockets'; \
	fi

# Benchmarks (not part of `make test`): wsconn against tokio-tungstenite,
# fastwebsockets and libwebsockets, side by side. BENCH_ARGS=--quick for a
# ~2 minute smoke run. Needs: apt-get install libwebsockets-dev pkg-config python3-venv
bench:
	bash benches/run.sh $(BENCH_ARGS)

clean:
	$(MAKE) -C c-examples clean
	$(CARGO) clean

.PHONY: build run test venv bench clean
