# The OVSDB client and Southbound view tests start real ovsdb-server processes with the OVN
# Southbound schema, drive them with ovn-sbctl and make TLS certificates with ovs-pki.
need_pkgs ovn-central ovn-common openvswitch-common
