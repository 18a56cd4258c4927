//! The application state machine a group can host inside [`crate::noop_sm::NoopSm`].
//!
//! The crate knows no AMQP: a [`Machine`] receives each applied application command's bytes
//! with its log index and answers with reply bytes; its snapshot is opaque bytes too, which
//! it streams into (and back out of) the snapshot's file, so a large state (a quorum queue's
//! bodies) never has to be in memory whole. The broker's metadata machine (its `cluster`
//! room) and its quorum queues implement it; a group without one only counts, as in step 1.

use std::io;

use crate::types::{Command, Reply};

/// An application state machine: deterministic, applied in log order on every member.
pub trait Machine: Send + Sync + 'static {
    /// Applies one committed command at log `index` and answers it.
    fn apply(&self, index: u64, command: &Command) -> Reply;
    /// Writes the whole state, for a snapshot (an error fails the snapshot; the log is kept).
    fn snapshot(&self, out: &mut dyn io::Write) -> Result<(), io::Error>;
    /// Replaces the state with a snapshot's, read from `input` (install or restart).
    fn restore(&self, input: &mut dyn io::Read) -> Result<(), io::Error>;
}
