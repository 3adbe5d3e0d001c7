# shellcheck shell=dash
# Guest side of tests/phases/vm-smoke.sh: proves the rig against the real kernel in one boot.
# Runs under dash in the guest with udp-probe beside it in the share. Two namespaces on a veth
# pair; ESP transport mode with rfc4106(gcm(aes)) for UDP dport 6081 from a to b; nftables
# counters in b show ESP on the wire and decrypted arrivals; another port stays plaintext.
set -u
here=$(dirname "$0")
probe="$here/udp-probe"
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok - $1"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $1"; }
check() {
    name=$1
    shift
    if "$@"; then ok "$name"; else not_ok "$name"; fi
}
# counter NS NAME: packets of the named counter in table inet smoke of NS.
counter() {
    ip netns exec "$1" nft list counter inet smoke "$2" | sed -n 's/.*packets \([0-9]*\) .*/\1/p'
}
# recv_then_send NS_RECV ADDR PORT COUNT: start a receiver in NS_RECV, wait until it is bound,
# send COUNT probes from a, and report whether all arrived.
recv_then_send() {
    out=/tmp/recv.$3
    ip netns exec "$1" "$probe" recv "$2:$3" "$4" 5000 >"$out" 2>&1 &
    pid=$!
    i=0
    until grep -q listening "$out" 2>/dev/null; do
        i=$((i + 1))
        [ "$i" -le 100 ] || break
        sleep 0.05
    done
    ip netns exec a "$probe" send "$2:$3" "$4" >/dev/null
    wait "$pid"
    rc=$?
    cat "$out"
    return "$rc"
}

ip netns add a
ip netns add b
ip link add va netns a type veth peer name vb netns b
ip -n a addr add 10.0.0.1/24 dev va
ip -n b addr add 10.0.0.2/24 dev vb
for ns in a b; do ip -n "$ns" link set lo up; done
ip -n a link set va up
ip -n b link set vb up

check "dynamically linked Rust binary from the share runs" "$probe" send 127.0.0.1:9 1

# Keys: 16 bytes AES-128 + 4 bytes salt (RFC 4106), fixed test values.
key_ab=0x000102030405060708090a0b0c0d0e0f10111213
key_ba=0x202122232425262728292a2b2c2d2e2f30313233
for ns in a b; do
    ip -n "$ns" xfrm state add src 10.0.0.1 dst 10.0.0.2 proto esp spi 0x1001 reqid 1 mode transport \
        aead 'rfc4106(gcm(aes))' "$key_ab" 128 sel src 10.0.0.1 dst 10.0.0.2 proto udp dport 6081
    ip -n "$ns" xfrm state add src 10.0.0.2 dst 10.0.0.1 proto esp spi 0x2002 reqid 1 mode transport \
        aead 'rfc4106(gcm(aes))' "$key_ba" 128 sel src 10.0.0.2 dst 10.0.0.1 proto udp sport 6081
done
ip -n a xfrm policy add src 10.0.0.1 dst 10.0.0.2 proto udp dport 6081 dir out \
    tmpl src 10.0.0.1 dst 10.0.0.2 proto esp reqid 1 mode transport
ip -n b xfrm policy add src 10.0.0.1 dst 10.0.0.2 proto udp dport 6081 dir in \
    tmpl src 10.0.0.1 dst 10.0.0.2 proto esp reqid 1 mode transport
gcm_states_in_both() {
    [ "$(ip -n a xfrm state | grep -c 'rfc4106(gcm(aes))')" = 2 ] &&
        [ "$(ip -n b xfrm state | grep -c 'rfc4106(gcm(aes))')" = 2 ]
}
check "ESP transport states with rfc4106(gcm(aes)) installed in both namespaces" gcm_states_in_both

ip netns exec b nft -f - <<'NFT'
table inet smoke {
    counter esp_in {}
    counter decrypted_6081 {}
    counter plain_6081 {}
    counter plain_7000 {}
    chain input {
        type filter hook input priority 0; policy accept;
        meta l4proto esp counter name esp_in
        udp dport 6081 meta secpath exists counter name decrypted_6081
        udp dport 6081 meta secpath missing counter name plain_6081
        udp dport 7000 meta secpath missing counter name plain_7000
    }
}
NFT
check "nftables counters loaded in b" ip netns exec b nft list table inet smoke >/dev/null

tcpdump_out=/tmp/tcpdump.txt
ip netns exec b tcpdump -Z root -n -l -i vb -c 5 esp >"$tcpdump_out" 2>/tmp/tcpdump.err &
tcpdump_pid=$!
i=0
until grep -q listening /tmp/tcpdump.err 2>/dev/null; do
    i=$((i + 1))
    [ "$i" -le 200 ] || break
    sleep 0.05
done

check "5 UDP datagrams to 10.0.0.2:6081 arrive" recv_then_send b 10.0.0.2 6081 5
check "ESP on the wire: nft 'meta l4proto esp' counted 5 packets in b" [ "$(counter b esp_in)" = 5 ]
check "decrypted on arrival: nft 'meta secpath exists' counted 5 packets to 6081" [ "$(counter b decrypted_6081)" = 5 ]
check "no plaintext arrived on 6081" [ "$(counter b plain_6081)" = 0 ]
sa_counts_5() {
    ip -n a -s xfrm state get src 10.0.0.1 dst 10.0.0.2 proto esp spi 0x1001 | grep ' 5(packets)' >/dev/null
}
check "the outbound SA in a counts 5 packets" sa_counts_5
# tcpdump exits after 5 ESP packets; when fewer came, stop it after ~2 s instead of hanging.
i=0
while kill -0 "$tcpdump_pid" 2>/dev/null && [ "$i" -lt 40 ]; do
    i=$((i + 1))
    sleep 0.05
done
kill "$tcpdump_pid" 2>/dev/null
wait "$tcpdump_pid"
check "tcpdump in b saw ESP(spi=0x00001001)" [ "$(grep -c 'ESP(spi=0x00001001' "$tcpdump_out")" = 5 ]

esp_before=$(counter b esp_in)
check "3 UDP datagrams to another port (7000) arrive" recv_then_send b 10.0.0.2 7000 3
plaintext_7000() { [ "$(counter b plain_7000)" = 3 ] && [ "$(counter b esp_in)" = "$esp_before" ]; }
check "traffic to 7000 stays plaintext (no secpath) and adds no ESP" plaintext_7000

if [ "$failed" -ne 0 ]; then
    echo "--- state and counters for the failures above ---"
    ip -n a -s xfrm state
    ip -n b -s xfrm policy
    ip netns exec b nft list table inet smoke
    cat "$tcpdump_out" /tmp/tcpdump.err
fi
ip netns del a
ip netns del b
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
