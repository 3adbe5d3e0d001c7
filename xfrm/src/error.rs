//! Errors from programming the kernel: each way a request can fail has its own variant, so the
//! controller can tell "the kernel cannot do ESP" from "the object is already there".

use std::fmt;

/// The kind of kernel object a request was about; named in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// An XFRM state (security association).
    State,
    /// An XFRM policy.
    Policy,
    /// An SPI allocation (a larval state).
    Spi,
    /// A dump of states or policies.
    Dump,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::State => "state",
            ObjectKind::Policy => "policy",
            ObjectKind::Spi => "SPI allocation",
            ObjectKind::Dump => "dump",
        })
    }
}

/// Everything that can go wrong talking XFRM netlink.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The netlink socket itself failed (open, bind, send, receive).
    #[error("netlink socket: {0}")]
    Io(#[from] std::io::Error),

    /// The kernel has XFRM but no ESP transform: `esp4`/`esp6` is not built or not loaded.
    #[error("kernel lacks ESP{}{}", module_hint(*.module), kernel_says(.message))]
    KernelLacksEsp {
        /// The kernel module that would provide it, when the address family tells us.
        module: Option<&'static str>,
        /// The kernel's extended-ack message, if any.
        message: Option<String>,
    },

    /// The kernel's crypto layer has no implementation of the algorithm an SA asked for.
    #[error("kernel lacks the algorithm {algorithm}{}{}", module_hint(*.module), kernel_says(.message))]
    KernelLacksAlgorithm {
        /// The kernel algorithm name, e.g. `rfc4106(gcm(aes))`.
        algorithm: &'static str,
        /// The kernel module that usually provides it.
        module: Option<&'static str>,
        /// The kernel's extended-ack message, if any.
        message: Option<String>,
    },

    /// EEXIST: an object with the same identity is already installed.
    #[error("{kind} already exists{}", kernel_says(.message))]
    Exists {
        /// What was being added.
        kind: ObjectKind,
        /// The kernel's extended-ack message, if any.
        message: Option<String>,
    },

    /// ENOENT / ESRCH: the object to update, delete or get is not installed.
    #[error("{kind} not found{}", kernel_says(.message))]
    NotFound {
        /// What was looked up.
        kind: ObjectKind,
        /// The kernel's extended-ack message, if any.
        message: Option<String>,
    },

    /// EINVAL: the kernel rejected the request's contents.
    #[error("kernel rejected the {kind} as invalid{}", kernel_says(.message))]
    Invalid {
        /// What was being programmed.
        kind: ObjectKind,
        /// The kernel's extended-ack message, usually naming the bad field.
        message: Option<String>,
    },

    /// ENOENT from XFRM_MSG_ALLOCSPI: every SPI of the range is taken.
    #[error("no free SPI in {min:#010x}..={max:#010x}")]
    SpiRangeExhausted {
        /// Lowest SPI asked for.
        min: u32,
        /// Highest SPI asked for.
        max: u32,
    },

    /// EPERM: we lack CAP_NET_ADMIN in the network namespace.
    #[error("permission denied (CAP_NET_ADMIN needed) for {kind}")]
    PermissionDenied {
        /// What was being programmed.
        kind: ObjectKind,
    },

    /// Any other errno from the kernel.
    #[error("kernel error {errno} ({}) for {kind}{}", std::io::Error::from_raw_os_error(*.errno), kernel_says(.message))]
    Kernel {
        /// The positive errno value.
        errno: i32,
        /// What was being programmed.
        kind: ObjectKind,
        /// The kernel's extended-ack message, if any.
        message: Option<String>,
    },

    /// A message from the kernel could not be decoded.
    #[error("malformed netlink message from the kernel: {0}")]
    Decode(#[from] crate::wire::DecodeError),

    /// The kernel answered with something other than what the request expects.
    #[error("unexpected reply to {request}: message type {message_type}")]
    UnexpectedReply {
        /// The request we sent.
        request: &'static str,
        /// The netlink message type that came back.
        message_type: u16,
    },

    /// A key has the wrong length for its algorithm.
    #[error("{algorithm} needs a {expected}-byte key, got {got} bytes")]
    InvalidKeyLength {
        /// The kernel algorithm name.
        algorithm: &'static str,
        /// Required length in bytes (including the salt for AEADs).
        expected: usize,
        /// Length given.
        got: usize,
    },

    /// The SPI range is empty or includes the reserved values 0..=255 (RFC 4303 §2.1).
    #[error("invalid SPI range {min:#x}..={max:#x}: must be non-empty and above 255")]
    InvalidSpiRange {
        /// Lowest SPI asked for.
        min: u32,
        /// Highest SPI asked for.
        max: u32,
    },

    /// The replay window is outside what the kernel accepts.
    #[error("replay window {0} out of range 1..={max}", max = crate::state::MAX_REPLAY_WINDOW)]
    InvalidReplayWindow(u32),

    /// Source and destination (or selector) addresses are of different families.
    #[error("mixed IPv4 and IPv6 addresses in one {0}")]
    MixedFamilies(ObjectKind),

    /// A prefix length is longer than the address.
    #[error("prefix length {prefix_len} too long for {addr}")]
    InvalidPrefixLength {
        /// The address.
        addr: std::net::IpAddr,
        /// The prefix length given.
        prefix_len: u8,
    },

    /// We were asked to program an object that does not carry our ownership tag.
    #[error("{kind} with reqid {reqid} is outside our reqid range {min}..={max}")]
    NotOwned {
        /// What was being programmed.
        kind: ObjectKind,
        /// The reqid it carries.
        reqid: u32,
        /// Our lowest reqid.
        min: u32,
        /// Our highest reqid.
        max: u32,
    },

    /// The event socket's receive queue overflowed; events were lost and a full resync is due.
    #[error("event queue overflowed; events were lost")]
    EventsLost,
}

impl Error {
    /// True when the kernel cannot do what was asked because a feature (ESP, an algorithm) is
    /// missing, as opposed to a bad request.
    pub fn is_missing_kernel_support(&self) -> bool {
        matches!(
            self,
            Error::KernelLacksEsp { .. } | Error::KernelLacksAlgorithm { .. }
        )
    }
}

fn module_hint(module: Option<&'static str>) -> String {
    module.map(|m| format!(" (module {m})")).unwrap_or_default()
}

fn kernel_says(message: &Option<String>) -> String {
    message
        .as_ref()
        .map(|m| format!(": kernel says \"{m}\""))
        .unwrap_or_default()
}

/// Convenience alias for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
