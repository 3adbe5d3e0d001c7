//! The IKEv2 key schedule: SKEYSEED, SK_* and CHILD_SA KEYMAT (RFC 7296 §2.13–2.18).
