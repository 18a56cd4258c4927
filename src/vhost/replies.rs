//! Direct reply-to's routing side: a vhost's live reply consumers by address
//! and delivering replies to them (the channel side, consuming and the
//! address, is `channel::reply_to`).

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Weak};

use dashmap::DashMap;

use crate::message::Message;
use crate::names::ConsumerTag;
use crate::queue::{Delivery, DeliveryKind, DeliverySink, Refused, Undelivered};

/// The pseudo-queue a reply consumer consumes from and requests name as `reply_to`.
pub const PSEUDO_QUEUE: &str = "amq.rabbitmq.reply-to";

/// The prefix of a reply consumer's address.
pub const ADDRESS_PREFIX: &str = "amq.rabbitmq.reply-to.";

/// Where a reply goes: a live reply consumer.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its address.
    pub address: Arc<str>,
    /// Its channel.
    pub sink: Weak<dyn DeliverySink>,
    /// Its consumer tag.
    pub tag: ConsumerTag,
    /// Cleared, under the channel's delivery lock, when the consumer ends.
    pub live: Arc<AtomicBool>,
}

/// A vhost's live reply consumers by address.
#[derive(Debug, Default)]
pub struct Registry {
    consumers: DashMap<Arc<str>, Target>,
}

impl Registry {
    /// The reply consumers these routing keys name, each once.
    pub fn route<'a>(&self, keys: impl IntoIterator<Item = &'a str>) -> Vec<Target> {
        let mut targets: Vec<Target> = Vec::new();
        for key in keys {
            if key.starts_with(ADDRESS_PREFIX)
                && !targets.iter().any(|t| &*t.address == key)
                && let Some(target) = self.consumers.get(key)
            {
                targets.push(target.clone());
            }
        }
        targets
    }

    /// Whether `address` names a live reply consumer.
    pub fn is_live(&self, address: &str) -> bool {
        self.consumers
            .get(address)
            .is_some_and(|t| t.sink.strong_count() > 0)
    }

    /// Registers a reply consumer under its address.
    pub fn add(&self, target: Target) {
        self.consumers.insert(target.address.clone(), target);
    }

    /// Forgets the reply consumer at `address`.
    pub fn remove(&self, address: &str) {
        self.consumers.remove(address);
    }
}

/// Delivers a published message to the reply consumers it was routed to.
/// Waits for room in each consumer's writer queue (a slow requester slows the
/// replier; nothing piles up). A consumer that ended meanwhile gets nothing:
/// cancel and close clear its `live` flag under the channel's delivery lock,
/// which the sink checks under the same lock.
pub async fn deliver(targets: &[Target], message: &Arc<Message>) {
    for target in targets {
        let Some(sink) = target.sink.upgrade() else {
            continue;
        };
        loop {
            let delivery = Delivery {
                kind: DeliveryKind::Consumer(target.tag.clone()),
                message: message.clone(),
                redelivered: false,
                live: Some(target.live.clone()),
            };
            match sink.try_deliver(delivery, None) {
                Err(Undelivered {
                    refused: Refused::Full,
                    ..
                }) if sink.room().await => {}
                _ => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::testing::TestSink;

    #[test]
    fn the_registry_routes_only_live_addresses_each_once() {
        let registry = Registry::default();
        let channel: Arc<dyn DeliverySink> = TestSink::new();
        registry.add(Target {
            address: Arc::from("amq.rabbitmq.reply-to.a.b"),
            sink: Arc::downgrade(&channel),
            tag: ConsumerTag::from("t"),
            live: Arc::new(AtomicBool::new(true)),
        });
        let found = registry.route([
            "amq.rabbitmq.reply-to.a.b",
            "q",
            "amq.rabbitmq.reply-to.a.b",
        ]);
        assert_eq!(found.len(), 1);
        assert!(registry.route(["amq.rabbitmq.reply-to.x.y"]).is_empty());
        assert!(registry.is_live("amq.rabbitmq.reply-to.a.b"));
        drop(channel);
        assert!(!registry.is_live("amq.rabbitmq.reply-to.a.b"));
    }
}
