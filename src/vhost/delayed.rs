//! Delayed exchanges in a vhost: each has its index (`crate::delayed`) and
//! one task, which sleeps until the earliest due time (or until an earlier
//! message arrives), then routes what is due as the exchange's
//! `x-delayed-type` with the bindings of that moment, and removes it from
//! the index once it is in its queues. One task per exchange, never a timer
//! per message.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use warren_codec::ReplyCode;
use warren_codec::protocol::{AMQPClass, basic};
use warren_codec::types::{AMQPValue, ShortString};

use super::publish::{Routed, routing_properties};
use super::{ExchangeEntry, ExchangeSpec, VHost, replies};
use crate::dedup::ExchangeDedup;
use crate::delayed::{DELAY_HEADER, DelayedIndex, Due, ReturnTo, now_ms};
use crate::error::AmqpError;
use crate::message::Message;
use crate::outbound::{Outbound, WithContent};

impl VHost {
    /// A new exchange entry, with its deduplication cache if it has one; a
    /// delayed one gets its index (`fresh`: a new
    /// declaration, whose leftovers from an earlier exchange of the same
    /// name are dropped). Its task starts with [`VHost::start_delayed`] once
    /// the entry is in the map.
    pub(super) fn new_exchange(
        self: &Arc<Self>,
        name: &str,
        spec: ExchangeSpec,
        fresh: bool,
        dedup: Option<Arc<ExchangeDedup>>,
    ) -> Result<Arc<ExchangeEntry>, AmqpError> {
        if !spec.delayed {
            return Ok(ExchangeEntry::with_parts(name, spec, None, dedup));
        }
        if self.delayed_clearing.lock().contains(name) {
            // Its keys would be those the removal is deleting.
            return Err(AmqpError::precondition_failed(format!(
                "the delayed messages of a deleted {} are still being removed; declare it again shortly",
                super::resource("exchange", name, &self.name)
            )));
        }
        let index = DelayedIndex::open(self.storage.clone(), &self.name, name)
            .map_err(|e| AmqpError::internal_error(format!("delayed messages: {e}")))?;
        if fresh {
            index
                .clear()
                .map_err(|e| AmqpError::internal_error(format!("delayed messages: {e}")))?;
        }
        Ok(ExchangeEntry::with_parts(name, spec, Some(index), dedup))
    }

    /// Starts the tasks of every delayed exchange: at start, once recovery
    /// has put back the queues and bindings the due messages go to.
    pub fn start_all_delayed(self: &Arc<Self>) {
        for x in self.exchanges() {
            self.start_delayed(&x);
        }
    }

    /// Starts a delayed exchange's task (nothing for other exchanges).
    pub(super) fn start_delayed(self: &Arc<Self>, x: &Arc<ExchangeEntry>) {
        if let Some(index) = &x.delayed
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(run(
                Arc::downgrade(self),
                Arc::downgrade(x),
                index.wake.clone(),
            ));
        }
    }

    /// Keeps a message published to delayed exchange `x` for `delay_ms`
    /// (returned to `return_to` if it was mandatory and nothing takes it
    /// then); returns whether the publisher's confirm waits for the group
    /// commit (a persistent message).
    pub fn delay(
        &self,
        x: &ExchangeEntry,
        message: &Message,
        delay_ms: u64,
        return_to: Option<ReturnTo>,
    ) -> Result<bool, AmqpError> {
        let Some(index) = &x.delayed else {
            return Ok(false);
        };
        index
            .put(message, now_ms().saturating_add(delay_ms), return_to)
            .map_err(|e| AmqpError::internal_error(format!("delayed messages: {e}")))?;
        Ok(message.is_persistent())
    }

    /// Drops the waiting messages of every delayed exchange (the vhost is
    /// being deleted).
    pub fn forget_all_delayed(&self) {
        for x in self.exchanges() {
            self.forget_delayed(&x);
        }
    }

    /// Routes due messages until none is due; the index forgets each page
    /// once its messages are in their queues.
    fn route_due(&self, x: &Arc<ExchangeEntry>, index: &DelayedIndex) {
        loop {
            let due = match index.take_due(now_ms()) {
                Ok(due) => due,
                Err(error) => {
                    tracing::error!(%error, exchange = %x.name, "cannot read delayed messages");
                    return;
                }
            };
            if due.is_empty() {
                return;
            }
            let keys: Vec<Vec<u8>> = due
                .into_iter()
                .map(|Due { key, message }| {
                    self.route_delayed(x, message, index.take_return(&key));
                    key
                })
                .collect();
            if let Err(error) = index.remove(&keys) {
                tracing::error!(%error, exchange = %x.name, "cannot forget routed delayed messages");
                return;
            }
            index.request_commit();
        }
    }

    /// One due message, routed from `x` with the bindings of now (its
    /// alternate exchange when none matches; a mandatory one nothing takes
    /// goes back to its publisher's channel if that is still open); its
    /// `x-delay` header turns negative, as the plugin delivers it.
    fn route_delayed(&self, x: &Arc<ExchangeEntry>, message: Message, return_to: Option<ReturnTo>) {
        let message = Arc::new(negate_delay(message));
        let headers = message.properties.headers().clone();
        match self.route_message(
            Some(x.clone()),
            &message.routing_key,
            headers.as_ref(),
            &routing_properties(&message.properties),
        ) {
            Ok(Routed {
                queues,
                remote,
                replies,
                held,
                new_id,
            }) => {
                if queues.is_empty()
                    && remote.is_empty()
                    && replies.is_empty()
                    && let Some(return_to) = return_to
                {
                    give_back(return_to, &message);
                    return;
                }
                if !replies.is_empty() {
                    let copy = message.clone();
                    tokio::spawn(async move { replies::deliver(&replies, &copy).await });
                }
                let _ = self.deliver(&message, &queues, &remote, &held, new_id.as_ref(), None);
            }
            Err(error) => {
                tracing::warn!(%error, exchange = %x.name, "a due delayed message could not be routed");
            }
        }
    }
}

