//! Length limits: `x-max-length` (messages) and `x-max-length-bytes` (body
//! bytes), counting ready messages and those waiting for a due time (as
//! RabbitMQ's quorum queues count delayed ones), not unacknowledged ones, and
//! what `x-overflow` does when a queue is full: drop (dead-letter) the head,
//! or refuse the new message.

use super::args::Overflow;
use super::dead_letter::{Dead, Reason};
use super::{Queue, QueueState};
use crate::message::Message;

impl Queue {
    /// reject-publish and reject-publish-dlx: whether the queue refuses this
    /// message because it would go over a limit.
    pub(super) fn refuses(&self, st: &QueueState, message: &Message) -> bool {
        let args = &st.args;
        if args.overflow == Overflow::DropHead {
            return false;
        }
        args.max_length.is_some_and(|max| length(st) + 1 > max)
            || args
                .max_length_bytes
                .is_some_and(|max| bytes(st) + message.body_size() as u64 > max)
    }

    /// drop-head: drops (dead-letters, reason maxlen) messages from the head
    /// until the queue is within its limits again. The check without limits
    /// is inlined into every publish (a call was about 20 instructions).
    #[inline]
    pub(super) fn drop_head(&self, st: &mut QueueState, dead: &mut Vec<Dead>) {
        let args = &st.args;
        if args.overflow == Overflow::DropHead
            && (args.max_length.is_some() || args.max_length_bytes.is_some())
        {
            self.drop_head_over(st, dead);
        }
    }

    /// [`Queue::drop_head`] of a queue with a limit.
    fn drop_head_over(&self, st: &mut QueueState, dead: &mut Vec<Dead>) {
        let (max_length, max_length_bytes) = (st.args.max_length, st.args.max_length_bytes);
        let over = |st: &QueueState| {
            max_length.is_some_and(|max| length(st) > max)
                || max_length_bytes.is_some_and(|max| bytes(st) > max)
        };
        while over(st) {
            let Some((seq, entry)) = st.ready.pop_first() else {
                return;
            };
            st.ready.forget(seq, &entry);
            self.discard(dead, entry.message, Reason::Maxlen);
        }
    }
}

/// Messages the length limit counts.
fn length(st: &QueueState) -> u64 {
    (st.ready.len() + st.waiting.len()) as u64
}

/// Body bytes the length limit counts.
fn bytes(st: &QueueState) -> u64 {
    st.ready.bytes() + st.waiting.bytes()
}
