//! Soft and hard lifetimes of a state: the kernel sends a soft expire (time to rekey) and, at
//! the hard limit, deletes the state and sends a hard expire.

use netlink_packet_xfrm::{Lifetime as KernelCurrent, LifetimeConfig, XFRM_INF};

/// Limits at which one kind of expiry fires; `None` means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes protected.
    pub bytes: Option<u64>,
    /// Packets protected.
    pub packets: Option<u64>,
    /// Seconds since the state was added.
    pub add_seconds: Option<u64>,
    /// Seconds since the state was first used.
    pub use_seconds: Option<u64>,
}

/// Soft and hard limits of a state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lifetimes {
    /// When to warn (XFRM_MSG_EXPIRE with hard = 0).
    pub soft: Limits,
    /// When the kernel deletes the state (XFRM_MSG_EXPIRE with hard = 1).
    pub hard: Limits,
}

/// What a state has used so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes protected.
    pub bytes: u64,
    /// Packets protected.
    pub packets: u64,
    /// When it was added (seconds since the epoch).
    pub add_time: u64,
    /// When it was first used (seconds since the epoch; 0 if never).
    pub use_time: u64,
}

impl Lifetimes {
    pub(crate) fn to_kernel(self) -> LifetimeConfig {
        let count = |v: Option<u64>| v.unwrap_or(XFRM_INF);
        // Time limits use 0 for "never" in the kernel.
        let time = |v: Option<u64>| v.unwrap_or(0);
        LifetimeConfig {
            soft_byte_limit: count(self.soft.bytes),
            hard_byte_limit: count(self.hard.bytes),
            soft_packet_limit: count(self.soft.packets),
            hard_packet_limit: count(self.hard.packets),
            soft_add_expires_seconds: time(self.soft.add_seconds),
            hard_add_expires_seconds: time(self.hard.add_seconds),
            soft_use_expires_seconds: time(self.soft.use_seconds),
            hard_use_expires_seconds: time(self.hard.use_seconds),
        }
    }

    pub(crate) fn from_kernel(k: &LifetimeConfig) -> Lifetimes {
        let count = |v: u64| if v == XFRM_INF { None } else { Some(v) };
        let time = |v: u64| if v == 0 { None } else { Some(v) };
        Lifetimes {
            soft: Limits {
                bytes: count(k.soft_byte_limit),
                packets: count(k.soft_packet_limit),
                add_seconds: time(k.soft_add_expires_seconds),
                use_seconds: time(k.soft_use_expires_seconds),
            },
            hard: Limits {
                bytes: count(k.hard_byte_limit),
                packets: count(k.hard_packet_limit),
                add_seconds: time(k.hard_add_expires_seconds),
                use_seconds: time(k.hard_use_expires_seconds),
            },
        }
    }
}

impl Usage {
    pub(crate) fn from_kernel(k: &KernelCurrent) -> Usage {
        Usage {
            bytes: k.bytes,
            packets: k.packets,
            add_time: k.add_time,
            use_time: k.use_time,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_lifetimes_use_kernel_infinity_and_round_trip() {
        let l = Lifetimes {
            soft: Limits {
                packets: Some(5),
                ..Limits::default()
            },
            hard: Limits {
                add_seconds: Some(3),
                ..Limits::default()
            },
        };
        let k = l.to_kernel();
        assert_eq!(k.hard_byte_limit, XFRM_INF);
        assert_eq!(k.soft_add_expires_seconds, 0);
        assert_eq!(Lifetimes::from_kernel(&k), l);
    }
}
