//! Proposal selection (RFC 7296 §2.7, §3.3.6) and the proposals a peer is configured with.
//!
//! The responder takes the initiator's proposals in the initiator's order and picks the first
//! one it accepts, choosing one transform of each type the proposal has, again in the
//! initiator's order. Transforms match on type, ID and Key Length attribute together.
//!
//! Offered proposals come in as [`OfferedProposal`], the engine's view of one proposal of an
//! SA payload; our side is a list of [`TransformSpec`] per configured proposal, built from an
//! [`IkeProposal`] or [`EspProposal`].

use thiserror::Error;

use crate::codec::{self, AttributeValue, TransformId};
use crate::registry::{
    EncrId, EsnId, IntegId, KeGroup, PrfId, ProtocolId, TransformAttributeType, TransformType,
};

/// SPI size of an ESP or AH proposal (RFC 7296 §3.3.1).
pub const CHILD_SPI_SIZE: usize = 4;

/// SPI size of an IKE proposal during an IKE SA rekey (RFC 7296 §3.3.1); in IKE_SA_INIT it is 0.
pub const IKE_REKEY_SPI_SIZE: usize = 8;

/// Proposals per SA payload we look at; an SA payload can hold at most 255 anyway.
pub const MAX_PROPOSALS: usize = 64;

/// Transforms per proposal we look at.
pub const MAX_TRANSFORMS: usize = 64;

/// One transform as matched: type, ID, and the Key Length attribute in bits if present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransformSpec {
    /// Transform Type.
    pub transform_type: TransformType,
    /// Transform ID within the type.
    pub id: u16,
    /// Key Length attribute (RFC 7296 §3.3.5), for variable-length ciphers.
    pub key_length: Option<u16>,
}

impl TransformSpec {
    /// A transform without attributes.
    pub fn new(transform_type: TransformType, id: u16) -> Self {
        TransformSpec {
            transform_type,
            id,
            key_length: None,
        }
    }

    /// An encryption transform with a Key Length attribute.
    pub fn encr(id: EncrId, key_length: Option<u16>) -> Self {
        TransformSpec {
            transform_type: TransformType::ENCR,
            id: id.0,
            key_length,
        }
    }
}

/// One transform of an offered proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferedTransform {
    /// What it is.
    pub spec: TransformSpec,
    /// False when it carried an attribute we do not know; such a transform is never chosen
    /// (RFC 7296 §3.3.6).
    pub understood: bool,
}

/// One proposal of a received SA payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedProposal {
    /// Proposal Num, echoed in the reply (RFC 7296 §3.3.1).
    pub number: u8,
    /// Protocol ID.
    pub protocol: ProtocolId,
    /// The sender's SPI (empty in IKE_SA_INIT).
    pub spi: Vec<u8>,
    /// The transforms, in the sender's order.
    pub transforms: Vec<OfferedTransform>,
}

impl From<&codec::Transform> for OfferedTransform {
    fn from(t: &codec::Transform) -> Self {
        // RFC 7296 §3.3.5: Key Length is the only attribute defined, and always in TV form.
        let understood = t.attributes.iter().all(|a| {
            a.attribute_type == TransformAttributeType::KEY_LENGTH
                && matches!(a.value, AttributeValue::Tv(_))
        });
        OfferedTransform {
            spec: TransformSpec {
                transform_type: t.id.transform_type(),
                id: t.id.value(),
                key_length: t.key_length(),
            },
            understood,
        }
    }
}

impl From<&codec::Proposal> for OfferedProposal {
    fn from(p: &codec::Proposal) -> Self {
        OfferedProposal {
            number: p.number,
            protocol: p.protocol,
            spi: p.spi.clone(),
            transforms: p
                .transforms
                .iter()
                .take(MAX_TRANSFORMS)
                .map(Into::into)
                .collect(),
        }
    }
}

impl From<TransformSpec> for codec::Transform {
    fn from(t: TransformSpec) -> Self {
        let id = TransformId::new(t.transform_type, t.id);
        match t.key_length {
            Some(bits) => codec::Transform::with_key_length(id, bits),
            None => codec::Transform::new(id),
        }
    }
}

