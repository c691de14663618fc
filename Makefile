# The two quick-start commands (`make demo`, `make test`) and the CI checks.
# Every target first makes sure the wasm32 target is installed: fresh machines
# set RUSTUP_AUTO_INSTALL=0, so rust-toolchain.toml alone does not install it.

.PHONY: demo test lint wasm-target python-deps system-deps

wasm-target:
	@rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || rustup target add wasm32-unknown-unknown

demo: wasm-target
	cargo run --release -- demo

# Python for the tests: the official SDKs (real clients) and pyarrow + duckdb (Parquet readers).
python-deps:
	python3 -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt

# Debian packages for the tests: promtool (package `prometheus`) for the alert
# rules' unit tests, and `chromium` to render the HTML reports headless.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SYSTEM_PACKAGES := $(if $(shell command -v promtool),,prometheus) $(if $(shell command -v chromium),,chromium)
system-deps:
	@[ -z "$(strip $(SYSTEM_PACKAGES))" ] || { $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null; }

test: wasm-target python-deps system-deps
	cargo test --workspace

lint: wasm-target
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo build -p shadowgate-core --target wasm32-unknown-unknown
