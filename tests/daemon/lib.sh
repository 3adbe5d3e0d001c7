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
# start_chassis_zero_config C: the daemon of chassis-C with no flags and no configuration
# file. Like an OVN node, it finds everything in the local Open_vSwitch database at its default
# path: the chassis name, Southbound remote, encap IP and type as ovn-controller's setup leaves
# them (external_ids), the certificate paths as for ovs-monitor-ipsec (other_config). A private
# mount namespace gives this chassis its own /var/run/openvswitch and /run/ovn-ipsec; its control
# socket is linked at /tmp/chC.ctl for ctl.
start_chassis_zero_config() {
    c=$1
    run=/tmp/ch$c-run
    mkdir -p "$run/openvswitch" "$run/ovn-ipsec" /var/run/openvswitch /run/ovn-ipsec
    ovsdb-tool create "$run/conf.db" /usr/share/openvswitch/vswitch.ovsschema
    ovsdb-server --detach --no-chdir --pidfile="$run/ovs.pid" --log-file="$run/ovs.log" \
        --remote="punix:$run/openvswitch/db.sock" --unixctl="$run/ovs.ctl" "$run/conf.db"
    ovs-vsctl --no-wait --db="unix:$run/openvswitch/db.sock" -- init -- set Open_vSwitch . \
        external_ids:system-id="chassis-$c" external_ids:ovn-remote="$sb" \
        external_ids:ovn-encap-type=geneve external_ids:ovn-encap-ip="$(ip_of "$c")" \
        other_config:certificate="$pki/chassis-$c-cert.pem" \
        other_config:private_key="$pki/chassis-$c-privkey.pem" \
        other_config:ca_cert="$pki/ca-bundle.pem"
    ln -sf "$run/ovn-ipsec/control.sock" "/tmp/ch$c.ctl"
    OVN_IPSECD_LOG=${OVN_IPSECD_LOG:-info,controller=debug} ip netns exec "ch$c" unshare -m sh -c \
        "mount --bind $run/openvswitch /var/run/openvswitch && mount --bind $run/ovn-ipsec /run/ovn-ipsec && exec $here/ovn-ipsecd" \
        >>"/tmp/ch$c.log" 2>&1 &
    echo $! >"/tmp/ch$c.pid"
}
ctl() {
    c=$1
    shift
    "$here/ipsecctl" --socket "/tmp/ch$c.ctl" "$@"
}

states() { ip -n "ch$1" xfrm state | grep -c '^src'; }
states_with() { ip -n "ch$1" xfrm state | grep '^src' | grep -c "$2"; }
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
            echo "--- ovn-ipsecd chassis-$c log (last 150 lines without DEBUG)"
            grep -v DEBUG "/tmp/ch$c.log" | tail -n 150
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

