# The controller's configuration tests start an ovsdb-server with the Open_vSwitch schema and
# lay out its row with ovs-vsctl; both come with openvswitch-switch. Its maintainer scripts
# would start the OVS services; where no policy-rc.d forbids that, one is put in place for
# the installation only.
if ! dpkg-query -W -f='${Status}' openvswitch-switch 2>/dev/null | grep -q 'install ok installed'; then
    ovn_ipsec_policy_rc=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        ovn_ipsec_policy_rc=1
    fi
    need_pkgs openvswitch-switch
    if [ -n "$ovn_ipsec_policy_rc" ]; then
        rm -f /usr/sbin/policy-rc.d
    fi
    unset ovn_ipsec_policy_rc
fi
