//! Consumers whose channel, node or run is gone: what they had out returns to the
//! queue, through the log like every other change.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;

use super::QuorumQueue;
use crate::queue::quorum::fifo::{Command, ConsumerKey, MsgId};
use crate::queue::quorum::machine::QuorumCommand;

impl QuorumQueue {
    /// The channels of other nodes that consume from the queue: (node, connection, channel).
    pub fn consumer_channels_elsewhere(&self) -> Vec<(u64, u64, u16)> {
        let machine = self.machine.lock();
        let mut channels: Vec<(u64, u64, u16)> = machine
            .fifo
            .consumers()
            .filter(|(key, _)| key.node != self.here.0)
            .map(|(key, _)| (key.node, key.connection, key.channel))
            .collect();
        channels.sort_unstable();
        channels.dedup();
        channels
    }

    /// A channel of another node is gone: what its consumers had out returns.
    pub fn channel_down(&self, node: u64, connection: u64, channel: u16) {
        self.submit(Command::ChannelDown {
            node,
            connection,
            channel,
        });
    }

    /// Another node is down: what its consumers had out returns.
    ///
    /// Only this node's own term may carry the verdict. A leader cut off from the others
    /// takes them all for down; written here, its entry cannot commit once the others elect
    /// a new leader (the new log overwrites it), whereas a forwarded or retried one would
    /// commit after the cut heals and cancel consumers that were alive all along.
    pub fn node_down(&self, node: u64) {
        let Ok(bytes) = postcard::to_stdvec(&QuorumCommand::Op(Command::NodeDown { node })) else {
            return;
        };
        let written = self.log.write_as_leader(self.group, Bytes::from(bytes));
        let group = self.group;
        tokio::spawn(async move {
            if let Err(error) = written.await {
                tracing::debug!(group, node, %error, "a node-down verdict was not committed");
            }
        });
    }

    /// Returns what consumers of this node's earlier runs had out (they died with it).
    pub fn return_stale_consumers(&self) {
        let stale: Vec<(u64, u16)> = {
            let m = self.machine.lock();
            let mut stale: Vec<(u64, u16)> = m
                .fifo
                .consumers()
                .filter(|(k, _)| k.node == self.here.0 && k.connection >> 32 != self.run)
                .map(|(k, _)| (k.connection, k.channel))
                .collect();
            stale.sort_unstable();
            stale.dedup();
            stale
        };
        for (connection, channel) in stale {
            self.submit(Command::ChannelDown {
                node: self.here.0,
                connection,
                channel,
            });
        }
    }

    /// Takes back what this node's consumers that ended here still hold in the log: a
    /// consumer or channel whose `Cancel` or `ChannelDown` could not be written (no leader
    /// for 20 s: a partition, a failover) stays registered, deliveries to it are dropped at
    /// apply (it has no channel), and its messages would stay checked out for good. A
    /// consumer of this run that is not in `locals` is cancelled, and its messages that no
    /// channel of this node holds return. `suspects` carries what the previous call saw:
    /// only what is orphaned twice in a row is acted on, so a consumer or basic.get whose
    /// entry was just applied is not taken for orphaned.
    pub fn return_orphans(&self, suspects: &mut HashSet<(ConsumerKey, Option<MsgId>)>) {
        let mut seen: HashSet<(ConsumerKey, Option<MsgId>)> = HashSet::new();
        {
            let m = self.machine.lock();
            let locals = self.locals.lock();
            for (key, consumer) in m.fifo.consumers() {
                if key.node != self.here.0
                    || key.connection >> 32 != self.run
                    || locals.contains_key(key)
                {
                    continue;
                }
                if consumer.is_live() {
                    seen.insert((key.clone(), None));
                }
                for id in consumer.checked_out.keys() {
                    seen.insert((key.clone(), Some(*id)));
                }
            }
        }
        {
            // A delivery a channel of this node holds is settled or released by it.
            let delivered = self.delivered.lock();
            seen.retain(|(key, id)| id.is_none_or(|id| delivered.get(&id) != Some(key)));
        }
        let orphaned: Vec<(ConsumerKey, Option<MsgId>)> = seen
            .iter()
            .filter(|s| suspects.contains(s))
            .cloned()
            .collect();
        *suspects = seen;
        let mut returns: HashMap<ConsumerKey, Vec<MsgId>> = HashMap::new();
        for (key, id) in orphaned {
            match id {
                Some(id) => returns.entry(key).or_default().push(id),
                None => {
                    tracing::info!(group = self.group, tag = %key.tag, "an ended consumer was still registered; cancelled");
                    self.submit(Command::Cancel { key });
                }
            }
        }
        for (key, ids) in returns {
            tracing::info!(group = self.group, tag = %key.tag, count = ids.len(),
                "deliveries to an ended consumer return");
            self.submit(Command::Return {
                key,
                ids,
                failed: false,
            });
        }
    }
}
