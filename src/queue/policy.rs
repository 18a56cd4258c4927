//! A queue under a policy: the arguments in force are the declared ones
//! resolved with the policy (`QueueArgs::with_policy`), set under the
//! queue's lock whenever the vhost applies its policies.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::stream::args::duration_ms;
use super::{NO_TIMEOUT, Queue};
use crate::dedup::QueueDedup;
use crate::policy::Applied;

impl Queue {
    /// Applies the policies that match the queue now (at declare, at start,
    /// and whenever a policy changes): the arguments in force become the
    /// declared ones under the policy, a lower length limit drops the head
    /// at once, a new `expires` starts the lease afresh. A new `message-ttl`
    /// applies to messages published from now on, as in RabbitMQ.
    pub fn apply_policy(self: &Arc<Self>, applied: Applied) {
        if let Some(stream) = self.stream() {
            let policy = applied.queue();
            let max_age = policy.max_age.as_deref().and_then(duration_ms);
            stream.set_retention(policy.max_length_bytes, max_age);
            *self.policy.lock() = Arc::new(applied);
            return;
        }
        let args = self.spec.args.with_policy(&applied.queue());
        self.consumer_timeout.store(
            args.consumer_timeout.unwrap_or(NO_TIMEOUT),
            Ordering::Relaxed,
        );
        *self.policy.lock() = Arc::new(applied);
        if let Some(quorum) = self.quorum() {
            // The limits in force are replicated: a change goes through the queue's log.
            quorum.update_config(super::quorum::fifo_config(&args));
            return;
        }
        self.with_state(|st, dead| {
            if st.args == args || st.deleted {
                return;
            }
            let lease_changed = st.args.expires != args.expires;
            if st.args.deduplication != args.deduplication {
                // As the plugin: a cache turned on by a policy starts empty.
                st.dedup = args.deduplication.as_ref().map(QueueDedup::new);
            }
            st.args = args;
            if lease_changed {
                st.used_at = Instant::now();
            }
            self.drop_head(st, dead);
            self.schedule(st);
        });
    }

    /// The policies that apply, as last applied.
    pub fn policy(&self) -> Arc<Applied> {
        self.policy.lock().clone()
    }

    /// The consumer timeout in force (`x-consumer-timeout` or the policy's
    /// `consumer-timeout`, the lower), in milliseconds.
    pub fn consumer_timeout(&self) -> Option<u64> {
        Some(self.consumer_timeout.load(Ordering::Relaxed)).filter(|&t| t != NO_TIMEOUT)
    }
}