# --- Geneve overlay, pings and probe streams over it -------------------------------------
# Each pair of chassis A < B gets a Geneve link in both namespaces: VNI "AB", overlay subnet
# 192.168.AB.0/24 (chassis A is .A, B is .B), outer UDP to 6081 between the underlay addresses,
# which the daemons' policies encrypt. A Geneve link holds the kernel's UDP socket on 6081, so
# probes meant for the wire go over the overlay (to an inner port), not to 6081 itself.
pair_id() { if [ "$1" -lt "$2" ]; then echo "$1$2"; else echo "$2$1"; fi; }
# inner_of A B: chassis-A's address on the A-B overlay.
inner_of() { echo "192.168.$(pair_id "$1" "$2").$1"; }
# add_geneve A B: in chA, link gnvB to chassis-B's underlay address with A's overlay address.
add_geneve() {
    ip -n "ch$1" link add "gnv$2" type geneve id "$(pair_id "$1" "$2")" remote "$(ip_of "$2")" dstport 6081 &&
        ip -n "ch$1" addr add "$(inner_of "$1" "$2")/24" dev "gnv$2" &&
        ip -n "ch$1" link set "gnv$2" up
}
# add_geneve_mesh C...: Geneve links between every two of the given chassis.
add_geneve_mesh() {
    for a in "$@"; do
        for b in "$@"; do
            [ "$a" = "$b" ] || add_geneve "$a" "$b"
        done
    done
}
# ping_gnv A B [COUNT]: COUNT (default 3) pings from chassis-A to B's overlay address; true
# when every reply arrived. The summary is in /tmp/ping.A.B.
ping_gnv() {
    ip netns exec "ch$1" ping -c "${3:-3}" -i 0.2 -W 3 -w 15 "$(inner_of "$2" "$1")" >"/tmp/ping.$1.$2" 2>&1
    grep -q "${3:-3} packets transmitted, ${3:-3} packets received" "/tmp/ping.$1.$2"
}
# ping_rtt A B: the average round trip of the last ping_gnv A B, in ms.
ping_rtt() { sed -n 's|.*min/avg/max = [0-9.]*/\([0-9.]*\)/.*|\1|p' "/tmp/ping.$1.$2"; }
# probe_gnv A B: 5 UDP probes from chassis-A to B over their Geneve overlay; true when all
# arrive.
probe_gnv() {
    out=/tmp/recv.gnv.$1.$2
    ip netns exec "ch$2" "$probe_bin" recv "$(inner_of "$2" "$1"):7000" 5 8000 >"$out" 2>&1 &
    pid=$!
    wait_for 5 grep -q listening "$out" 2>/dev/null
    ip netns exec "ch$1" "$probe_bin" send "$(inner_of "$2" "$1"):7000" 5 >/dev/null
    wait "$pid"
}
# stream_start A B COUNT RATE: in the background, COUNT probes at RATE per second from chassis-A
# to B over their overlay (inner port 7001); stream_end A B waits for it (in the shell that
# started it, not in a command substitution), then stream_result A B prints
# "L of COUNT[; missing RANGES]" (L lost; probe S left S/RATE seconds after the first). Streams
# of different pairs may run at the same time.
stream_start() {
    out=/tmp/stream.$1.$2
    ip netns exec "ch$2" "$probe_bin" recv "$(inner_of "$2" "$1"):7001" "$3" $(($3 * 1000 / $4 + 6000)) >"$out" 2>&1 &
    echo $! >"$out.rpid"
    wait_for 5 grep -q listening "$out" 2>/dev/null
    ip netns exec "ch$1" "$probe_bin" send --rate "$4" "$(inner_of "$2" "$1"):7001" "$3" >"$out.send" 2>&1 &
    echo $! >"$out.spid"
}
stream_end() {
    wait "$(cat "/tmp/stream.$1.$2.spid")"
    wait "$(cat "/tmp/stream.$1.$2.rpid")"
}
stream_result() { sed -n 's/^lost //p' "/tmp/stream.$1.$2"; }
# lost_of "L of N[; ...]": L.
lost_of() { echo "$1" | sed -n 's/^\([0-9]*\) of.*/\1/p'; }
# spis C ADDR: the SPIs of chC's keyed states to or from ADDR, sorted, one per line.
spis() {
    ip -n "ch$1" xfrm state | awk -v a="$2" '
        /^src/ { m = ($2 == a || $4 == a); spi = "" }
        m && /proto esp spi/ { spi = $4 }
        m && /aead/ && spi != "" { print spi; spi = "" }' | sort
}
# keyed_with C ADDR: chC's keyed (not larval) states from or to ADDR.
keyed_with() {
    ip -n "ch$1" xfrm state | awk -v a="$2" '/^src/ { m = ($2 == a || $4 == a) } m && /aead/ { n++ } END { print n + 0 }'
}
# uptime_s: seconds since boot, to time steps in the guest.
uptime_s() { cut -d' ' -f1 /proc/uptime; }
# elapsed_since T: seconds since uptime T, one decimal.
elapsed_since() { awk -v s="$1" -v e="$(uptime_s)" 'BEGIN { printf "%.1f", e - s }'; }
# del_geneve_of C N...: removes the Geneve links between chassis C and each of chassis N...
# (as ovn-controller drops its tunnels to a chassis that left the Southbound; a link left
# behind would keep sending IPv6 router solicitations, in plaintext once unprotected).
del_geneve_of() {
    gc=$1
    shift
    for o in "$@"; do
        ip -n "ch$o" link del "gnv$gc" 2>/dev/null
        ip -n "ch$gc" link del "gnv$o" 2>/dev/null
    done
}
