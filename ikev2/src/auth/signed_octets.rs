//! The octets an AUTH payload signs (RFC 7296 §2.15).
//!
//! ```text
//! InitiatorSignedOctets = RealMessage1 | NonceRData | MACedIDForI
//! MACedIDForI           = prf(SK_pi, RestOfInitIDPayload)
//! ResponderSignedOctets = RealMessage2 | NonceIData | MACedIDForR
//! MACedIDForR           = prf(SK_pr, RestOfRespIDPayload)
//! ```
//!
//! RealMessage1/2 is the whole IKE_SA_INIT request/response as sent on the wire, from the
//! first octet of the IKE header (without the non-ESP marker); NonceR/IData is the content of
//! the other side's Nonce payload without its generic header. The PRF is the IKE SA's
//! negotiated PRF and lives in the crypto module; the caller computes MACedID with
//! [`rest_of_id_payload`] as input and hands the result in.

use crate::registry::IdType;

/// RestOfInitIDPayload / RestOfRespIDPayload: the ID payload after its 4-octet generic
/// header — ID Type, three RESERVED octets, Identification Data (RFC 7296 §2.15, §3.5).
///
/// We send RESERVED as zero. When checking a peer's AUTH, the received payload body can be used
/// verbatim instead; RFC 7296 §2.15 signs the octets as they were sent.
pub fn rest_of_id_payload(id_type: IdType, id_data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + id_data.len());
    out.push(id_type.0);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(id_data);
    out
}

/// The signed octets: `real_message | nonce_data | maced_id`.
///
/// For the initiator's AUTH: RealMessage1, NonceRData, MACedIDForI. For the responder's:
/// RealMessage2, NonceIData, MACedIDForR.
pub fn signed_octets(real_message: &[u8], nonce_data: &[u8], maced_id: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        real_message
            .len()
            .saturating_add(nonce_data.len())
            .saturating_add(maced_id.len()),
    );
    out.extend_from_slice(real_message);
    out.extend_from_slice(nonce_data);
    out.extend_from_slice(maced_id);
    out
}
