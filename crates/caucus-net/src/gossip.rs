//! Live gossip: gossipsub configuration and validation of received messages.
//!
//! - **Anonymous messages.** No author, sequence number or transport signature: an entry
//!   carries its own membership proof, and a transport signature would only tie entries
//!   to the transport key that published them.
//! - **Message id** = BLAKE3 of the data = the entry's content id, so an entry received
//!   twice (or by sync and gossip) is one message.
//! - **Validation before forwarding** (`validate_messages`): each message is decoded as
//!   an [`Envelope`], its header must name the topic's group, and [`Backend::validate`]
//!   decides: accept (store, forward), reject (drop, P4 penalty on the forwarder), or
//!   ignore (drop, no penalty).
//! - **Flood publishing.** In gossipsub 0.50 (libp2p 0.57) `flood_publish` is one switch
//!   for the whole behaviour, not per message. It is on: every entry this node publishes
//!   goes at once to every connected subscribed peer, not only the mesh, which is what
//!   an urgent notice needs and costs little in committee-sized groups.
//! - **Scoring** is on, tuned for quiet topics: no mesh-delivery-rate penalty (a
//!   committee may write nothing for hours), a steep penalty for invalid messages, and
//!   loopback exempt from the IP-colocation penalty (in-process tests and local relays).

use crate::backend::{Backend, Validation};
use caucus_proto::limits::MAX_ENVELOPE_BYTES;
use caucus_proto::{EntryId, Envelope, GroupId};
use libp2p::gossipsub::{
    self, MessageAuthenticity, MessageId, PeerScoreParams, PeerScoreThresholds, TopicScoreParams,
    ValidationMode,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// Largest gossip message: an envelope plus room for the protobuf framing.
pub const MAX_TRANSMIT_BYTES: usize = MAX_ENVELOPE_BYTES + 16 * 1024;

/// Builds the gossipsub behaviour (see the module docs).
pub fn behaviour(heartbeat: Duration) -> Result<gossipsub::Behaviour, String> {
    let config = gossipsub::ConfigBuilder::default()
        .max_transmit_size(MAX_TRANSMIT_BYTES)
        .validation_mode(ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(|m: &gossipsub::Message| {
            MessageId::from(EntryId::of_encoded(&m.data).as_bytes().to_vec())
        })
        .flood_publish(true)
        .heartbeat_initial_delay(Duration::from_millis(100))
        .heartbeat_interval(heartbeat)
        .build()
        .map_err(|e| e.to_string())?;
    let mut gs = gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, config)
        .map_err(|e| e.to_string())?;
    let mut params = PeerScoreParams::default();
    params.ip_colocation_factor_whitelist.extend([
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ]);
    gs.with_peer_score(params, PeerScoreThresholds::default())?;
    Ok(gs)
}

/// Score parameters of one group topic (see the module docs).
pub fn topic_params() -> TopicScoreParams {
    TopicScoreParams {
        topic_weight: 1.0,
        // Time in mesh earns at most +1: a newcomer's first invalid message outweighs it.
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 100.0,
        first_message_deliveries_weight: 0.1,
        first_message_deliveries_cap: 100.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -10.0,
        invalid_message_deliveries_decay: 0.9,
        ..TopicScoreParams::default()
    }
}

/// The verdict on one gossip message, with the decoded id on acceptance.
#[derive(Debug)]
pub enum Verdict {
    /// Valid: store and forward.
    Accept(EntryId),
    /// Invalid: reject (with a reason for the event).
    Reject(&'static str),
    /// Not checkable: drop without penalty.
    Ignore,
}

/// Decodes and checks one message received on `group`'s topic.
pub fn check(backend: &dyn Backend, group: &GroupId, data: &[u8]) -> Verdict {
    let Ok(envelope) = Envelope::decode(data) else {
        return Verdict::Reject("undecodable envelope");
    };
    if envelope.header.group != *group {
        return Verdict::Reject("envelope of another group");
    }
    match backend.validate(group, &envelope) {
        Validation::Accept => Verdict::Accept(EntryId::of_encoded(data)),
        Validation::Reject => Verdict::Reject("membership proof rejected"),
        Validation::Ignore => Verdict::Ignore,
    }
}
