//! A delivery sink and a host for the queue engine's own tests: deliveries
//! are kept in a list instead of going to a connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;
use warren_storage::{Engine, QueueId};

use super::dead_letter::DeadLetter;
use super::delivery::SinkFuture;
use super::{
    ChannelCredit, Deliveries, Delivery, DeliveryKind, DeliverySink, Queue, QueueArgs, QueueHost,
    QueueSpec, Refused, SeqId, Unacked, Undelivered,
};
use crate::durable::Storage;
use crate::names::{ConnectionId, ConsumerTag, DeliveryTag};

/// A channel stand-in: takes deliveries while it has room.
#[derive(Debug)]
pub struct TestSink {
    /// What was delivered: (tag, delivery).
    pub delivered: Mutex<Vec<(DeliveryTag, Delivery)>>,
    /// Tags and unacked deliveries.
    pub deliveries: Mutex<Deliveries>,
    /// How many more deliveries fit before it is full.
    pub room: AtomicUsize,
    credit: Arc<ChannelCredit>,
    roomy: Notify,
}

impl TestSink {
    /// A sink with room for `room` deliveries.
    pub fn with_room(room: usize) -> Arc<Self> {
        Arc::new(TestSink {
            delivered: Mutex::default(),
            deliveries: Mutex::default(),
            room: AtomicUsize::new(room),
            credit: Arc::default(),
            roomy: Notify::new(),
        })
    }

    /// A sink that never fills.
    pub fn new() -> Arc<Self> {
        Self::with_room(usize::MAX)
    }

    /// Makes room for `n` more deliveries and wakes whoever waits for it.
    pub fn make_room(&self, n: usize) {
        self.room.fetch_add(n, Ordering::AcqRel);
        self.roomy.notify_waiters();
    }

    /// The bodies delivered so far, in order.
    pub fn bodies(&self) -> Vec<String> {
        self.delivered
            .lock()
            .expect("sink lock")
            .iter()
            .map(|(_, d)| String::from_utf8_lossy(&d.message.body).into_owned())
            .collect()
    }

    /// Settles the unacked delivery `tag` (what basic.ack/nack would take).
    pub fn settle(&self, tag: u64) -> Vec<Unacked> {
        let tag = DeliveryTag(tag);
        let mut d = self.deliveries.lock().expect("sink lock");
        d.settle(tag, false)
            .map(|m| m.into_values().collect())
            .unwrap_or_default()
    }
}

impl DeliverySink for TestSink {
    fn channel_id(&self) -> u16 {
        1
    }

    fn connection_id(&self) -> ConnectionId {
        ConnectionId(1)
    }

    fn try_deliver(
        &self,
        delivery: Delivery,
        unacked: Option<Unacked>,
    ) -> Result<DeliveryTag, Undelivered> {
        let mut d = self.deliveries.lock().expect("sink lock");
        if self
            .room
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| r.checked_sub(1))
            .is_err()
        {
            return Err(Undelivered {
                refused: Refused::Full,
                message: delivery.message,
            });
        }
        let tag = d.sent(unacked, 0);
        self.delivered
            .lock()
            .expect("sink lock")
            .push((tag, delivery));
        Ok(tag)
    }

    fn room(&self) -> SinkFuture<'_> {
        Box::pin(async move {
            while self.room.load(Ordering::Acquire) == 0 {
                self.roomy.notified().await;
            }
            true
        })
    }

    fn credit(&self) -> &Arc<ChannelCredit> {
        &self.credit
    }

    fn take_unacked_from(&self, queue: &Arc<Queue>) -> Vec<SeqId> {
        self.deliveries.lock().expect("sink lock").take_from(queue)
    }

    fn queue_deleted<'a>(&'a self, _consumer_tag: &'a ConsumerTag) -> SinkFuture<'a> {
        Box::pin(async { true })
    }
}

/// A vhost stand-in: keeps what was dead-lettered and which queues expired.
#[derive(Debug, Default)]
pub struct TestHost {
    /// (dead-letter exchange, letter) in order.
    pub dead: Mutex<Vec<(String, DeadLetter)>>,
    /// Names of queues deleted on expiry.
    pub expired: Mutex<Vec<String>>,
}

impl QueueHost for TestHost {
    fn dead_letter(&self, dlx: &str, letters: Vec<DeadLetter>) {
        let mut dead = self.dead.lock().expect("host lock");
        dead.extend(letters.into_iter().map(|l| (dlx.to_owned(), l)));
    }

    fn delete_expired(&self, queue: &Arc<Queue>) {
        self.expired
            .lock()
            .expect("host lock")
            .push(queue.name.to_string());
    }
}

/// A transient queue with these `x-` arguments, living in `host`, its store
/// in a fresh temporary directory (kept alive by the returned guard).
pub fn queue(
    host: &Arc<TestHost>,
    arguments: warren_codec::types::FieldTable,
) -> (Arc<Queue>, tempfile::TempDir) {
    queue_with(host, arguments, false)
}

/// A queue as [`queue`] makes it, durable if `durable` (its persistent
/// messages go to the store).
pub fn queue_with(
    host: &Arc<TestHost>,
    arguments: warren_codec::types::FieldTable,
    durable: bool,
) -> (Arc<Queue>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = Storage::open(dir.path(), 1 << 20, Engine::Segments).expect("store");
    let args = QueueArgs::parse(&arguments, "queue 'q' in vhost '/'").expect("valid arguments");
    let spec = QueueSpec {
        durable,
        exclusive_owner: None,
        auto_delete: false,
        arguments,
        args,
    };
    let host: Weak<dyn QueueHost> = Arc::downgrade(host) as Weak<TestHost>;
    let queue =
        Queue::new("q".into(), "/".into(), host, storage, spec, 1 as QueueId).expect("queue");
    (queue, dir)
}

/// A transient message with this body.
pub fn message(body: &str) -> Arc<crate::message::Message> {
    message_with(body, warren_codec::protocol::BasicProperties::default())
}

/// A message with this body and these properties.
pub fn message_with(
    body: &str,
    properties: warren_codec::protocol::BasicProperties,
) -> Arc<crate::message::Message> {
    let header = warren_codec::ContentHeader::from_properties(body.len() as u64, &properties)
        .expect("header");
    Arc::new(crate::message::Message {
        exchange: Default::default(),
        routing_key: "q".into(),
        header,
        properties: properties.into(),
        body: bytes::Bytes::copy_from_slice(body.as_bytes()),
        cc_routed: true,
        frames: Default::default(),
    })
}

/// The tag of a consumer delivery.
pub fn consumer_tag(delivery: &Delivery) -> Option<&str> {
    match &delivery.kind {
        DeliveryKind::Consumer(tag) => Some(tag),
        DeliveryKind::Get { .. } => None,
    }
}
