//! A binding's destination as an exchange's routes keep it: the destination,
//! which is the binding's identity, and for a queue of this node a handle on
//! the queue it named when bound, so the publish walk reaches the queue
//! without looking its name up (a hash and a map's lock per queue: about 160
//! instructions per delivery on fanout-10).
//!
//! The handle is a hint, never the truth: it is used only while the queue is
//! still the one its vhost lists under that name ([`Queue::listed`]); else the
//! walk looks the name up, as it would without a handle. A queue's bindings go
//! with it when it is deleted, but a handle may outlive its queue otherwise
//! (this node stops hosting it, a recovery replaces it), hence the check.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Weak};

use super::Destination;
use crate::queue::Queue;

/// A destination in an exchange's routes; equal, ordered and hashed as its
/// [`Destination`] only.
#[derive(Clone, Debug)]
pub struct Bound {
    /// Where the binding leads.
    pub destination: Destination,
    /// The queue it named when bound (empty for an exchange, a queue on
    /// another node, or a binding built from its name alone).
    queue: Weak<Queue>,
}

impl Bound {
    /// A destination without a handle: found by name when routed.
    pub fn named(destination: Destination) -> Self {
        Bound {
            destination,
            queue: Weak::new(),
        }
    }

    /// A binding to `queue`, holding a handle on it.
    pub fn to_queue(queue: &Arc<Queue>) -> Self {
        Bound {
            destination: Destination::Queue(queue.name.clone()),
            queue: Arc::downgrade(queue),
        }
    }

    /// The queue this binding reaches without a lookup: its handle's queue,
    /// if its vhost still lists it under the name. `None`: look it up.
    #[inline]
    pub fn queue(&self) -> Option<Arc<Queue>> {
        self.queue.upgrade().filter(|q| q.listed())
    }
}

impl std::ops::Deref for Bound {
    type Target = Destination;

    fn deref(&self) -> &Destination {
        &self.destination
    }
}

impl PartialEq for Bound {
    fn eq(&self, other: &Self) -> bool {
        self.destination == other.destination
    }
}

impl Eq for Bound {}

impl PartialOrd for Bound {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bound {
    fn cmp(&self, other: &Self) -> Ordering {
        self.destination.cmp(&other.destination)
    }
}

impl Hash for Bound {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.destination.hash(state);
    }
}

impl From<Destination> for Bound {
    fn from(destination: Destination) -> Self {
        Bound::named(destination)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use warren_codec::types::FieldTable;
    use warren_storage::Engine;

    use super::super::{QueueDeclare, VHost};
    use super::Destination;
    use crate::durable::Storage;
    use crate::durable::records::QueueRecord;
    use crate::names::ConnectionId;
    use crate::queue::Queue;

    const ANYONE: ConnectionId = ConnectionId(0);

    fn vhost() -> (Arc<VHost>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = Storage::open(dir.path(), 1 << 20, Engine::Segments).expect("store");
        (VHost::new("/", storage), dir)
    }

    fn declare(vhost: &Arc<VHost>, name: &str) -> Arc<Queue> {
        let req = QueueDeclare {
            name: name.to_owned(),
            passive: false,
            durable: false,
            exclusive: false,
            auto_delete: false,
            arguments: FieldTable::default(),
            server_named: false,
            quorum: None,
        };
        vhost.declare_queue(&req, ANYONE).expect("declare").0
    }

    fn bind(vhost: &VHost, name: &str) {
        let to = Destination::Queue(name.into());
        let none = FieldTable::default();
        vhost
            .bind("amq.fanout", to, "", &none, ANYONE)
            .expect("bind");
    }

    /// The queues a message published to amq.fanout reaches.
    fn reached(vhost: &VHost) -> Vec<Arc<Queue>> {
        vhost.route("amq.fanout", "", None).expect("route")
    }

    fn same(reached: &[Arc<Queue>], expected: &[&Arc<Queue>]) -> bool {
        reached.len() == expected.len()
            && reached.iter().zip(expected).all(|(a, b)| Arc::ptr_eq(a, b))
    }

    #[tokio::test]
    async fn a_deleted_queue_is_reached_through_no_binding_and_its_successor_only_once_bound() {
        let (vhost, _dir) = vhost();
        let (old, other) = (declare(&vhost, "q"), declare(&vhost, "other"));
        bind(&vhost, "q");
        bind(&vhost, "other");
        assert!(same(&reached(&vhost), &[&other, &old]));
        vhost.remove_queue(&old);
        assert!(same(&reached(&vhost), &[&other]));
        // The same name again: unbound until bound, then the new queue.
        let new = declare(&vhost, "q");
        assert!(same(&reached(&vhost), &[&other]));
        bind(&vhost, "q");
        assert!(same(&reached(&vhost), &[&other, &new]));
        vhost.remove_queue(&other);
        vhost.remove_queue(&new);
        assert!(reached(&vhost).is_empty());
    }

    #[tokio::test]
    async fn a_binding_that_outlives_its_queue_routes_by_name() {
        let (vhost, _dir) = vhost();
        let record = |id| QueueRecord {
            id,
            auto_delete: false,
            arguments: FieldTable::default(),
        };
        vhost.restore_queue("q", record(1), true);
        let first = vhost.queue("q").expect("restored");
        bind(&vhost, "q");
        assert!(same(&reached(&vhost), &[&first]));
        // A queue put in its place keeps the binding, whose handle names
        // the first queue: the name decides.
        vhost.restore_queue("q", record(2), true);
        let second = vhost.queue("q").expect("restored");
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(same(&reached(&vhost), &[&second]));
        // Taken out of the table with its binding left (a node that stops
        // hosting it): reached no more, though the handle is alive.
        second.unlist();
        vhost.queues.remove("q");
        assert!(reached(&vhost).is_empty());
    }
}
