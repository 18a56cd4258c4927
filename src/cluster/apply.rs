//! Applying the metadata log's definitions to this node's live vhosts, answering the
//! submissions made here, and the definitions' part of group 0's snapshot.
//!
//! Every node applies every [`Definition`] in log order (`VHost::apply_replicated`); the
//! node that submitted one hands the result of its own apply to the waiting channel or API
//! call (matched by the submission's number). The snapshot is the definitions as a list of
//! operations that rebuild them (exchanges, queues with their home and store id, then
//! bindings); restoring one into a running node first removes what the snapshot does not
//! have, keeping the queues it has under the same store id (and their messages).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock, Weak};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::auth::AuthDefinitions;
use crate::broker::Broker;
use crate::error::AmqpError;
use crate::meta::{
    Applied, Arguments, BindTo, BrokerChange, Definition, DefinitionOp, NodeId, Requester,
};
use crate::policy::StoredPolicies;
use crate::shovel::ShovelParam;
use crate::vhost::replicated::ApplyAt;

/// The answer to one submission of this node.
pub type Answer = Result<Applied, AmqpError>;

/// Applies definitions on this node; shared by group 0's state machine and the submitter.
#[derive(Debug, Default)]
pub struct Applier {
    broker: OnceLock<Weak<Broker>>,
    here: OnceLock<NodeId>,
    /// The last run shut down cleanly (replayed queues read their messages accordingly).
    clean: OnceLock<bool>,
    waiters: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
}

/// The definitions in group 0's snapshot.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Users, vhost records, permissions and limits.
    #[serde(default)]
    pub auth: Option<AuthDefinitions>,
    /// Policies and operator policies.
    #[serde(default)]
    pub policies: Option<StoredPolicies>,
    /// Operations that rebuild each vhost's exchanges, queues and bindings, in order.
    pub vhosts: Vec<(String, Vec<(Requester, DefinitionOp)>)>,
    /// Shovel parameters (`None` in snapshots from before they were replicated).
    #[serde(default)]
    pub shovels: Option<Vec<ShovelParam>>,
}

impl Applier {
    /// Ties the applier to the broker it changes and this node's id.
    pub fn attach(&self, broker: Weak<Broker>, here: NodeId, clean: bool) {
        let _ = self.broker.set(broker);
        let _ = self.here.set(here);
        let _ = self.clean.set(clean);
    }

    /// This node's id (0 before [`Applier::attach`]).
    pub fn here(&self) -> NodeId {
        self.here.get().copied().unwrap_or(NodeId(0))
    }

