//! A queue and the store: whether it keeps persistent messages, its messages read back at
//! start, its redelivered marks written at a clean shutdown.

use std::sync::Arc;

use super::kind::Backend;
use super::{Queue, QueueState};
use crate::dedup::Slot;

impl Queue {
    /// Whether persistent messages routed here are written to disk (durable, not
    /// exclusive): their confirms wait for the group commit.
    pub fn keeps_persistent(&self) -> bool {
        self.spec.durable && self.spec.exclusive_owner.is_none()
    }

    /// Reads the queue's messages back from the store at start (`clean`: the
    /// last run shut down cleanly).
    pub fn recover(self: &Arc<Self>, clean: bool) {
        // A stream's log was checked when it was opened.
        let Some(state) = self.classic() else {
            return;
        };
        let mut st = state.lock();
        st.next_seq = st.ready.recover(clean);
        for (seq, parked, due) in st.ready.take_recovered_waiting() {
            st.waiting.park(due, seq, parked);
        }
        self.schedule(&mut st);
        let max_priority = self.spec.args.max_priority;
        let QueueState { ready, dedup, .. } = &mut *st;
        if let Some(dedup) = dedup {
            // The cache is rebuilt from the messages that came back.
            ready.for_each_stored(|seq, message, expires_at| {
                if let Some(key) = dedup.key(message) {
                    let priority = max_priority
                        .map_or(0, |max| message.properties.priority().unwrap_or(0).min(max));
                    dedup.insert(
                        key,
                        Slot {
                            seq,
                            priority,
                            expires_at,
                        },
                    );
                }
            });
        }
    }

    /// At a clean shutdown: records which stored messages were delivered
    /// before (a stream writes what it has not flushed yet).
    pub fn save_redelivered(&self) {
        let state = match &self.backend {
            Backend::Classic(state) => state,
            Backend::Stream(stream) => return stream.flush_now(),
            Backend::Remote(_) | Backend::Quorum(_) => return,
        };
        let st = state.lock();
        st.ready.save_redelivered(st.outstanding.iter());
    }
}
