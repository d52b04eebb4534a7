//! Published ports between the record and the runtime: `-p` as typed becomes docker's
//! `HostConfig.PortBindings` at create, the host sockets are bound from them at each start
//! (before the container runs, so a busy port fails the start with nothing running), and
//! `ps`, `port` and `inspect` read what the running monitor publishes.
//!
//! Never prints and never touches sockets itself: `runtime::ports` binds and forwards.
//! Invariant: a container publishes ports only on the private network (with the host's
//! network its ports are the host's already; with none there is nothing to forward to).

use std::collections::BTreeMap;

use super::containers::ContainersError;
use super::{Engine, EngineError};
use crate::runtime::Network;
use crate::runtime::ports::{self, PortSpec, PortsError, Published};
use crate::state::{HostConfig, PortBinding};

/// docker's `PortBindings` for the `-p` options as typed.
pub(crate) fn port_bindings(
    publish: &[String],
    network: Network,
) -> Result<BTreeMap<String, Vec<PortBinding>>, ContainersError> {
    let specs = ports::parse_all(publish)?;
    if !specs.is_empty() && network != Network::Private {
        return Err(ContainersError::BadNetwork(format!(
            "publishing ports (-p) needs the private network, not --network {}: {}",
            if network == Network::Host {
                "host"
            } else {
                "none"
            },
            if network == Network::Host {
                "with the host's network the container's ports are the host's already"
            } else {
                "drop --network none"
            }
        )));
    }
    let mut map: BTreeMap<String, Vec<PortBinding>> = BTreeMap::new();
    for s in specs {
        map.entry(format!("{}/{}", s.container_port, s.proto))
            .or_default()
            .push(PortBinding {
                host_ip: s.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                host_port: if s.host_port == 0 {
                    String::new()
                } else {
                    s.host_port.to_string()
                },
            });
    }
    Ok(map)
}

/// The port specs a record asks for, back from its `PortBindings`.
pub(crate) fn specs_of(host: &HostConfig) -> Result<Vec<PortSpec>, ContainersError> {
    let mut out = Vec::new();
    for (key, bindings) in &host.port_bindings {
        let bad = |why: String| PortsError::Parse {
            spec: key.clone(),
            why,
        };
        let ctr: PortSpec = key.parse().map_err(bad)?;
        for b in bindings {
            let host_ip = if b.host_ip.is_empty() {
                None
            } else {
                Some(
                    b.host_ip
                        .parse()
                        .map_err(|_| bad(format!("{:?} is not an IP address", b.host_ip)))?,
                )
            };
            let host_port = if b.host_port.is_empty() {
                0
            } else {
                b.host_port
                    .parse()
                    .map_err(|_| bad(format!("{:?} is not a port", b.host_port)))?
            };
            out.push(PortSpec {
                host_ip,
                host_port,
                ..ctr
            });
        }
    }
    Ok(out)
}

/// Binds the host side of every port the record publishes (in this, the host's, network
/// namespace): a busy port fails here, before anything runs.
pub(crate) fn bind_ports(host: &HostConfig) -> Result<Vec<ports::Bound>, ContainersError> {
    Ok(ports::bind(&specs_of(host)?)?)
}

/// docker's `NetworkSettings` (the part camada has): `Ports` of a running container.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkSettings {
    pub ports: BTreeMap<String, Vec<PortBinding>>,
}

impl NetworkSettings {
    pub(crate) fn of(published: &[Published]) -> NetworkSettings {
        let mut ports: BTreeMap<String, Vec<PortBinding>> = BTreeMap::new();
        for p in published {
            ports
                .entry(format!("{}/{}", p.container_port, p.proto))
                .or_default()
                .push(PortBinding {
                    host_ip: p.host.ip().to_string(),
                    host_port: p.host.port().to_string(),
                });
        }
        NetworkSettings { ports }
    }
}

impl Engine {
    /// `port`: the ports a running container publishes (empty when it is not running).
    pub fn container_ports(&self, word: &str) -> Result<Vec<Published>, EngineError> {
        let (_, c) = self.find(word)?;
        Ok(self.published(&c))
    }

    /// What a record's monitor publishes right now.
    pub(crate) fn published(&self, c: &crate::state::Container) -> Vec<Published> {
        if c.state.status.is_running() {
            ports::read_published(&self.run_dir(&c.record.id))
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_round_trip_through_the_record() {
        let publish = vec![
            "18081:80".to_string(),
            "127.0.0.1::53/udp".to_string(),
            "8080".to_string(),
        ];
        let map = port_bindings(&publish, Network::Private).unwrap();
        let json = serde_json::to_string(&map).unwrap();
        assert_eq!(
            json,
            r#"{"53/udp":[{"HostIp":"127.0.0.1","HostPort":""}],"80/tcp":[{"HostIp":"","HostPort":"18081"}],"8080/tcp":[{"HostIp":"","HostPort":""}]}"#
        );
        let host = HostConfig {
            port_bindings: map,
            ..HostConfig::default()
        };
        let mut specs: Vec<String> = specs_of(&host)
            .unwrap()
            .iter()
            .map(|s| s.to_string())
            .collect();
        specs.sort();
        assert_eq!(specs, ["127.0.0.1::53/udp", "18081:80/tcp", ":8080/tcp"]);
    }

    #[test]
    fn ports_need_the_private_network() {
        let p = vec!["80".to_string()];
        let err = port_bindings(&p, Network::Host).unwrap_err().to_string();
        assert!(err.contains("--network host"), "{err}");
        assert!(port_bindings(&p, Network::None).is_err());
        assert!(port_bindings(&[], Network::Host).unwrap().is_empty());
    }
}
