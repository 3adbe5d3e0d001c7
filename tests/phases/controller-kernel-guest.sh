#!/usr/bin/env bash
# Real-kernel checks of the controller's kernel layer in one qemu boot (tests/vm/run.sh): two
# namespaces on a veth pair, each reconciled by its own KernelSync. Before any SA Geneve is
# dropped both ways and nothing leaves in plaintext; with CHILD_SAs it is ESP; a rekey under a
# steady stream loses nothing; `ip xfrm state flush` is repaired; restart adopts the installed
# states; removing a pair removes exactly its objects; foreign objects are untouched.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec bash tests/vm/run-example.sh --label controller-kernel-guest controller kernel_guest_checks