    /// Registers a submission of this node; its answer comes when this node applies it.
    pub fn expect(&self, request: u64) -> oneshot::Receiver<Answer> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(request, tx);
        rx
    }

    /// Forgets a submission nobody waits for any more.
    pub fn forget(&self, request: u64) {
        self.lock().remove(&request);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Answer>>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn broker(&self) -> Option<std::sync::Arc<Broker>> {
        self.broker.get().and_then(Weak::upgrade)
    }

    /// Applies one definition at log `index`; answers it if this node submitted it.
    pub fn apply(&self, index: u64, def: Definition) -> bool {
        let here = self.here();
        let at = ApplyAt {
            index,
            here,
            clean: self.clean.get().copied().unwrap_or(false),
        };
        let result = match self.broker().and_then(|b| b.vhost(&def.vhost)) {
            Some(vhost) => vhost.apply_replicated(&def.op, def.requester, at),
            None => Err(AmqpError::not_found(format!(
                "no vhost '{}' on this node",
                def.vhost
            ))),
        };
        let ok = result.is_ok();
        if let Err(error) = &result {
            tracing::debug!(index, vhost = %def.vhost, %error, "definition refused");
        }
        if def.requester.node == here
            && let Some(waiter) = self.lock().remove(&def.request)
        {
            let _ = waiter.send(result);
        } else if let Ok(Applied::QueueDeleted { consumers, .. }) = result
            && !consumers.is_empty()
        {
            // Deleted from another node: the consumers here hear it from this node.
            tokio::spawn(async move { crate::queue::notify_cancelled(&consumers).await });
        }
        ok
    }

    /// Applies one broker-level change; answers it if this node submitted it.
    pub fn apply_broker(&self, change: BrokerChange) -> bool {
        let result = match self.broker() {
            Some(broker) => broker.apply_op(&change.op),
            None => Err(AmqpError::internal_error("the broker is gone")),
        };
        let ok = result.is_ok();
        let (answer, consumers) = match result {
            Ok((changed, consumers)) => (Ok(Applied::Changed(changed)), consumers),
            Err(error) => (Err(error), Vec::new()),
        };
        if !consumers.is_empty() {
            tokio::spawn(async move { crate::queue::notify_cancelled(&consumers).await });
        }
        if change.requester.node == self.here()
            && let Some(waiter) = self.lock().remove(&change.request)
        {
            let _ = waiter.send(answer);
        }
        ok
    }

    /// A node left the cluster: the classic queues that lived on it go from every vhost
    /// here, as RabbitMQ forgets a removed node's classic queues; quorum queue records
    /// drop it from their members.
    pub fn node_left(&self, node: NodeId) {
        let Some(broker) = self.broker() else {
            return;
        };
        for vhost in broker.vhosts() {
            for queue in vhost.remote_queues() {
                if !queue.members.is_empty() {
                    // A quorum queue lives on while members remain: the record drops the
                    // node (and finds another home); the group's leader removes it from
                    // the group (`reconcile.rs`).
                    let members: Vec<NodeId> = queue
                        .members
                        .iter()
                        .copied()
                        .filter(|&m| m != node)
                        .collect();
                    if members.len() < queue.members.len() && !members.is_empty() {
                        let op = DefinitionOp::QueueMembers {
                            name: queue.name.clone(),
                            id: queue.id,
                            members,
                        };
                        let at = ApplyAt {
                            index: 0,
                            here: self.here(),
                            clean: false,
                        };
                        let anyone = Requester {
                            node,
                            connection: 0,
                        };
                        let _ = vhost.apply_replicated(&op, anyone, at);
                    }
                    continue;
                }
                if queue.home == node {
                    let op = DefinitionOp::DeleteQueue {
                        name: queue.name.clone(),
                        id: Some(queue.id),
                    };
                    let anyone = Requester {
                        node,
                        connection: 0,
                    };
                    let at = ApplyAt {
                        index: 0,
                        here: self.here(),
                        clean: false,
                    };
                    let _ = vhost.apply_replicated(&op, anyone, at);
                }
            }
        }
    }

    /// The definitions as operations that rebuild them.
    pub fn snapshot(&self) -> Snapshot {
        let Some(broker) = self.broker() else {
            return Snapshot::default();
        };
        let here = self.here();
        let anyone = Requester {
            node: here,
            connection: 0,
        };
        let mut vhosts: Vec<_> = broker.vhosts();
        vhosts.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out = Vec::new();
        for vhost in vhosts {
            let mut ops = Vec::new();
            let mut exchanges = vhost.exchanges();
            exchanges.sort_by(|a, b| a.name.cmp(&b.name));
            for x in exchanges.iter().filter(|x| !predeclared(&x.name)) {
                let record = x.spec.record();
                ops.push((
                    anyone,
                    DefinitionOp::DeclareExchange {
                        name: x.name.to_string(),
                        type_name: record.kind,
                        durable: x.spec.durable,
                        auto_delete: record.auto_delete,
                        internal: record.internal,
                        arguments: Arguments(record.arguments),
                    },
                ));
            }
            let mut queues: Vec<(Requester, DefinitionOp)> = vhost
                .queues()
                .into_iter()
                .filter(|q| !q.name.starts_with("amq.rabbitmq.reply-to"))
                .map(|q| {
                    let owner = q.spec.exclusive_owner.map(|c| Requester {
                        node: here,
                        connection: c.0,
                    });
                    (
                        owner.unwrap_or(anyone),
                        DefinitionOp::DeclareQueue {
                            name: q.name.to_string(),
                            durable: q.spec.durable,
                            exclusive: owner.is_some(),
                            auto_delete: q.spec.auto_delete,
                            server_named: q.name.starts_with("amq.gen-"),
                            arguments: Arguments(q.spec.arguments.clone()),
                            home: q.quorum().map_or(here, |qq| qq.placement().home),
                            id: Some(q.store_id),
                            members: q
                                .quorum()
                                .map(|qq| qq.placement().members)
                                .unwrap_or_default(),
                        },
                    )
                })
                .collect();
            queues.extend(vhost.remote_queues().into_iter().map(|r| {
                (
                    r.exclusive_owner.unwrap_or(anyone),
                    DefinitionOp::DeclareQueue {
                        name: r.name.clone(),
                        durable: r.durable,
                        exclusive: r.exclusive_owner.is_some(),
                        auto_delete: r.auto_delete,
                        server_named: r.name.starts_with("amq.gen-"),
                        arguments: Arguments(r.arguments.clone()),
                        home: r.home,
                        id: Some(r.id),
                        members: r.members.clone(),
                    },
                )
            }));
            queues.sort_by(|a, b| op_name(&a.1).cmp(op_name(&b.1)));
            ops.extend(queues);
            for x in exchanges.iter().filter(|x| !x.name.is_empty()) {
                for (dest, key, args) in x.routes.read().bindings() {
                    let destination = BindTo::from(&dest.destination);
                    // The owner of an exclusive destination, so the bind is its own.
                    let requester = match &destination {
                        BindTo::Queue(q) => owner_of(&vhost, q, here).unwrap_or(anyone),
                        BindTo::Exchange(_) => anyone,
                    };
                    ops.push((
                        requester,
                        DefinitionOp::Bind {
                            source: x.name.to_string(),
                            destination,
                            routing_key: key.to_owned(),
                            arguments: Arguments(args.clone()),
                        },
                    ));
                }
            }
            out.push((vhost.name.to_string(), ops));
        }
        Snapshot {
            auth: Some(broker.auth.export()),
            policies: Some(broker.policies.export()),
            vhosts: out,
            shovels: Some(broker.shovels.params()),
        }
    }

    /// Makes this node's definitions those of `snapshot` (a restart, or a snapshot sent by
    /// the leader to a node that fell behind).
    pub fn restore(&self, snapshot: &Snapshot) {
        let Some(broker) = self.broker() else {
            return;
        };
        let here = self.here();
        let at = ApplyAt {
            index: 0,
            here,
            clean: self.clean.get().copied().unwrap_or(false),
        };
        if let Some(auth) = &snapshot.auth {
            if let Err(error) = broker.auth.restore(auth) {
                tracing::error!(%error, "snapshot users and permissions not restored");
            }
            let wanted: HashSet<&str> = auth.vhosts.iter().map(|v| v.name.as_str()).collect();
            for vhost in broker.vhosts() {
                if !wanted.contains(&*vhost.name)
                    && let Some(consumers) = broker.remove_vhost(&vhost.name)
                    && !consumers.is_empty()
                {
                    tokio::spawn(async move { crate::queue::notify_cancelled(&consumers).await });
                }
            }
            for def in &auth.vhosts {
                broker.add_vhost(def.clone());
            }
        }
        if let Some(policies) = &snapshot.policies {
            broker.policies.restore(policies);
        }
        for vhost in broker.vhosts() {
            broker.apply_policies(&vhost.name);
        }
        broker.apply_vhost_limits();
        if let Some(shovels) = &snapshot.shovels {
            restore_shovels(&broker, shovels);
        }
        for (name, ops) in &snapshot.vhosts {
            let Some(vhost) = broker.vhost(name) else {
                tracing::warn!(vhost = %name, "snapshot names a vhost this node does not have");
                continue;
            };
            // Remove what the snapshot does not have; keep queues it has under the same id.
            let wanted_queues: HashSet<(String, u64)> = ops
                .iter()
                .filter_map(|(_, op)| match op {
                    DefinitionOp::DeclareQueue { name, id, .. } => {
                        Some((name.clone(), id.unwrap_or(0)))
                    }
                    _ => None,
                })
                .collect();
            for q in vhost.queues() {
                if !q.name.starts_with("amq.rabbitmq.reply-to")
                    && !wanted_queues.contains(&(q.name.to_string(), q.store_id))
                {
                    vhost.remove_queue(&q);
                }
            }
            for r in vhost.remote_queues() {
                if !wanted_queues.contains(&(r.name.clone(), r.id)) {
                    let op = DefinitionOp::DeleteQueue {
                        name: r.name.clone(),
                        id: Some(r.id),
                    };
                    let _ = vhost.apply_replicated(
                        &op,
                        Requester {
                            node: here,
                            connection: 0,
                        },
                        at,
                    );
                }
            }
            let wanted_bindings: HashSet<(String, BindTo, String)> = ops
                .iter()
                .filter_map(|(_, op)| match op {
                    DefinitionOp::Bind {
                        source,
                        destination,
                        routing_key,
                        ..
                    } => Some((source.clone(), destination.clone(), routing_key.clone())),
                    _ => None,
                })
                .collect();
            for x in vhost.exchanges() {
                if !predeclared(&x.name) && !ops.iter().any(|(_, op)| same_exchange(op, &x)) {
                    let _ = vhost.delete_exchange(&x.name, false);
                    continue;
                }
                let stale: Vec<_> = x
                    .routes
                    .read()
                    .bindings()
                    .filter(|(d, k, _)| {
                        !wanted_bindings.contains(&(
                            x.name.to_string(),
                            BindTo::from(&d.destination),
                            (*k).to_owned(),
                        ))
                    })
                    .map(|(d, k, a)| (d.clone(), k.to_owned(), a.clone()))
                    .collect();
                let mut routes = x.routes.write();
                for (d, k, a) in stale {
                    routes.unbind(&d, &k, &a);
                }
            }
            for (requester, op) in ops {
                if let Err(error) = vhost.apply_replicated(op, *requester, at) {
                    tracing::warn!(vhost = %name, %error, "snapshot definition not applied");
                }
            }
        }
    }
}

