//! Network options at the node's level: what a command line or an app says about the
//! network (where to listen, whom to dial, LAN discovery), without reaching into
//! `caucus-net`. [`NetOptions`] turns into the network's own settings for
//! [`crate::Running::start`] ([`NodeConfig::with_net`]) and [`crate::link_new_device`].

use crate::NodeConfig;
use std::time::Duration;

pub use caucus_net::{Multiaddr, PeerId, RelayLimits};

/// Where a node listens, whom it dials, whether it announces itself on the LAN.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetOptions {
    /// Listen here; empty: the default (see [`NetOptions::any_port`]).
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start (other organizers' nodes, the office relay).
    pub peers: Vec<Multiaddr>,
    /// Do not announce this node on the local network (mDNS off).
    pub no_mdns: bool,
    /// With no listen address given, listen on TCP only (any address, a random port)
    /// instead of TCP and QUIC: for short-lived networks (join, device link).
    pub tcp_only: bool,
    /// On 127.0.0.1 only, mDNS off (in-process stories and tests).
    pub loopback: bool,
    /// Sync every group with its peers this often (default: the network's).
    pub resync_interval: Option<Duration>,
}

impl NetOptions {
    /// Loopback only, dialing `peers` (the demo, examples, benches).
    pub fn loopback(peers: &[Multiaddr]) -> NetOptions {
        NetOptions {
            peers: peers.to_vec(),
            loopback: true,
            ..NetOptions::default()
        }
    }

    /// The same options, listening on TCP only when no listen address is given.
    pub fn any_port(mut self) -> NetOptions {
        self.tcp_only = true;
        self
    }

    /// The network's settings for these options.
    pub(crate) fn to_config(&self) -> caucus_net::Config {
        let mut c = if self.loopback {
            caucus_net::Config::loopback()
        } else {
            caucus_net::Config::default()
        };
        if !self.listen.is_empty() {
            c.listen = self.listen.clone();
        } else if self.tcp_only && !self.loopback {
            c.listen = vec![
                "/ip4/0.0.0.0/tcp/0"
                    .parse()
                    .unwrap_or_else(|_| Multiaddr::empty()),
            ];
        }
        c.bootstrap = self.peers.clone();
        if self.no_mdns {
            c.mdns = false;
        }
        if let Some(every) = self.resync_interval {
            c.resync_interval = every;
        }
        c
    }
}

impl NodeConfig {
    /// A running node's settings with these network options (urgent notices
    /// acknowledged at once).
    pub fn with_net(net: &NetOptions) -> NodeConfig {
        NodeConfig {
            net: net.to_config(),
            ..NodeConfig::default()
        }
    }
}

/// [`crate::link_new_device`] with node-level options: links a fresh home at `home` as a
/// new device, with the first of `net.peers` that answers (the first device showing
/// `code`).
pub async fn link_device(
    home: &std::path::Path,
    passphrase: &[u8],
    params: caucus_crypto::at_rest::KdfParams,
    code: &caucus_crypto::link::PairingCode,
    label: &str,
    net: &NetOptions,
) -> Result<crate::Node, crate::NodeError> {
    crate::link_new_device(
        home,
        passphrase,
        params,
        code,
        label,
        &net.peers,
        net.to_config(),
    )
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn options_become_the_networks_settings() {
        let default = NetOptions::default().to_config();
        assert_eq!(default.listen, caucus_net::Config::default().listen);
        assert!(default.mdns && default.bootstrap.is_empty());

        let peer: Multiaddr = "/ip4/10.0.0.2/tcp/4001".parse().unwrap();
        let quiet = NetOptions {
            peers: vec![peer.clone()],
            no_mdns: true,
            ..NetOptions::default()
        }
        .any_port()
        .to_config();
        assert_eq!(quiet.listen, vec!["/ip4/0.0.0.0/tcp/0".parse().unwrap()]);
        assert_eq!(quiet.bootstrap, vec![peer.clone()]);
        assert!(!quiet.mdns);

        let local = NetOptions {
            resync_interval: Some(Duration::from_secs(2)),
            ..NetOptions::loopback(std::slice::from_ref(&peer))
        }
        .to_config();
        assert_eq!(local.listen, caucus_net::Config::loopback().listen);
        assert_eq!(local.resync_interval, Duration::from_secs(2));
        assert!(!local.mdns);
    }
}
