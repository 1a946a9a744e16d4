#!/usr/bin/env bash
# Every test of callpark, from a fresh Debian machine: installs what the tests need (the real
# Asterisk testbed in a debootstrap chroot on first use; the FreeSWITCH testbed's libraries and
# prompts; Chromium and playwright-core for the console's browser test; PostgreSQL for the
# store's tests on it), brings both testbeds up when they are not running, runs formatting, lints and every
# cargo test, then brings down what it started. Among the tests, tests/package.rs builds the
# Debian package around the debug binary and installs it into a Debian root of its own (made
# with debootstrap on first use, kept in /var/tmp/callpark-deb-test).
#
# Tests that need a PBX fail when it cannot be reached. The one exception: when no FreeSWITCH
# can be found at all (CALLPARK_FREESWITCH unset and none installed), the FreeSWITCH end-to-end
# tests are not run and the closing line counts them as skipped; with CI=true that is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

AST=contrib/testbed/asterisk/testbed.sh
FS=contrib/testbed/freeswitch/testbed.sh
# The targets that need the FreeSWITCH testbed: tests, and the benchmarks run once in test mode
# (the fault run's benchmark drives both PBXes).
FS_TESTS=(--test flows --test console --test sip_flows --test recovery --test freeswitch --test phones --test music --test cross_pbx --test api --test lots --test caller_id --test lamps --test faults_freeswitch --test lint_freeswitch_order --test doctor --test setup --test import_lync_e2e --test nodes)
FS_TARGETS=("${FS_TESTS[@]}" --bench freeswitch_park --bench faults --bench volume --bench takeover)
started_ast=0
started_fs=0
out=$(mktemp)
cleanup() {
    rm -f "$out"
    if [ "$started_fs" = 1 ]; then bash "$FS" down || true; fi
    if [ "$started_ast" = 1 ]; then bash "$AST" down || true; fi
}
trap cleanup EXIT

if ! command -v cargo >/dev/null; then
    echo "test-all: cargo is not installed; install Rust (rustup) first" >&2
    exit 1
fi
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt

if bash "$AST" status >/dev/null 2>&1; then
    echo "test-all: the Asterisk testbed is already running; leaving it up afterwards"
else
    started_ast=1
    bash "$AST" up
fi

fs_ok=1
if bash "$FS" status >/dev/null 2>&1; then
    echo "test-all: the FreeSWITCH testbed is already running; leaving it up afterwards"
else
    set +e
    bash "$FS" up
    rc=$?
    set -e
    if [ "$rc" = 0 ]; then
        started_fs=1
    elif [ "$rc" = 3 ]; then
        if [ "${CI:-}" = true ]; then
            echo "test-all: no FreeSWITCH found and CI=true: the FreeSWITCH end-to-end tests must run (set CALLPARK_FREESWITCH)" >&2
            exit 1
        fi
        echo "test-all: no FreeSWITCH found (set CALLPARK_FREESWITCH to a build or bundle): its end-to-end tests are skipped"
        fs_ok=0
    else
        echo "test-all: the FreeSWITCH testbed did not start" >&2
        exit 1
    fi
fi

# The attendant console's browser test (tests/console.rs): Debian's Chromium, and the driver
# (playwright-core, pinned in tests/console/package.json) from the npm registry.
if ! [ -x /usr/bin/chromium ]; then
    echo "test-all: apt-get install chromium (for the console's browser test)"
    apt-get -q update >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get -q -y install chromium >/dev/null
fi
if ! command -v npm >/dev/null; then
    echo "test-all: apt-get install npm (for the console's browser test)"
    apt-get -q update >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get -q -y install npm >/dev/null
fi
# The operator-side benchmark reads the API's sockets with ss (iproute2).
if ! command -v ss >/dev/null; then
    echo "test-all: apt-get install iproute2 (ss, for the operator-side benchmark)"
    apt-get -q update >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get -q -y install iproute2 >/dev/null
fi
# The store on PostgreSQL (tests/store_postgres.rs): each test makes a throwaway cluster with
# Debian's initdb and pg_ctl (under /usr/lib/postgresql/<version>/bin, not on PATH).
if ! command -v initdb >/dev/null && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
    echo "test-all: apt-get install postgresql (for the store's PostgreSQL tests)"
    apt-get -q update >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get -q -y install postgresql >/dev/null
