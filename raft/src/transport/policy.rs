//! Which links may carry traffic: the fault hook of in-process tests.
//!
//! Production uses [`AllowAll`]; the three-node tests share one [`CutLinks`] between nodes and
//! cut or heal links between chosen nodes while everything runs. The transport asks the policy
//! before every request it sends, so a cut fails the request at once (as a refused connection
//! would) instead of waiting for a timeout, and every message kind is cut alike.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use crate::types::NodeId;

/// What happens to a message from one node to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver it.
    Pass,
    /// Fail it at once, as an unreachable peer.
    Drop,
    /// Deliver it after this delay.
    Delay(Duration),
}

/// Decides the fate of each message sent on a link.
pub trait LinkPolicy: Send + Sync + 'static {
    /// The verdict for a message from `from` to `to`.
    fn verdict(&self, from: NodeId, to: NodeId) -> Verdict;
}

/// Every message passes (production).
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl LinkPolicy for AllowAll {
    fn verdict(&self, _from: NodeId, _to: NodeId) -> Verdict {
        Verdict::Pass
    }
}

/// A set of cut links (both directions), for tests.
#[derive(Debug, Default)]
pub struct CutLinks {
    cut: Mutex<HashSet<(NodeId, NodeId)>>,
}

impl CutLinks {
    /// No link is cut.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cuts the link between `a` and `b` in both directions.
    pub fn cut(&self, a: NodeId, b: NodeId) {
        let mut cut = self.cut.lock().unwrap_or_else(|p| p.into_inner());
        cut.insert((a, b));
        cut.insert((b, a));
    }

    /// Cuts every link between `node` and `others`.
    pub fn isolate(&self, node: NodeId, others: &[NodeId]) {
        for &o in others {
            if o != node {
                self.cut(node, o);
            }
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.cut.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

impl LinkPolicy for CutLinks {
    fn verdict(&self, from: NodeId, to: NodeId) -> Verdict {
        let cut = self.cut.lock().unwrap_or_else(|p| p.into_inner());
        if cut.contains(&(from, to)) {
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    }
}
