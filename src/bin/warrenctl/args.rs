//! `warrenctl`'s argument types below the top-level commands: what each subcommand takes.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;

use crate::values;

/// Arguments of `set-policy` (rabbitmqctl's set_policy).
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// Policy name
    pub name: String,
    /// Regex of the queue/exchange names it applies to
    pub pattern: String,
    /// JSON object of policy keys, e.g. '{"max-length": 1000, "dead-letter-exchange": "dlx"}'
    #[arg(value_name = "DEFINITION")]
    pub definition: String,
    /// Where several policies match, the highest priority wins
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i64,
    /// What it applies to
    #[arg(long, value_enum, default_value_t = ApplyTo::All)]
    pub apply_to: ApplyTo,
}

/// Arguments of `set-operator-policy` (rabbitmqctl's set_operator_policy).
#[derive(Debug, Args)]
pub struct OperatorPolicyArgs {
    /// Operator policy name
    pub name: String,
    /// Regex of the queue names it applies to
    pub pattern: String,
    /// JSON object of policy keys, e.g. '{"max-length": 1000}'
    #[arg(value_name = "DEFINITION")]
    pub definition: String,
    /// Where several operator policies match, the highest priority wins
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i64,
    /// What it applies to
    #[arg(long, value_enum, default_value_t = ApplyTo::Queues)]
    pub apply_to: ApplyTo,
}

/// A policy's `apply-to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ApplyTo {
    /// Queues and exchanges
    All,
    /// Queues of every type
    Queues,
    /// Exchanges
    Exchanges,
    /// Classic queues
    #[value(name = "classic_queues")]
    ClassicQueues,
    /// Quorum queues
    #[value(name = "quorum_queues")]
    QuorumQueues,
    /// Streams
    Streams,
}

impl ApplyTo {
    /// The value in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyTo::All => "all",
            ApplyTo::Queues => "queues",
            ApplyTo::Exchanges => "exchanges",
            ApplyTo::ClassicQueues => "classic_queues",
            ApplyTo::QuorumQueues => "quorum_queues",
            ApplyTo::Streams => "streams",
        }
    }
}

/// Which kind of policy a command acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// `/api/policies`
    Policy,
    /// `/api/operator-policies`
    Operator,
}

/// Kinds of objects `list` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListKind {
    /// Queues in the vhost
    Queues,
    /// Exchanges in the vhost
    Exchanges,
    /// Bindings in the vhost
    Bindings,
    /// Client connections (all vhosts)
    Connections,
    /// Channels (all vhosts)
    Channels,
    /// Consumers in the vhost
    Consumers,
    /// Users
    Users,
    /// Virtual hosts
    Vhosts,
    /// Permissions in the vhost
    Permissions,
}

/// What `declare` creates.
#[derive(Debug, Subcommand)]
pub enum Declare {
    /// Declare a queue
    Queue {
        /// Queue name
        name: String,
        /// Survive a broker restart
        #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
        durable: bool,
        /// Delete the queue when its last consumer goes
        #[arg(long)]
        auto_delete: bool,
        /// Queue argument key=value (integers and true/false typed; key:=JSON for exact JSON)
        #[arg(long = "arg", value_name = "KEY=VALUE", value_parser = values::key_value)]
        args: Vec<(String, Value)>,
    },
    /// Declare an exchange
    Exchange {
        /// Exchange name
        name: String,
        /// Exchange type
        #[arg(long = "type", value_name = "TYPE")]
        kind: ExchangeType,
        /// Survive a broker restart
        #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
        durable: bool,
        /// Publishers cannot publish to it directly (only exchange-to-exchange)
        #[arg(long)]
        internal: bool,
        /// Delete the exchange when its last binding goes
        #[arg(long)]
        auto_delete: bool,
        /// Exchange argument key=value (e.g. alternate-exchange=ae)
        #[arg(long = "arg", value_name = "KEY=VALUE", value_parser = values::key_value)]
        args: Vec<(String, Value)>,
    },
    /// Bind a queue or exchange to an exchange
    Binding(BindingArgs),
    /// Create a user or change its password and tags
    User {
        /// User name
        name: String,
        /// Password (stored hashed by the broker)
        #[arg(
            long,
            required_unless_present = "password_hash",
            conflicts_with = "password_hash"
        )]
        password: Option<String>,
        /// Pre-hashed password, as in exported definitions
        #[arg(long)]
        password_hash: Option<String>,
        /// Comma-separated tags, e.g. administrator or management
        #[arg(long, default_value = "")]
        tags: String,
    },
    /// Create a virtual host
    Vhost {
        /// Vhost name
        name: String,
    },
    /// Grant a user permissions in a vhost (--vhost, default /)
    Permission {
        /// The user
        #[arg(long)]
        user: String,
        /// Regex of resources the user may declare and delete
        #[arg(long, value_name = "REGEX")]
        configure: String,
        /// Regex of resources the user may publish to / bind to
        #[arg(long, value_name = "REGEX")]
        write: String,
        /// Regex of resources the user may consume from / bind from
        #[arg(long, value_name = "REGEX")]
        read: String,
    },
}

/// Exchange types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExchangeType {
    /// Routing key equals binding key
    Direct,
    /// Every bound queue
    Fanout,
    /// Pattern match with * and #
    Topic,
    /// Match on message headers
    Headers,
    /// One queue per message by a hash ring; the binding key is a weight
    #[value(name = "x-consistent-hash")]
    ConsistentHash,
    /// One queue per message: routing key hash modulo the number of bound queues
    #[value(name = "x-modulus-hash")]
    ModulusHash,
}