/// Builds the proposal an initiator sends: number `number`, our `spi` (empty in IKE_SA_INIT),
/// and every transform of `transforms`.
pub fn to_wire_proposal(
    number: u8,
    protocol: ProtocolId,
    spi: Vec<u8>,
    transforms: &[TransformSpec],
) -> codec::Proposal {
    codec::Proposal {
        number,
        protocol,
        spi,
        transforms: transforms.iter().map(|&t| t.into()).collect(),
    }
}

/// [`select`] over a received SA payload.
pub fn select_from_sa(
    sa: &codec::Sa,
    ours: &[Vec<TransformSpec>],
    protocol: ProtocolId,
    spi_size: usize,
    ke: KeRule,
) -> Result<Selected, SelectError> {
    let offered: Vec<OfferedProposal> = sa
        .proposals
        .iter()
        .take(MAX_PROPOSALS)
        .map(Into::into)
        .collect();
    select(&offered, ours, protocol, spi_size, ke)
}

/// How the Key Exchange transform type takes part in a selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeRule {
    /// The message carries a KE payload of this group, so the chosen group must be it
    /// (IKE_SA_INIT, CREATE_CHILD_SA with PFS).
    MustMatch(KeGroup),
    /// The message carries no KE payload: the chosen proposal must have no group but NONE.
    None,
    /// KE transforms are left out of the choice and the reply (the first CHILD_SA in IKE_AUTH,
    /// whose keys come from the IKE SA: RFC 7296 §1.2).
    Ignore,
}

/// Why no proposal was selected.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum SelectError {
    /// Nothing offered is acceptable; answer NO_PROPOSAL_CHOSEN (RFC 7296 §2.7).
    #[error("no offered proposal is acceptable")]
    NoProposalChosen,
    /// A proposal is acceptable but with a different group than the KE payload's; answer
    /// INVALID_KE_PAYLOAD naming `preferred` (RFC 7296 §1.2, §1.3).
    #[error("acceptable proposal needs key exchange group {preferred}")]
    InvalidKe {
        /// Our preferred group among the acceptable ones of that proposal.
        preferred: KeGroup,
    },
}

/// The chosen proposal: its number and SPI, and one transform of each type it offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    /// Proposal Num to echo.
    pub number: u8,
    /// Protocol ID.
    pub protocol: ProtocolId,
    /// The peer's SPI from the proposal.
    pub spi: Vec<u8>,
    /// The chosen transforms, ordered by transform type; what the reply's proposal holds.
    pub transforms: Vec<TransformSpec>,
}

impl Selected {
    /// The proposal of the response's SA payload: the chosen transforms with the proposal's
    /// number and `our_spi` (empty in IKE_SA_INIT, our inbound SPI for a CHILD_SA).
    pub fn to_wire_proposal(&self, our_spi: Vec<u8>) -> codec::Proposal {
        to_wire_proposal(self.number, self.protocol, our_spi, &self.transforms)
    }

    /// Whether a response's chosen proposal is one we could have chosen from what we offered:
    /// the initiator's check of the responder's answer (RFC 7296 §2.7: exactly one transform
    /// of each offered type).
    pub fn is_valid_answer(&self, offered: &[OfferedProposal]) -> bool {
        let Some(ours) = offered.iter().find(|p| p.number == self.number) else {
            return false;
        };
        let one_per_type = {
            let mut types: Vec<TransformType> =
                self.transforms.iter().map(|t| t.transform_type).collect();
            types.sort();
            let n = types.len();
            types.dedup();
            n == types.len()
        };
        one_per_type
            && ours.protocol == self.protocol
            && self
                .transforms
                .iter()
                .all(|t| ours.transforms.iter().any(|o| o.spec == *t))
    }

    /// The chosen transform of `transform_type`, if the proposal had that type.
    pub fn get(&self, transform_type: TransformType) -> Option<TransformSpec> {
        self.transforms
            .iter()
            .find(|t| t.transform_type == transform_type)
            .copied()
    }

    /// The chosen key exchange group, NONE when there is none.
    pub fn ke_group(&self) -> KeGroup {
        self.get(TransformType::KE)
            .map_or(KeGroup::NONE, |t| KeGroup(t.id))
    }

    /// The chosen encryption algorithm and key length, NULL if absent.
    pub fn encryption(&self) -> (EncrId, Option<u16>) {
        self.get(TransformType::ENCR)
            .map_or((EncrId::ENCR_NULL, None), |t| (EncrId(t.id), t.key_length))
    }

