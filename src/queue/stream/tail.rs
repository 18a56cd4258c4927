//! The committed end of a stream kept in memory, shared by every consumer
//! reading near the end: a message published once is decoded and given its
//! `x-stream-offset` header once, then handed to all live consumers as the
//! same `Arc`, without a read from disk. Bounded by count and bytes; readers
//! further back read the log.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::message::Message;

/// At most this many messages are kept.
const MAX_MESSAGES: usize = 16 * 1024;
/// At most this many body bytes are kept.
const MAX_BYTES: usize = 16 << 20;

/// The last committed messages, offsets `first..first + len`.
#[derive(Debug, Default)]
pub(super) struct Tail {
    first: u64,
    messages: VecDeque<Arc<Message>>,
    bytes: usize,
}

impl Tail {
    /// An empty tail whose next message is `next`.
    pub fn at(next: u64) -> Self {
        Tail {
            first: next,
            ..Default::default()
        }
    }

    /// The offset after the last message kept (the committed end).
    pub fn end(&self) -> u64 {
        self.first + self.messages.len() as u64
    }

    /// Adds committed messages whose first offset is `first`.
    pub fn push(&mut self, first: u64, messages: impl IntoIterator<Item = Arc<Message>>) {
        if first != self.end() {
            self.messages.clear();
            self.bytes = 0;
            self.first = first;
        }
        for message in messages {
            self.bytes += message.body_size();
            self.messages.push_back(message);
        }
        while self.messages.len() > MAX_MESSAGES
            || (self.bytes > MAX_BYTES && self.messages.len() > 1)
        {
            if let Some(gone) = self.messages.pop_front() {
                self.bytes -= gone.body_size();
                self.first += 1;
            }
        }
    }

    /// The messages from `from` on (at most `max`), or `None` when `from` is
    /// before what is kept (read the log).
    pub fn read(&self, from: u64, max: usize) -> Option<Vec<(u64, Arc<Message>)>> {
        if from < self.first {
            return None;
        }
        let skip = usize::try_from(from - self.first).unwrap_or(usize::MAX);
        Some(
            self.messages
                .iter()
                .skip(skip)
                .take(max)
                .cloned()
                .zip(from..)
                .map(|(m, o)| (o, m))
                .collect(),
        )
    }
}
