//! The quorum queue behind the queue-type seam: a `Queue` whose `Backend` is
//! `Quorum` (see `live.rs`), and what the seam's methods do for it.

use std::sync::{Arc, Weak};

use super::live::QuorumQueue;
use crate::message::Message;
use crate::names::{QueueName, VHostName};
use crate::queue::dead_letter::{DeadLetterTarget, Reason};
use crate::queue::host::QueueHost;
use crate::queue::kind::Backend;
use crate::queue::{Queue, QueueSpec, QueueStats};

impl Queue {
    /// The queue `name` of `vhost` run by quorum group `quorum` on this member node.
    pub fn quorum_backed(
        name: QueueName,
        vhost: VHostName,
        host: Weak<dyn QueueHost>,
        spec: QueueSpec,
        quorum: Arc<QuorumQueue>,
    ) -> Arc<Self> {
        let backend = Backend::Quorum(quorum.clone());
        let queue = Queue::with_backend(name, vhost, host, spec, quorum.group, backend);
        quorum.attach(&queue);
        queue
    }

    /// The quorum engine, if this is a quorum queue on a member node.
    pub fn quorum(&self) -> Option<&Arc<QuorumQueue>> {
        match &self.backend {
            Backend::Quorum(quorum) => Some(quorum),
            _ => None,
        }
    }

    /// Dead-letters `message` (reason `reason`) to the queue's dead-letter exchange in
    /// force, if it has one.
    pub(crate) fn dead_letter_now(self: &Arc<Self>, message: Arc<Message>, reason: Reason) {
        // The exchange in force: the declared one, else a policy's.
        let policy = self.policy.lock().clone();
        let args = self.spec.args.with_policy(&policy.queue());
        if let Some(target) = DeadLetterTarget::of(&args) {
            self.dead_letter(vec![(message, reason)], &target);
        }
    }

    /// A quorum queue's figures (this member's applied state).
    pub(crate) fn quorum_stats(quorum: &QuorumQueue) -> QueueStats {
        let (ready, unacked, consumers) = quorum.counts();
        let (ready_bytes, unacked_bytes) = quorum.bytes();
        QueueStats {
            messages_ready: ready,
            messages_unacknowledged: unacked,
            message_bytes_ready: ready_bytes,
            message_bytes_unacknowledged: unacked_bytes,
            consumers: consumers as u64,
            consumers_keep_up: consumers > 0,
            ..QueueStats::default()
        }
    }
}
