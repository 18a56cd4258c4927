//! The cluster keys (`node_name`, `cluster_port`, `cluster_seeds`; the link's
//! secret and TLS are read by `cluster_security.rs`):
//! resolved and checked into a [`ClusterConfig`], which the `cluster` room
//! acts on (issue 18).

use super::{Config, ConfigError};

/// The cluster settings, resolved: present when any cluster key is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// This node's name.
    pub node_name: String,
    /// The cluster listener's port.
    pub port: u16,
    /// Nodes to join at first start, as `(host, port)`.
    pub seeds: Vec<(String, u16)>,
}

/// The cluster port when cluster keys are set without one (RabbitMQ's
/// inter-node port).
pub const DEFAULT_CLUSTER_PORT: u16 = 25672;

impl Config {
    /// The cluster settings (`None` when no cluster key is set), checked:
    /// a usable node name, a non-zero port no other listener uses, and
    /// `HOST:PORT` seeds. `main.rs` starts the `cluster` room with them.
    pub fn cluster(&self) -> Result<Option<ClusterConfig>, ConfigError> {
        if self.node_name.is_none() && self.cluster_port.is_none() && self.cluster_seeds.is_empty()
        {
            return Ok(None);
        }
        let node_name = match &self.node_name {
            Some(name) => name.clone(),
            None => format!("warren@{}", hostname()),
        };
        if node_name.is_empty()
            || node_name.len() > 255
            || !node_name.chars().all(|c| c.is_ascii_graphic())
        {
            return Err(ConfigError::Invalid(format!(
                "node_name {node_name:?} must be 1 to 255 printable ASCII characters without spaces"
            )));
        }
        let port = self.cluster_port.unwrap_or(DEFAULT_CLUSTER_PORT);
        if port == 0 {
            return Err(ConfigError::Invalid("cluster_port must not be 0".into()));
        }
        let taken = [
            (self.port, "the AMQP port"),
            (self.tls_port, "the amqps port (tls_port)"),
            (
                if self.management {
                    self.management_port
                } else {
                    0
                },
                "the management port",
            ),
        ];
        if let Some((_, what)) = taken.iter().find(|(p, _)| *p != 0 && *p == port) {
            return Err(ConfigError::Invalid(format!(
                "cluster_port {port} is also {what}"
            )));
        }
        let seeds = self
            .cluster_seeds
            .iter()
            .map(|seed| parse_seed(seed))
            .collect::<Result<Vec<_>, _>>()?;
        // Read now, so a bad secret or certificate stops the start (and --check-config).
        self.cluster_security()?;
        Ok(Some(ClusterConfig {
            node_name,
            port,
            seeds,
        }))
    }
}

/// Splits a cluster seed `HOST:PORT` (`[v6]:PORT` for an IPv6 address);
/// the host is not resolved here.
fn parse_seed(seed: &str) -> Result<(String, u16), ConfigError> {
    let bad =
        |why: &str| ConfigError::Invalid(format!("cluster seed {seed:?} is not HOST:PORT ({why})"));
    let (host, port) = seed.rsplit_once(':').ok_or_else(|| bad("no port"))?;
    let host = match host.strip_prefix('[') {
        Some(v6) => {
            let v6 = v6.strip_suffix(']').ok_or_else(|| bad("unclosed ["))?;
            v6.parse::<std::net::Ipv6Addr>()
                .map_err(|_| bad("not an IPv6 address in [ ]"))?;
            v6
        }
        None if host.is_empty()
            || host.contains(|c: char| c == ':' || c == '/' || c.is_whitespace()) =>
        {
            return Err(bad("bad host"));
        }
        None => host,
    };
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok((host.to_owned(), p)),
        _ => Err(bad("port must be 1 to 65535")),
    }
}

/// This machine's host name (for the default node name), or `localhost`.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_cluster_keys_no_cluster() {
        assert_eq!(Config::default().cluster().expect("valid"), None);
        let c: Config = toml::from_str("port = 5700").expect("parse");
        assert_eq!(c.cluster().expect("valid"), None);
    }

    #[test]
    fn cluster_keys() {
        let c: Config = toml::from_str(
            "node_name = \"warren@a\"\ncluster_port = 25700\n\
             cluster_seeds = [\"b.example:25672\", \"10.0.0.3:25701\", \"[::1]:25702\"]",
        )
        .expect("parse");
        c.validate().expect("valid");
        let cluster = c.cluster().expect("valid").expect("configured");
        assert_eq!(cluster.node_name, "warren@a");
        assert_eq!(cluster.port, 25700);
        assert_eq!(
            cluster.seeds,
            vec![
                ("b.example".to_owned(), 25672),
                ("10.0.0.3".to_owned(), 25701),
                ("::1".to_owned(), 25702)
            ]
        );
        // Any one key turns the rest to their defaults.
        let only_seed = Config {
            cluster_seeds: vec!["b:25672".into()],
            ..Config::default()
        };
        let cluster = only_seed.cluster().expect("valid").expect("configured");
        assert_eq!(cluster.port, DEFAULT_CLUSTER_PORT);
        assert!(
            cluster.node_name.starts_with("warren@"),
            "{}",
            cluster.node_name
        );
        assert!(toml::from_str::<Config>("cluster_seed = []").is_err());
    }

    #[test]
    fn bad_cluster_keys_are_refused() {
        let with = |f: fn(&mut Config)| {
            let mut c = Config::default();
            f(&mut c);
            c.cluster().expect_err("refused").to_string()
        };
        let e = with(|c| c.cluster_port = Some(0));
        assert!(e.contains("cluster_port must not be 0"), "{e}");
        let e = with(|c| c.cluster_port = Some(5672));
        assert!(e.contains("cluster_port 5672 is also the AMQP port"), "{e}");
        let e = with(|c| c.cluster_port = Some(15672));
        assert!(e.contains("is also the management port"), "{e}");
        let e = with(|c| {
            c.tls_port = 5671;
            c.cluster_port = Some(5671)
        });
        assert!(
            e.contains("cluster_port 5671 is also the amqps port"),
            "{e}"
        );
        // The management port only counts when management is on.
        let off = Config {
            management: false,
            cluster_port: Some(15672),
            ..Config::default()
        };
        assert!(off.cluster().is_ok());
        let e = with(|c| c.node_name = Some("has space@x".into()));
        assert!(e.contains("node_name"), "{e}");
        for seed in [
            "host",
            "host:",
            "host:0",
            "host:70000",
            ":25672",
            "[::1:25672",
            "[nope]:1",
            "a b:1",
        ] {
            let c = Config {
                cluster_seeds: vec![seed.into()],
                ..Config::default()
            };
            let e = c.validate().expect_err(seed).to_string();
            assert!(e.contains("is not HOST:PORT"), "{seed}: {e}");
        }
    }
}
