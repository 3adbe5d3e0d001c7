# shellcheck shell=bash
# Setup for the operator interface tests (controller/tests/metrics_http.rs,
# crates/ipsecctl/tests/control_cli.rs). Sourced by scripts/test.sh with scripts/lib.sh loaded.
# prometheus: provides promtool, which checks the metrics page (also shipped into the guest by
# tests/phases/ops-guest.sh, with curl and jq); util-linux: setpriv, which runs
# ipsecctl as `nobody` to test the control socket's permissions.
need_pkgs prometheus util-linux curl jq
