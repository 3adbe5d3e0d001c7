//! NAT detection (RFC 7296 §2.23): the NAT_DETECTION_SOURCE_IP and
//! NAT_DETECTION_DESTINATION_IP hashes, and what a mismatch means.

use std::net::{IpAddr, SocketAddr};

use ring::digest;

use crate::codec::payload::NAT_DETECTION_HASH_LEN;

/// `SHA-1(SPIi | SPIr | IP address | port)`, with the SPIs as in the message's header.
pub fn nat_detection_hash(
    spi_i: &[u8; 8],
    spi_r: &[u8; 8],
    addr: SocketAddr,
) -> [u8; NAT_DETECTION_HASH_LEN] {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(spi_i);
    ctx.update(spi_r);
    match addr.ip() {
        IpAddr::V4(a) => ctx.update(&a.octets()),
        IpAddr::V6(a) => ctx.update(&a.octets()),
    }
    ctx.update(&addr.port().to_be_bytes());
    let mut out = [0u8; NAT_DETECTION_HASH_LEN];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// What the NAT detection notifies of a received IKE_SA_INIT message say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NatDetection {
    /// The peer sent NAT detection notifies at all (it supports NAT-T).
    pub peer_supports_nat_t: bool,
    /// Our address differs from what the peer sent to: we are behind a NAT, so we send
    /// keepalives (RFC 3948 §2.3).
    pub local_behind_nat: bool,
    /// The peer's address differs from what it sent from: it is behind a NAT (or fakes it to
    /// force encapsulation).
    pub remote_behind_nat: bool,
}

impl NatDetection {
    /// Compares the hashes the peer sent with those of the addresses the message really had.
    ///
    /// `source_hashes` are the NAT_DETECTION_SOURCE_IP data (several when the peer has several
    /// addresses), `destination_hash` the NAT_DETECTION_DESTINATION_IP data; `spi_r` is as in
    /// the received header (zero in an IKE_SA_INIT request).
    pub fn evaluate(
        spi_i: &[u8; 8],
        spi_r: &[u8; 8],
        local: SocketAddr,
        remote: SocketAddr,
        source_hashes: &[[u8; NAT_DETECTION_HASH_LEN]],
        destination_hash: Option<&[u8; NAT_DETECTION_HASH_LEN]>,
    ) -> Self {
        let Some(destination_hash) = destination_hash else {
            return NatDetection::default();
        };
        if source_hashes.is_empty() {
            return NatDetection::default();
        }
        let expected_source = nat_detection_hash(spi_i, spi_r, remote);
        let expected_destination = nat_detection_hash(spi_i, spi_r, local);
        NatDetection {
            peer_supports_nat_t: true,
            local_behind_nat: *destination_hash != expected_destination,
            remote_behind_nat: !source_hashes.contains(&expected_source),
        }
    }

    /// Whether IKE moves to the NAT-T port and ESP is UDP-encapsulated (RFC 7296 §2.23).
    pub fn nat_detected(&self) -> bool {
        self.local_behind_nat || self.remote_behind_nat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const SPI_I: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
    const SPI_R: [u8; 8] = [0; 8];

    #[test]
    fn matching_hashes_mean_no_nat() {
        let (us, them) = (addr("192.0.2.2:500"), addr("192.0.2.1:500"));
        let src = nat_detection_hash(&SPI_I, &SPI_R, them);
        let dst = nat_detection_hash(&SPI_I, &SPI_R, us);
        let nat = NatDetection::evaluate(&SPI_I, &SPI_R, us, them, &[src], Some(&dst));
        assert!(nat.peer_supports_nat_t);
        assert!(!nat.nat_detected());
    }

    #[test]
    fn translated_source_means_the_peer_is_behind_a_nat() {
        let (us, them) = (addr("192.0.2.2:500"), addr("198.51.100.1:31000"));
        // The peer hashed its private address.
        let src = nat_detection_hash(&SPI_I, &SPI_R, addr("10.0.0.5:500"));
        let dst = nat_detection_hash(&SPI_I, &SPI_R, us);
        let nat = NatDetection::evaluate(&SPI_I, &SPI_R, us, them, &[src], Some(&dst));
        assert!(nat.remote_behind_nat);
        assert!(!nat.local_behind_nat);
    }

    #[test]
    fn translated_destination_means_we_are_behind_a_nat() {
        let (us, them) = (addr("10.0.0.2:500"), addr("192.0.2.1:500"));
        let src = nat_detection_hash(&SPI_I, &SPI_R, them);
        let dst = nat_detection_hash(&SPI_I, &SPI_R, addr("203.0.113.9:500"));
        let nat = NatDetection::evaluate(&SPI_I, &SPI_R, us, them, &[src], Some(&dst));
        assert!(nat.local_behind_nat);
        assert!(nat.nat_detected());
    }

    #[test]
    fn peer_without_nat_detection_notifies_does_not_do_nat_t() {
        let nat = NatDetection::evaluate(
            &SPI_I,
            &SPI_R,
            addr("192.0.2.2:500"),
            addr("192.0.2.1:500"),
            &[],
            None,
        );
        assert_eq!(nat, NatDetection::default());
    }

    #[test]
    fn hash_covers_the_port() {
        let a = nat_detection_hash(&SPI_I, &SPI_R, addr("192.0.2.1:500"));
        let b = nat_detection_hash(&SPI_I, &SPI_R, addr("192.0.2.1:4500"));
        assert_ne!(a, b);
    }
}
