//! An OVSDB (RFC 7047) client for the OVN Southbound database.