    /// The chosen integrity algorithm, NONE if absent (AEAD).
    pub fn integrity(&self) -> IntegId {
        self.get(TransformType::INTEG)
            .map_or(IntegId::NONE, |t| IntegId(t.id))
    }
}

/// Whether `id` is an AEAD cipher, which must not be combined with an integrity algorithm
/// (RFC 7296 §3.3.3, RFC 5282).
pub fn is_aead(id: EncrId) -> bool {
    matches!(
        id,
        EncrId::ENCR_AES_GCM_8
            | EncrId::ENCR_AES_GCM_12
            | EncrId::ENCR_AES_GCM_16
            | EncrId::ENCR_AES_CCM_8
            | EncrId::ENCR_AES_CCM_12
            | EncrId::ENCR_AES_CCM_16
            | EncrId::ENCR_CHACHA20_POLY1305
            | EncrId::ENCR_NULL_AUTH_AES_GMAC
    )
}

/// The transform types RFC 7296 §3.3.3 makes mandatory per protocol, which a chosen proposal
/// must have with a real (non-zero) ID.
fn mandatory_types(protocol: ProtocolId) -> &'static [TransformType] {
    match protocol {
        ProtocolId::IKE => &[TransformType::ENCR, TransformType::PRF, TransformType::KE],
        _ => &[TransformType::ENCR],
    }
}

/// Selects the first of `offered` (initiator's order) that matches one of `ours` (each a list
/// of acceptable transforms), for `protocol` with the given SPI size and KE rule.
pub fn select(
    offered: &[OfferedProposal],
    ours: &[Vec<TransformSpec>],
    protocol: ProtocolId,
    spi_size: usize,
    ke: KeRule,
) -> Result<Selected, SelectError> {
    for proposal in offered.iter().take(MAX_PROPOSALS) {
        if proposal.protocol != protocol || proposal.spi.len() != spi_size {
            continue;
        }
        for candidate in ours {
            match match_proposal(proposal, candidate, ke) {
                Match::Yes(selected) => return Ok(selected),
                Match::OtherGroup(preferred) => return Err(SelectError::InvalidKe { preferred }),
                Match::No => {}
            }
        }
    }
    Err(SelectError::NoProposalChosen)
}

enum Match {
    Yes(Selected),
    OtherGroup(KeGroup),
    No,
}

/// The ID a type that is absent from a proposal stands for: NONE (0) for INTEG, KE and ESN
/// (RFC 7296 §3.3.3 lets them be omitted), and 0 as "nothing" otherwise.
const ABSENT_ID: u16 = 0;

fn match_proposal(proposal: &OfferedProposal, ours: &[TransformSpec], ke: KeRule) -> Match {
    let offered: Vec<&OfferedTransform> = proposal
        .transforms
        .iter()
        .take(MAX_TRANSFORMS)
        .filter(|t| !(ke == KeRule::Ignore && t.spec.transform_type == TransformType::KE))
        .collect();
    let ours: Vec<&TransformSpec> = ours
        .iter()
        .filter(|t| !(ke == KeRule::Ignore && t.transform_type == TransformType::KE))
        .collect();

    // Every type either side has must be agreed on.
    let mut types: Vec<TransformType> = offered
        .iter()
        .map(|t| t.spec.transform_type)
        .chain(ours.iter().map(|t| t.transform_type))
        .collect();
    if let KeRule::MustMatch(_) = ke {
        // A KE payload was sent, so a proposal without a group cannot be the answer.
        types.push(TransformType::KE);
    }
    types.sort();
    types.dedup();

    let mut chosen = Vec::new();
    let mut other_group = None;
    for ty in types {
        let absent = TransformSpec::new(ty, ABSENT_ID);
        let offered_of_type: Vec<TransformSpec> = offered
            .iter()
            .filter(|t| t.spec.transform_type == ty)
            .filter(|t| t.understood)
            .map(|t| t.spec)
            .collect();
        let offered_has_type = offered.iter().any(|t| t.spec.transform_type == ty);
        let offered_of_type = if offered_has_type {
            offered_of_type
        } else {
            vec![absent]
        };
        let ours_of_type: Vec<TransformSpec> = {
            let v: Vec<TransformSpec> = ours
                .iter()
                .filter(|t| t.transform_type == ty)
                .map(|t| **t)
                .collect();
            if v.is_empty() {
                vec![absent]
            } else {
                v
            }
        };
        let acceptable: Vec<TransformSpec> = offered_of_type
            .iter()
            .filter(|t| ours_of_type.contains(t))
            .copied()
            .collect();

        let pick = if ty == TransformType::KE {
            match ke {
                KeRule::MustMatch(group) => {
                    let wanted = TransformSpec::new(ty, group.0);
                    if acceptable.contains(&wanted) {
                        Some(wanted)
                    } else {
                        // RFC 7296 §1.2: name the group we prefer among those both accept.
                        other_group = ours_of_type
                            .iter()
                            .find(|t| t.id != ABSENT_ID && acceptable.contains(t))
                            .map(|t| KeGroup(t.id));
                        other_group.map(|g| TransformSpec::new(ty, g.0))
                    }
                }
                KeRule::None => acceptable.iter().find(|t| t.id == ABSENT_ID).copied(),
                KeRule::Ignore => None,
            }
        } else {
            acceptable.first().copied()
        };
        let Some(pick) = pick else {
            return Match::No;
        };
        if offered_has_type {
            chosen.push(pick);
        }
    }

    let selected = Selected {
        number: proposal.number,
        protocol: proposal.protocol,
        spi: proposal.spi.clone(),
        transforms: chosen,
    };
    if !is_coherent(&selected) {
        return Match::No;
    }
    match other_group {
        Some(group) => Match::OtherGroup(group),
        None => Match::Yes(selected),
    }
}

