#!/usr/bin/env bash
# callpark's real FreeSWITCH testbed: a FreeSWITCH build run from its own directory with the
# minimal configuration in conf/ beside this script, listening on 127.0.0.1 only.
#
#   testbed.sh up              find FreeSWITCH, install its libraries and the prompts, start it
#   testbed.sh down            stop FreeSWITCH; 0 when nothing ran
#   testbed.sh status          0 when the event socket answers
#   testbed.sh cli "COMMAND"   an API command over the event socket (fs_cli -x)
#   testbed.sh reload          copy the configuration again, `reloadxml`
#   testbed.sh env             connection facts (testbed.env) plus the paths in use
#   testbed.sh log [N]         last N lines of FreeSWITCH's log
#
# Which FreeSWITCH: $CALLPARK_FREESWITCH when set (an install directory holding bin/freeswitch,
# or a bundle archive *.tar.xz / *.tar.gz, or a directory holding one such archive; an archive
# is extracted once under the testbed root), else an installed one (`freeswitch` on PATH,
# /usr/local/freeswitch, /usr/bin). Everything the testbed writes is under
# $CALLPARK_FS_TESTBED_ROOT (default in testbed.env). Needs root (apt). Exit status 3: no
# FreeSWITCH was found at all.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
# shellcheck source=testbed.env
. "$HERE/testbed.env"

ROOT=${CALLPARK_FS_TESTBED_ROOT:-$CALLPARK_FS_TESTBED_DEFAULT_ROOT}
ROOT=${ROOT%/}
case "$ROOT" in
*[[:space:]]*) echo "fs-testbed: error: CALLPARK_FS_TESTBED_ROOT must be an absolute path without spaces" >&2 && exit 1 ;;
/?*) ;;
*) echo "fs-testbed: error: CALLPARK_FS_TESTBED_ROOT must be an absolute path, not '$ROOT'" >&2 && exit 1 ;;
esac
RUN=$ROOT/run
PIDFILE=$RUN/run/callpark-testbed.pid
LOGFILE=$RUN/log/freeswitch.log
DIALPLAN=$REPO/dialplan/freeswitch/callpark.xml
# The Debian libraries the relocatable build needs (../shared/freeswitch/README.md), and the
# tools that make the prompts.
LIBS=(libcurl4 libedit2 libfreetype6 libjpeg62-turbo libpcre2-8-0 libsndfile1 libspeex1
    libspeexdsp1 libsqlite3-0 libssl3 libtiff6 libuuid1 zlib1g)
TOOLS=(espeak-ng sox curl)
APT=(apt-get -q -y -o Dpkg::Use-Pty=0 -o APT::Install-Recommends=false)
ESL_WAIT=${CALLPARK_FS_TESTBED_ESL_WAIT:-60}
# Bump when the generated prompts change, so an old set is made again.
SOUNDS_VERSION=1

say() { echo "fs-testbed: $*"; }
die() {
    echo "fs-testbed: error: $*" >&2
    exit 1
}

need_root() {
    [ "$(id -u)" = 0 ] || die "run as root: apt and FreeSWITCH's -u root need it"
}

