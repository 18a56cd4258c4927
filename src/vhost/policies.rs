//! Applying policies: the broker hands each vhost its policies whenever they
//! change, and the vhost matches every queue and exchange against them, at
//! once for those that exist and at creation for new ones.

use std::sync::Arc;

use super::{ExchangeEntry, VHost};
use crate::policy::{Target, VHostPolicies};
use crate::queue::Queue;

impl VHost {
    /// Sets this vhost's policies and applies them to every queue and
    /// exchange whose policies change.
    pub fn set_policies(&self, policies: VHostPolicies) {
        *self.policies.write() = Arc::new(policies);
        // Collected first: applying may dead-letter into other queues, which
        // reads the maps again (no map guard is held across it).
        for queue in self.queues() {
            self.apply_queue_policy(&queue);
        }
        for x in self.exchanges() {
            self.apply_exchange_policy(&x);
        }
    }

    /// Matches one queue against the policies (by its declared type).
    pub(super) fn apply_queue_policy(&self, queue: &Arc<Queue>) {
        let applied = self.policies.read().applied(Target::Queue {
            name: &queue.name,
            queue_type: queue.spec.args.queue_type.as_str(),
        });
        if *queue.policy() != applied {
            queue.apply_policy(applied);
        }
    }

    /// Matches one exchange against the policies.
    pub(super) fn apply_exchange_policy(&self, x: &ExchangeEntry) {
        let applied = self.policies.read().applied(Target::Exchange(&x.name));
        if *x.policy() != applied {
            x.set_policy(applied);
        }
    }
}
