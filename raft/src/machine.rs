//! The application state machine a group can host inside [`crate::noop_sm::NoopSm`].
//!
//! The crate knows no AMQP: a [`Machine`] receives each applied application command's bytes
//! with its log index and answers with reply bytes; its snapshot is opaque bytes too. The
//! broker's metadata machine (its `cluster` room) implements it; a group without one only
//! counts, as in step 1.

use std::io;

use crate::types::{Command, Reply};

/// An application state machine: deterministic, applied in log order on every member.
pub trait Machine: Send + Sync + 'static {
    /// Applies one committed command at log `index` and answers it.
    fn apply(&self, index: u64, command: &Command) -> Reply;
    /// The whole state, for a snapshot (an error fails the snapshot; the log is kept).
    fn snapshot(&self) -> Result<Vec<u8>, io::Error>;
    /// Replaces the state with a snapshot's (install or restart).
    fn restore(&self, data: &[u8]) -> Result<(), io::Error>;
}
