#!/usr/bin/env bash
# What an operator sees, in one qemu boot: two ovn-ipsecd chassis (and an impostor) with a real
# Southbound ovsdb-server; the metrics page compared with `ipsecctl status/peers/sas --json`
# after a handshake, probes, a rekey and a failed authentication, checked by promtool; every
# ipsecctl action's output, JSON and exit code. Guest half: tests/daemon/observe.sh.
# Host packages: prometheus (promtool), curl, jq, plus run-phase.sh's.
set -euo pipefail
for tool in promtool curl jq; do
    command -v "$tool" >/dev/null || { echo "ops-guest: $tool missing (tests/setup/ops.sh installs prometheus, curl, jq)" >&2; exit 1; }
done
OVN_IPSEC_VM_EXTRA="$(command -v promtool) $(command -v curl) $(command -v jq) ${OVN_IPSEC_VM_EXTRA:-}" \
    exec bash "$(dirname "$0")/../daemon/run-phase.sh" ops-guest tests/daemon/observe.sh
