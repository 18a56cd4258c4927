//! Command-line flags of the `warren` server binary.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::config::{Config, ConfigError};

/// Warren: an AMQP 0-9-1 message broker that RabbitMQ clients connect to unchanged.
#[derive(Debug, Parser)]
#[command(name = "warren", version, about)]
pub struct Args {
    /// Address to listen on [default: 127.0.0.1]
    #[arg(long, env = "WARREN_BIND")]
    pub bind: Option<IpAddr>,
    /// AMQP port [default: 5672]
    #[arg(long, env = "WARREN_PORT")]
    pub port: Option<u16>,
    /// Directory for durable state [default: ./warren-data]
    #[arg(long, env = "WARREN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Memory above which publishers are blocked: bytes, `2GiB`, or `40%` of RAM [default: 40%]
    #[arg(long, env = "WARREN_MEMORY_LIMIT")]
    pub memory_limit: Option<String>,
    /// Free disk space below which publishers are blocked [default: 50MB]
    #[arg(long, env = "WARREN_DISK_FREE_LIMIT")]
    pub disk_free_limit: Option<String>,
    /// Management HTTP API port [default: 15672]
    #[arg(long, env = "WARREN_MANAGEMENT_PORT")]
    pub management_port: Option<u16>,
    /// Address the management HTTP API listens on [default: 127.0.0.1]
    #[arg(long, env = "WARREN_MANAGEMENT_BIND")]
    pub management_bind: Option<IpAddr>,
    /// Engine for queue messages: `segments` or `sled` [default: segments]
    #[arg(long, env = "WARREN_STORAGE_ENGINE")]
    pub storage_engine: Option<String>,
    /// amqps (TLS) port; 0 turns TLS off (RabbitMQ's usual one is 5671) [default: 0]
    #[arg(long, env = "WARREN_TLS_PORT")]
    pub tls_port: Option<u16>,
    /// The server's certificate chain, PEM, leaf first
    #[arg(long, env = "WARREN_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The server certificate's private key, PEM
    #[arg(long, env = "WARREN_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) that client certificates are checked against
    #[arg(long, env = "WARREN_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Ask TLS clients for a certificate and refuse one that does not verify (RabbitMQ's verify_peer) [default: false]
    #[arg(long, env = "WARREN_TLS_VERIFY_PEER", num_args = 0..=1, default_missing_value = "true")]
    pub tls_verify_peer: Option<bool>,
    /// With --tls-verify-peer, refuse TLS clients without a certificate (RabbitMQ's fail_if_no_peer_cert) [default: false]
    #[arg(long, env = "WARREN_TLS_FAIL_IF_NO_PEER_CERT", num_args = 0..=1, default_missing_value = "true")]
    pub tls_fail_if_no_peer_cert: Option<bool>,
    /// User name for EXTERNAL from a client certificate: `common_name` or `distinguished_name` [default: common_name]
    #[arg(long, env = "WARREN_SSL_CERT_LOGIN_FROM")]
    pub ssl_cert_login_from: Option<String>,
    /// Serve the management HTTP API over https with --tls-cert and --tls-key [default: false]
    #[arg(long, env = "WARREN_MANAGEMENT_TLS", num_args = 0..=1, default_missing_value = "true")]
    pub management_tls: Option<bool>,
    /// Message bodies a cluster member keeps in memory per quorum queue, the rest paged to disk [default: 16384]
    #[arg(long, env = "WARREN_QUORUM_WINDOW")]
    pub quorum_window: Option<usize>,
    /// Members each quorum queue is grown to on running nodes, when it has fewer (RabbitMQ 4's membership reconciliation) [default: off]
    #[arg(long, env = "WARREN_QUORUM_TARGET_GROUP_SIZE")]
    pub quorum_target_group_size: Option<usize>,
    /// TOML configuration file; flags override its values
    #[arg(long, env = "WARREN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Definitions file (RabbitMQ's JSON) to import at start
    #[arg(long, env = "WARREN_LOAD_DEFINITIONS")]
    pub load_definitions: Option<PathBuf>,
    /// Log format: `text` or `json` [default: text]
    #[arg(long, env = "WARREN_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// This node's name in a cluster; any cluster flag makes this broker a cluster node (issue 18: nodes only, no replicated definitions yet) [default: warren@<hostname>]
    #[arg(long, env = "WARREN_NODE_NAME")]
    pub node_name: Option<String>,
    /// Port other cluster nodes dial (listens on --bind) [default: 25672]
    #[arg(long, env = "WARREN_CLUSTER_PORT")]
    pub cluster_port: Option<u16>,
    /// HOST:PORT (cluster port) of a node to join at first start (repeatable)
    #[arg(
        long = "cluster-seed",
        env = "WARREN_CLUSTER_SEEDS",
        value_delimiter = ','
    )]
    pub cluster_seeds: Vec<String>,
    /// File holding the secret shared by the cluster's nodes (owner-only, like RabbitMQ's Erlang cookie); without it the cluster port must be on a trusted network
    #[arg(long, env = "WARREN_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// This node's certificate chain (PEM) for TLS between cluster nodes (with --cluster-tls-key and --cluster-tls-ca)
    #[arg(long, env = "WARREN_CLUSTER_TLS_CERT")]
    pub cluster_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --cluster-tls-cert
    #[arg(long, env = "WARREN_CLUSTER_TLS_KEY")]
    pub cluster_tls_key: Option<PathBuf>,
    /// The cluster's CA certificates (PEM): peers' certificates must chain to them
    #[arg(long, env = "WARREN_CLUSTER_TLS_CA")]
    pub cluster_tls_ca: Option<PathBuf>,
    /// Check the configuration (and the definitions file, if any), then exit
    #[arg(long)]
    pub check_config: bool,
}

