//! Authentication: the AUTH payload (RFC 7296 §2.15, RFC 7427) and X.509 certificates.