fi
npm install --prefix tests/console --no-audit --no-fund --no-package-lock --loglevel=error >/dev/null
# The tests' scriptable SIP phone (tests/phone/phone.py, driven by crates/testkit/src/phone.rs) runs on
# PJSIP's pjsua2, a SIP stack nobody here wrote, so the PBXes see what real phones send (REFER
# with Replaces, re-INVITE holds, 302 deflections). PyPI's binary wheel is built for CPython
# 3.11 (manylinux); it goes into a venv of its own under target/.
if ! target/pjsua2-venv/bin/python -c 'import pjsua2' >/dev/null 2>&1; then
    echo "test-all: pip install pjsua2-python into target/pjsua2-venv (for the tests' SIP phone)"
    if ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
        apt-get -q update >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get -q -y install python3-venv >/dev/null
    fi
    rm -rf target/pjsua2-venv
    python3 -m venv target/pjsua2-venv
    target/pjsua2-venv/bin/pip install -q pjsua2-python==2.15.1.post1
fi

# The whole workspace: the binary crate at the top and the crates under crates/ (callpark-core,
# callpark-esl, callpark-lint), each with its unit tests and doc tests.
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
# callpark-core alone, without the `serde` feature the binary turns on.
cargo clippy --locked -p callpark-core --all-targets -- -D warnings

skipped=0
set +e
if [ "$fs_ok" = 1 ]; then
    # Benches are built (and run once each in test mode) so they cannot rot.
    cargo test --locked --no-fail-fast --workspace --all-targets 2>&1 | tee "$out"
    status=${PIPESTATUS[0]}
else
    # Every target of the crates under crates/, and the binary crate's but the FreeSWITCH ones.
    cargo test --locked --no-fail-fast --workspace --exclude callpark --all-targets 2>&1 | tee "$out"
    status=${PIPESTATUS[0]}
    targets=(--lib --bins)
    for f in tests/*.rs; do
        t=$(basename "$f" .rs)
        [[ " ${FS_TARGETS[*]} " == *" --test $t "* ]] || targets+=(--test "$t")
    done
    for f in benches/*.rs; do
        b=$(basename "$f" .rs)
        [[ " ${FS_TARGETS[*]} " == *" --bench $b "* ]] || targets+=(--bench "$b")
    done
    cargo test --locked --no-fail-fast -p callpark "${targets[@]}" 2>&1 | tee -a "$out"
    [ "${PIPESTATUS[0]}" = 0 ] || status=1
    # Counted, not run: the tests the FreeSWITCH test targets list (a harness-less benchmark
    # cannot list, it would run), plus each benchmark itself.
    listed=$(cargo test --locked -p callpark "${FS_TESTS[@]}" -- --list 2>/dev/null | grep -c ': test$' || true)
    benches=$(grep -o -- '--bench' <<<"${FS_TARGETS[*]}" | wc -l)
    skipped=$((listed + benches))
fi
# Doc tests (`--all-targets` leaves them out): the examples in the crates' API docs.
cargo test --locked --no-fail-fast --workspace --doc 2>&1 | tee -a "$out"
[ "${PIPESTATUS[0]}" = 0 ] || status=1
set -e
# One closing line for the whole run, summed over every test binary.
# A harness-less benchmark prints no `test result:` line: a failed one is named from cargo's
# list of failed targets, so the line never reads as if only the counted tests failed.
awk -v s="$skipped" '
    /^test result:/ { p += $4; f += $6 }
    /^error: [0-9]+ targets? failed:/ { listing = 1; next }
    listing && /^    `/ { gsub(/`/, ""); sub(/^ +/, ""); t = t (t ? ", " : "") $0; next }
    { listing = 0 }
    /^error: test failed, to rerun pass `/ { one = $0; sub(/.*pass `/, "", one); sub(/`.*/, "", one) }
    END {
        if (t == "" && one != "") t = one
        printf "test-all: %d passed, %d failed, %d skipped", p, f, s
        if (t != "") printf "; failed targets: %s", t
        printf "\n"
    }' "$out"
exit "$status"
