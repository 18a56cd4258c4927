//! One typed configuration: defaults, then a TOML file, then command-line flags.
//! Validated once at start; the rest of the broker reads plain fields.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

mod cluster;
mod cluster_security;
pub use cluster::{ClusterConfig, DEFAULT_CLUSTER_PORT};

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: toml::de::Error,
    },
    /// A value is out of its allowed range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The broker's settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the AMQP listener binds to.
    pub bind: IpAddr,
    /// AMQP port.
    pub port: u16,
    /// Where durable state lives.
    pub data_dir: PathBuf,
    /// Heartbeat interval offered in connection.tune, in seconds (0 disables).
    pub heartbeat: u16,
    /// frame_max offered in connection.tune (0 = no limit).
    pub frame_max: u32,
    /// channel_max offered in connection.tune (0 = no limit).
    pub channel_max: u16,
    /// Largest message body accepted, in bytes.
    pub max_message_size: u64,
    /// How long a delivery may stay unacknowledged before its channel is
    /// closed, in milliseconds (RabbitMQ's `consumer_timeout`; 0 = off).
    pub consumer_timeout: u64,
    /// How often message counters are sampled for the rates the management
    /// API and metrics report, in milliseconds (RabbitMQ's
    /// `collect_statistics_interval`, default 5000).
    pub collect_statistics_interval: u64,
    /// RabbitMQ's `collect_statistics`: `coarse` (the default: message
    /// rates), `fine` (the same here), or `none` (no counting: rates stay 0).
    pub collect_statistics: String,
    /// A definitions file (RabbitMQ's JSON) imported at start, before the
    /// listeners open (RabbitMQ's `load_definitions`).
    pub load_definitions: Option<PathBuf>,
    /// Log lines as `text` (default) or `json` (one object per line).
    pub log_format: String,
    /// Page cache of the store, in MiB.
    pub storage_cache_mb: u64,
    /// Where queue messages are kept: `segments` (segment files, the default)
    /// or `sled` (the former engine, kept to compare).
    pub storage_engine: String,
    /// Memory above which publishers are blocked: bytes, a size with a unit
    /// (`2GiB`), or a share of the machine's memory (`40%`, RabbitMQ's default).
    pub memory_limit: String,
    /// Share of `memory_limit` above which queues page transient messages out
    /// to disk (RabbitMQ's `vm_memory_high_watermark_paging_ratio`, 0.5).
    pub memory_paging_ratio: f64,
    /// Transient messages a queue keeps in memory (or 64 MiB of their
    /// bodies) before newer ones page to disk without memory pressure, so a
    /// long backlog does not grow RSS (RabbitMQ's lazy queues); 0 pages them
    /// only above `memory_paging_ratio`.
    pub transient_window: usize,
    /// Message bodies each member of a cluster keeps in memory per quorum queue (or
    /// 64 MiB of them), the first ones in delivery order; the rest wait in that member's
    /// spill files (`<data_dir>/quorum-bodies/`) and are read back as the queue drains.
    /// 0 keeps none in memory.
    pub quorum_window: usize,
    /// The members each quorum queue should have (RabbitMQ 4's continuous membership
    /// reconciliation `target_group_size`): a queue's leader adds running nodes to a queue
    /// with fewer, e.g. after a member's node was forgotten and a new one joined.
    /// `None` (the default, as in RabbitMQ): queues keep the members they have.
    pub quorum_target_group_size: Option<usize>,
    /// Free disk space in the data directory below which publishers are
    /// blocked (RabbitMQ's default: 50MB).
    pub disk_free_limit: String,
    /// Seconds a client has to complete the handshake.
    pub handshake_timeout_secs: u64,
    /// Milliseconds to wait before silently closing a connection that failed its
    /// handshake (RabbitMQ waits so that failed logins cannot be retried in a loop).
    pub silent_close_delay_ms: u64,
    /// Users that may only connect from a loopback address.
    pub loopback_users: Vec<String>,
    /// The user created on a fresh broker.
    pub default_user: String,
    /// The default user's password.
    pub default_pass: String,
    /// The vhost created on a fresh broker.
    pub default_vhost: String,
    /// Whether the management HTTP API (and `/metrics`) is served.
    pub management: bool,
    /// Address the management API binds to.
    pub management_bind: IpAddr,
    /// Management API port (0 picks a free one).
    pub management_port: u16,
    /// Whether the management API is served over https, with `tls_cert` and
    /// `tls_key`.
    pub management_tls: bool,
    /// amqps port (0, the default, turns TLS off; RabbitMQ's usual one is 5671).
    pub tls_port: u16,
    /// The server's certificate chain (PEM), leaf first.
    pub tls_cert: Option<PathBuf>,
    /// The server certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) that client certificates are checked against.
    pub tls_ca: Option<PathBuf>,
    /// Ask clients for a certificate and refuse one that does not verify
    /// against `tls_ca` (RabbitMQ's `verify_peer`; off is `verify_none`).
    pub tls_verify_peer: bool,
    /// With `tls_verify_peer`, also refuse clients that send no certificate
    /// (RabbitMQ's `fail_if_no_peer_cert`; ignored without `tls_verify_peer`,
    /// as in RabbitMQ).
    pub tls_fail_if_no_peer_cert: bool,
    /// What the EXTERNAL mechanism takes as the user name from a client
    /// certificate: `common_name` (its subject CN, the default) or
    /// `distinguished_name` (the whole subject as RabbitMQ formats it,
    /// RabbitMQ's default).
    pub ssl_cert_login_from: String,
    /// This node's name in a cluster (RabbitMQ's `name@host`; default
    /// `warren@<hostname>`). Any cluster key starts the `cluster` room
    /// (issue 18 step 3: nodes form a cluster; definitions are not yet
    /// replicated).
    pub node_name: Option<String>,
    /// The port other cluster nodes dial (default 25672 once any cluster key
    /// is set; must differ from the AMQP, amqps and management ports).
    pub cluster_port: Option<u16>,
    /// `HOST:PORT` of cluster nodes to join at first start.
    pub cluster_seeds: Vec<String>,
    /// A file holding the secret every node of the cluster shares (RabbitMQ's
    /// Erlang cookie): peers prove they know it, it never crosses the wire.
    /// Owner-only (mode 600 or 400). Without it any host that reaches
    /// `cluster_port` may join: a trusted network only.
    pub cluster_secret_file: Option<PathBuf>,
    /// This node's certificate chain (PEM, leaf first) for TLS on cluster
    /// links; with `cluster_tls_key` and `cluster_tls_ca`, all or none.
    pub cluster_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `cluster_tls_cert`.
    pub cluster_tls_key: Option<PathBuf>,
    /// The cluster's CA certificates (PEM): every node's certificate must
    /// chain to them, both ways.
    pub cluster_tls_ca: Option<PathBuf>,
}

