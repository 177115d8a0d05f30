#!/usr/bin/env bash
# Runs kiln's whole test suite on a Debian/Ubuntu machine, as root: installs the Debian packages the
# tests need, starts real registries on free loopback ports, and runs every test, the privileged
# ones included (KILN_REQUIRE_PRIVILEGED=1 turns a missing capability into a failure).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/packages.sh
source scripts/lib/registry.sh
source scripts/lib/debian.sh
source scripts/lib/emulation.sh
source scripts/lib/rootless.sh

install_packages "${KILN_TEST_PACKAGES[@]}"
ensure_rust
ensure_spdx_tools
# Foreign-platform builds: binfmt_misc with qemu-user-static's emulators, and busybox for arm64
# and armhf (cached between runs).
emulation_setup
foreign_busybox "${KILN_TEST_BUSYBOX_CACHE:-$HOME/.cache/kiln/test-busybox}"

# An ordinary user with subordinate ids for the rootless tests.
rootless_user_setup

trap registry_stop_all EXIT

# The Debian base for the real-Dockerfile tests, made while the tests compile.
debian_base_start

registry_start plain
export KILN_TEST_REGISTRY="$REGISTRY_ADDR"

htdir=$(mktemp -d /tmp/kiln-htpasswd.XXXXXX)
KILN_REGISTRY_DIRS+=("$htdir")
htpasswd -Bbn kiln-user kiln-secret-pw >"$htdir/htpasswd"
registry_start basic "$htdir/htpasswd"
export KILN_TEST_REGISTRY_BASIC="$REGISTRY_ADDR"
export KILN_TEST_REGISTRY_USER=kiln-user
export KILN_TEST_REGISTRY_PASSWORD=kiln-secret-pw

export KILN_REQUIRE_PRIVILEGED="${KILN_REQUIRE_PRIVILEGED:-1}"
# runc is installed above, so the runc executor tests must run too.
export KILN_REQUIRE_RUNC="${KILN_REQUIRE_RUNC:-1}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# One build from a fresh clone: incremental state would only cost disk and time.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

echo "registries: plain $KILN_TEST_REGISTRY, basic-auth $KILN_TEST_REGISTRY_BASIC"
cargo fmt --all --check
# builder-core's module graph: no import circles, at most three imports back up the layers.
python3 scripts/modgraph.py
cargo clippy --workspace --all-targets --locked -- -D warnings
# The library as an embedder builds it (no `testing` feature): every public type nameable, no warnings.
cargo clippy -p kiln-builder-core --lib --locked -- -D warnings
cargo build --workspace --all-targets --locked
# The API docs: every link resolves, nothing warns (the doctests run with cargo test).
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --locked
# Every test binary runs even after one fails, so that one run shows every failure.
cargo test --workspace --locked --no-fail-fast
