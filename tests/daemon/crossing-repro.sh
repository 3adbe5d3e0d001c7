# shellcheck shell=dash
# Guest half of tests/daemon/crossing-repro-host.sh: repeats a crossed initiation between
# ovn-ipsecd (chassis-1, the pair's designated initiator) and strongSwan's charon (chassis-2,
# configured as ovs-monitor-ipsec configures it), and after each round records both sides'
# view. A round: `ipsecctl terminate chassis-2`, then charon initiates both children
# (swanctl --initiate of "out", then of "in") at a moment chosen to cross our own retry, or,
# in every other round, `ipsecctl initiate` at the same moment as charon. Each round must end
# with exactly one IKE SA on each side and both CHILD_SAs in both daemons and the kernel.
# A failing round prints the daemons' logs, the IKE messages on the wire (tcpdump) and the
# views. ROUNDS (default 12) sets the number of rounds. A last round has charon delete one
# CHILD_SA alone and waits for our daemon to create it again.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
mesh=/tmp/mesh
tar -xf "$here/mesh.tar" -C /tmp
pki=$mesh/pki
cp "$pki/cacert-bundle.pem" "$pki/ca-bundle.pem"
charon=2
[ -f "$here/rounds.env" ] && . "$here/rounds.env"
rounds=${ROUNDS:-12}
t0=$(date +%s)
note() { echo "# [$(($(date +%s) - t0)) s] $*"; }
conn() { echo "ovn-chassis-$1-0"; }

swan() {
    d=$mesh/chassis-$charon
    STRONGSWAN_CONF=$d/strongswan.conf SWANCTL_DIR=$d/swanctl swanctl "$@" --uri "unix://$d/charon.vici"
}
swan_answers() { swan --stats >/dev/null 2>&1; }
wait_secs() {
    end=$(($(date +%s) + $1))
    shift
    until "$@"; do
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 0.5
    done
}
start_charon() {
    d=$mesh/chassis-$charon
    ip netns exec "ch$charon" env STRONGSWAN_CONF="$d/strongswan.conf" SWANCTL_DIR="$d/swanctl" \
        sh -c 'mount --bind "$1" /run && exec /usr/lib/ipsec/charon' sh "$d/run" \
        >>"$d/charon.stdout" 2>&1 &
    echo $! >"/tmp/ch$charon.pid"
    wait_secs 30 swan_answers && swan --load-all >/dev/null
}
charon_initiate() {
    for dir in out in; do
        swan --initiate --ike "$(conn 1)" --child "$(conn 1)-$dir-1" --timeout 30 >>/tmp/swan-init.log 2>&1 \
            || return 1
    done
}
charon_ike_gone() { [ "$(swan --list-sas --ike "$(conn 1)" 2>/dev/null | grep -c ESTABLISHED)" = 0 ]; }

