#!/usr/bin/env bash
# callpark's real Asterisk testbed: Debian sid's `asterisk` package in a debootstrap chroot,
# configured from etc/ beside this script, listening on 127.0.0.1 only.
#
#   testbed.sh up              install (first time), copy configs, start, wait for ARI
#   testbed.sh down            stop Asterisk, unmount; 0 when nothing ran
#   testbed.sh status          0 when ARI answers
#   testbed.sh cli "COMMAND"   asterisk -rx COMMAND inside the chroot
#   testbed.sh reload          copy configs again, `core reload`
#   testbed.sh env             connection facts (testbed.env) plus the chroot path
#   testbed.sh log [N]         last N lines of Asterisk's full log
#
# The chroot lives at $CALLPARK_TESTBED_ROOT (default in testbed.env). Needs root.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
# shellcheck source=testbed.env
. "$HERE/testbed.env"

ROOT=${CALLPARK_TESTBED_ROOT:-$CALLPARK_TESTBED_DEFAULT_ROOT}
ROOT=${ROOT%/}
case "$ROOT" in
*[[:space:]]*) echo "testbed: error: CALLPARK_TESTBED_ROOT must be an absolute path without spaces" >&2 && exit 1 ;;
/?*) ;;
*) echo "testbed: error: CALLPARK_TESTBED_ROOT must be an absolute path, not '$ROOT'" >&2 && exit 1 ;;
esac
PACKAGES=(asterisk asterisk-modules asterisk-core-sounds-en asterisk-moh-opsound-wav)
MARKER=$ROOT/.callpark-testbed-installed
PIDFILE=$ROOT/run/callpark-testbed.pid
LOGDIR=$ROOT/var/log/asterisk
DIALPLAN=$REPO/dialplan/asterisk/callpark.conf
# sid's Release file may be past its Valid-Until date; the packages are still what we want.
APT=(apt-get -q -y -o Acquire::Check-Valid-Until=false -o Dpkg::Use-Pty=0
    -o APT::Install-Recommends=false)
ARI_WAIT=${CALLPARK_TESTBED_ARI_WAIT:-60}

say() { echo "testbed: $*"; }
die() {
    echo "testbed: error: $*" >&2
    exit 1
}

need_root() {
    [ "$(id -u)" = 0 ] || die "run as root: debootstrap, chroot and mount need it"
}

ari_get() {
    curl -fsS -m 5 -u "$CALLPARK_TESTBED_ARI_USER:$CALLPARK_TESTBED_ARI_PASSWORD" \
        "$CALLPARK_TESTBED_ARI_URL$1"
}

ari_answers() { ari_get /ari/asterisk/info >/dev/null 2>&1; }

