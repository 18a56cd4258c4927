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
    /// TOML configuration file; flags override its values
    #[arg(long, env = "WARREN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Definitions file (RabbitMQ's JSON) to import at start
    #[arg(long, env = "WARREN_LOAD_DEFINITIONS")]
    pub load_definitions: Option<PathBuf>,
    /// Log format: `text` or `json` [default: text]
    #[arg(long, env = "WARREN_LOG_FORMAT")]
    pub log_format: Option<String>,
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
        config.validate()?;
        Ok(config)
    }
}
