#!/usr/bin/env bash
# Loads the snippets of this folder into the running Asterisk testbed with `dialplan add`
# (runtime only: the next reload drops them), asks `dialplan show <orbit>@<context>` for each
# line of expected.txt and prints what Asterisk would run next to what is expected.
# Exit 0 when all agree. App data must hold no spaces (the CLI splits on them).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TB=${TESTBED:-$HERE/../../../../contrib/testbed/asterisk/testbed.sh}
cli() { "$TB" cli "$1"; }

for f in "$HERE"/*.conf; do
    ctx=
    while IFS= read -r line; do
        line=${line%%;*}
        line=$(echo "$line" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//')
        [ -z "$line" ] && continue
        case "$line" in
        \[*\]) ctx=${line#[}; ctx=${ctx%]} ;;
        exten*=\>*) cli "dialplan add extension $(echo "${line#*=>}" | sed 's/^ *//') into $ctx" >/dev/null || true ;;
        include*=\>*) cli "dialplan add include $(echo "${line#*=>}" | sed 's/^ *//') into $ctx" >/dev/null || true ;;
        esac
    done <"$f"
done

fail=0
while read -r orbit ctx wctx wext; do
    case "$orbit" in \#* | "") continue ;; esac
    # The first extension listed with a priority 1 is the one Asterisk runs.
    got=$(cli "dialplan show $orbit@$ctx" | awk '
        /^\[ (Included c|C)ontext / { c = $0; sub(/^\[ (Included c|C)ontext .\047?/, "", c); sub(/\047 created.*$/, "", c) }
        /^  \047.*\047 =>[[:space:]]+1\./ { e = $0; sub(/^  \047/, "", e); sub(/\047 =>.*$/, "", e); print c, e; exit }')
    [ -z "$got" ] && got="- -"
    if [ "$got" = "$wctx $wext" ]; then
        echo "ok    $orbit@$ctx: $got"
    else
        echo "DIFF  $orbit@$ctx: asterisk says '$got', expected '$wctx $wext'"
        fail=1
    fi
done <"$HERE/expected.txt"
exit $fail