impl Args {
    /// Builds the validated configuration: defaults, then the file, then flags.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(bind) = self.bind {
            config.bind = bind;
        }
        if let Some(port) = self.port {
            config.port = port;
        }
        if let Some(port) = self.management_port {
            config.management_port = port;
        }
        if let Some(bind) = self.management_bind {
            config.management_bind = bind;
        }
        if let Some(dir) = self.data_dir {
            config.data_dir = dir;
        }
        if let Some(engine) = self.storage_engine {
            config.storage_engine = engine;
        }
        if let Some(limit) = self.memory_limit {
            config.memory_limit = limit;
        }
        if let Some(limit) = self.disk_free_limit {
            config.disk_free_limit = limit;
        }
        if let Some(path) = self.load_definitions {
            config.load_definitions = Some(path);
        }
        if let Some(format) = self.log_format {
            config.log_format = format;
        }
        if let Some(port) = self.tls_port {
            config.tls_port = port;
        }
        if let Some(path) = self.tls_cert {
            config.tls_cert = Some(path);
        }
        if let Some(path) = self.tls_key {
            config.tls_key = Some(path);
        }
        if let Some(path) = self.tls_ca {
            config.tls_ca = Some(path);
        }
        if let Some(on) = self.tls_verify_peer {
            config.tls_verify_peer = on;
        }
        if let Some(on) = self.tls_fail_if_no_peer_cert {
            config.tls_fail_if_no_peer_cert = on;
        }
        if let Some(from) = self.ssl_cert_login_from {
            config.ssl_cert_login_from = from;
        }
        if let Some(on) = self.management_tls {
            config.management_tls = on;
        }
        if let Some(name) = self.node_name {
            config.node_name = Some(name);
        }
        if let Some(port) = self.cluster_port {
            config.cluster_port = Some(port);
        }
        if !self.cluster_seeds.is_empty() {
            config.cluster_seeds = self.cluster_seeds;
        }
        if let Some(path) = self.cluster_secret_file {
            config.cluster_secret_file = Some(path);
        }
        if let Some(path) = self.cluster_tls_cert {
            config.cluster_tls_cert = Some(path);
        }
        if let Some(path) = self.cluster_tls_key {
            config.cluster_tls_key = Some(path);
        }
        if let Some(path) = self.cluster_tls_ca {
            config.cluster_tls_ca = Some(path);
        }
        if let Some(window) = self.quorum_window {
            config.quorum_window = window;
        }
        if let Some(size) = self.quorum_target_group_size {
            config.quorum_target_group_size = Some(size);
        }
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_flags_reach_the_config() {
        let args = Args::try_parse_from([
            "warren",
            "--tls-port",
            "5671",
            "--tls-cert",
            "server.pem",
            "--tls-key",
            "server.key",
            "--tls-ca",
            "ca.pem",
            "--tls-verify-peer",
            "--tls-fail-if-no-peer-cert",
            "true",
            "--management-tls",
            "false",
        ])
        .expect("flags");
        assert_eq!(args.tls_port, Some(5671));
        assert_eq!(args.tls_cert, Some(PathBuf::from("server.pem")));
        assert_eq!(args.tls_key, Some(PathBuf::from("server.key")));
        assert_eq!(args.tls_ca, Some(PathBuf::from("ca.pem")));
        assert_eq!(args.tls_verify_peer, Some(true));
        assert_eq!(args.tls_fail_if_no_peer_cert, Some(true));
        assert_eq!(args.management_tls, Some(false));
        // The files do not exist: validation names the first one it reads.
        let error = args.into_config().expect_err("missing files").to_string();
        assert!(error.contains("server.pem"), "{error}");
    }

    #[test]
    fn the_quorum_target_group_size_is_off_by_default_and_set_by_flag_or_file() {
        assert_eq!(Config::default().quorum_target_group_size, None);
        let args = Args::parse_from(["warren", "--quorum-target-group-size", "3"]);
        assert_eq!(
            args.into_config().expect("valid").quorum_target_group_size,
            Some(3)
        );
        let file: Config = toml::from_str("quorum_target_group_size = 5").expect("parse");
        assert_eq!(file.quorum_target_group_size, Some(5));
        let zero = Args::parse_from(["warren", "--quorum-target-group-size", "0"]);
        assert!(zero.into_config().is_err());
    }

    #[test]
    fn the_quorum_window_flag_reaches_the_config() {
        assert_eq!(Config::default().quorum_window, 16_384);
        let args = Args::try_parse_from(["warren", "--quorum-window", "20"]).expect("flags");
        assert_eq!(args.into_config().expect("valid").quorum_window, 20);
        let file: Config = toml::from_str("quorum_window = 0").expect("parse");
        assert_eq!(file.quorum_window, 0);
    }

    #[test]
    fn cluster_flags_reach_the_config() {
        let args = Args::try_parse_from([
            "warren",
            "--node-name",
            "warren@a",
            "--cluster-port",
            "25700",
            "--cluster-seed",
            "b:25672",
            "--cluster-seed",
            "c:25672",
        ])
        .expect("flags");
        let config = args.into_config().expect("valid");
        let cluster = config.cluster().expect("valid").expect("configured");
        assert_eq!(cluster.node_name, "warren@a");
        assert_eq!(cluster.port, 25700);
        assert_eq!(
            cluster.seeds,
            vec![("b".to_owned(), 25672), ("c".to_owned(), 25672)]
        );
        let clash = Args::try_parse_from(["warren", "--cluster-port", "5672"]).expect("flags");
        let error = clash.into_config().expect_err("clash").to_string();
        assert!(error.contains("is also the AMQP port"), "{error}");
        let bad = Args::try_parse_from(["warren", "--cluster-seed", "nowhere"]).expect("flags");
        assert!(bad.into_config().is_err());
        let secured = Args::try_parse_from([
            "warren",
            "--node-name",
            "warren@a",
            "--cluster-secret-file",
            "/nonexistent/warren-secret",
            "--cluster-tls-cert",
            "n.pem",
            "--cluster-tls-key",
            "n.key",
            "--cluster-tls-ca",
            "ca.pem",
        ])
        .expect("flags");
        assert_eq!(
            secured.cluster_secret_file,
            Some(PathBuf::from("/nonexistent/warren-secret"))
        );
        assert_eq!(secured.cluster_tls_ca, Some(PathBuf::from("ca.pem")));
        // The secret is read at start: a missing file stops it.
        let error = secured.into_config().expect_err("no secret").to_string();
        assert!(error.contains("/nonexistent/warren-secret"), "{error}");
        // No cluster flag, no cluster.
        let plain = Args::try_parse_from(["warren"]).expect("flags");
        assert_eq!(
            plain
                .into_config()
                .expect("valid")
                .cluster()
                .expect("valid"),
            None
        );
    }
}