/// RFC 7296 §3.3.3: mandatory types present, and integrity exactly when the cipher is not AEAD.
fn is_coherent(selected: &Selected) -> bool {
    let mandatory_present = mandatory_types(selected.protocol)
        .iter()
        .all(|&ty| selected.get(ty).is_some_and(|t| t.id != ABSENT_ID));
    let (encr, _) = selected.encryption();
    let integ = selected.integrity();
    mandatory_present && (is_aead(encr) == (integ == IntegId::NONE))
}

/// An encryption algorithm and, for variable-length ciphers, its key length in bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encryption {
    /// The cipher.
    pub id: EncrId,
    /// Key Length attribute, required for AES (RFC 7296 §3.3.5).
    pub key_bits: Option<u16>,
}

/// One IKE SA proposal of a peer's configuration, in our order of preference per type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeProposal {
    /// Ciphers for the SK payload.
    pub encryption: Vec<Encryption>,
    /// PRFs.
    pub prf: Vec<PrfId>,
    /// Integrity algorithms; empty with AEAD ciphers.
    pub integrity: Vec<IntegId>,
    /// Key exchange groups; the first is the one our IKE_SA_INIT KE payload uses.
    pub ke: Vec<KeGroup>,
}

impl IkeProposal {
    /// `aes256gcm16-sha256-modp2048`, what ovs-monitor-ipsec configures strongSwan with.
    pub fn aes256gcm16_sha256_modp2048() -> Self {
        IkeProposal {
            encryption: vec![Encryption {
                id: EncrId::ENCR_AES_GCM_16,
                key_bits: Some(256),
            }],
            prf: vec![PrfId::PRF_HMAC_SHA2_256],
            integrity: vec![],
            ke: vec![KeGroup::MODP_2048],
        }
    }

    /// The transforms, in our order, as [`select`] takes them.
    pub fn transforms(&self) -> Vec<TransformSpec> {
        let mut v: Vec<TransformSpec> = self
            .encryption
            .iter()
            .map(|e| TransformSpec::encr(e.id, e.key_bits))
            .collect();
        v.extend(
            self.prf
                .iter()
                .map(|p| TransformSpec::new(TransformType::PRF, p.0)),
        );
        v.extend(
            self.integrity
                .iter()
                .map(|i| TransformSpec::new(TransformType::INTEG, i.0)),
        );
        v.extend(
            self.ke
                .iter()
                .map(|g| TransformSpec::new(TransformType::KE, g.0)),
        );
        v
    }
}

/// One ESP proposal of a CHILD_SA's configuration, in our order of preference per type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspProposal {
    /// Ciphers.
    pub encryption: Vec<Encryption>,
    /// Integrity algorithms; empty with AEAD ciphers.
    pub integrity: Vec<IntegId>,
    /// Groups for PFS in CREATE_CHILD_SA; empty for no PFS.
    pub ke: Vec<KeGroup>,
    /// Extended Sequence Numbers choices.
    pub esn: Vec<EsnId>,
}

