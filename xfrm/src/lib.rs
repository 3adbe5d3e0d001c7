//! Programming the Linux kernel's IPsec tables (XFRM states and policies) over netlink.
