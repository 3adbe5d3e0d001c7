# shellcheck shell=dash
# Guest half of tests/phases/daemon-guest.sh, under dash in the rig's guest (tests/daemon/lib.sh
# sets up the pieces). A real ovsdb-server with the OVN Southbound schema; N chassis in network
# namespaces on a bridge, each with its own ovn-ipsecd (flags; chassis-2 none: it reads a local
# Open_vSwitch DB as on an OVN node); checks
# IKE/CHILD_SAs, ping over real Geneve links between every pair (the outer UDP to 6081 ESP on
# the wire, no plaintext 6081), and that chassis-del removes the chassis's states and policies
# on the others.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
n=${DAEMON_GUEST_CHASSIS:-3}
# Every chassis has 4 states (2 CHILD_SAs, both directions) per peer.
all_up() {
    for c in $(seq 1 "$n"); do
        [ "$(states "$c")" = $((4 * (n - 1))) ] || return 1
    done
}

start_sb
check "ovsdb-server with the Southbound schema answers" sbctl init
sbctl set SB_Global . ipsec=true
# Plaintext Geneve packets are also logged to the kernel log (addresses, ports, length, guest
# uptime), shown on failure.
echo 1 >/proc/sys/net/netfilter/nf_log_all_netns
for c in $(seq 1 "$n"); do
    add_netns "$c"
    ip netns exec "ch$c" nft add rule inet wire input udp dport 6081 meta secpath missing \
        log prefix "\"plain-6081-ch$c \"" level info
    sbctl chassis-add "chassis-$c" geneve "$(ip_of "$c")"
done
check "$n chassis registered in the Southbound DB" [ "$(sbctl --bare --columns=name list Chassis | grep -c chassis)" = "$n" ]

# chassis-2 runs as on an OVN node: no flags, everything from its Open_vSwitch database.
for c in $(seq 1 "$n"); do
    if [ "$c" = 2 ]; then start_chassis_zero_config 2; else start_chassis "$c"; fi
done
check "chassis-2 started with no configuration: its identity came from the Open_vSwitch DB" \
    wait_for 20 grep -q "identity of chassis 'chassis-2' are valid" /tmp/ch2.log

# Before any SA: policies are in and block. Probes sent now must not reach the wire in
# plaintext (the plaintext counters are checked below).
check "policies programmed before SAs (ch1 has out/in policies towards ch2)" \
    wait_for 30 sh -c "[ \$(ip -n ch1 xfrm policy | grep -c 'dst $(ip_of 2)') -ge 2 ]"
for c in $(seq 2 "$n"); do
    send_probes 1 "$(ip_of "$c"):6081" 3
done
# The Geneve links come up once every chassis has its policies (a link sends IPv6 neighbour
# discovery as soon as it is up, which would cross the wire in plaintext before the daemons
# run, as it would without IPsec). Their first packets then wait for the SAs.
all_policies() {
    for c in $(seq 1 "$n"); do
        [ "$(ip -n "ch$c" xfrm policy | grep -c '^src')" -ge $((4 * (n - 1))) ] || return 1
    done
}
wait_for 30 all_policies
add_geneve_mesh $(seq 1 "$n")
check "Geneve links between every pair of the $n chassis (VNI and overlay 192.168.AB.0/24 per pair)" \
    [ "$(ip -n ch1 -d link show type geneve | grep -c 'geneve id')" = $((n - 1)) ]

if wait_for 120 all_up; then
    ok "every pair's two CHILD_SAs up: $((4 * (n - 1))) states in each of the $n chassis"
else
    not_ok "every pair's two CHILD_SAs up (states: $(for c in $(seq 1 "$n"); do printf '%s ' "$(states "$c")"; done))"
fi

# The control socket, as an operator sees it.
sas_json=$(ctl 1 sas --json 2>&1)
ike_up=$(echo "$sas_json" | grep -o '"state": *"established"' | wc -l)
children=$(echo "$sas_json" | grep -o '"spi_in"' | wc -l)
sas_json_counts_match() { [ "$ike_up" = $((n - 1)) ] && [ "$children" = $((2 * (n - 1))) ]; }
check "ipsecctl sas --json on chassis-1: $ike_up IKE SAs established, $children CHILD_SAs" sas_json_counts_match
status_json=$(ctl 1 status --json 2>&1)
check "ipsecctl status --json on chassis-1: $((n - 1)) peers up" \
    sh -c "echo '$status_json' | grep -q '\"peers_up\": *$((n - 1))'"

# The same, as tables for a person reading the output (the demo shows them).
echo "# ipsecctl status, peers and sas on chassis-1:"
for cmd in status peers sas; do
    ctl 1 "$cmd" 2>&1 | sed 's/^/#   /'