impl EspProposal {
    /// `aes256gcm16` without PFS and without ESN, what ovs-monitor-ipsec configures for ESP.
    pub fn aes256gcm16() -> Self {
        EspProposal {
            encryption: vec![Encryption {
                id: EncrId::ENCR_AES_GCM_16,
                key_bits: Some(256),
            }],
            integrity: vec![],
            ke: vec![],
            esn: vec![EsnId::NO_ESN],
        }
    }

    /// The transforms, in our order, as [`select`] takes them.
    pub fn transforms(&self) -> Vec<TransformSpec> {
        let mut v: Vec<TransformSpec> = self
            .encryption
            .iter()
            .map(|e| TransformSpec::encr(e.id, e.key_bits))
            .collect();
        v.extend(
            self.integrity
                .iter()
                .map(|i| TransformSpec::new(TransformType::INTEG, i.0)),
        );
        v.extend(
            self.ke
                .iter()
                .map(|g| TransformSpec::new(TransformType::KE, g.0)),
        );
        v.extend(
            self.esn
                .iter()
                .map(|e| TransformSpec::new(TransformType::ESN, e.0)),
        );
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(number: u8, protocol: ProtocolId, spi: &[u8], t: &[TransformSpec]) -> OfferedProposal {
        OfferedProposal {
            number,
            protocol,
            spi: spi.to_vec(),
            transforms: t
                .iter()
                .map(|&spec| OfferedTransform {
                    spec,
                    understood: true,
                })
                .collect(),
        }
    }

    fn prf(id: PrfId) -> TransformSpec {
        TransformSpec::new(TransformType::PRF, id.0)
    }

    fn integ(id: IntegId) -> TransformSpec {
        TransformSpec::new(TransformType::INTEG, id.0)
    }

    fn ke(id: KeGroup) -> TransformSpec {
        TransformSpec::new(TransformType::KE, id.0)
    }

    fn esn(id: EsnId) -> TransformSpec {
        TransformSpec::new(TransformType::ESN, id.0)
    }

    fn gcm256() -> TransformSpec {
        TransformSpec::encr(EncrId::ENCR_AES_GCM_16, Some(256))
    }

    fn cbc(bits: u16) -> TransformSpec {
        TransformSpec::encr(EncrId::ENCR_AES_CBC, Some(bits))
    }

    fn ours_ike() -> Vec<Vec<TransformSpec>> {
        vec![IkeProposal::aes256gcm16_sha256_modp2048().transforms()]
    }

    #[test]
    fn responder_accepts_ovs_monitor_ipsec_ike_proposal() {
        let offered = [offer(
            1,
            ProtocolId::IKE,
            &[],
            &[
                gcm256(),
                prf(PrfId::PRF_HMAC_SHA2_256),
                ke(KeGroup::MODP_2048),
            ],
        )];
        let s = select(
            &offered,
            &ours_ike(),
            ProtocolId::IKE,
            0,
            KeRule::MustMatch(KeGroup::MODP_2048),
        )
        .unwrap();
        assert_eq!(s.number, 1);
        assert_eq!(s.encryption(), (EncrId::ENCR_AES_GCM_16, Some(256)));
        assert_eq!(s.ke_group(), KeGroup::MODP_2048);
        assert_eq!(s.integrity(), IntegId::NONE);
        assert_eq!(s.transforms.len(), 3);
    }

    #[test]
    fn responder_picks_the_first_acceptable_proposal_in_initiator_order() {
        let ours = vec![
            // Our first preference is CBC, but the initiator's order wins.
            vec![
                cbc(128),
                prf(PrfId::PRF_HMAC_SHA2_256),
                integ(IntegId::AUTH_HMAC_SHA2_256_128),
                ke(KeGroup::ECP_256),
            ],
            vec![
                gcm256(),
                prf(PrfId::PRF_HMAC_SHA2_256),
                ke(KeGroup::ECP_256),
            ],
        ];
        let offered = [
            offer(
                1,
                ProtocolId::IKE,
                &[],
                &[TransformSpec::encr(EncrId::ENCR_3DES, None)],
            ),
            offer(
                2,
                ProtocolId::IKE,
                &[],
                &[
                    gcm256(),
                    prf(PrfId::PRF_HMAC_SHA2_256),
                    ke(KeGroup::ECP_256),
                ],
            ),
            offer(
                3,
                ProtocolId::IKE,
                &[],
                &[
                    cbc(128),
                    prf(PrfId::PRF_HMAC_SHA2_256),
                    integ(IntegId::AUTH_HMAC_SHA2_256_128),
                    ke(KeGroup::ECP_256),
                ],
            ),
        ];
        let s = select(
            &offered,
            &ours,
            ProtocolId::IKE,
            0,
            KeRule::MustMatch(KeGroup::ECP_256),
        )
        .unwrap();
        assert_eq!(s.number, 2);
    }

    #[test]
    fn responder_chooses_one_transform_per_type_in_initiator_order() {
        let ours = vec![vec![
            cbc(128),
            cbc(256),
            prf(PrfId::PRF_HMAC_SHA2_256),
            prf(PrfId::PRF_HMAC_SHA2_384),
            integ(IntegId::AUTH_HMAC_SHA2_256_128),
            ke(KeGroup::ECP_256),
        ]];
        let offered = [offer(
            7,
            ProtocolId::IKE,
            &[],
            &[
                cbc(256),
                cbc(128),
                prf(PrfId::PRF_HMAC_SHA2_384),
                prf(PrfId::PRF_HMAC_SHA2_256),
                integ(IntegId::AUTH_HMAC_SHA2_256_128),
                ke(KeGroup::ECP_256),
            ],
        )];
        let s = select(
            &offered,
            &ours,
            ProtocolId::IKE,
            0,
            KeRule::MustMatch(KeGroup::ECP_256),
        )
        .unwrap();
        assert_eq!(
            s.transforms,
            vec![
                cbc(256),
                prf(PrfId::PRF_HMAC_SHA2_384),
                integ(IntegId::AUTH_HMAC_SHA2_256_128),
                ke(KeGroup::ECP_256)
            ]
        );
    }

    #[test]
    fn key_length_attribute_must_match() {
        let offered = [offer(
            1,
            ProtocolId::IKE,
            &[],
            &[
                TransformSpec::encr(EncrId::ENCR_AES_GCM_16, Some(128)),
                prf(PrfId::PRF_HMAC_SHA2_256),
                ke(KeGroup::MODP_2048),
            ],
        )];
        assert_eq!(
            select(
                &offered,
                &ours_ike(),
                ProtocolId::IKE,
                0,
                KeRule::MustMatch(KeGroup::MODP_2048)
            ),
            Err(SelectError::NoProposalChosen)
        );
    }

    #[test]
    fn ke_group_mismatch_asks_for_our_preferred_group() {
        let ours = vec![vec![
            gcm256(),
            prf(PrfId::PRF_HMAC_SHA2_256),
            ke(KeGroup::MODP_2048),
            ke(KeGroup::ECP_256),
        ]];
        let offered = [offer(
            1,
            ProtocolId::IKE,
            &[],
            &[
                gcm256(),
                prf(PrfId::PRF_HMAC_SHA2_256),
                ke(KeGroup::ECP_256),
                ke(KeGroup::MODP_2048),
                ke(KeGroup::CURVE25519),
            ],
        )];
        // The initiator guessed Curve25519, which we do not accept.
        assert_eq!(
            select(
                &offered,
                &ours,
                ProtocolId::IKE,
                0,
                KeRule::MustMatch(KeGroup::CURVE25519)
            ),
            Err(SelectError::InvalidKe {
                preferred: KeGroup::MODP_2048
            })
        );
    }

    #[test]
    fn ke_payload_group_in_the_proposal_is_used_without_a_round_trip() {
        let ours = vec![vec![
            gcm256(),
            prf(PrfId::PRF_HMAC_SHA2_256),
            ke(KeGroup::MODP_2048),
            ke(KeGroup::ECP_256),
        ]];
        let offered = [offer(
            1,
            ProtocolId::IKE,
            &[],
            &[
                gcm256(),
                prf(PrfId::PRF_HMAC_SHA2_256),
                ke(KeGroup::MODP_2048),
                ke(KeGroup::ECP_256),
            ],
        )];
        let s = select(
            &offered,
            &ours,
            ProtocolId::IKE,
            0,
            KeRule::MustMatch(KeGroup::ECP_256),
        )
        .unwrap();
        assert_eq!(s.ke_group(), KeGroup::ECP_256);
    }

    #[test]
    fn ike_proposal_with_a_nonempty_spi_in_ike_sa_init_is_skipped() {
        let offered = [offer(
            1,
            ProtocolId::IKE,
            &[1, 2, 3, 4],
            &[
                gcm256(),
                prf(PrfId::PRF_HMAC_SHA2_256),
                ke(KeGroup::MODP_2048),
            ],
        )];
        assert_eq!(
            select(
                &offered,
                &ours_ike(),
                ProtocolId::IKE,
                0,
                KeRule::MustMatch(KeGroup::MODP_2048)
            ),
            Err(SelectError::NoProposalChosen)
        );
    }

    #[test]
    fn transform_with_unknown_attribute_is_never_chosen() {
        let mut p = offer(
            1,
            ProtocolId::IKE,
            &[],
            &[
                gcm256(),
                prf(PrfId::PRF_HMAC_SHA2_256),
                ke(KeGroup::MODP_2048),
            ],
        );
        p.transforms[0].understood = false;
        assert_eq!(
            select(
                &[p],
                &ours_ike(),
                ProtocolId::IKE,
                0,
                KeRule::MustMatch(KeGroup::MODP_2048)
            ),
            Err(SelectError::NoProposalChosen)
        );
    }

    #[test]
    fn ike_proposal_without_prf_is_refused() {
        let ours = vec![vec![gcm256(), ke(KeGroup::MODP_2048)]];
        let offered = [offer(
            1,
            ProtocolId::IKE,
            &[],
            &[gcm256(), ke(KeGroup::MODP_2048)],
        )];
        assert_eq!(
            select(
                &offered,
                &ours,
                ProtocolId::IKE,
                0,
                KeRule::MustMatch(KeGroup::MODP_2048)
            ),
            Err(SelectError::NoProposalChosen)
        );
    }

    #[test]
    fn aead_cipher_with_an_integrity_algorithm_is_refused() {
        let ours = vec![vec![
            gcm256(),
            prf(PrfId::PRF_HMAC_SHA2_256),
            integ(IntegId::AUTH_HMAC_SHA2_256_128),
            ke(KeGroup::MODP_2048),
        ]];
        let offered = [offer(
            1,
            ProtocolId::IKE,
            &[],
            &[
                gcm256(),
                prf(PrfId::PRF_HMAC_SHA2_256),
                integ(IntegId::AUTH_HMAC_SHA2_256_128),
                ke(KeGroup::MODP_2048),
            ],
        )];
        assert_eq!(
            select(
                &offered,
                &ours,
                ProtocolId::IKE,
                0,
                KeRule::MustMatch(KeGroup::MODP_2048)
            ),
            Err(SelectError::NoProposalChosen)
        );
    }

    #[test]
    fn first_child_sa_ignores_ke_transforms() {
        let ours = vec![EspProposal::aes256gcm16().transforms()];
        let spi = [0xc0, 0x01, 0x02, 0x03];
        let offered = [offer(
            1,
            ProtocolId::ESP,
            &spi,
            &[gcm256(), ke(KeGroup::MODP_2048), esn(EsnId::NO_ESN)],
        )];
        let s = select(
            &offered,
            &ours,
            ProtocolId::ESP,
            CHILD_SPI_SIZE,
            KeRule::Ignore,
        )
        .unwrap();
        assert_eq!(s.spi, spi);
        assert_eq!(s.transforms, vec![gcm256(), esn(EsnId::NO_ESN)]);
    }

    #[test]
    fn esp_proposal_without_esn_means_no_esn() {
        let ours = vec![EspProposal::aes256gcm16().transforms()];
        let offered = [offer(1, ProtocolId::ESP, &[1, 2, 3, 4], &[gcm256()])];
        let s = select(
            &offered,
            &ours,
            ProtocolId::ESP,
            CHILD_SPI_SIZE,
            KeRule::None,
        )
        .unwrap();
        assert_eq!(s.transforms, vec![gcm256()]);
    }

    #[test]
    fn child_sa_rekey_with_pfs_requires_the_ke_group() {
        let mut with_pfs = EspProposal::aes256gcm16();
        with_pfs.ke = vec![KeGroup::ECP_256];
        let ours = vec![with_pfs.transforms()];
        let offered = [offer(
            1,
            ProtocolId::ESP,
            &[1, 2, 3, 4],
            &[gcm256(), ke(KeGroup::ECP_256), esn(EsnId::NO_ESN)],
        )];
        // No KE payload: the group cannot be satisfied.
        assert_eq!(
            select(
                &offered,
                &ours,
                ProtocolId::ESP,
                CHILD_SPI_SIZE,
                KeRule::None
            ),
            Err(SelectError::NoProposalChosen)
        );
        let s = select(
            &offered,
            &ours,
            ProtocolId::ESP,
            CHILD_SPI_SIZE,
            KeRule::MustMatch(KeGroup::ECP_256),
        )
        .unwrap();
        assert_eq!(s.ke_group(), KeGroup::ECP_256);
    }

    #[test]
    fn ke_payload_with_a_proposal_without_groups_is_refused() {
        let ours = vec![EspProposal::aes256gcm16().transforms()];
        let offered = [offer(1, ProtocolId::ESP, &[1, 2, 3, 4], &[gcm256()])];
        assert_eq!(
            select(
                &offered,
                &ours,
                ProtocolId::ESP,
                CHILD_SPI_SIZE,
                KeRule::MustMatch(KeGroup::ECP_256)
            ),
            Err(SelectError::NoProposalChosen)
        );
    }

    #[test]
    fn wire_proposals_round_trip_through_the_codec_types() {
        let ours = IkeProposal::aes256gcm16_sha256_modp2048().transforms();
        let wire = to_wire_proposal(1, ProtocolId::IKE, vec![], &ours);
        let sa = codec::Sa {
            proposals: vec![wire],
        };
        let s = select_from_sa(
            &sa,
            &[ours],
            ProtocolId::IKE,
            0,
            KeRule::MustMatch(KeGroup::MODP_2048),
        )
        .unwrap();
        let answer = codec::Sa {
            proposals: vec![s.to_wire_proposal(vec![])],
        };
        let offered: Vec<OfferedProposal> = sa.proposals.iter().map(Into::into).collect();
        let back: OfferedProposal = (&answer.proposals[0]).into();
        let back = Selected {
            number: back.number,
            protocol: back.protocol,
            spi: back.spi,
            transforms: back.transforms.iter().map(|t| t.spec).collect(),
        };
        assert!(back.is_valid_answer(&offered));
        assert_eq!(back.encryption(), (EncrId::ENCR_AES_GCM_16, Some(256)));
    }

    #[test]
    fn answer_with_two_transforms_of_one_type_is_invalid() {
        let offered = [offer(
            1,
            ProtocolId::IKE,
            &[],
            &[
                cbc(128),
                cbc(256),
                prf(PrfId::PRF_HMAC_SHA2_256),
                ke(KeGroup::ECP_256),
            ],
        )];
        let answer = Selected {
            number: 1,
            protocol: ProtocolId::IKE,
            spi: vec![],
            transforms: vec![cbc(128), cbc(256), prf(PrfId::PRF_HMAC_SHA2_256)],
        };
        assert!(!answer.is_valid_answer(&offered));
        let answer = Selected {
            transforms: vec![cbc(192)],
            ..answer
        };
        assert!(!answer.is_valid_answer(&offered));
    }

    #[test]
    fn transform_attribute_in_tlv_form_is_not_understood() {
        let t = codec::Transform {
            id: TransformId::Encr(EncrId::ENCR_AES_CBC),
            attributes: vec![codec::TransformAttribute {
                attribute_type: TransformAttributeType::KEY_LENGTH,
                value: AttributeValue::Tlv(vec![1, 0]),
            }],
        };
        assert!(!OfferedTransform::from(&t).understood);
        let t = codec::Transform::with_key_length(TransformId::Encr(EncrId::ENCR_AES_CBC), 128);
        let o = OfferedTransform::from(&t);
        assert!(o.understood);
        assert_eq!(o.spec, cbc(128));
    }

    #[test]
    fn proposal_of_another_protocol_is_skipped() {
        let ours = vec![EspProposal::aes256gcm16().transforms()];
        let offered = [offer(1, ProtocolId::AH, &[1, 2, 3, 4], &[gcm256()])];
        assert_eq!(
            select(
                &offered,
                &ours,
                ProtocolId::ESP,
                CHILD_SPI_SIZE,
                KeRule::None
            ),
            Err(SelectError::NoProposalChosen)
        );
    }
}
