# shellcheck shell=dash
# Shared by the guest halves of the ovn-ipsecd phases (tests/daemon/*.sh, run under dash in the
# rig's guest). Sourced after setting `here` (the share folder: ovn-ipsecd, ipsecctl, udp-probe
# and pki/ beside this file). Gives: TAP-style checks, a real Southbound ovsdb-server, chassis
# in network namespaces on one bridge with nft counters of what crosses the wire, one
# ovn-ipsecd per chassis, UDP probes and the xfrm queries the checks are written in.
probe_bin="$here/udp-probe"
pki="$here/pki"
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok - $1"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $1"; }
check() {
    name=$1
    shift
    if "$@"; then ok "$name"; else not_ok "$name"; fi
}
# wait_for SECONDS CMD...: polls CMD every 0.5 s.
wait_for() {
    t=$(($1 * 2))
    shift
    i=0
    until "$@"; do
        i=$((i + 1))
        [ "$i" -le "$t" ] || return 1
        sleep 0.5
    done
}

sb="unix:/tmp/sb.sock"
sbctl() { ovn-sbctl --db="$sb" "$@"; }
ip_of() { echo "10.0.0.$1"; }

# start_sb: a real ovsdb-server with the OVN Southbound schema, SB_Global.ipsec=true.
start_sb() {
    mkdir -p /run/openvswitch
    [ -f /tmp/sb.db ] || ovsdb-tool create /tmp/sb.db /usr/share/ovn/ovn-sb.ovsschema
    ovsdb-server --detach --no-chdir --pidfile=/tmp/sb.pid --log-file=/tmp/sb.log \
        --remote=punix:/tmp/sb.sock --unixctl=/tmp/sb.ctl /tmp/sb.db
}
stop_sb() { kill "$(cat /tmp/sb.pid)" 2>/dev/null; }

ip link add br0 type bridge 2>/dev/null
ip link set br0 up

# add_netns C: namespace chC with 10.0.0.C on the bridge and nft counters on its input: ESP,
# plaintext and decrypted packets to 6081, ESP in UDP on 4500.
add_netns() {
    ip netns add "ch$1"
    ip link add "v$1" netns "ch$1" type veth peer name "b$1"
    ip link set "b$1" master br0 up
    ip -n "ch$1" addr add "$(ip_of "$1")/24" dev "v$1"
    ip -n "ch$1" link set lo up
    ip -n "ch$1" link set "v$1" up
    ip netns exec "ch$1" nft -f - <<'NFT'
table inet wire {
    counter esp_in {}
    counter plain_6081 {}
    counter decrypted_6081 {}
    counter espinudp_in {}
    chain input {
        type filter hook input priority 0; policy accept;
        meta l4proto esp counter name esp_in
        udp dport 6081 meta secpath missing counter name plain_6081
        udp dport 6081 meta secpath exists counter name decrypted_6081
        udp dport 4500 @th,64,32 != 0 counter name espinudp_in
    }
}
NFT
}
counter() {
    ip netns exec "ch$1" nft list counter inet wire "$2" | sed -n 's/.*packets \([0-9]*\) .*/\1/p'
}

# start_daemon NS NAME CERT KEY [FLAGS...]: ovn-ipsecd for chassis NAME in namespace NS, flags
# only (no Open_vSwitch DB); log in /tmp/NS.log, PID in /tmp/NS.pid, control socket /tmp/NS.ctl.
start_daemon() {
    ns=$1
    name=$2
    cert=$3
    key=$4
    shift 4
    OVN_IPSECD_LOG=${OVN_IPSECD_LOG:-info,controller=debug} ip netns exec "$ns" "$here/ovn-ipsecd" \
        --chassis-name "$name" --ovn-remote "$sb" \
        --certificate "$cert" --private-key "$key" \
        --ca-cert "$pki/ca-bundle.pem" --control-socket "/tmp/$ns.ctl" "$@" \
        >>"/tmp/$ns.log" 2>&1 &
    echo $! >"/tmp/$ns.pid"
}
# start_chassis C: the daemon of chassis-C with its fixture certificate (and chain, if any).
start_chassis() {
    cert="$pki/chassis-$1-cert.pem"
    [ -f "$pki/chassis-$1-chain.pem" ] && cert="$pki/chassis-$1-chain.pem"
    start_daemon "ch$1" "chassis-$1" "$cert" "$pki/chassis-$1-privkey.pem"
}
ctl() {
    c=$1
    shift
    "$here/ipsecctl" --socket "/tmp/ch$c.ctl" "$@"
}

states() { ip -n "ch$1" xfrm state | grep -c '^src'; }
states_with() { ip -n "ch$1" xfrm state | grep '^src' | grep -c "$2"; }
# keyed_states_with C ADDR: states (not larval SPI reservations) from or to ADDR in chC.
keyed_states_with() {
    echo $(($(ip -n "ch$1" xfrm state src "$2" | grep -c aead) + $(ip -n "ch$1" xfrm state dst "$2" | grep -c aead)))
}
policies_with() { ip -n "ch$1" xfrm policy | grep '^src' | grep -c "$2"; }

# probe A B PORT: 5 probes from chassis-A to chassis-B's PORT; true when all arrive.
probe() {
    out=/tmp/recv.$1.$2.$3
    ip netns exec "ch$2" "$probe_bin" recv "$(ip_of "$2"):$3" 5 8000 >"$out" 2>&1 &
    pid=$!
    wait_for 5 grep -q listening "$out" 2>/dev/null
    ip netns exec "ch$1" "$probe_bin" send "$(ip_of "$2"):$3" 5 >/dev/null
    wait "$pid"
}
# send_probes A ADDR:PORT COUNT: fire and forget.
send_probes() { ip netns exec "ch$1" "$probe_bin" send "$2" "$3" >/dev/null 2>&1; }

# --- metrics (tests/daemon/observe.sh; curl, jq and promtool come through OVN_IPSEC_VM_EXTRA)
metrics_port=9476
# start_chassis_metrics C: like start_chassis, serving metrics on 127.0.0.1:9476 of chC.
start_chassis_metrics() {
    cert="$pki/chassis-$1-cert.pem"
    [ -f "$pki/chassis-$1-chain.pem" ] && cert="$pki/chassis-$1-chain.pem"
    start_daemon "ch$1" "chassis-$1" "$cert" "$pki/chassis-$1-privkey.pem" \
        --metrics-listen "127.0.0.1:$metrics_port"
}
# scrape C: chassis-C's metrics page over HTTP.
scrape() { ip netns exec "ch$1" curl -sf "http://127.0.0.1:$metrics_port/metrics"; }
# sample PAGE_FILE 'NAME{LABELS}': one sample's value from a saved page ("" when absent).
sample() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }
# jqf FILTER: jq -r FILTER over /tmp/ctl.json (where the checks save `ipsecctl ... --json`).
jqf() { jq -r "$1" /tmp/ctl.json; }

# finish C...: on failure, the logs and kernel objects of the given chassis; stops the
# Southbound server, prints the tally and returns its verdict.
finish() {
    if [ "$failed" -gt 0 ]; then
        for c in "$@"; do
            echo "--- ovn-ipsecd chassis-$c log (last 40 lines)"
            grep -v DEBUG "/tmp/ch$c.log" | tail -n 40
            echo "--- ip xfrm state / policy in ch$c"
            ip -s -n "ch$c" xfrm state
            ip -n "ch$c" xfrm policy | grep '^src'
            ip netns exec "ch$c" nft list table inet wire
        done
    fi
    stop_sb
    echo "$passed passed, $failed failed"
    [ "$failed" = 0 ]
}