done
echo "# the metrics page of chassis-1 (ipsecctl metrics: what /metrics serves), a few ovn_ipsec_ families:"
ctl 1 metrics 2>&1 | grep -E '^ovn_ipsec_(peers\{state="(up|desired)"|ike_sas\{state="established"|child_sas\{state="installed"|handshakes_total|failures_total\{reason="auth"|peer_packets_total)' |
    sed 's/^/#   /'

for a in $(seq 1 "$n"); do
    for b in $(seq 1 "$n"); do
        [ "$a" = "$b" ] && continue
        if ping_gnv "$a" "$b"; then
            ok "ping over Geneve chassis-$a -> chassis-$b ($(inner_of "$a" "$b") -> $(inner_of "$b" "$a")): 3 of 3 replies, avg $(ping_rtt "$a" "$b") ms"
        else
            not_ok "ping over Geneve chassis-$a -> chassis-$b: $(grep transmitted "/tmp/ping.$a.$b")"
        fi
    done
done
for c in $(seq 1 "$n"); do
    check "chassis-$c: the Geneve packets were ESP on the wire ($(counter "$c" esp_in) ESP packets in), decrypted to 6081 ($(counter "$c" decrypted_6081))" \
        [ "$(counter "$c" esp_in)" -ge $((6 * (n - 1))) ] && [ "$(counter "$c" decrypted_6081)" -ge $((6 * (n - 1))) ]
    check "chassis-$c: zero plaintext packets to 6081 on the wire" [ "$(counter "$c" plain_6081)" = 0 ]
done

gone=$n
del_geneve_of "$gone" $(seq 1 $((n - 1)))
sbctl chassis-del "chassis-$gone"
gone_ip=$(ip_of "$gone")
no_trace_of_gone() {
    [ "$(states_with 1 "$gone_ip")" = 0 ] && [ "$(policies_with 1 "$gone_ip")" = 0 ]
}
check "chassis-del chassis-$gone: its states and policies gone from chassis-1" wait_for 15 no_trace_of_gone
if [ "$n" -gt 2 ]; then
    check "chassis-1 <-> chassis-2 still has its 4 states" [ "$(states_with 1 "$(ip_of 2)")" = 4 ]
fi

# Forced UDP encapsulation from the Southbound: the remaining pairs are negotiated again with
# ESP in UDP on port 4500, which the kernel decapsulates through the daemon's socket option.
echo "# forced encapsulation switched on at guest uptime $(cut -d' ' -f1 /proc/uptime) s"
sbctl set SB_Global . options:ipsec_encapsulation=true
encap_up() {
    for c in 1 2; do
        [ "$(states "$c")" = 4 ] || return 1
        [ "$(ip -n "ch$c" xfrm state | grep -c 'encap type espinudp sport 4500 dport 4500')" = 4 ] || return 1
    done
}
check "options:ipsec_encapsulation=true: chassis-1 <-> chassis-2 renegotiated with ESP-in-UDP states" \
    wait_for 90 encap_up
check "ping over Geneve chassis-1 -> chassis-2 inside ESP-in-UDP (5 of 5 replies)" ping_gnv 1 2 5
check "chassis-2: ESP-in-UDP on the wire ($(counter 2 espinudp_in) datagrams to 4500 with an SPI, not the non-ESP marker)" \
    [ "$(counter 2 espinudp_in)" -ge 5 ]
for c in 1 2; do
    check "chassis-$c: still zero plaintext packets to 6081 on the wire" [ "$(counter "$c" plain_6081)" = 0 ]
done

# SIGHUP: configuration and certificates are read again; the IKE SA is reauthenticated with
# them make before break (RFC 7296 §2.8.3), nothing is torn down.
kill -HUP "$(cat /tmp/ch1.pid)"
check "SIGHUP on chassis-1: logged the reload and loaded the certificate again" \
    wait_for 10 grep -q "certificate and key in use" /tmp/ch1.log
check "chassis-1 reauthenticates its IKE SA with chassis-2, the old one deleted after the new is up" \
    wait_for 30 grep -q "reauthenticated: deleting the old IKE SA" /tmp/ch1.log
four_states_with_2() { [ "$(states_with 1 "$(ip_of 2)")" = 4 ]; }
check "chassis-1 <-> chassis-2 settles at 4 states again after the reauthentication" \
    wait_for 30 four_states_with_2
check "UDP over Geneve chassis-1 -> chassis-2 after the reauthentication" probe_gnv 1 2

