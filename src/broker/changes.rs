//! Changes of users, vhosts, permissions, limits, policies and shovels ([`BrokerOp`]): applied here
//! at once on a single node, through the metadata log in a cluster, where every node
//! applies them in log order with [`Broker::apply_op`]. The registry and the policies keep
//! writing their own records after each change, so a node restarts from them and the log
//! replays, on top, changes that each overwrite what they touch.

use std::sync::Arc;

use super::Broker;
use crate::error::AmqpError;
use crate::meta::{Applied, BrokerOp};
use crate::queue::Consumer;

impl Broker {
    /// Makes a broker-level change (the management API, a definitions import): through
    /// the metadata log in a cluster, else here; answers whether it created or removed
    /// something (a 201 or a 204).
    pub async fn change(&self, op: BrokerOp) -> Result<bool, AmqpError> {
        if let Some(meta) = self.meta.get() {
            return match meta.submit_broker(op).await? {
                Applied::Changed(changed) => Ok(changed),
                _ => Ok(true),
            };
        }
        let (changed, consumers) = self.apply_op(&op)?;
        crate::queue::notify_cancelled(&consumers).await;
        Ok(changed)
    }

    /// Applies one change (every node of a cluster, in log order); answers whether it
    /// created or removed something, and the consumers of a deleted vhost's queues, for
    /// the caller to tell.
    pub fn apply_op(&self, op: &BrokerOp) -> Result<(bool, Vec<Arc<Consumer>>), AmqpError> {
        let refused = |text: String| AmqpError::precondition_failed(text);
        let changed = match op {
            BrokerOp::PutUser(user) => self
                .auth
                .put_user(user.clone())
                .map_err(|e| refused(e.to_string()))?,
            BrokerOp::DeleteUser { name } => self.auth.delete_user(name),
            BrokerOp::PutVHost(def) => {
                let new = self.add_vhost(def.clone());
                self.apply_vhost_limits();
                self.apply_policies(&def.name);
                new
            }
            BrokerOp::DeleteVHost { name } => {
                return Ok(match self.remove_vhost(name) {
                    Some(consumers) => (true, consumers),
                    None => (false, Vec::new()),
                });
            }
            BrokerOp::SetPermissions(def) => self
                .auth
                .set_permissions(def.clone())
                .map_err(|e| refused(e.to_string()))?,
            BrokerOp::ClearPermissions { vhost, user } => self.auth.clear_permissions(vhost, user),
            BrokerOp::SetVHostLimit { vhost, name, value } => {
                self.auth
                    .set_vhost_limit(vhost, name, value)
                    .map_err(|e| refused(e.to_string()))?;
                self.apply_vhost_limits();
                true
            }
            BrokerOp::ClearVHostLimit { vhost, name } => {
                let cleared = self.auth.clear_vhost_limit(vhost, name);
                self.apply_vhost_limits();
                cleared
            }
            BrokerOp::SetUserLimit { user, name, value } => {
                self.auth
                    .set_user_limit(user, name, value)
                    .map_err(|e| refused(e.to_string()))?;
                true
            }
            BrokerOp::ClearUserLimit { user, name } => self.auth.clear_user_limit(user, name),
            BrokerOp::Import(defs) => {
                self.auth.import(defs).map_err(|e| refused(e.to_string()))?;
                for vhost in &defs.vhosts {
                    self.add_vhost(vhost.clone());
                    self.apply_policies(&vhost.name);
                }
                self.apply_vhost_limits();
                true
            }
            BrokerOp::PutPolicy { kind, def } => self
                .put_policy(*kind, def.clone())
                .map_err(|e| refused(e.to_string()))?,
            BrokerOp::DeletePolicy { kind, vhost, name } => self.delete_policy(*kind, vhost, name),
            BrokerOp::PutShovel {
                vhost,
                name,
                value,
                user,
            } => self
                .shovels
                .put(vhost, name, value.clone(), user)
                .map_err(|e| refused(e.to_string()))?,
            BrokerOp::DeleteShovel { vhost, name } => self.shovels.delete(vhost, name),
        };
        Ok((changed, Vec::new()))
    }
}
