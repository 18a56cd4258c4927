//! A consumer that ended on this node while its `Cancel` or `ChannelDown` could not be
//! written keeps its messages checked out; `return_orphans` takes them back.

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;

use super::fifo::{Command, Config, ConsumerKey};
use super::live::{Placement, QuorumLog, QuorumQueue, Written};
use super::machine::QuorumCommand;
use crate::message::WireMessage;
use crate::names::NodeId;

/// One member that is always the leader: a write is applied at once.
#[derive(Debug, Default)]
struct Alone {
    queue: OnceLock<Weak<QuorumQueue>>,
    index: Mutex<u64>,
}

impl QuorumLog for Alone {
    fn write(&self, _group: u64, command: Bytes) -> Written {
        let queue = self.queue.get().and_then(Weak::upgrade);
        let index = {
            let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
            *index += 1;
            *index
        };
        Box::pin(async move {
            let queue = queue.ok_or("gone")?;
            Ok((index, Bytes::from(queue.apply(index, &command))))
        })
    }
    fn write_as_leader(&self, group: u64, command: Bytes) -> Written {
        self.write(group, command)
    }
    fn leads(&self, _group: u64) -> bool {
        true
    }
    fn leader(&self, _group: u64) -> (Option<NodeId>, Vec<NodeId>) {
        (Some(NodeId(1)), vec![NodeId(1)])
    }
    fn remove(&self, _group: u64) {}
}

fn message() -> WireMessage {
    WireMessage {
        exchange: String::new(),
        routing_key: "q".into(),
        properties: Bytes::from_static(&[0, 0]),
        body: Bytes::from_static(b"m"),
        cc_routed: false,
    }
}

async fn settled(q: &QuorumQueue, want: (u64, u64, usize)) {
    for _ in 0..100 {
        if q.counts() == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("counts {:?}, wanted {want:?}", q.counts());
}

#[tokio::test]
async fn deliveries_to_a_consumer_that_ended_unrecorded_return() {
    let log = Arc::new(Alone::default());
    let placement = Placement {
        home: NodeId(1),
        members: vec![NodeId(1)],
        added: false,
    };
    let q = QuorumQueue::new(
        7,
        placement,
        NodeId(1),
        5,
        log.clone(),
        Config::default(),
        crate::queue::quorum::bodies::Bodies::in_memory(),
    );
    let _ = log.queue.set(Arc::downgrade(&q));
    // A consumer of this node and run that has no channel here any more (its Cancel was
    // lost): its checkout is in the log, so the message is checked out to it and its
    // delivery dropped at apply.
    let key = ConsumerKey::new(1, (5 << 32) | 9, 1, "gone");
    q.submit(Command::Checkout {
        key,
        prefetch: 10,
        priority: 0,
        resume: None,
    });
    let enqueue = QuorumCommand::Enqueue {
        ts: 1,
        messages: vec![message()],
    };
    let bytes = postcard::to_stdvec(&enqueue).expect("encode");
    let _ = log.write(7, Bytes::from(bytes)).await.expect("enqueued");
    settled(&q, (0, 1, 1)).await;

    let mut suspects = Default::default();
    q.return_orphans(&mut suspects);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(q.counts(), (0, 1, 1), "a first sighting is not acted on");
    q.return_orphans(&mut suspects);
    settled(&q, (1, 0, 0)).await;
}