# Identity binding: a chassis-4 whose daemon presents chassis-2's valid certificate.
add_netns 4
sbctl chassis-add chassis-4 geneve "$(ip_of 4)"
start_daemon ch4 chassis-2 "$pki/chassis-2-cert.pem" "$pki/chassis-2-privkey.pem"
check "chassis-1 rejects chassis-4 presenting chassis-2's certificate (warning names both)" \
    wait_for 60 sh -c "grep 'authentication failed' /tmp/ch1.log | grep -q 'chassis-4'"
impostor_blocked() { [ "$(keyed_with 1 "$(ip_of 4)")" = 0 ] && [ "$(policies_with 1 "$(ip_of 4)")" -ge 2 ]; }
check "no SA with the impostor: chassis-1 has 0 keyed states and its policies for $(ip_of 4)" impostor_blocked
send_probes 1 "$(ip_of 4):6081" 5
sleep 1
check "traffic to the impostor stays blocked: 0 plaintext 6081 packets arrive in chassis-4" \
    [ "$(counter 4 plain_6081)" = 0 ]
check "chassis-1 <-> chassis-2 unaffected by the impostor (4 states)" [ "$(states_with 1 "$(ip_of 2)")" = 4 ]
kill -TERM "$(cat /tmp/ch4.pid)" 2>/dev/null
sbctl chassis-del chassis-4

# kill -9 and restart: the new daemon adopts the installed states, negotiates fresh SAs.
kill -KILL "$(cat /tmp/ch1.pid)"
sleep 0.5
states_and_policies_stay() { [ "$(states_with 1 "$(ip_of 2)")" -ge 4 ] && [ "$(policies_with 1 "$(ip_of 2)")" -ge 2 ]; }
check "after kill -9 of chassis-1's daemon its states and policies stay (traffic keeps flowing)" states_and_policies_stay
check "UDP over Geneve chassis-1 -> chassis-2 with no daemon on chassis-1" probe_gnv 1 2
# Limitation: with forced UDP encapsulation the kernel decapsulates arriving ESP-in-UDP only
# through a socket with UDP_ENCAP on port 4500, which the daemon holds; while no daemon runs,
# traffic towards this chassis is dropped (not plaintext) until the new daemon binds it.
blocked_not_plain() { ! probe_gnv 2 1 && [ "$(counter 1 plain_6081)" = 0 ]; }
check "UDP over Geneve chassis-2 -> chassis-1 blocked (no socket decapsulates ESP-in-UDP on chassis-1), not plaintext" \
    blocked_not_plain
start_daemon ch1 chassis-1 "$pki/chassis-1-cert.pem" "$pki/chassis-1-privkey.pem"
restarted_up() {
    sas=$(ctl 1 sas --json 2>/dev/null) || return 1
    [ "$(echo "$sas" | grep -o '"spi_in"' | wc -l)" = 2 ]
}
check "restarted chassis-1 negotiates fresh CHILD_SAs with chassis-2 (ipsecctl sas)" wait_for 90 restarted_up
check "old states replaced: chassis-1 and chassis-2 settle at 4 states each" \
    wait_for 30 sh -c "[ \$(ip -n ch1 xfrm state | grep -c '^src') = 4 ] && [ \$(ip -n ch2 xfrm state | grep -c '^src') = 4 ]"
# Loss across the restart itself is measured with a probe stream in tests/daemon/faults.sh.
check "ping over Geneve chassis-1 -> chassis-2 after the restart" ping_gnv 1 2
check "ping over Geneve chassis-2 -> chassis-1 after the restart" ping_gnv 2 1
for c in 1 2; do
    check "chassis-$c: zero plaintext 6081 packets through kill -9 and restart" [ "$(counter "$c" plain_6081)" = 0 ]
done

for c in $(seq 1 "$n"); do kill -TERM "$(cat "/tmp/ch$c.pid")" 2>/dev/null; done
sleep 1
check "SIGTERM leaves the policies in place (chassis-1)" [ "$(policies_with 1 "$(ip_of 2)")" -ge 2 ]

if [ "$failed" -gt 0 ]; then
    echo "--- plaintext Geneve packets in the kernel log (guest uptime now $(cut -d' ' -f1 /proc/uptime))"
    dmesg | grep plain-6081 | tail -n 20
    for c in 1 2; do
        echo "--- ovn-ipsecd chassis-$c, every line since the encapsulation change (no DEBUG)"
        grep -v DEBUG "/tmp/ch$c.log" | sed -n '/ipsec_encap\|encap=true/,$p' | head -n 12
    done
fi
kill "$(cat /tmp/ch2-run/ovs.pid)" 2>/dev/null
finish $(seq 1 "$n")
