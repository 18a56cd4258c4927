//! Read-only views of a vhost for the management API.

use std::sync::Arc;

use super::{ExchangeEntry, VHost};
use crate::queue::Queue;

impl VHost {
    /// Its exchanges (the default one included), by name.
    pub fn exchanges(&self) -> Vec<Arc<ExchangeEntry>> {
        let mut all: Vec<_> = self.exchanges.iter().map(|x| x.clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Its queues, by name.
    pub fn queues(&self) -> Vec<Arc<Queue>> {
        let mut all: Vec<_> = self.queues.iter().map(|q| q.clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}