fn predeclared(name: &str) -> bool {
    name.is_empty() || name.starts_with("amq.")
}

/// Whether `op` declares exchange `x` exactly as it is.
fn same_exchange(op: &DefinitionOp, x: &crate::vhost::ExchangeEntry) -> bool {
    match op {
        DefinitionOp::DeclareExchange {
            name,
            type_name,
            durable,
            auto_delete,
            internal,
            arguments,
        } => {
            *name == *x.name
                && type_name == x.spec.type_name()
                && *durable == x.spec.durable
                && *auto_delete == x.spec.auto_delete
                && *internal == x.spec.internal
                && arguments.0 == x.spec.arguments
        }
        _ => false,
    }
}

fn op_name(op: &DefinitionOp) -> &str {
    match op {
        DefinitionOp::DeclareQueue { name, .. } => name,
        _ => "",
    }
}

fn owner_of(vhost: &crate::vhost::VHost, queue: &str, here: NodeId) -> Option<Requester> {
    if let Some(q) = vhost.queue(queue) {
        return q.spec.exclusive_owner.map(|c| Requester {
            node: here,
            connection: c.0,
        });
    }
    vhost.remote_queue(queue).and_then(|r| r.exclusive_owner)
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;

/// Makes this node's shovels those of a snapshot: others removed, each one put (an
/// unchanged one is left running).
fn restore_shovels(broker: &Broker, shovels: &[ShovelParam]) {
    let wanted: HashSet<(&str, &str)> = shovels
        .iter()
        .map(|p| (p.vhost.as_str(), p.name.as_str()))
        .collect();
    for p in broker.shovels.params() {
        if !wanted.contains(&(p.vhost.as_str(), p.name.as_str())) {
            broker.shovels.delete(&p.vhost, &p.name);
        }
    }
    for p in shovels {
        if let Err(error) = broker
            .shovels
            .put(&p.vhost, &p.name, p.value.clone(), &p.user)
        {
            tracing::error!(vhost = %p.vhost, name = %p.name, %error, "snapshot shovel not restored");
        }
    }
}
