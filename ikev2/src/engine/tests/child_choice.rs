//! Which configured CHILD_SA a peer's request is matched to, with the two Geneve children
//! ("in": our port 6081 from any of the peer's ports; "out": the reverse) and the selectors
//! charon sends when its trap policy caught a packet: that packet's selectors first, then the
//! configured ones, the same host-port selector twice on the port side. Matched to "out" by
//! its first narrowed fit, such a request gave both sides a CHILD_SA of different meaning
//! (seen in tests/daemon/mixed-mesh.sh round 2: two "out" CHILD_SAs on our side).

use super::*;
use crate::codec::{Notify, Payload, PayloadBody, Sa};
use crate::engine::ike_auth::{supported_esp, AuthPayloads};
use crate::engine::proposal::{to_wire_proposal, KeRule};
use crate::engine::traffic_selector::{self, TrafficSelector};
use crate::registry::{NotifyType, ProtocolId};

const UDP: u8 = 17;

/// The responder's name for the CHILD_SA requested with `tsi` and `tsr`.
fn chosen(tsi: &[TrafficSelector], tsr: &[TrafficSelector]) -> String {
    let mut ours = endpoint(1);
    let config = geneve_peer(A, "chassis-1", B, "chassis-2");
    ours.add_peer(config.clone()).unwrap();
    let transforms = supported_esp(&config.children[0].esp_proposals[0]);
    let proposal = to_wire_proposal(1, ProtocolId::ESP, vec![1, 2, 3, 4], &transforms);
    let payloads = vec![
        Payload::new(Notify::status(NotifyType::USE_TRANSPORT_MODE)),
        Payload::new(Sa {
            proposals: vec![proposal],
        }),
        Payload::new(PayloadBody::TsI(traffic_selector::to_payload(tsi))),
        Payload::new(PayloadBody::TsR(traffic_selector::to_payload(tsr))),
    ];
    let answer = ours
        .choose_child(&config, &AuthPayloads::of(&payloads, true), KeRule::Ignore)
        .map_err(|_| "refused")
        .unwrap();
    config.children[answer.child].name.clone()
}

#[test]
fn request_for_our_geneve_port_is_matched_to_the_in_child() {
    let peer_any = TrafficSelector::host_protocol(B, UDP);
    let our_port = TrafficSelector::host_port(A, UDP, GENEVE_PORT);
    assert_eq!(chosen(&[peer_any], &[our_port]), "in");
    let peer_port = TrafficSelector::host_port(B, UDP, GENEVE_PORT);
    let our_any = TrafficSelector::host_protocol(A, UDP);
    assert_eq!(chosen(&[peer_port], &[our_any]), "out");
}

#[test]
fn trap_triggered_request_with_repeated_selectors_is_matched_to_the_child_of_its_packet() {
    // charon's acquire for a Geneve packet from its port 40000 to our 6081: TSi is that port
    // and then any port, TSr our 6081 twice.
    let packet_src = TrafficSelector::host_port(B, UDP, 40000);
    let peer_any = TrafficSelector::host_protocol(B, UDP);
    let our_port = TrafficSelector::host_port(A, UDP, GENEVE_PORT);
    assert_eq!(chosen(&[packet_src, peer_any], &[our_port, our_port]), "in");

    // The reverse: a packet from its 6081 to our port 40000.
    let packet_dst = TrafficSelector::host_port(A, UDP, 40000);
    let our_any = TrafficSelector::host_protocol(A, UDP);
    let peer_port = TrafficSelector::host_port(B, UDP, GENEVE_PORT);
    assert_eq!(
        chosen(&[peer_port, peer_port], &[packet_dst, our_any]),
        "out"
    );
}
