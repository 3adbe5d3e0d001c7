//! Typed values for the IANA "Internet Key Exchange Version 2 (IKEv2) Parameters" registry.
//!
//! Each field is a newtype over its wire integer with the assigned values as associated
//! constants. Unknown values stay representable (RFC 7296 §2.5 wants them preserved and, for
//! notify types and payloads, handled by rule rather than rejected), and their name prints as
//! `UNKNOWN(n)`.

use core::fmt;

/// Declares a registry newtype with named constants, `name()`, `Debug` and `Display`.
macro_rules! registry {
    (
        $(#[$meta:meta])*
        $name:ident($repr:ty) {
            $( $(#[$cmeta:meta])* $konst:ident = $value:expr ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub $repr);

        impl $name {
            $( $(#[$cmeta])* pub const $konst: $name = $name($value); )*

            /// The registry's name for this value, or `None` when it is not one we know.
            pub fn known_name(self) -> Option<&'static str> {
                match self.0 {
                    $( $value => Some(stringify!($konst)), )*
                    _ => None,
                }
            }
        }

        impl From<$repr> for $name {
            fn from(v: $repr) -> Self {
                $name(v)
            }
        }

        impl From<$name> for $repr {
            fn from(v: $name) -> Self {
                v.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.known_name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "UNKNOWN({})", self.0),
                }
            }
        }
    };
}

registry! {
    /// Exchange Type of the IKE header (RFC 7296 §3.1).
    ExchangeType(u8) {
        IKE_SA_INIT = 34,
        IKE_AUTH = 35,
        CREATE_CHILD_SA = 36,
        INFORMATIONAL = 37,
        IKE_SESSION_RESUME = 38,
        IKE_INTERMEDIATE = 43,
        IKE_FOLLOWUP_KE = 44,
    }
}

registry! {
    /// Next Payload / payload type (RFC 7296 §3.2, RFC 7383 §2.5).
    PayloadType(u8) {
        /// No Next Payload.
        NONE = 0,
        SA = 33,
        KE = 34,
        IDI = 35,
        IDR = 36,
        CERT = 37,
        CERTREQ = 38,
        AUTH = 39,
        NONCE = 40,
        NOTIFY = 41,
        DELETE = 42,
        VENDOR_ID = 43,
        TSI = 44,
        TSR = 45,
        /// Encrypted and Authenticated.
        SK = 46,
        CP = 47,
        EAP = 48,
        GSPM = 49,
        /// Encrypted and Authenticated Fragment (RFC 7383).
        SKF = 53,
    }
}

registry! {
    /// Protocol ID of proposals, Notify and Delete payloads (RFC 7296 §3.3.1).
    ProtocolId(u8) {
        /// Used in Notify payloads that concern no SA.
        NONE = 0,
        IKE = 1,
        AH = 2,
        ESP = 3,
    }
}

registry! {
    /// Transform Type (RFC 7296 §3.3.2).
    TransformType(u8) {
        /// Encryption Algorithm (ENCR).
        ENCR = 1,
        /// Pseudorandom Function (PRF).
        PRF = 2,
        /// Integrity Algorithm (INTEG).
        INTEG = 3,
        /// Key Exchange Method, formerly Diffie-Hellman Group (D-H).
        KE = 4,
        /// Extended Sequence Numbers (ESN).
        ESN = 5,
    }
}

registry! {
    /// Transform IDs for Transform Type 1, Encryption Algorithm.
    EncrId(u16) {
        ENCR_3DES = 3,
        ENCR_NULL = 11,
        ENCR_AES_CBC = 12,
        ENCR_AES_CTR = 13,
        ENCR_AES_CCM_8 = 14,
        ENCR_AES_CCM_12 = 15,
        ENCR_AES_CCM_16 = 16,
        ENCR_AES_GCM_8 = 18,
        ENCR_AES_GCM_12 = 19,
        ENCR_AES_GCM_16 = 20,
        ENCR_NULL_AUTH_AES_GMAC = 21,
        ENCR_CAMELLIA_CBC = 23,
        ENCR_CHACHA20_POLY1305 = 28,
    }
}

registry! {
    /// Transform IDs for Transform Type 2, Pseudorandom Function.
    PrfId(u16) {
        PRF_HMAC_MD5 = 1,
        PRF_HMAC_SHA1 = 2,
        PRF_AES128_XCBC = 4,
        PRF_HMAC_SHA2_256 = 5,
        PRF_HMAC_SHA2_384 = 6,
        PRF_HMAC_SHA2_512 = 7,
        PRF_AES128_CMAC = 8,
    }
}

registry! {
    /// Transform IDs for Transform Type 3, Integrity Algorithm.
    IntegId(u16) {
        NONE = 0,
        AUTH_HMAC_MD5_96 = 1,
        AUTH_HMAC_SHA1_96 = 2,
        AUTH_AES_XCBC_96 = 5,
        AUTH_AES_CMAC_96 = 8,
        AUTH_HMAC_SHA2_256_128 = 12,
        AUTH_HMAC_SHA2_384_192 = 13,
        AUTH_HMAC_SHA2_512_256 = 14,
    }
}

registry! {
    /// Transform IDs for Transform Type 4, Key Exchange Method (Diffie-Hellman group).
    KeGroup(u16) {
        NONE = 0,
        MODP_768 = 1,
        MODP_1024 = 2,
        MODP_1536 = 5,
        MODP_2048 = 14,
        MODP_3072 = 15,
        MODP_4096 = 16,
        MODP_6144 = 17,
        MODP_8192 = 18,
        ECP_256 = 19,
        ECP_384 = 20,
        ECP_521 = 21,
        CURVE25519 = 31,
        CURVE448 = 32,
    }
}

registry! {
    /// Transform IDs for Transform Type 5, Extended Sequence Numbers.
    EsnId(u16) {
        NO_ESN = 0,
        ESN = 1,
    }
}

registry! {
    /// Transform attribute types (RFC 7296 §3.3.5).
    TransformAttributeType(u16) {
        /// Key Length in bits, always in TV format.
        KEY_LENGTH = 14,
    }
}

registry! {
    /// Identification payload ID Type (RFC 7296 §3.5).
    IdType(u8) {
        ID_IPV4_ADDR = 1,
        ID_FQDN = 2,
        ID_RFC822_ADDR = 3,
        ID_IPV6_ADDR = 5,
        ID_DER_ASN1_DN = 9,
        ID_DER_ASN1_GN = 10,
        ID_KEY_ID = 11,
        ID_FC_NAME = 12,
        ID_NULL = 13,
    }
}

registry! {
    /// Certificate Encoding of CERT and CERTREQ payloads (RFC 7296 §3.6).
    CertEncoding(u8) {
        PKCS7_WRAPPED_X509 = 1,
        PGP = 2,
        DNS_SIGNED_KEY = 3,
        X509_SIGNATURE = 4,
        KERBEROS_TOKEN = 6,
        CRL = 7,
        ARL = 8,
        SPKI = 9,
        X509_ATTRIBUTE = 10,
        RAW_RSA_KEY = 11,
        HASH_URL_X509_CERT = 12,
        HASH_URL_X509_BUNDLE = 13,
        OCSP_CONTENT = 14,
        RAW_PUBLIC_KEY = 15,
    }
}

registry! {
    /// Authentication Method of the AUTH payload (RFC 7296 §3.8, RFC 7427).
    AuthMethod(u8) {
        RSA_DIGITAL_SIGNATURE = 1,
        SHARED_KEY_MESSAGE_INTEGRITY_CODE = 2,
        DSS_DIGITAL_SIGNATURE = 3,
        ECDSA_SHA256_P256 = 9,
        ECDSA_SHA384_P384 = 10,
        ECDSA_SHA512_P521 = 11,
        GENERIC_SECURE_PASSWORD = 12,
        NULL_AUTHENTICATION = 13,
        DIGITAL_SIGNATURE = 14,
    }
}

registry! {
    /// Hash algorithms of SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4).
    HashAlgorithm(u16) {
        SHA1 = 1,
        SHA2_256 = 2,
        SHA2_384 = 3,
        SHA2_512 = 4,
        IDENTITY = 5,
    }
}

registry! {
    /// Traffic Selector Type (RFC 7296 §3.13.1).
    TsType(u8) {
        TS_IPV4_ADDR_RANGE = 7,
        TS_IPV6_ADDR_RANGE = 8,
    }
}

registry! {
    /// Configuration payload CFG Type (RFC 7296 §3.15).
    CfgType(u8) {
        CFG_REQUEST = 1,
        CFG_REPLY = 2,
        CFG_SET = 3,
        CFG_ACK = 4,
    }
}

registry! {
    /// Configuration attribute types (RFC 7296 §3.15.1).
    CfgAttributeType(u16) {
        INTERNAL_IP4_ADDRESS = 1,
        INTERNAL_IP4_NETMASK = 2,
        INTERNAL_IP4_DNS = 3,
        INTERNAL_IP4_NBNS = 4,
        INTERNAL_IP4_DHCP = 6,
        APPLICATION_VERSION = 7,
        INTERNAL_IP6_ADDRESS = 8,
        INTERNAL_IP6_DNS = 10,
        INTERNAL_IP6_DHCP = 12,
        INTERNAL_IP4_SUBNET = 13,
        SUPPORTED_ATTRIBUTES = 14,
        INTERNAL_IP6_SUBNET = 15,
    }
}

registry! {
    /// Notify Message Type (RFC 7296 §3.10.1 and later RFCs). Values below 16384 are errors.
    NotifyType(u16) {
        UNSUPPORTED_CRITICAL_PAYLOAD = 1,
        INVALID_IKE_SPI = 4,
        INVALID_MAJOR_VERSION = 5,
        INVALID_SYNTAX = 7,
        INVALID_MESSAGE_ID = 9,
        INVALID_SPI = 11,
        NO_PROPOSAL_CHOSEN = 14,
        INVALID_KE_PAYLOAD = 17,
        AUTHENTICATION_FAILED = 24,
        SINGLE_PAIR_REQUIRED = 34,
        NO_ADDITIONAL_SAS = 35,
        INTERNAL_ADDRESS_FAILURE = 36,
        FAILED_CP_REQUIRED = 37,
        TS_UNACCEPTABLE = 38,
        INVALID_SELECTORS = 39,
        UNACCEPTABLE_ADDRESSES = 40,
        UNEXPECTED_NAT_DETECTED = 41,
        USE_ASSIGNED_HOA = 42,
        TEMPORARY_FAILURE = 43,
        CHILD_SA_NOT_FOUND = 44,
        INVALID_GROUP_ID = 45,
        AUTHORIZATION_FAILED = 46,
        STATE_NOT_FOUND = 47,
        INITIAL_CONTACT = 16384,
        SET_WINDOW_SIZE = 16385,
        ADDITIONAL_TS_POSSIBLE = 16386,
        IPCOMP_SUPPORTED = 16387,
        NAT_DETECTION_SOURCE_IP = 16388,
        NAT_DETECTION_DESTINATION_IP = 16389,
        COOKIE = 16390,
        USE_TRANSPORT_MODE = 16391,
        HTTP_CERT_LOOKUP_SUPPORTED = 16392,
        REKEY_SA = 16393,
        ESP_TFC_PADDING_NOT_SUPPORTED = 16394,
        NON_FIRST_FRAGMENTS_ALSO = 16395,
        MOBIKE_SUPPORTED = 16396,
        ADDITIONAL_IP4_ADDRESS = 16397,
        ADDITIONAL_IP6_ADDRESS = 16398,
        NO_ADDITIONAL_ADDRESSES = 16399,
        UPDATE_SA_ADDRESSES = 16400,
        COOKIE2 = 16401,
        NO_NATS_ALLOWED = 16402,
        AUTH_LIFETIME = 16403,
        MULTIPLE_AUTH_SUPPORTED = 16404,
        ANOTHER_AUTH_FOLLOWS = 16405,
        REDIRECT_SUPPORTED = 16406,
        REDIRECT = 16407,
        REDIRECTED_FROM = 16408,
        TICKET_LT_OPAQUE = 16409,
        TICKET_REQUEST = 16410,
        TICKET_ACK = 16411,
        TICKET_NACK = 16412,
        TICKET_OPAQUE = 16413,
        LINK_ID = 16414,
        USE_WESP_MODE = 16415,
        ROHC_SUPPORTED = 16416,
        EAP_ONLY_AUTHENTICATION = 16417,
        CHILDLESS_IKEV2_SUPPORTED = 16418,
        QUICK_CRASH_DETECTION = 16419,
        IKEV2_MESSAGE_ID_SYNC_SUPPORTED = 16420,
        IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED = 16421,
        IKEV2_MESSAGE_ID_SYNC = 16422,
        IPSEC_REPLAY_COUNTER_SYNC = 16423,
        SECURE_PASSWORD_METHODS = 16424,
        PSK_PERSIST = 16425,
        PSK_CONFIRM = 16426,
        ERX_SUPPORTED = 16427,
        IFOM_CAPABILITY = 16428,
        SENDER_REQUEST_ID = 16429,
        IKEV2_FRAGMENTATION_SUPPORTED = 16430,
        SIGNATURE_HASH_ALGORITHMS = 16431,
        CLONE_IKE_SA_SUPPORTED = 16432,
        CLONE_IKE_SA = 16433,
        PUZZLE = 16434,
        USE_PPK = 16435,
        PPK_IDENTITY = 16436,
        NO_PPK_AUTH = 16437,
        INTERMEDIATE_EXCHANGE_SUPPORTED = 16438,
        IP4_ALLOWED = 16439,
        IP6_ALLOWED = 16440,
        ADDITIONAL_KEY_EXCHANGE = 16441,
        USE_AGGFRAG = 16442,
    }
}

impl NotifyType {
    /// RFC 7296 §3.10.1: types 0–16383 report errors; 16384 and above carry status.
    pub fn is_error(self) -> bool {
        self.0 < 16384
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_are_preserved_and_named_as_unknown() {
        let t = NotifyType(40000);
        assert_eq!(t.known_name(), None);
        assert_eq!(t.to_string(), "UNKNOWN(40000)");
        assert_eq!(u16::from(t), 40000);
    }

    #[test]
    fn known_values_print_their_registry_name() {
        assert_eq!(ExchangeType::IKE_AUTH.to_string(), "IKE_AUTH");
        assert_eq!(format!("{:?}", PayloadType::SKF), "SKF");
        assert!(NotifyType::INVALID_KE_PAYLOAD.is_error());
        assert!(!NotifyType::COOKIE.is_error());
    }
}
