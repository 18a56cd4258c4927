//! `warrenctl`: manages a Warren (or RabbitMQ) broker through its
//! RabbitMQ-compatible management HTTP API.

#[path = "warrenctl/args.rs"]
mod args;
#[path = "warrenctl/client.rs"]
mod client;
#[path = "warrenctl/cluster.rs"]
mod cluster;
#[path = "warrenctl/commands.rs"]
mod commands;
#[path = "warrenctl/definitions.rs"]
mod definitions;
#[path = "warrenctl/messages.rs"]
mod messages;
#[path = "warrenctl/objects.rs"]
mod objects;
#[path = "warrenctl/output.rs"]
mod output;
#[path = "warrenctl/settings.rs"]
mod settings;
#[path = "warrenctl/values.rs"]
mod values;

use std::io::Write;
use std::process::ExitCode;

pub use args::*;
use clap::{Parser, Subcommand};

/// Manage a Warren broker (or RabbitMQ) through its management HTTP API.
#[derive(Debug, Parser)]
#[command(name = "warrenctl", version, max_term_width = 100)]
pub struct Cli {
    /// Base URL of the management API
    #[arg(
        long,
        global = true,
        env = "WARREN_MGMT_URL",
        default_value = "http://127.0.0.1:15672"
    )]
    pub url: String,
    /// User to log in as (give it before the command)
    #[arg(short = 'u', long, env = "WARRENCTL_USER", default_value = "guest")]
    pub user: String,
    /// Password to log in with (give it before the command)
    #[arg(
        short = 'p',
        long,
        env = "WARRENCTL_PASSWORD",
        default_value = "guest",
        hide_default_value = true,
        hide_env_values = true
    )]
    pub password: String,
    /// CA certificates (PEM) to trust for an https --url [default: Mozilla's root certificates]
    #[arg(long, global = true, env = "WARRENCTL_CACERT")]
    pub cacert: Option<std::path::PathBuf>,
    /// Virtual host [default: /; export/import: the whole broker]
    #[arg(long, global = true)]
    pub vhost: Option<String>,
    /// Print JSON instead of tables and messages
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Broker name, versions and totals
    Overview,
    /// List objects of one kind
    List {
        /// What to list
        what: ListKind,
    },
    /// Declare (create) a queue, exchange, binding, user, vhost or permission
    #[command(subcommand)]
    Declare(Declare),
    /// Delete a queue, exchange, binding, user, vhost or permission
    #[command(subcommand)]
    Delete(Delete),
    /// Remove every ready message from a queue
    #[command(subcommand)]
    Purge(Purge),
    /// Publish one message through an exchange
    Publish(Publish),
    /// Fetch messages from a queue (requeued unless --ack)
    Get(Get),
    /// Show which queues a message would reach, and through which bindings, without publishing
    Explain(Explain),
    /// Export definitions (users, vhosts, permissions, exchanges, queues, bindings, ...)
    #[command(subcommand)]
    Export(Export),
    /// Import definitions exported by warrenctl, rabbitmqadmin or RabbitMQ
    #[command(subcommand)]
    Import(Import),
    /// Set limits on a vhost, e.g. '{"max-connections": 100, "max-queues": 10}' (-1: no limit)
    SetVhostLimits {
        /// The vhost
        vhost: String,
        /// JSON object of limit names (max-connections, max-queues) to integers
        #[arg(value_name = "JSON")]
        limits: String,
    },
    /// Clear one limit of a vhost (NAME `all`: every one)
    ClearVhostLimits {
        /// The vhost
        vhost: String,
        /// The limit's name (max-connections, max-queues) or `all`
        name: String,
    },
    /// List vhost limits (all vhosts', or --vhost's)
    ListVhostLimits,
    /// Set limits on a user, e.g. '{"max-connections": 10, "max-channels": 20}' (-1: no limit)
    SetUserLimits {
        /// The user
        user: String,
        /// JSON object of limit names (max-connections, max-channels) to integers
        #[arg(value_name = "JSON")]
        limits: String,
    },
    /// Clear one limit of a user (NAME `all`: every one)
    ClearUserLimits {
        /// The user
        user: String,
        /// The limit's name (max-connections, max-channels) or `all`
        name: String,
    },
    /// List user limits (all users', or --user's)
    ListUserLimits {
        /// Only this user's limits
        #[arg(long = "user", value_name = "USER")]
        only: Option<String>,
    },
    /// Set a policy in the vhost (--vhost, default /)
    SetPolicy(PolicyArgs),
    /// Clear a policy in the vhost (--vhost, default /)
    ClearPolicy {
        /// Policy name
        name: String,
    },
    /// List the policies of the vhost (--vhost, default /)
    ListPolicies,
    /// Set an operator policy in the vhost (--vhost, default /)
    SetOperatorPolicy(OperatorPolicyArgs),
    /// Clear an operator policy in the vhost (--vhost, default /)
    ClearOperatorPolicy {
        /// Operator policy name
        name: String,
    },
    /// List the operator policies of the vhost (--vhost, default /)
    ListOperatorPolicies,
    /// The cluster this node belongs to: status, join, leave
    #[command(subcommand)]
    Cluster(ClusterCommand),
}

/// `warrenctl cluster ...`.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// This node's cluster: state, metadata leader, every node (running or unreachable)
    Status,
    /// Join the cluster of the node at HOST:PORT (its cluster port); only for a node that
    /// is not in a cluster yet
    Join {
        /// The other node's cluster address
        #[arg(value_name = "HOST:PORT")]
        seed: String,
    },
    /// Leave the cluster (the node's Raft directory is removed)
    Leave,
    /// Remove a node that is down for good from the cluster and from every quorum
    /// queue's members (RabbitMQ's forget_cluster_node); it must not start again on its
    /// old data directory
    Forget {
        /// The node's name, e.g. warren@n3
        node: String,
    },
    /// Spread quorum queues' leaders over the running nodes (RabbitMQ's `rebalance`)
    Rebalance,
    /// Fail when stopping this node would leave a quorum queue without a majority
    CheckQuorumCritical,
    /// Add a node to a quorum queue's members (--vhost, default /)
    AddMember {
        /// The quorum queue
        queue: String,
        /// The node's name, e.g. warren@n3
        node: String,
    },
    /// Remove a node from a quorum queue's members (--vhost, default /)
    DeleteMember {
        /// The quorum queue
        queue: String,
        /// The node's name, e.g. warren@n3
        node: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(&cli) {
        Ok(text) => {
            write_stdout(&text);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("warrenctl: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Writes to stdout; a closed pipe (`warrenctl list queues | head`) is not an error.
fn write_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
