//! The crypto provider: PRFs, AEAD ciphers for the SK payload, key exchange methods.