# Prints the FreeSWITCH install directory (holding bin/freeswitch), extracting an archive
# when CALLPARK_FREESWITCH names one. Fails with one clear line when there is none.
locate_freeswitch() {
    local src=${CALLPARK_FREESWITCH:-} archive="" d
    if [ -n "$src" ]; then
        if [ -d "$src" ]; then
            for d in "$src" "$src/freeswitch"; do
                if [ -x "$d/bin/freeswitch" ]; then
                    echo "$(cd "$d" && pwd)"
                    return 0
                fi
            done
            archive=$(find "$src" -maxdepth 1 -name 'freeswitch*.tar.*' | sort | tail -n 1)
            [ -n "$archive" ] || die "CALLPARK_FREESWITCH=$src holds neither bin/freeswitch nor a freeswitch*.tar.* archive"
        elif [ -f "$src" ]; then
            archive=$src
        else
            die "CALLPARK_FREESWITCH=$src does not exist"
        fi
        extract "$archive"
        return 0
    fi
    # The build the last `up` used (cli, env and down work without CALLPARK_FREESWITCH).
    if [ -f "$ROOT/build" ] && [ -x "$(cat "$ROOT/build")/bin/freeswitch" ]; then
        cat "$ROOT/build"
        return 0
    fi
    local bin
    for bin in "$(command -v freeswitch 2>/dev/null || true)" /usr/local/freeswitch/bin/freeswitch /usr/bin/freeswitch; do
        if [ -n "$bin" ] && [ -x "$bin" ]; then
            echo "$(cd "$(dirname "$bin")/.." && pwd)"
            return 0
        fi
    done
    echo "fs-testbed: error: no FreeSWITCH found: set CALLPARK_FREESWITCH to an install directory or a bundle archive (CI uses ../shared/freeswitch/dist/), or install freeswitch" >&2
    # A distinct status: test-all.sh tells "none found" from "found but broken".
    exit 3
}

# Extracts a bundle archive under $ROOT/dist/<checksum>/ once; prints the install directory.
extract() {
    local archive=$1 sum dest top
    sum=$(sha256sum "$archive" | cut -c1-16)
    dest=$ROOT/dist/$sum
    if [ ! -f "$dest/.extracted" ]; then
        rm -rf "$dest"
        mkdir -p "$dest"
        tar -xf "$archive" -C "$dest" || die "cannot extract $archive"
        touch "$dest/.extracted"
    fi
    top=$(find "$dest" -maxdepth 3 -path '*/bin/freeswitch' -type f | head -n 1)
    [ -n "$top" ] || die "$archive holds no bin/freeswitch"
    dirname "$(dirname "$top")"
}

ensure_packages() {
    local missing=() p
    for p in "${LIBS[@]}" "${TOOLS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing ${missing[*]}"
        need_root
        DEBIAN_FRONTEND=noninteractive "${APT[@]}" update >/dev/null
        DEBIAN_FRONTEND=noninteractive "${APT[@]}" install "${missing[@]}" >/dev/null
    fi
}