/// The TLS files of a configuration, read and parsed.
#[derive(Debug)]
pub struct TlsFiles {
    /// The server's certificate chain, leaf first.
    pub certs: Vec<CertificateDer<'static>>,
    /// Its private key.
    pub key: PrivateKeyDer<'static>,
    /// The CA certificates for client certificates (empty without `tls_ca`).
    pub ca: Vec<CertificateDer<'static>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 5672,
            data_dir: PathBuf::from("warren-data"),
            heartbeat: 60,
            frame_max: 131_072,
            channel_max: 2047,
            max_message_size: 128 * 1024 * 1024,
            consumer_timeout: 1_800_000,
            collect_statistics_interval: 5000,
            collect_statistics: "coarse".into(),
            load_definitions: None,
            log_format: "text".into(),
            storage_cache_mb: 8,
            storage_engine: "segments".into(),
            memory_limit: "40%".into(),
            memory_paging_ratio: 0.5,
            // As durable::DEFAULT_TRANSIENT_WINDOW (a test in broker/ checks).
            transient_window: 16_384,
            quorum_window: 16_384,
            quorum_target_group_size: None,
            disk_free_limit: "50MB".into(),
            handshake_timeout_secs: 10,
            silent_close_delay_ms: 3000,
            loopback_users: vec!["guest".into()],
            default_user: "guest".into(),
            default_pass: "guest".into(),
            default_vhost: "/".into(),
            management: true,
            management_bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            management_port: 15672,
            management_tls: false,
            tls_port: 0,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            tls_verify_peer: false,
            tls_fail_if_no_peer_cert: false,
            ssl_cert_login_from: "common_name".into(),
            node_name: None,
            cluster_port: None,
            cluster_seeds: Vec::new(),
            cluster_secret_file: None,
            cluster_tls_cert: None,
            cluster_tls_key: None,
            cluster_tls_ca: None,
        }
    }
}