in_root() {
    chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

# The pid of the testbed's Asterisk, if one runs: our pid file first, else any process whose
# root directory is the chroot (an Asterisk whose pid file was lost).
asterisk_pids() {
    local real p
    real=$(readlink -f "$ROOT" 2>/dev/null) || return 0
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$real" ] || continue
        [ "$(cat "$p/comm" 2>/dev/null)" = asterisk ] && echo "${p#/proc/}"
    done
    return 0
}

running_pid() {
    local pid
    if [ -f "$PIDFILE" ]; then
        pid=$(cat "$PIDFILE")
        if [ -n "$pid" ] && [ -d "/proc/$pid" ] &&
            [ "$(readlink "/proc/$pid/root")" = "$(readlink -f "$ROOT")" ]; then
            echo "$pid"
            return 0
        fi
    fi
    asterisk_pids | head -n 1
}

log_tail() {
    local f
    for f in "$LOGDIR/messages" "$LOGDIR/console.log"; do
        [ -s "$f" ] || continue
        echo "---- last lines of ${f#"$ROOT"} (in the chroot) ----" >&2
        tail -n 40 "$f" >&2
    done
}

ensure_host_tools() {
    local missing=()
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v curl >/dev/null || missing+=(curl)
    [ ${#missing[@]} = 0 ] && return 0
    say "installing on the host: ${missing[*]}"
    apt-get -q update >/dev/null || die "apt-get update failed on the host"
    DEBIAN_FRONTEND=noninteractive apt-get -q -y install "${missing[@]}" >/dev/null 2>&1 ||
        die "could not install ${missing[*]} on the host"
}

# Every mount point under the chroot, deepest first.
mounts_under_root() {
    local real
    real=$(readlink -f "$ROOT" 2>/dev/null) || return 0
    findmnt -rn -o TARGET | awk -v r="$real" '$0 == r || index($0, r "/") == 1' | sort -r
}

unmount_all() {
    local m
    for m in $(mounts_under_root); do
        umount "$m" 2>/dev/null || umount -l "$m" ||
            die "cannot unmount $m; stop what uses it and run down again"
    done
}

mount_all() {
    mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
    mountpoint -q "$ROOT/dev" || mount --bind /dev "$ROOT/dev"
}

install_chroot() {
    if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "${PACKAGES[*]}" ]; then
        return 0
    fi
    local t0=$SECONDS
    if [ -f "$MARKER" ]; then
        say "package list changed: installing ${PACKAGES[*]} into $ROOT"
    else
        if [ -e "$ROOT" ]; then
            say "$ROOT has no completed install: making it again"
            unmount_all
            # --one-file-system: never descend into a mount left behind (e.g. the host's /dev).
            rm -rf --one-file-system "$ROOT"
        fi
        mkdir -p "$(dirname "$ROOT")"
        say "debootstrap --variant=minbase sid $ROOT (about 30 s)"
        debootstrap --variant=minbase sid "$ROOT" >"$ROOT.debootstrap.log" 2>&1 || {
            tail -n 30 "$ROOT.debootstrap.log" >&2
            die "debootstrap failed (whole log: $ROOT.debootstrap.log)"
        }
        rm -f "$ROOT.debootstrap.log"
        # No init in the chroot: keep maintainer scripts from trying to start services.
        printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
        chmod 755 "$ROOT/usr/sbin/policy-rc.d"
    fi
    cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
    say "apt-get install ${PACKAGES[*]} (about 20 s)"
    {
        in_root "${APT[@]}" update && in_root "${APT[@]}" install "${PACKAGES[@]}" &&
            in_root apt-get clean
    } >"$ROOT/apt.log" 2>&1 || {
        tail -n 30 "$ROOT/apt.log" >&2
        die "apt-get in the chroot failed (whole log: $ROOT/apt.log)"
    }
    # The package's pristine configuration: every `up`/`reload` starts again from it.
    rm -rf "$ROOT/etc/asterisk.dist"
    cp -a "$ROOT/etc/asterisk" "$ROOT/etc/asterisk.dist"
    # root in these sandboxes cannot read files owned by other users (the package's
    # `asterisk` user): Asterisk runs as root and owns everything it touches.
    mkdir -p "$ROOT/run/asterisk" "$ROOT/var/cache/asterisk"
    chown -R root:root "$ROOT/etc/asterisk" "$ROOT/etc/asterisk.dist" "$ROOT/var/lib/asterisk" \
        "$ROOT/var/log/asterisk" "$ROOT/var/spool/asterisk" "$ROOT/var/cache/asterisk" \
        "$ROOT/run/asterisk" "$ROOT/usr/share/asterisk"
    echo "${PACKAGES[*]}" >"$MARKER"
    # shellcheck disable=SC2016 # ${Version} is dpkg-query's format, not a shell variable
    say "installed asterisk $(in_root dpkg-query -W -f '${Version}' asterisk) in $((SECONDS - t0)) s"
}

sync_config() {
    [ -f "$DIALPLAN" ] || die "missing $DIALPLAN (write it, or generate it with: callpark dialplan asterisk)"
    rm -rf "$ROOT/etc/asterisk"
    cp -a "$ROOT/etc/asterisk.dist" "$ROOT/etc/asterisk"
    cp "$HERE"/etc/*.conf "$ROOT/etc/asterisk/"
    cp "$DIALPLAN" "$ROOT/etc/asterisk/callpark.conf"
    # pbx_config warns that users.conf is deprecated whenever the file exists.
    rm -f "$ROOT/etc/asterisk/users.conf"
    chown -R root:root "$ROOT/etc/asterisk"
    mkdir -p "$ROOT/run/asterisk" "$ROOT/var/cache/asterisk"
    # Host paths under the chroot resolve inside it too ($ROOT$ROOT -> /), so callpark (on the
    # host) can hand Asterisk the path of a file it keeps in a data_dir under $ROOT.
    mkdir -p "$ROOT$(dirname "$ROOT")"
    [ -L "$ROOT$ROOT" ] || ln -sfn / "$ROOT$ROOT"
    # The callpark-custom music class must have a file, or Asterisk drops the class.
    local moh=$ROOT$CALLPARK_TESTBED_MOH_CUSTOM_DIR
    mkdir -p "$moh"
    if [ -z "$(ls -A "$moh")" ]; then
        cp "$ROOT/usr/share/asterisk/moh/macroform-cold_day.wav" "$moh/"
    fi
}

# Modules listed in etc/modules.conf that Asterisk did not load.
missing_modules() {
    local loaded m
    loaded=$(in_root asterisk -rx "module show" 2>/dev/null) || return 0
    sed -n 's/^load *=> *\([^ ;]*\).*/\1/p' "$HERE/etc/modules.conf" | while read -r m; do
        grep -q "^$m " <<<"$loaded" || echo "$m"
    done
}

print_facts() {
    local info version
    info=$(ari_get /ari/asterisk/info 2>/dev/null) || info=
    version=$(sed -n 's/.*"version":"\([^"]*\)".*/\1/p' <<<"$info")
    echo "asterisk ${version:-?} pid ${1:-?} chroot $ROOT"
    echo "  ARI  $CALLPARK_TESTBED_ARI_URL  user $CALLPARK_TESTBED_ARI_USER password $CALLPARK_TESTBED_ARI_PASSWORD  app $CALLPARK_TESTBED_ARI_APP"
    echo "  AMI  $CALLPARK_TESTBED_AMI_HOST:$CALLPARK_TESTBED_AMI_PORT  user $CALLPARK_TESTBED_AMI_USER secret $CALLPARK_TESTBED_AMI_SECRET"
    echo "  SIP  udp $CALLPARK_TESTBED_SIP_BIND  (endpoint alice -> $CALLPARK_TESTBED_SIP_ALICE_CONTACT)"
    echo "  logs $LOGDIR/{messages,full}"
}

# Serialize up/down/reload: test binaries may call `up` at the same time.
lock() {
    mkdir -p "$(dirname "$ROOT")"
    exec 9>"$ROOT.lock"
    flock -w 600 9 || die "another testbed.sh holds $ROOT.lock"
}

# A start that went wrong leaves nothing behind: log shown, Asterisk stopped, mounts gone.
fail_start() {
    log_tail
    stop_asterisk
    unmount_all
    die "$1"
}

cmd_up() {
    need_root
    lock
    local pid t0
    pid=$(running_pid)
    if [ -n "$pid" ] && ari_answers; then
        say "already running"
        print_facts "$pid"
        return 0
    fi
    if [ -z "$pid" ] && ari_answers; then
        die "$CALLPARK_TESTBED_ARI_URL answers but no testbed Asterisk runs in $ROOT: another server holds the port"
    fi
    ensure_host_tools
    install_chroot
    if [ -n "$pid" ]; then
        say "Asterisk (pid $pid) runs but ARI does not answer: restarting it"
        stop_asterisk
    fi
    sync_config
    mount_all
    local f
    for f in messages full console.log; do
        if [ -f "$LOGDIR/$f" ]; then mv -f "$LOGDIR/$f" "$LOGDIR/$f.1"; fi
    done
    t0=$SECONDS
    # setsid: Asterisk outlives this script and the shell or CI job that ran it.
    setsid chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        LANG=C.UTF-8 /usr/sbin/asterisk -f -n -U root -G root \
        </dev/null >"$LOGDIR/console.log" 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$PIDFILE"
    say "started Asterisk (pid $pid); waiting up to ${ARI_WAIT} s for ARI"
    while ! ari_answers; do
        kill -0 "$pid" 2>/dev/null || fail_start "Asterisk exited during start-up (see the log above)"
        [ $((SECONDS - t0)) -lt "$ARI_WAIT" ] ||
            fail_start "ARI did not answer at $CALLPARK_TESTBED_ARI_URL within ${ARI_WAIT} s"
        sleep 0.5
    done
    timeout 30 chroot "$ROOT" asterisk -rx "core waitfullybooted" >/dev/null ||
        fail_start "Asterisk did not finish booting within 30 s"
    local missing
    missing=$(missing_modules)
    [ -z "$missing" ] ||
        fail_start "modules listed in etc/modules.conf did not load: $(echo "$missing" | tr '\n' ' ')"
    say "ARI answered after $((SECONDS - t0)) s"
    print_facts "$pid"
}

stop_asterisk() {
    local pids p
    pids=$(running_pid)
    [ -n "$pids" ] || return 0
    timeout 10 chroot "$ROOT" asterisk -rx "core stop now" >/dev/null 2>&1 || true
    for _ in $(seq 1 50); do
        pids=$(asterisk_pids)
        [ -z "$pids" ] && break
        sleep 0.2
    done
    if [ -n "$pids" ]; then
        say "Asterisk did not stop on 'core stop now': killing $pids"
        for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
        sleep 2
        for p in $(asterisk_pids); do kill -KILL "$p" 2>/dev/null || true; done
    fi
    rm -f "$PIDFILE"
}

cmd_down() {
    need_root
    lock
    local pid
    pid=$(running_pid)
    if [ -z "$pid" ] && [ -z "$(mounts_under_root)" ]; then
        say "not running"
        return 0
    fi
    if [ -n "$pid" ]; then
        stop_asterisk
        say "stopped Asterisk (pid $pid)"
    fi
    unmount_all
    rm -f "$PIDFILE"
    say "unmounted $ROOT/{proc,dev}"
}

cmd_status() {
    if ari_answers; then
        print_facts "$(running_pid 2>/dev/null || true)"
        return 0
    fi
    echo "testbed: ARI does not answer at $CALLPARK_TESTBED_ARI_URL (testbed.sh up)" >&2
    return 1
}

cmd_cli() {
    [ $# -gt 0 ] || die 'usage: testbed.sh cli "dialplan show 701@park-in"'
    need_root
    [ -n "$(running_pid)" ] || die "Asterisk is not running in $ROOT (testbed.sh up)"
    chroot "$ROOT" asterisk -rx "$*"
}

cmd_reload() {
    need_root
    lock
    [ -n "$(running_pid)" ] || die "Asterisk is not running in $ROOT (testbed.sh up)"
    sync_config
    chroot "$ROOT" asterisk -rx "core reload" >/dev/null
    local missing
    missing=$(missing_modules)
    [ -z "$missing" ] || die "modules not loaded after reload: $(echo "$missing" | tr '\n' ' ')"
    say "configuration copied and reloaded"
}

cmd_env() {
    grep -v '^#' "$HERE/testbed.env"
    echo "CALLPARK_TESTBED_ROOT=$ROOT"
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
cli)
    shift
    cmd_cli "$@"
    ;;
reload) cmd_reload ;;
env) cmd_env ;;
log) tail -n "${2:-100}" "$LOGDIR/full" ;;
*)
    sed -n '2,13s/^# \{0,1\}//p' "$0" >&2
    exit 2
    ;;
esac