# views: both daemons' status and the kernel's states into /tmp/v.*.
views() {
    swan --list-sas --raw >/tmp/v.charon 2>&1
    ctl 1 sas --json 2>/dev/null | tr -d ' \n' | sed 's/},{"peer"/}\n{"peer"/g' >/tmp/v.ours
    echo >>/tmp/v.ours
    for c in 1 2; do
        ip -n "ch$c" xfrm state | awk '
            /^src/ { s = $2; d = $4; spi = "" }
            / spi / { for (i = 1; i < NF; i++) if ($i == "spi") spi = $(i + 1) }
            /aead/ { print s, d, spi }' | sort >"/tmp/v.xs$c"
    done
}
charon_ike_count() { grep -c "$(conn 1) {" /tmp/v.charon; }
charon_child_count() { grep -F "$(conn 1) {" /tmp/v.charon | grep -o 'state=INSTALLED' | wc -l; }
our_ike_count() { grep -c '"peer":"chassis-2"' /tmp/v.ours; }
our_child_count() { grep '"peer":"chassis-2"' /tmp/v.ours | grep -o '"spi_in"' | wc -l; }
# settled: one IKE SA with two CHILD_SAs on each side, four keyed states each, the same SPIs.
settled() {
    views
    [ "$(charon_ike_count)" = 1 ] && [ "$(charon_child_count)" = 2 ] \
        && [ "$(our_ike_count)" = 1 ] && [ "$(our_child_count)" = 2 ] \
        && [ "$(wc -l </tmp/v.xs1)" = 4 ] && cmp -s /tmp/v.xs1 /tmp/v.xs2
}
summary() {
    roles="charon initiator=$(grep -F "$(conn 1) {" /tmp/v.charon | grep -o 'initiator=[a-z]*' | head -n 1 | cut -d= -f2), ovn-ipsecd $(grep -o '"role":"[a-z]*"' /tmp/v.ours | head -n 1 | cut -d'"' -f4)"
    echo "$roles; charon: $(charon_ike_count) IKE SA(s), $(charon_child_count) CHILD_SA(s); ovn-ipsecd: $(our_ike_count) IKE SA(s), $(our_child_count) CHILD_SA(s); kernel states ch1 $(wc -l </tmp/v.xs1), ch2 $(wc -l </tmp/v.xs2)"
}
# dump FROM_OURS FROM_CHARON FROM_WIRE: what happened since those line numbers.
dump() {
    echo "--- ovn-ipsecd log of the round"
    tail -n +"$1" /tmp/ch1.log | grep -v 'southbound\|ovsdb\|metrics' | sed 's/\x1b\[[0-9;]*m//g' | tail -n 300
    echo "--- charon log of the round"
    tail -n +"$2" "$mesh/chassis-$charon/charon.log" | grep -i 'generating\|parsed\|received\|sending\|establish\|delet\|CHILD_SA\|IKE_SA\|uniqueness\|retransmit\|initiat\|closing\|failed' | tail -n 200
    echo "--- IKE messages on the wire (ch1)"
    tail -n +"$3" /tmp/ike.txt | tail -n 120
    echo "--- views"
    cat /tmp/v.ours
    cat /tmp/v.charon
    cat /tmp/v.xs1 /tmp/v.xs2
}
# what_happened FROM: whether the round crossed, and what resolved it, from our log.
what_happened() {
    r=$(tail -n +"$1" /tmp/ch1.log)
    echo "crossed at IKE_SA_INIT: $(echo "$r" | grep -c 'crossed initiation: keeping our attempt'), our IKE SA yielded: $(echo "$r" | grep -c 'crossed initiation: the peer kept'), CHILD_SAs repaired: $(echo "$r" | grep -c 'without this CHILD_SA: creating it')"
}
lines() { wc -l <"$1" 2>/dev/null || echo 0; }

start_sb
sbctl init
sbctl set SB_Global . ipsec=true
for c in 1 2; do
    add_netns "$c"
    ip netns exec "ch$c" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    sbctl chassis-add "chassis-$c" geneve "$(ip_of "$c")"
done
start_charon
ip netns exec ch1 tcpdump -Z root -n -l -v -i v1 'udp port 500 or udp port 4500' >/tmp/ike.txt 2>/tmp/tcpdump.err &
tcpdump_pid=$!
OVN_IPSECD_LOG=debug start_daemon ch1 chassis-1 "$pki/chassis-1-cert.pem" "$pki/chassis-1-privkey.pem"
check "round 0: ovn-ipsecd brings the pair up with both CHILD_SAs" wait_secs 90 settled
summary

i=1
while [ "$i" -le "$rounds" ]; do
    # Charon's start within our retry window (3.75-5 s after our terminate), in steps.
    delays="2.5 3 3.5 4 4.5"
    delay=$(echo "$delays" | cut -d' ' -f$(((i - 1) % 5 + 1)))
    mode=retry
    [ $((i % 2)) = 0 ] && mode=initiate
    l_ours=$(($(lines /tmp/ch1.log) + 1))
    l_charon=$(($(lines "$mesh/chassis-$charon/charon.log") + 1))
    l_wire=$(($(lines /tmp/ike.txt) + 1))
    note "round $i ($mode): terminate, charon initiates $delay s later"
    : >/tmp/swan-init.log
    ctl 1 terminate chassis-2 >/dev/null
    wait_secs 10 charon_ike_gone
    if [ "$mode" = initiate ]; then
        sleep 1
        ctl 1 initiate chassis-2 >/dev/null &
        charon_initiate
    else
        sleep "$delay"
        charon_initiate
    fi
    swan_rc=$?
    if wait_secs 60 settled; then
        ok "round $i ($mode, $delay s): one IKE SA, both CHILD_SAs on both sides ($(summary); $(what_happened "$l_ours"))"
    else
        not_ok "round $i ($mode, $delay s): one IKE SA, both CHILD_SAs on both sides ($(summary); swanctl --initiate exit $swan_rc)"
        cat /tmp/swan-init.log | tail -n 20
        dump "$l_ours" "$l_charon" "$l_wire"
        # Start the next round from a clean pair: both sides drop everything, ours retries.
        swan --terminate --ike "$(conn 1)" --timeout 10 >/dev/null 2>&1
        ctl 1 terminate chassis-2 >/dev/null 2>&1
        wait_secs 60 settled
    fi
    i=$((i + 1))
done

# The repair: charon deletes one CHILD_SA alone (swanctl --terminate --child); our daemon
# notices the IKE SA lacking it and creates it again.
l_ours=$(($(lines /tmp/ch1.log) + 1))
note "repair: charon deletes its \"in\" CHILD_SA alone"
swan --terminate --child "$(conn 1)-in-1" --timeout 10 >/dev/null 2>&1
if wait_secs 60 settled; then
    ok "repair: the CHILD_SA charon deleted is back on both sides ($(summary); $(what_happened "$l_ours"))"
else
    not_ok "repair: the CHILD_SA charon deleted is back on both sides ($(summary))"
    dump "$l_ours" 1 1
fi

note "done"
kill "$tcpdump_pid" 2>/dev/null
kill -TERM "$(cat /tmp/ch1.pid)" "$(cat "/tmp/ch$charon.pid")" 2>/dev/null
finish
