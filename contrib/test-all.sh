#!/usr/bin/env bash
# Every test of callpark, from a fresh Debian machine: installs what the tests need (the real
# Asterisk testbed in a debootstrap chroot, on first use), brings the testbed up when it is not
# running, runs formatting, lints and every cargo test, then brings down what it started.
# Tests that need Asterisk fail when it cannot be reached; nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

TESTBED=contrib/testbed/asterisk/testbed.sh
started=0
cleanup() {
    if [ "$started" = 1 ]; then
        bash "$TESTBED" down || true
    fi
}
trap cleanup EXIT

if ! command -v cargo >/dev/null; then
    echo "test-all: cargo is not installed; install Rust (rustup) first" >&2
    exit 1
fi
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt

if bash "$TESTBED" status >/dev/null 2>&1; then
    echo "test-all: the Asterisk testbed is already running; leaving it up afterwards"
else
    started=1
    bash "$TESTBED" up
fi

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
# Benches are built (and run once each in test mode) so they cannot rot.
out=$(mktemp)
trap 'rm -f "$out"; cleanup' EXIT
cargo test --locked --all-targets 2>&1 | tee "$out"
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { p += $4; f += $6 } END { printf "test-all: %d passed, %d failed\n", p, f }' "$out"