fs_env() { env LD_LIBRARY_PATH="$1/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "${@:2}"; }

# An API command over the event socket; fs_cli of the same build.
cli() {
    local fs
    fs=$(locate_freeswitch)
    fs_env "$fs" "$fs/bin/fs_cli" -H "$CALLPARK_FS_TESTBED_ESL_HOST" -P "$CALLPARK_FS_TESTBED_ESL_PORT" \
        -p "$CALLPARK_FS_TESTBED_ESL_PASSWORD" -t 5000 -T 5000 -x "$*"
}

# The event socket answers when a TCP connection gets FreeSWITCH's greeting.
esl_answers() {
    local greeting
    greeting=$(timeout 3 bash -c "exec 3<>/dev/tcp/$CALLPARK_FS_TESTBED_ESL_HOST/$CALLPARK_FS_TESTBED_ESL_PORT && IFS= read -r -t 2 line <&3 && echo \"\$line\"" 2>/dev/null) || return 1
    [[ "$greeting" == *auth/request* ]]
}

running_pid() {
    local pid
    [ -f "$PIDFILE" ] || return 1
    pid=$(cat "$PIDFILE")
    [ -n "$pid" ] && [ -d "/proc/$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = freeswitch ] || return 1
    echo "$pid"
}

# Prompts and music, generated (FreeSWITCH builds ship no sounds): digits as callie's
# en/us/callie/digits/8000/*.wav, the two callpark prompts under ivr/, and music on hold.
make_sounds() {
    local s=$RUN/sounds
    local marker=$s/.callpark-sounds-$SOUNDS_VERSION voice=$s/en/us/callie
    [ -f "$marker" ] && return 0
    say "generating prompts (espeak-ng) and music on hold (sox)"
    rm -rf "$s"
    mkdir -p "$voice/digits/8000" "$voice/ivr/8000" "$s/music/8000" "$s/music/custom"
    local speak
    speak() { # file text
        local tmp
        tmp=$(mktemp --suffix=.wav)
        espeak-ng -v en-us -s 170 -w "$tmp" "$2"
        sox -q "$tmp" -r 8000 -c 1 -b 16 "$1"
        rm -f "$tmp"
    }
    local d words=(zero one two three four five six seven eight nine)
    for d in 0 1 2 3 4 5 6 7 8 9; do
        speak "$voice/digits/8000/$d.wav" "${words[$d]}"
    done
    speak "$voice/digits/8000/star.wav" "star"
    speak "$voice/digits/8000/pound.wav" "pound"
    speak "$voice/ivr/8000/ivr-call_cannot_be_completed_as_dialed.wav" "Parking failed. Your call cannot be completed as dialed."
    speak "$voice/ivr/8000/ivr-that_was_an_invalid_entry.wav" "That orbit holds no call."
    # Music on hold: a slow, endless-sounding chord sequence.
    sox -q -n -r 8000 -c 1 -b 16 "$s/music/8000/callpark-hold.wav" \
        synth 2 sine 262 sine 330 sine 392 : synth 2 sine 294 sine 349 sine 440 : \
        synth 2 sine 247 sine 311 sine 370 vol 0.3
    touch "$marker"
}

write_config() {
    local conf=$RUN/conf
    rm -rf "$conf"
    mkdir -p "$conf" "$RUN"/{log,db,run,storage,temp,cache,recordings}
    cp -r "$HERE/conf/." "$conf/"
    mkdir -p "$conf/dialplan/callpark"
    [ -f "$DIALPLAN" ] || die "$DIALPLAN is missing (callpark dialplan freeswitch writes it)"
    cp "$DIALPLAN" "$conf/dialplan/callpark/callpark.xml"
    local sip_port=${CALLPARK_FS_TESTBED_SIP_BIND##*:}
    cat >"$conf/vars.xml" <<EOF
<include>
  <!-- Written by testbed.sh from testbed.env. -->
  <X-PRE-PROCESS cmd="set" data="domain=127.0.0.1"/>
  <X-PRE-PROCESS cmd="set" data="esl_port=$CALLPARK_FS_TESTBED_ESL_PORT"/>
  <X-PRE-PROCESS cmd="set" data="esl_password=$CALLPARK_FS_TESTBED_ESL_PASSWORD"/>
  <X-PRE-PROCESS cmd="set" data="sip_profile=$CALLPARK_FS_TESTBED_SIP_PROFILE"/>
  <X-PRE-PROCESS cmd="set" data="sip_port=$sip_port"/>
  <X-PRE-PROCESS cmd="set" data="rtp_start=$CALLPARK_FS_TESTBED_RTP_START"/>
  <X-PRE-PROCESS cmd="set" data="rtp_end=$CALLPARK_FS_TESTBED_RTP_END"/>
  <X-PRE-PROCESS cmd="set" data="test_context=$CALLPARK_FS_TESTBED_CONTEXT"/>
  <X-PRE-PROCESS cmd="set" data="sound_prefix=\$\${sounds_dir}/en/us/callie"/>
  <X-PRE-PROCESS cmd="set" data="hold_music=local_stream://$CALLPARK_FS_TESTBED_MOH_DEFAULT"/>
  <X-PRE-PROCESS cmd="set" data="default_language=en"/>
</include>
EOF
}

print_facts() {
    local fs=$1
    say "FreeSWITCH $(fs_env "$fs" "$fs/bin/freeswitch" -version 2>/dev/null | head -n 1) pid $(running_pid || echo -)"
    echo "  build  $fs"
    echo "  ESL    $CALLPARK_FS_TESTBED_ESL_HOST:$CALLPARK_FS_TESTBED_ESL_PORT  password $CALLPARK_FS_TESTBED_ESL_PASSWORD"
    echo "  SIP    udp $CALLPARK_FS_TESTBED_SIP_BIND  profile $CALLPARK_FS_TESTBED_SIP_PROFILE  context $CALLPARK_FS_TESTBED_CONTEXT"
    echo "  conf   $RUN/conf   log $LOGFILE"
}

lock() {
    mkdir -p "$ROOT"
    exec 9>"$ROOT/.lock"
    flock -w 300 9 || die "another testbed.sh holds $ROOT/.lock"
}

cmd_up() {
    lock
    local fs
    fs=$(locate_freeswitch)
    ensure_packages
    if running_pid >/dev/null && esl_answers; then
        say "already running"
        print_facts "$fs"
        return 0
    fi
    if esl_answers; then
        die "something else answers on $CALLPARK_FS_TESTBED_ESL_HOST:$CALLPARK_FS_TESTBED_ESL_PORT; stop it first"
    fi
    local missing
    missing=$(fs_env "$fs" ldd "$fs/bin/freeswitch" | grep 'not found' || true)
    [ -z "$missing" ] || die "FreeSWITCH at $fs misses libraries:
$missing"
    echo "$fs" >"$ROOT/build"
    make_sounds
    write_config
    : >"$LOGFILE"
    say "starting FreeSWITCH from $fs"
    # -nf: no fork, so the pid we record is FreeSWITCH's; setsid keeps it out of our session.
    setsid env LD_LIBRARY_PATH="$fs/lib" "$fs/bin/freeswitch" -nonat -nc -nf -u root -g root \
        -base "$RUN" -conf "$RUN/conf" -log "$RUN/log" -db "$RUN/db" -mod "$fs/mod" \
        -run "$RUN/run" -sounds "$RUN/sounds" -storage "$RUN/storage" -temp "$RUN/temp" \
        -cache "$RUN/cache" -recordings "$RUN/recordings" \
        </dev/null >"$RUN/log/console.log" 2>&1 9>&- &
    echo $! >"$PIDFILE"
    local i
    for ((i = 0; i < ESL_WAIT * 10; i++)); do
        if esl_answers; then
            # The event socket opens before every module is loaded: wait for the profile.
            if cli "sofia status profile $CALLPARK_FS_TESTBED_SIP_PROFILE" 2>/dev/null | grep -q '^Name'; then
                print_facts "$fs"
                return 0
            fi
        fi
        if ! running_pid >/dev/null; then
            tail -n 30 "$RUN/log/console.log" "$LOGFILE" >&2 || true
            die "FreeSWITCH exited during start"
        fi
        sleep 0.1
    done
    tail -n 30 "$LOGFILE" >&2 || true
    die "the event socket did not answer within ${ESL_WAIT}s"
}

cmd_down() {
    lock
    local pid i
    pid=$(running_pid) || {
        say "not running"
        return 0
    }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        [ -d "/proc/$pid" ] || break
        sleep 0.1
    done
    [ -d "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null
    rm -f "$PIDFILE"
    say "stopped"
}

cmd_status() {
    if esl_answers; then
        say "event socket answers on $CALLPARK_FS_TESTBED_ESL_HOST:$CALLPARK_FS_TESTBED_ESL_PORT"
        return 0
    fi
    say "not answering"
    return 1
}

cmd_reload() {
    write_config
    cli reloadxml
}

cmd_env() {
    grep -v '^#' "$HERE/testbed.env"
    echo "CALLPARK_FS_TESTBED_ROOT=$ROOT"
    echo "CALLPARK_FS_TESTBED_CONF=$RUN/conf"
    echo "CALLPARK_FS_TESTBED_LOG=$LOGFILE"
    echo "CALLPARK_FS_TESTBED_SOUNDS=$RUN/sounds"
    echo "CALLPARK_FS_TESTBED_BUILD=$(locate_freeswitch)"
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
cli)
    shift
    cli "$@"
    ;;
reload) cmd_reload ;;
env) cmd_env ;;
log) tail -n "${2:-100}" "$LOGFILE" ;;
*)
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