impl VHost {
    /// Stops a deleted exchange's task and drops its waiting messages, in a
    /// blocking task: millions of records take seconds to remove, which
    /// must not stall the connection (or the runtime thread) that deleted
    /// it. Until that is done, declaring a delayed exchange of the same
    /// name is refused.
    pub(super) fn forget_delayed(&self, x: &ExchangeEntry) {
        let Some(index) = x.delayed.clone() else {
            return;
        };
        index.wake.notify_one();
        self.clear_delayed(x.name.to_string(), move || Ok(index));
    }

    /// At start: drops the records of delayed exchanges of this vhost that
    /// did not come back (transient ones, or deleted while the broker was
    /// down), among the exchanges the store holds records for (`stored`).
    pub fn forget_orphan_delayed(&self, stored: &[(String, String)]) {
        for (vhost, name) in stored {
            let live = self.exchange(name).is_some_and(|x| x.delayed.is_some());
            if *vhost != *self.name || live {
                continue;
            }
            tracing::info!(exchange = %name, vhost = %vhost, "dropping the delayed messages of an exchange that is gone");
            let (storage, vhost, exchange) = (self.storage.clone(), vhost.clone(), name.clone());
            self.clear_delayed(name.clone(), move || {
                DelayedIndex::open(storage, &vhost, &exchange)
            });
        }
    }

    /// Removes the records of delayed exchange `name` (its index from
    /// `index`) in a blocking task; a declare of the name meanwhile is
    /// refused.
    fn clear_delayed(
        &self,
        name: String,
        index: impl FnOnce() -> Result<Arc<DelayedIndex>, warren_storage::StorageError> + Send + 'static,
    ) {
        let clearing = self.delayed_clearing.clone();
        clearing.lock().insert(name.clone());
        let clear = move || {
            let cleared = index().and_then(|index| {
                index.clear()?;
                index.request_commit();
                Ok(())
            });
            if let Err(error) = cleared {
                tracing::error!(%error, exchange = %name, "cannot drop delayed messages");
            }
            clearing.lock().remove(&name);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(clear);
            }
            Err(_) => clear(),
        }
    }
}

/// basic.return (312 NO_ROUTE) of a due mandatory message that nothing took,
/// to its publisher's channel if it is still open.
fn give_back(to: ReturnTo, message: &Message) {
    if to.open.upgrade().is_none() {
        return;
    }
    let ret = AMQPClass::Basic(basic::AMQPMethod::Return(basic::Return {
        reply_code: ReplyCode::NoRoute.code(),
        reply_text: "NO_ROUTE".into(),
        exchange: ShortString::try_new(message.exchange.to_string()).unwrap_or_default(),
        routing_key: ShortString::try_new(message.routing_key.to_string()).unwrap_or_default(),
    }));
    let frame = Outbound::MethodWithContent(
        to.channel,
        Box::new(WithContent {
            method: ret,
            header: message.header.clone(),
            body: message.body.clone(),
        }),
    );
    tokio::spawn(async move {
        let _ = to.out.send(frame).await;
    });
}

/// The message with `x-delay: -N` instead of `N`.
fn negate_delay(message: Message) -> Message {
    let Some(delay) = crate::delayed::delay_of(message.properties.headers().as_ref()) else {
        return message;
    };
    message.with_header(
        DELAY_HEADER,
        AMQPValue::LongLongInt(-i64::try_from(delay).unwrap_or(i64::MAX)),
    )
}

/// A delayed exchange's task: sleeps until the next due time or a wake-up,
/// routes what is due, and ends when the exchange or its vhost is gone. It
/// holds neither while it sleeps (so a stopped broker lets go of its store);
/// a dropped exchange wakes it.
async fn run(vhost: Weak<VHost>, x: Weak<ExchangeEntry>, wake: Arc<Notify>) {
    loop {
        let wait = {
            let Some(x) = x.upgrade() else {
                return;
            };
            let Some(index) = &x.delayed else {
                return;
            };
            index
                .next_due()
                .map(|due| Duration::from_millis(due.saturating_sub(now_ms())))
        };
        if wait != Some(Duration::ZERO) {
            match wait {
                Some(wait) => {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = wake.notified() => {}
                    }
                }
                None => wake.notified().await,
            }
        }
        let (Some(v), Some(x)) = (vhost.upgrade(), x.upgrade()) else {
            return;
        };
        // A deleted exchange (or one declared anew under its name) is done.
        if !v.exchange(&x.name).is_some_and(|now| Arc::ptr_eq(&now, &x)) {
            return;
        }
        if let Some(index) = &x.delayed {
            v.route_due(&x, index);
        }
    }
}