impl Config {
    /// Reads a TOML file over the defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Checks ranges that the protocol or RabbitMQ impose.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.storage_engine()?;
        if !matches!(self.collect_statistics.as_str(), "none" | "coarse" | "fine") {
            return Err(ConfigError::Invalid(format!(
                "collect_statistics must be none, coarse or fine, not {:?}",
                self.collect_statistics
            )));
        }
        if self.frame_max != 0 && self.frame_max < warren_codec::frame::FRAME_MIN_SIZE {
            return Err(ConfigError::Invalid(format!(
                "frame_max {} is below the protocol minimum of 4096",
                self.frame_max
            )));
        }
        // RabbitMQ caps max_message_size at 512 MiB.
        if self.max_message_size == 0 || self.max_message_size > 512 * 1024 * 1024 {
            return Err(ConfigError::Invalid(format!(
                "max_message_size {} must be between 1 and 536870912",
                self.max_message_size
            )));
        }
        if self.quorum_target_group_size == Some(0) {
            return Err(ConfigError::Invalid(
                "quorum_target_group_size must be 1 or more".into(),
            ));
        }
        if self.default_vhost.is_empty() || self.default_user.is_empty() {
            return Err(ConfigError::Invalid(
                "default_vhost and default_user must not be empty".into(),
            ));
        }
        self.memory_limit_bytes()?;
        if !(0.0..=1.0).contains(&self.memory_paging_ratio) {
            return Err(ConfigError::Invalid(
                "memory_paging_ratio must be between 0 and 1".into(),
            ));
        }
        self.disk_free_limit_bytes()?;
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return Err(ConfigError::Invalid(format!(
                "log_format '{}' must be 'text' or 'json'",
                self.log_format
            )));
        }
        if !matches!(
            self.ssl_cert_login_from.as_str(),
            "common_name" | "distinguished_name"
        ) {
            return Err(ConfigError::Invalid(format!(
                "ssl_cert_login_from '{}' must be 'common_name' or 'distinguished_name'",
                self.ssl_cert_login_from
            )));
        }
        if self.tls_port != 0 && self.tls_port == self.port {
            return Err(ConfigError::Invalid(format!(
                "tls_port {} is also the AMQP port",
                self.tls_port
            )));
        }
        self.tls_files()?;
        self.cluster()?;
        Ok(())
    }

    /// Whether anything is served over TLS (amqps or the management API).
    pub fn tls_enabled(&self) -> bool {
        self.tls_port != 0 || (self.management && self.management_tls)
    }

    /// Reads and parses the TLS files when TLS is on (`None` when it is off):
    /// a missing, unreadable or empty file is an error naming it.
    pub fn tls_files(&self) -> Result<Option<TlsFiles>, ConfigError> {
        if !self.tls_enabled() {
            return Ok(None);
        }
        self.read_tls_files().map(Some)
    }

    /// Reads and parses `tls_cert`, `tls_key` and `tls_ca` whether or not
    /// TLS is on; `tls_cert` and `tls_key` must be set.
    pub fn read_tls_files(&self) -> Result<TlsFiles, ConfigError> {
        let what = if self.tls_port != 0 {
            "tls_port"
        } else if self.management_tls {
            "management_tls"
        } else {
            "TLS"
        };
        let required = |path: &Option<PathBuf>, key: &str| {
            path.clone().ok_or_else(|| {
                ConfigError::Invalid(format!("{what} is set but {key} (a PEM file) is not"))
            })
        };
        let cert = required(&self.tls_cert, "tls_cert")?;
        let key = required(&self.tls_key, "tls_key")?;
        if self.tls_verify_peer && self.tls_ca.is_none() {
            return Err(ConfigError::Invalid(
                "tls_verify_peer needs tls_ca: the CA certificates (PEM) to check clients against"
                    .into(),
            ));
        }
        let certs = read_certificates(&cert, "tls_cert")?;
        let key = PrivateKeyDer::from_pem_file(&key).map_err(|e| pem_error(&key, "tls_key", e))?;
        let ca = match &self.tls_ca {
            Some(ca) => read_certificates(ca, "tls_ca")?,
            None => Vec::new(),
        };
        Ok(TlsFiles { certs, key, ca })
    }

    /// The memory limit in bytes (`u64::MAX` where the machine's memory is unknown
    /// and the limit is a share of it).
    pub fn memory_limit_bytes(&self) -> Result<u64, ConfigError> {
        let total = crate::alarms::total_memory().unwrap_or(u64::MAX);
        crate::alarms::parse_size(&self.memory_limit, total).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "memory_limit '{}' is not a size",
                self.memory_limit
            ))
        })
    }

    /// The free disk limit in bytes.
    pub fn disk_free_limit_bytes(&self) -> Result<u64, ConfigError> {
        crate::alarms::parse_size(&self.disk_free_limit, 0).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "disk_free_limit '{}' is not a size",
                self.disk_free_limit
            ))
        })
    }

    /// The store's page cache in bytes.
    pub fn storage_cache_bytes(&self) -> u64 {
        self.storage_cache_mb << 20
    }

    /// The storage engine for queue messages.
    pub fn storage_engine(&self) -> Result<warren_storage::Engine, ConfigError> {
        self.storage_engine.parse().map_err(ConfigError::Invalid)
    }

    /// Whether message counters count (`collect_statistics` is not `none`).
    pub fn counting(&self) -> bool {
        self.collect_statistics != "none"
    }

    /// The statistics interval (at least 100 ms).
    pub fn statistics_interval(&self) -> Duration {
        Duration::from_millis(self.collect_statistics_interval.max(100))
    }

    /// The broker-wide delivery acknowledgement timeout in milliseconds
    /// (None: off), in the unit queues and consumers give theirs.
    pub fn consumer_timeout_ms(&self) -> Option<u64> {
        (self.consumer_timeout > 0).then_some(self.consumer_timeout)
    }

    /// How long a client has to complete the handshake.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_secs)
    }

    /// The delay before a silent close after a failed handshake.
    pub fn silent_close_delay(&self) -> Duration {
        Duration::from_millis(self.silent_close_delay_ms)
    }
}

