//! Shovels in a cluster: every node knows every shovel (its parameter goes through the
//! metadata log, `BrokerOp::PutShovel`), and the metadata leader runs them all, so each
//! runs once and moves to the next leader when its node goes (RabbitMQ runs a dynamic
//! shovel on one node and restarts it on another when that node is lost).
//!
//! A node checks once a second whether it leads group 0 and turns its shovels on or off.
//! During a leader change two nodes may both run a shovel for up to that second; with
//! `on-confirm` acks that means duplicates at worst, never a lost message.

use std::sync::{Arc, Weak};
use std::time::Duration;

use warren_raft::METADATA_GROUP;

use super::Cluster;
use crate::broker::Broker;
use crate::meta::BrokerOp;

/// How often a node checks whether it should run the shovels.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Before the node takes part: its shovels stay off until it leads group 0, and a shovel
/// that deleted itself is deleted through the log, so no other node restarts it.
pub(super) fn attach(broker: &Arc<Broker>) {
    broker.shovels.set_active(false);
    let weak = Arc::downgrade(broker);
    broker.shovels.on_finished(Box::new(move |vhost: &str, name: &str| {
        let (weak, vhost, name) = (weak.clone(), vhost.to_owned(), name.to_owned());
        tokio::spawn(async move {
            let Some(broker) = weak.upgrade() else {
                return;
            };
            let op = BrokerOp::DeleteShovel {
                vhost: vhost.clone(),
                name: name.clone(),
            };
            if let Err(error) = broker.change(op).await {
                tracing::warn!(%vhost, %name, %error, "a finished shovel's deletion was not logged");
            }
        });
    }));
}

/// Runs the shovels on this node while it leads group 0.
pub(super) async fn follow_leader(cluster: Weak<Cluster>, broker: Weak<Broker>) {
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        let (Some(c), Some(b)) = (cluster.upgrade(), broker.upgrade()) else {
            return;
        };
        if c.stop.is_cancelled() || c.left() {
            b.shovels.set_active(false);
            return;
        }
        let leads = c.node.status(METADATA_GROUP).is_some_and(|s| s.is_leader());
        b.shovels.set_active(leads);
    }
}
