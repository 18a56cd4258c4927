//! The host seam: what a queue asks of the vhost it lives in, without knowing
//! vhosts. A queue holds its host weakly; a host that is gone asks nothing.

use std::fmt;
use std::sync::Arc;

use super::Queue;
use super::dead_letter::DeadLetter;

/// What a queue needs from where it lives (a vhost implements it).
pub trait QueueHost: Send + Sync + fmt::Debug {
    /// Republishes dead-lettered copies through the exchange `dlx` (the
    /// default exchange when empty); a missing exchange drops them.
    fn dead_letter(&self, dlx: &str, letters: Vec<DeadLetter>);

    /// Deletes `queue`, whose `x-expires` lease ran out unused.
    fn delete_expired(&self, queue: &Arc<Queue>);
}