/// Every certificate of a PEM file; none is an error.
pub(crate) fn read_certificates(
    path: &Path,
    key: &str,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| pem_error(path, key, e))?;
    if certs.is_empty() {
        return Err(pem_error(
            path,
            key,
            rustls::pki_types::pem::Error::NoItemsFound,
        ));
    }
    Ok(certs)
}

pub(crate) fn pem_error(
    path: &Path,
    key: &str,
    error: rustls::pki_types::pem::Error,
) -> ConfigError {
    use rustls::pki_types::pem::Error;
    let why = match error {
        Error::Io(e) => format!("cannot read it: {e}"),
        Error::NoItemsFound => match key {
            "tls_key" | "cluster_tls_key" => "no private key in it".to_owned(),
            _ => "no certificate in it".to_owned(),
        },
        other => format!("not valid PEM: {other}"),
    };
    ConfigError::Invalid(format!("{key} file {}: {why}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_rabbitmq_defaults_and_valid() {
        let c = Config::default();
        assert_eq!(
            (c.port, c.frame_max, c.channel_max, c.heartbeat),
            (5672, 131_072, 2047, 60)
        );
        c.validate().expect("valid");
    }

    #[test]
    fn file_overrides_and_rejects_unknown_keys() {
        let c: Config = toml::from_str("port = 5700\nheartbeat = 10").expect("parse");
        assert_eq!((c.port, c.heartbeat, c.channel_max), (5700, 10, 2047));
        assert!(toml::from_str::<Config>("prot = 1").is_err());
        let bad = Config {
            frame_max: 100,
            ..Config::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn tls_keys() {
        let c: Config = toml::from_str(
            "tls_port = 5671\ntls_cert = \"s.pem\"\ntls_key = \"s.key\"\ntls_ca = \"ca.pem\"\n\
             tls_verify_peer = true\ntls_fail_if_no_peer_cert = true\nmanagement_tls = true",
        )
        .expect("parse");
        assert_eq!(c.tls_port, 5671);
        assert_eq!(c.tls_ca, Some(PathBuf::from("ca.pem")));
        assert!(c.tls_verify_peer && c.tls_fail_if_no_peer_cert && c.management_tls);
        let error = c.validate().expect_err("no such files").to_string();
        assert!(error.contains("tls_cert file s.pem"), "{error}");
        // TLS off by default; the same port twice is refused.
        assert!(!Config::default().tls_enabled());
        let twice = Config {
            tls_port: 5672,
            ..Config::default()
        };
        assert!(twice.validate().is_err());
    }
}
