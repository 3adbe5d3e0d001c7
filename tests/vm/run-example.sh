#!/usr/bin/env bash
# Usage: tests/vm/run-example.sh [--label NAME] [--also "ARGS"] PACKAGE EXAMPLE [ARGS...]
#
# Builds cargo example EXAMPLE of PACKAGE, puts it in a temporary share with a one-line guest
# script that runs `EXAMPLE ARGS...`, boots the guest on it (tests/vm/run.sh) and exits with
# the example's exit status. With --also, the example then runs a second time with ARGS (split
# on white space; e.g. a benchmark): its failure is only reported, never the exit status.
# Ends with `NAME: passed in N s (build + boot + checks)` (or FAILED with the status); NAME
# defaults to EXAMPLE. OVN_IPSEC_VM_TIMEOUT defaults to 300 s here; the other settings are
# run.sh's.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=SCRIPTDIR/../../scripts/lib.sh
. scripts/lib.sh

label='' also=''
while [ $# -gt 0 ]; do
    case "$1" in
        --label) label=$2; shift 2 ;;
        --also) also=$2; shift 2 ;;
        *) break ;;
    esac
done
[ $# -ge 2 ] || { echo "usage: $0 [--label NAME] [--also \"ARGS\"] PACKAGE EXAMPLE [ARGS...]" >&2; exit 2; }
package=$1 example=$2
shift 2
label=${label:-$example}
need_rust

# quote WORD...: the words as single-quoted shell words, for the guest's dash.
quote() {
    local w out=
    for w in "$@"; do
        out+=" '${w//\'/\'\\\'\'}'"
    done
    printf '%s' "$out"
}

start=$(date +%s.%N)
cargo build --locked -q -p "$package" --example "$example"
target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
share=$(mktemp -d "${TMPDIR:-/tmp}/$label.XXXXXX")
trap 'rm -rf "$share"' EXIT
cp "$target/debug/examples/$example" "$share/"
{
    echo "# Runs in the guest under dash, with $example beside it in the share."
    echo "here=\$(dirname \"\$0\")"
    echo "\"\$here/$example\"$(quote "$@")"
    if [ -n "$also" ]; then
        # shellcheck disable=SC2086 # --also is split on white space by design
        echo "rc=\$?; \"\$here/$example\"$(quote $also) || echo \"$label: '$example $also' did not run\"; exit \$rc"
    fi
} >"$share/$label.sh"

set +e
OVN_IPSEC_VM_TIMEOUT="${OVN_IPSEC_VM_TIMEOUT:-300}" bash tests/vm/run.sh "$share" "$label.sh"
rc=$?
set -e
printf '%s: %s in %.1f s (build + boot + checks)\n' "$label" \
    "$([ "$rc" -eq 0 ] && echo passed || echo "FAILED (exit status $rc)")" \
    "$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { print e - s }')"
exit "$rc"
