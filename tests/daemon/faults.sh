# shellcheck shell=dash
# Guest half of tests/phases/daemon-faults.sh, under dash in the rig's guest (tests/daemon/lib.sh
# sets up the pieces). Three chassis with real Geneve links between every pair, one ovn-ipsecd
# each, then one fault after another; after each, the plaintext Geneve packets that crossed the
# wire are counted (nft, `meta secpath missing`) and must be zero, except while the operator
# has switched IPsec off. Loss is measured with steady probe streams over the Geneve overlay
# (udp-probe send --rate): "lost L of N" in the ok lines.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
t_start=$(uptime_s)
RATE=50

# Every chassis of the mesh has 4 keyed states (2 CHILD_SAs, both directions) per peer.
mesh_up() {
    for c in "$@"; do
        for p in "$@"; do
            [ "$c" = "$p" ] && continue
            [ "$(keyed_with "$c" "$(ip_of "$p")")" = 4 ] || return 1
        done
    done
}
our_policies() { ip -n "ch$1" xfrm policy | grep -c '^src'; }
our_states() { ip -n "ch$1" xfrm state | grep -c '^src'; }
mesh_policies() {
    for c in "$@"; do
        [ "$(our_policies "$c")" -ge $((4 * ($# - 1))) ] || return 1
    done
}
# plain C: plaintext Geneve packets that arrived in chC so far.
plain() { counter "$1" plain_6081; }
# no_new_plain NAME BASE C...: ok when chassis C... received no plaintext since BASE (their
# counts then, space-separated, in the same order).
no_new_plain() {
    name=$1
    base=$2
    shift 2
    now_counts=""
    for c in "$@"; do now_counts="$now_counts $(plain "$c")"; done
    if [ "$now_counts" = " $base" ] || [ "$now_counts" = "$base" ]; then
        ok "$name: zero plaintext Geneve packets on the wire (chassis $*)"
    else
        not_ok "$name: plaintext Geneve packets on the wire (chassis $*: before '$base', now '$now_counts')"
        echo "# the kernel log of plaintext Geneve packets so far (uptime now $(uptime_s)):"
        dmesg | grep plain-6081 | tail -n 6 | sed 's/^/#   /'

    fi
}
plain_counts() {
    pc=""
    for c in "$@"; do pc="$pc $(plain "$c")"; done
    echo "$pc" | sed 's/^ //'
}
# start_one C [FLAGS...]: chassis-C's daemon (chassis-1 uses the certificate copy in
# /tmp that the certificate fault replaces).
start_one() {
    c=$1
    shift
    if [ "$c" = 1 ]; then
        start_daemon ch1 chassis-1 /tmp/ch1-cert.pem "$pki/chassis-1-privkey.pem" "$@"
    else
        cert="$pki/chassis-$c-cert.pem"
        [ -f "$pki/chassis-$c-chain.pem" ] && cert="$pki/chassis-$c-chain.pem"
        start_daemon "ch$c" "chassis-$c" "$cert" "$pki/chassis-$c-privkey.pem" "$@"
    fi
}
# ping_both A B: ping over Geneve from A to B and from B to A.
ping_both() { ping_gnv "$1" "$2" && ping_gnv "$2" "$1"; }
# ping_blocked A B: one ping from A to B gets no reply.
ping_blocked() { ! ping_gnv "$1" "$2" 1; }
pings_from_1() { ping_both 1 2 && ping_both 1 3; }
check_pings_after() { check "after the $1: ping over Geneve chassis-1 <-> chassis-2 and chassis-1 <-> chassis-3" pings_from_1; }
# timed NAME T0 WAIT CMD...: waits up to WAIT seconds for CMD; ok "NAME after X s" with the
# time since uptime T0 once it holds, not ok otherwise.
timed() {
    tname=$1
    tfrom=$2
    shift 2
    if wait_for "$@"; then
        ok "$tname after $(elapsed_since "$tfrom") s"
    else
        not_ok "$tname (not within $1 s)"
    fi
}
# step NAME: a header with the guest uptime, to line the kernel log up with the steps.
step() { echo "# --- $1 (guest uptime $(uptime_s) s)"; }
# decolor: the daemons' log lines without their ANSI colours.
decolor() { sed "s/$(printf '\033')\[[0-9;]*m//g"; }
# show_log C FROM_LINE: chassis-C's daemon log from line FROM_LINE on, without DEBUG lines and
# colours, shortened, as comment lines.
show_log() {
    tail -n +"$2" "/tmp/ch$1.log" | grep -v DEBUG | decolor |
        sed 's/^[0-9-]*T\([0-9:.]*\)Z */\1 /; s/controller::\|ikev2::engine:://g' | cut -c1-190 | sed "s/^/#   ch$1 /"
}
# stop_daemon C: SIGTERM, then wait until the process is gone.
stop_daemon() {
    pid=$(cat "/tmp/ch$1.pid")
    kill -TERM "$pid" 2>/dev/null
    wait_for 10 sh -c "! kill -0 $pid 2>/dev/null"
}
# children_of C: CHILD_SAs chassis-C's daemon reports (ipsecctl sas --json).
children_of() { ctl "$1" sas --json 2>/dev/null | grep -o '"spi_in"' | wc -l; }
# none_of OLD C ADDR: true when none of the SPIs in OLD (one per line) is among chC's states
# with ADDR.
none_of() {
    now_spis=$(spis "$2" "$3")
    for s in $1; do
        case " $(echo $now_spis) " in *" $s "*) return 1 ;; esac
    done
}

# --- Setup ------------------------------------------------------------------------------
start_sb
check "ovsdb-server with the Southbound schema answers" sbctl init
sbctl set SB_Global . ipsec=true
# This run's CA (tests/phases/daemon-faults.sh made it) signs the rotated chassis-1 and the
# expiring chassis-4 certificates: every daemon trusts it beside the fixture CAs.
cat "$here/faults-ca-cert.pem" >>"$pki/ca-bundle.pem"
cp "$pki/chassis-1-cert.pem" /tmp/ch1-cert.pem
for c in 1 2 3; do
    add_netns "$c"
    sbctl chassis-add "chassis-$c" geneve "$(ip_of "$c")"
done
# Every plaintext Geneve packet is also logged to the kernel log with its addresses and
# ports, so a failure says when (guest uptime) and which flow (the kernel logs packets of
# other namespaces only with nf_log_all_netns).
echo 1 >/proc/sys/net/netfilter/nf_log_all_netns
log_plain() {
    ip netns exec "ch$1" nft add rule inet wire input udp dport 6081 meta secpath missing \
        log prefix "\"plain-6081-ch$1 \"" level info
}
for c in 1 2 3; do log_plain "$c"; done
# chassis-4's daemon starts now, while its certificate is still valid; the chassis joins the
# Southbound only once the certificate has expired (the expired-certificate fault).
add_netns 4
log_plain 4
start_daemon ch4 chassis-4 "$here/chassis-4-expiring-cert.pem" "$here/chassis-4-privkey.pem"
for c in 1 2 3; do start_one "$c"; done
check "policies of every pair in place before any SA" wait_for 30 mesh_policies 1 2 3
add_geneve_mesh 1 2 3
if wait_for 120 mesh_up 1 2 3; then
    ok "every pair's two CHILD_SAs up (8 keyed states in each chassis) in $(elapsed_since "$t_start") s"
else
    not_ok "every pair's two CHILD_SAs up (states: $(our_states 1) $(our_states 2) $(our_states 3))"
fi
check "chassis-4's daemon runs with its certificate (valid until $(date -u -d "@$(cat "$here/chassis-4-expiry")" +%T 2>/dev/null || cat "$here/chassis-4-expiry"))" \
    wait_for 20 grep -q "ovn-ipsecd running" /tmp/ch4.log
for a in 1 2 3; do
    for b in 1 2 3; do
        [ "$a" = "$b" ] || check "ping over Geneve chassis-$a -> chassis-$b" ping_gnv "$a" "$b"
    done
done
no_new_plain "setup" "0 0 0" 1 2 3

# --- kill -9 and restart, with a probe stream each way across it -------------------------
step "kill -9 and restart"
base=$(plain_counts 1 2)
old12=$(spis 1 "$(ip_of 2)")
N=$((RATE * 24))
stream_start 1 2 "$N" "$RATE"
stream_start 2 1 "$N" "$RATE"
sleep 3
t0=$(uptime_s)
log1=$(($(wc -l </tmp/ch1.log) + 1))
log2=$(($(wc -l </tmp/ch2.log) + 1))
kill -KILL "$(cat /tmp/ch1.pid)"
sleep 1
start_one 1
restarted() { [ "$(children_of 1)" = 4 ] && [ "$(keyed_with 1 "$(ip_of 2)")" = 4 ] && [ "$(keyed_with 2 "$(ip_of 1)")" = 4 ]; }
wait_for 90 restarted
t_up=$(elapsed_since "$t0")
stream_end 1 2
stream_end 2 1
lost12=$(stream_result 1 2)
lost21=$(stream_result 2 1)
replaced() { none_of "$old12" 1 "$(ip_of 2)" && none_of "$old12" 2 "$(ip_of 1)"; }
check "kill -9 of chassis-1's daemon and restart: fresh CHILD_SAs with both peers ${t_up} s after the kill, old SAs replaced on both ends" \
    wait_for 30 replaced
echo "# loss across kill -9 + restart at $RATE probes/s (probe S left S/$RATE s after the first; the kill came at ~3 s):"
echo "#   chassis-1 -> chassis-2: lost $lost12"
echo "#   chassis-2 -> chassis-1: lost $lost21"
echo "# what the daemons logged from the kill on:"
show_log 1 "$log1" | grep -v 'chassis=chassis-3' | head -n 30
show_log 2 "$log2" | grep -v 'chassis=chassis-3' | head -n 20
if [ -n "$lost12" ] && [ -n "$lost21" ]; then
    ok "kill -9 and restart: lost $(lost_of "$lost12") of $N probes chassis-1 -> chassis-2 and $(lost_of "$lost21") of $N chassis-2 -> chassis-1"
else
    not_ok "kill -9 and restart: a probe stream did not report ('$lost12' / '$lost21')"
fi
check "after the restart: ping over Geneve chassis-1 -> chassis-2 and back" ping_both 1 2
no_new_plain "kill -9 and restart" "$base" 1 2
echo "# kill -9 fault: $(elapsed_since "$t0") s"

# --- SB_Global.ipsec=false, then true ---------------------------------------------------
step "SB_Global.ipsec off and on"
t0=$(uptime_s)
sbctl set SB_Global . ipsec=false
nothing_left() {
    for c in 1 2 3; do
        [ "$(our_states "$c")" = 0 ] && [ "$(our_policies "$c")" = 0 ] || return 1
    done
}
if wait_for 20 nothing_left; then
    ok "SB_Global.ipsec=false: every state and policy of ours gone in all 3 chassis after $(elapsed_since "$t0") s"
else
    not_ok "SB_Global.ipsec=false: states/policies left (ch1 $(our_states 1)/$(our_policies 1), ch2 $(our_states 2)/$(our_policies 2), ch3 $(our_states 3)/$(our_policies 3))"
fi
p_before=$(plain 2)
check "IPsec off: ping over Geneve chassis-1 -> chassis-2 works" ping_gnv 1 2
check "IPsec off: the Geneve packets now cross the wire in plaintext, as the operator asked ($(($(plain 2) - p_before)) plaintext packets into chassis-2, $(dmesg | grep -c plain-6081-ch2) in the kernel log)" \
    [ "$(plain 2)" -gt "$p_before" ]
sleep 1
ip -n ch1 xfrm monitor >/tmp/xfrm-monitor.ch1 2>&1 &
monitor_pid=$!
sleep 0.5
t0=$(uptime_s)
sbctl set SB_Global . ipsec=true
wait_for 20 mesh_policies 1 2 3
t_pol=$(elapsed_since "$t0")
base=$(plain_counts 1 2 3)
keyed_at_policies="$(keyed_with 1 "$(ip_of 2)")"
if wait_for 120 mesh_up 1 2 3; then
    ok "SB_Global.ipsec=true: policies back after ${t_pol} s (with $keyed_at_policies keyed states then), every pair's SAs up after $(elapsed_since "$t0") s"
else
    not_ok "SB_Global.ipsec=true: SAs up (states: $(our_states 1) $(our_states 2) $(our_states 3))"
fi
kill "$monitor_pid" 2>/dev/null
first_policy=$(grep -n -m1 -E '^[[:space:]]*dir (in|out)' /tmp/xfrm-monitor.ch1 | cut -d: -f1)
first_keyed=$(grep -n -m1 'aead' /tmp/xfrm-monitor.ch1 | cut -d: -f1)
policy_came_first() { [ -n "$first_policy" ] && [ -n "$first_keyed" ] && [ "$first_policy" -lt "$first_keyed" ]; }
check "ip xfrm monitor in chassis-1: the first policy (line ${first_policy:-none}) came before the first keyed state (line ${first_keyed:-none})" policy_came_first
for pair in "1 2" "1 3" "2 3"; do
    # shellcheck disable=SC2086
    check "IPsec on again: ping over Geneve chassis-${pair% *} <-> chassis-${pair#* }" ping_both $pair
done
no_new_plain "IPsec on again, once the policies were back" "$base" 1 2 3
echo "# ipsec off/on fault: $(elapsed_since "$t0") s after ipsec=true"

# --- ip xfrm state flush / policy flush behind the daemon's back ------------------------
step "xfrm state and policy flush"
t0=$(uptime_s)
base=$(plain_counts 1 2 3)
old1=$(spis 1 "$(ip_of 2)")
N=$((RATE * 12))
stream_start 1 2 "$N" "$RATE"
sleep 2
ip -n ch1 xfrm state flush
flushed_repaired() { mesh_up 1 2 3 && none_of "$old1" 1 "$(ip_of 2)" && none_of "$old1" 2 "$(ip_of 1)"; }
if wait_for 30 flushed_repaired; then
    ok "ip xfrm state flush in chassis-1: states back and renegotiated (new SPIs on both ends) after $(elapsed_since "$t0") s"
else
    not_ok "ip xfrm state flush in chassis-1: not repaired (ch1 $(keyed_with 1 "$(ip_of 2)") keyed with ch2; old SPIs left: $(spis 1 "$(ip_of 2)" | tr '\n' ' ')"
fi
stream_end 1 2
lost=$(stream_result 1 2)
echo "# state flush at ~2 s into the stream: lost $lost"
ok "ip xfrm state flush: lost $(lost_of "$lost") of $N probes chassis-1 -> chassis-2 at $RATE/s"
check_pings_after "state flush"
t0=$(uptime_s)
ip -n ch1 xfrm policy flush
if wait_for 10 mesh_policies 1 2 3; then
    ok "ip xfrm policy flush in chassis-1: its 8 policies back after $(elapsed_since "$t0") s"
else
    not_ok "ip xfrm policy flush in chassis-1: $(our_policies 1) policies"
fi
check_pings_after "policy flush"
no_new_plain "state and policy flush" "$base" 1 2 3

# --- a chassis whose certificate has expired --------------------------------------------
step "expired certificate"
expiry=$(cat "$here/chassis-4-expiry")
now=$(date +%s)
if [ "$now" -le "$expiry" ]; then
    echo "# waiting $((expiry - now + 1)) s for chassis-4's certificate to expire"
    sleep $((expiry - now + 1))
fi
t0=$(uptime_s)
base=$(plain_counts 1 4)
log_lines=$(wc -l </tmp/ch1.log)
sbctl chassis-add chassis-4 geneve "$(ip_of 4)"
pol_14() { [ "$(policies_with 1 "$(ip_of 4)")" -ge 2 ] && [ "$(policies_with 4 "$(ip_of 1)")" -ge 2 ]; }
wait_for 30 pol_14
add_geneve 1 4
add_geneve 4 1
rejected_4() { tail -n +"$((log_lines + 1))" /tmp/ch1.log | grep 'authentication failed' | grep -q 'chassis-4'; }
if wait_for 60 rejected_4; then
    reason=$(tail -n +"$((log_lines + 1))" /tmp/ch1.log | grep 'authentication failed' | grep 'chassis-4' | head -n 1 |
        decolor | sed 's/.*reason=//')
    ok "chassis-4 with an expired certificate rejected by chassis-1 after $(elapsed_since "$t0") s; logged reason: $reason"
    case "$reason" in
        *xpired* | *not\ valid* | *NotValid* | *validity*) ok "the logged reason names the expiry" ;;
        *) not_ok "the logged reason names the expiry (it is: $reason)" ;;
    esac
else
    not_ok "chassis-4 with an expired certificate rejected by chassis-1 (no 'authentication failed' for chassis-4 in 60 s)"
fi
expired_chassis_blocked() { [ "$(keyed_with 1 "$(ip_of 4)")" = 0 ] && [ "$(policies_with 1 "$(ip_of 4)")" -ge 2 ]; }
check "no SA with the expired chassis: chassis-1 has 0 keyed states with $(ip_of 4) and its policies" expired_chassis_blocked
check "ping over Geneve chassis-1 -> chassis-4 stays blocked" ping_blocked 1 4
no_new_plain "expired certificate" "$base" 1 4
check "chassis-1 <-> chassis-2 unaffected (ping)" ping_gnv 1 2
del_geneve_of 4 1
sbctl chassis-del chassis-4
kill -TERM "$(cat /tmp/ch4.pid)" 2>/dev/null

# --- chassis-1's certificate replaced on disk -------------------------------------------
# The daemon watches its identity files; a new certificate reauthenticates every established
# IKE SA with it, make before break (RFC 7296 §2.8.3): new IKE and CHILD SAs come up before
# the old ones are deleted, so traffic keeps flowing and nothing leaves in plaintext.
step "certificate replaced"
base=$(plain_counts 1 2)
before=$(spis 1 "$(ip_of 2)")
log_lines=$(wc -l </tmp/ch1.log)
N=$((RATE * 16))
stream_start 1 2 "$N" "$RATE"
sleep 2
cp "$here/chassis-1-rotated-cert.pem" /tmp/ch1-cert.pem.new
mv -f /tmp/ch1-cert.pem.new /tmp/ch1-cert.pem
t0=$(uptime_s)
new_log() { tail -n +"$((log_lines + 1))" /tmp/ch1.log | decolor; }
watched() { new_log | grep -i 'certificate' | grep -v SIGHUP | grep -qiE 'chang|watch|reload|rotat|modif|replac'; }
if wait_for 10 watched; then
    ok "certificate replaced on disk: the daemon's file watcher noticed after $(elapsed_since "$t0") s: $(new_log | grep -i certificate | head -n 1 | cut -c1-160)"
else
    not_ok "no log line of the certificate file watcher within 10 s of the replacement"
fi
check "the daemon loaded the new certificate (subject O=ovn-ipsec faults, CN=chassis-1)" \
    wait_for 15 sh -c "tail -n +$((log_lines + 1)) /tmp/ch1.log | grep 'certificate' | grep -q 'ovn-ipsec faults'"
check "ipsecctl status shows the new certificate" sh -c "'$here/ipsecctl' --socket /tmp/ch1.ctl status | grep certificate | grep -q 'ovn-ipsec faults'"
reauthenticated() {
    new_log | grep -q 'reauthenticated: deleting the old IKE SA' &&
        none_of "$before" 1 "$(ip_of 2)" && none_of "$before" 2 "$(ip_of 1)" && mesh_up 1 2
}
timed "the IKE SA with chassis-2 reauthenticated with the new certificate: new CHILD_SAs on both ends, the old ones deleted" \
    "$t0" 30 reauthenticated
stream_end 1 2
lost=$(stream_result 1 2)
echo "# certificate replaced at ~2 s into the stream: lost $lost"
ok "certificate replaced: lost $(lost_of "$lost") of $N probes chassis-1 -> chassis-2 at $RATE/s across the reauthentication"
check "ping over Geneve chassis-1 -> chassis-2 after the certificate change" ping_gnv 1 2
no_new_plain "certificate replaced" "$base" 1 2

# --- a chassis removed ------------------------------------------------------------------
step "chassis removed"
ip netns exec ch3 nft -f - <<'NFT'
table inet ike {
    counter ike_in {}
    chain input {
        type filter hook input priority 0; policy accept;
        udp dport 500 counter name ike_in
        udp dport 4500 @th,64,32 == 0 counter name ike_in
    }
}
NFT
ike_before=$(ip netns exec ch3 nft list counter inet ike ike_in | sed -n 's/.*packets \([0-9]*\) .*/\1/p')
t0=$(uptime_s)
del_geneve_of 3 1 2
sbctl chassis-del chassis-3
gone3() {
    for c in 1 2; do
        [ "$(states_with "$c" "$(ip_of 3)")" = 0 ] && [ "$(policies_with "$c" "$(ip_of 3)")" = 0 ] || return 1
    done
}
if wait_for 10 gone3; then
    ok "chassis-del chassis-3: its states and policies gone from chassis-1 and chassis-2 after $(elapsed_since "$t0") s"
else
    not_ok "chassis-del chassis-3: left in ch1 $(states_with 1 "$(ip_of 3)")/$(policies_with 1 "$(ip_of 3)"), ch2 $(states_with 2 "$(ip_of 3)")/$(policies_with 2 "$(ip_of 3)")"
fi
sleep 1
ike_after=$(ip netns exec ch3 nft list counter inet ike ike_in | sed -n 's/.*packets \([0-9]*\) .*/\1/p')
deletes=$(grep -c "deleting its SAs and policies" /tmp/ch1.log)
check "IKE Deletes exchanged with chassis-3: $((ike_after - ike_before)) IKE packets arrived there after the chassis-del" \
    [ "$ike_after" -gt "$ike_before" ]
check "chassis-1 <-> chassis-2 unaffected by the removal (ping both ways)" ping_both 1 2
echo "# chassis-1 logged 'deleting its SAs and policies' $deletes times so far"

# --- ovsdb-server stopped for longer than a CHILD_SA lifetime ---------------------------
step "ovsdb-server stopped"
LIFETIME=20
t0=$(uptime_s)
for c in 1 2; do stop_daemon "$c"; done
log1=$(($(wc -l </tmp/ch1.log) + 1))
for c in 1 2; do start_one "$c" --child-sa-lifetime "$LIFETIME"; done
short_up() {
    [ "$(tail -n +"$log1" /tmp/ch1.log | grep -c 'CHILD_SA up')" -ge 2 ] && mesh_up 1 2 &&
        [ "$(ip -s -n ch1 xfrm state | grep -c "soft $LIFETIME(sec)")" = 4 ] &&
        [ "$(ip -s -n ch2 xfrm state | grep -c "soft $LIFETIME(sec)")" = 4 ]
}
timed "chassis-1 and chassis-2 restarted with --child-sa-lifetime $LIFETIME: new SAs with a ${LIFETIME} s soft lifetime" \
    "$t0" 90 short_up
base=$(plain_counts 1 2)
before=$(spis 1 "$(ip_of 2)")
sb_down=$(elapsed_since "$t_start")
N=$((RATE * 40))
stream_start 1 2 "$N" "$RATE"
echo "# probe stream chassis-1 -> chassis-2 started at $(date +%T) (wall clock, as in the daemon logs)"
sb_lines=$(wc -l </tmp/ch1.log)
stop_sb
t0=$(uptime_s)
check "ovsdb-server stopped: both daemons log the Southbound as unreachable and keep every SA" \
    wait_for 20 sh -c "grep -q 'Southbound unreachable; keeping every SA' /tmp/ch1.log && grep -q 'Southbound unreachable; keeping every SA' /tmp/ch2.log"
sleep $((LIFETIME + 2))
rekeyed() { none_of "$before" 1 "$(ip_of 2)" && mesh_up 1 2; }
timed "with ovsdb-server down longer than the ${LIFETIME} s lifetime: CHILD_SAs rekeyed (none of the old SPIs left, 4 keyed states each side), checked" \
    "$t0" 20 rekeyed
rekeys=$(tail -n +"$((sb_lines + 1))" /tmp/ch1.log | grep -c 'CHILD_SA rekeyed')
downs=$(tail -n +"$((sb_lines + 1))" /tmp/ch1.log | grep -c 'peer down')
rekeyed_and_nothing_down() { [ "$rekeys" -ge 1 ] && [ "$downs" = 0 ]; }
check "chassis-1 logged $rekeys CHILD_SA rekeys while the Southbound was down, and $downs IKE SAs going down" rekeyed_and_nothing_down
check "with ovsdb-server down: ping over Geneve chassis-1 -> chassis-2" ping_gnv 1 2
connected1=$(grep -c 'Southbound connected' /tmp/ch1.log)
connected2=$(grep -c 'Southbound connected' /tmp/ch2.log)
t0=$(uptime_s)
start_sb
resynced() {
    [ "$(grep -c 'Southbound connected' /tmp/ch1.log)" -gt "$connected1" ] &&
        [ "$(grep -c 'Southbound connected' /tmp/ch2.log)" -gt "$connected2" ]
}
timed "ovsdb-server started again: both daemons reconnected" "$t0" 60 resynced
stream_end 1 2
lost=$(stream_result 1 2)
# Make-before-break (RFC 7296 §2.8): each side switches its outbound traffic to a new CHILD_SA
# only once the other has its inbound SA (the rekey's responder waits for the initiator's
# Delete), so no probe is lost across the rekeys. The count is final: the stream has ended.
# Probes lost before the first one arrived are not counted: the stream starts as soon as the
# restarted daemons' SAs are up (0-2 were lost there in some runs), the rekeys come ~20 s later.
lost_after_first() {
    n=$(lost_of "$1")
    first=$(echo "$1" | sed -n 's/.*missing \([0-9-]*\).*/\1/p')
    case $first in
    0) n=$((n - 1)) ;;
    0-*) n=$((n - ${first#0-} - 1)) ;;
    esac
    echo "$n"
}
rekey_lost=$(lost_after_first "$lost")
no_loss() { [ "$rekey_lost" = 0 ]; }
check "ovsdb-server down, rekeys meanwhile: lost $(lost_of "$lost") of $N probes chassis-1 -> chassis-2 at $RATE/s, $rekey_lost after the first arrived (none may be)" no_loss
echo "#   ($lost)"
echo "# chassis-1's log while the Southbound was down and after:"
show_log 1 "$((sb_lines + 1))" | grep -v 'Southbound unreachable\|OVSDB connection lost' | head -n 30
sbctl chassis-add chassis-5 geneve "$(ip_of 5)"
check "after the resync the daemons follow the Southbound again: chassis-5 added, chassis-1 programs its policies" \
    wait_for 30 sh -c "[ \$(ip -n ch1 xfrm policy | grep -c '$(ip_of 5)') -ge 2 ]"
sbctl chassis-del chassis-5
check "chassis-1 <-> chassis-2 kept their SAs through the resync (4 keyed states each)" mesh_up 1 2
no_new_plain "ovsdb-server stopped and started" "$base" 1 2

for c in 1 2; do stop_daemon "$c"; done
echo "# faults: $(elapsed_since "$t_start") s of guest time in all (Southbound stopped at ${sb_down} s)"
finish 1 2 3 4