impl ExchangeType {
    /// The type's name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeType::Direct => "direct",
            ExchangeType::Fanout => "fanout",
            ExchangeType::Topic => "topic",
            ExchangeType::Headers => "headers",
            ExchangeType::ConsistentHash => "x-consistent-hash",
            ExchangeType::ModulusHash => "x-modulus-hash",
        }
    }
}

/// A binding: source, destination, key and arguments.
#[derive(Debug, Args)]
pub struct BindingArgs {
    /// Source exchange
    #[arg(long)]
    pub source: String,
    /// Destination queue or exchange
    #[arg(long)]
    pub destination: String,
    /// Whether the destination is a queue or an exchange
    #[arg(long, value_enum, default_value_t = DestinationType::Queue)]
    pub destination_type: DestinationType,
    /// Routing (binding) key
    #[arg(long, default_value = "")]
    pub routing_key: String,
    /// Binding argument key=value (headers exchanges: x-match=all|any, ...)
    #[arg(long = "arg", value_name = "KEY=VALUE", value_parser = values::key_value)]
    pub args: Vec<(String, Value)>,
}

/// Binding destination kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DestinationType {
    /// A queue
    Queue,
    /// An exchange
    Exchange,
}

/// What `delete` removes.
#[derive(Debug, Subcommand)]
pub enum Delete {
    /// Delete a queue
    Queue {
        /// Queue name
        name: String,
        /// Only if it has no consumers
        #[arg(long)]
        if_unused: bool,
        /// Only if it has no messages
        #[arg(long)]
        if_empty: bool,
    },
    /// Delete an exchange
    Exchange {
        /// Exchange name
        name: String,
        /// Only if nothing is bound to it
        #[arg(long)]
        if_unused: bool,
    },
    /// Remove a binding (matched by source, destination, routing key and arguments)
    Binding {
        /// The binding
        #[command(flatten)]
        binding: BindingArgs,
        /// The binding's properties key as `list bindings --json` shows it
        /// (instead of matching on routing key and arguments)
        #[arg(long)]
        properties_key: Option<String>,
    },
    /// Delete a user
    User {
        /// User name
        name: String,
    },
    /// Delete a virtual host and everything in it
    Vhost {
        /// Vhost name
        name: String,
    },
    /// Revoke a user's permissions in a vhost (--vhost, default /)
    Permission {
        /// The user
        #[arg(long)]
        user: String,
    },
}

/// What `purge` empties.
#[derive(Debug, Subcommand)]
pub enum Purge {
    /// Purge a queue
    Queue {
        /// Queue name
        name: String,
    },
}

/// Arguments of `publish`.
#[derive(Debug, Args)]
pub struct Publish {
    /// Exchange to publish to (default: the default exchange, which routes to
    /// the queue named by the routing key)
    #[arg(long, default_value = "")]
    pub exchange: String,
    /// Routing key
    #[arg(long, default_value = "")]
    pub routing_key: String,
    /// Message body as text
    #[arg(long, conflicts_with = "body_file")]
    pub body: Option<String>,
    /// Read the message body from a file (`-` for stdin); binary is fine
    #[arg(long, value_name = "FILE")]
    pub body_file: Option<PathBuf>,
    /// Message property name=value (content_type, correlation_id, priority, expiration, ...)
    #[arg(long = "property", value_name = "NAME=VALUE", value_parser = values::property)]
    pub properties: Vec<(String, Value)>,
    /// Message header key=value (integers and true/false typed; key:=JSON for exact JSON)
    #[arg(long = "header", value_name = "KEY=VALUE", value_parser = values::key_value)]
    pub headers: Vec<(String, Value)>,
    /// Mark the message persistent (delivery_mode 2)
    #[arg(long)]
    pub persistent: bool,
}

/// Arguments of `explain`.
#[derive(Debug, Args)]
pub struct Explain {
    /// Exchange the message would be published to (`""` or amq.default: the default exchange)
    pub exchange: String,
    /// Routing key
    #[arg(default_value = "")]
    pub routing_key: String,
    /// Message header key=value (integers and true/false typed; key:=JSON for exact JSON)
    #[arg(long = "header", value_name = "KEY=VALUE", value_parser = values::key_value)]
    pub headers: Vec<(String, Value)>,
    /// Message property name=value (message_id, correlation_id, timestamp: what hash-property hashes)
    #[arg(long = "property", value_name = "NAME=VALUE", value_parser = values::property)]
    pub properties: Vec<(String, Value)>,
}

/// Arguments of `get`.
#[derive(Debug, Args)]
pub struct Get {
    /// Queue to fetch from
    #[arg(long)]
    pub queue: String,
    /// How many messages at most
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    /// Acknowledge: the messages leave the queue
    #[arg(long, conflicts_with = "requeue")]
    pub ack: bool,
    /// Put the messages back (the default)
    #[arg(long)]
    pub requeue: bool,
    /// Show at most this many bytes of each body
    #[arg(long)]
    pub truncate: Option<u64>,
}

/// What `export` writes.
#[derive(Debug, Subcommand)]
pub enum Export {
    /// Definitions as JSON, to FILE or `-` for stdout
    Definitions {
        /// Output file (`-`: stdout)
        #[arg(default_value = "-")]
        file: PathBuf,
    },
}

/// What `import` reads.
#[derive(Debug, Subcommand)]
pub enum Import {
    /// Definitions from a JSON file (`-` for stdin)
    Definitions {
        /// Input file (`-`: stdin)
        file: PathBuf,
    },
}
