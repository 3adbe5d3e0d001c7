#!/usr/bin/env bash
# ovn-ipsecd end to end in one qemu boot: a real ovsdb-server with the OVN Southbound schema,
# three chassis in network namespaces on a bridge, one ovn-ipsecd each,
# certificates from ikev2/tests/fixtures/pki. Checks every pair's CHILD_SAs, UDP to 6081 as ESP
# on the wire with zero plaintext, chassis-del cleaning up, forced encapsulation, an impostor,
# kill -9 and restart; chassis-2 starts with no configuration, from a local Open_vSwitch
# database. Guest half: tests/daemon/guest.sh.
OVN_IPSEC_VM_EXTRA="@tests/vm/extras/open-vswitch-db.list ${OVN_IPSEC_VM_EXTRA:-}" \
    exec bash "$(dirname "$0")/../daemon/run-phase.sh" daemon-guest tests/daemon/guest.sh
