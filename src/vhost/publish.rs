//! Publishing: routing a message (exchanges, exchange-to-exchange bindings,
//! alternate exchanges, CC/BCC, direct reply-to addresses) and handing it to
//! the queues it reaches. One service for every publisher: the channel, the
//! management API and dead-lettering ([`QueueHost::dead_letter`]).

use std::sync::Arc;

use warren_codec::protocol::BasicProperties;
use warren_codec::types::{AMQPValue, FieldTable};
use warren_exchanges::{MessageProperties, type_name};

use super::RemoteQueue;
use super::replies;
use super::{Destination, ExchangeEntry, VHost, resource};
use crate::dedup::{NewId, Verdict};
use crate::error::AmqpError;
use crate::message::Message;
use crate::meta::{Forwards, NodeId};
use crate::names::ExchangeName;
use crate::queue::dead_letter::DeadLetter;
use crate::queue::{Arrival, Enqueued, Queue, QueueHost};

/// The queues a message reaches: most reach one, which needs no allocation.
pub type Queues = smallvec::SmallVec<[Arc<Queue>; 1]>;

/// Where a message goes: queues, direct reply-to consumers, and delayed
/// exchanges that keep it for later.
#[derive(Debug, Default)]
pub struct Routed {
    /// The queues it reaches, each once.
    pub queues: Queues,
    /// In a cluster: the queues it reaches that live on other nodes.
    pub remote: Vec<Arc<RemoteQueue>>,
    /// The reply consumers it reaches (they count as no queue).
    pub replies: Vec<replies::Target>,
    /// Delayed exchanges it reaches with an `x-delay`: each keeps it and
    /// routes it on when the delay ends ([`VHost::hold`]).
    pub held: Vec<Arc<ExchangeEntry>>,
    /// A deduplicating exchange's new id, stored once the message is
    /// enqueued ([`VHost::deliver`]).
    pub new_id: Option<NewId>,
}

impl Routed {
    /// Whether it reaches nothing that takes it (a mandatory one is returned).
    pub fn unroutable(&self) -> bool {
        self.queues.is_empty() && self.remote.is_empty() && self.held.is_empty()
    }
}

/// What became of a routed message.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Queues that took it.
    pub queues: usize,
    /// A queue refused it (`x-overflow` reject-publish): the publisher hears nack.
    pub refused: bool,
    /// A durable queue wrote it to the store: it is safe once the next group
    /// commit completes (`Storage::commit`).
    pub stored: bool,
    /// In a cluster: the publishes handed to other nodes, whose answers a confirm waits for.
    pub forwarded: Forwards,
}

impl VHost {
    /// Routes a message published to `target` ([`VHost::publish_target`]):
    /// the queues and the reply consumers it reaches.
    pub fn route_message(
        &self,
        target: Option<Arc<ExchangeEntry>>,
        routing_key: &str,
        headers: Option<&FieldTable>,
        properties: &MessageProperties<'_>,
    ) -> Result<Routed, AmqpError> {
        let replies = self.route_replies(target.is_none(), routing_key, headers);
        let dedup = target.as_ref().and_then(|x| x.dedup.clone());
        let counted = target
            .clone()
            .unwrap_or_else(|| self.default_exchange.clone());
        counted.counters.publish_in.incr();
        let mut held = Vec::new();
        let mut remote = Vec::new();
        let mut queues = self.walk(
            target,
            routing_key,
            headers,
            properties,
            true,
            &mut |step| match step {
                Step::Held { exchange } => held.push(exchange.clone()),
                Step::Remote { queue } => remote.push(queue.clone()),
                _ => {}
            },
        )?;
        // A duplicate on a deduplicating exchange routes nowhere (the plugin's
        // rule: unroutable, so returned if mandatory, then confirmed).
        let mut new_id = None;
        match dedup.map(|dedup| dedup.check(headers)) {
            Some(Verdict::Duplicate) => {
                queues.clear();
                remote.clear();
                held.clear();
            }
            Some(Verdict::New(id)) => new_id = id,
            None => {}
        }
        if !(queues.is_empty() && remote.is_empty() && held.is_empty()) {
            counted.counters.publish_out.incr();
        }
        Ok(Routed {
            queues,
            remote,
            replies,
            held,
            new_id,
        })
    }

    /// Gives a routed message to the delayed exchanges that keep it (see
    /// [`Routed::held`]), each to route it on when its `x-delay` ends (or to
    /// return it to `return_to` if nothing takes it then); returns whether
    /// the publisher's confirm waits for the group commit.
    fn hold(
        &self,
        message: &Message,
        held: &[Arc<ExchangeEntry>],
        return_to: Option<&crate::delayed::ReturnTo>,
    ) -> bool {
        let Some(delay) = crate::delayed::delay_of(message.properties.headers().as_ref()) else {
            return false;
        };
        let mut stored = false;
        for x in held {
            match self.delay(x, message, delay, return_to.cloned()) {
                Ok(persistent) => stored |= persistent,
                Err(error) => {
                    tracing::error!(%error, exchange = %x.name, "a delayed message was not kept");
                }
            }
        }
        stored
    }

    /// Hands a routed message to `queues` (its routed queues, or fewer) and
    /// to the delayed exchanges that keep it (`held`, returning it to
    /// `return_to` if nothing takes it when due), then stores its new
    /// deduplication id, after the message (see [`NewId::store`]).
    pub fn deliver(
        &self,
        message: &Arc<Message>,
        queues: &[Arc<Queue>],
        remote: &[Arc<RemoteQueue>],
        held: &[Arc<ExchangeEntry>],
        new_id: Option<&NewId>,
        return_to: Option<&crate::delayed::ReturnTo>,
    ) -> Outcome {
        let mut outcome = self.enqueue(message, queues);
        if !remote.is_empty() {
            outcome.queues += remote.len();
            outcome.forwarded = self.forward(message, remote);
        }
        if !held.is_empty() {
            outcome.stored |= self.hold(message, held, return_to);
        }
        if let Some(id) = new_id {
            id.store();
        }
        outcome
    }

    /// Hands a routed message to its queues.
    fn enqueue(&self, message: &Arc<Message>, queues: &[Arc<Queue>]) -> Outcome {
        let mut outcome = Outcome::default();
        if queues.is_empty() {
            return outcome;
        }
        if queues.len() > 1 {
            message.share_frames();
        }
        let arrival = Arrival::now();
        for queue in queues {
            if let Some(quorum) = queue.quorum() {
                // Confirmed once a majority of its members has it.
                outcome.queues += 1;
                outcome.forwarded.0.push(quorum.publish(message));
                continue;
            }
            match queue.publish_at(message.clone(), arrival) {
                Enqueued::Accepted => {
                    outcome.queues += 1;
                    outcome.stored |= queue.stores(message);
                }
                Enqueued::Refused => outcome.refused = true,
            }
        }
        outcome
    }

    /// Hands a message to the home nodes of the remote queues it reached, one batch of
    /// queue names per home.
    fn forward(&self, message: &Arc<Message>, remote: &[Arc<RemoteQueue>]) -> Forwards {
        let Some(meta) = self.meta() else {
            return Forwards::default();
        };
        let mut by_home: Vec<(NodeId, Vec<String>)> = Vec::new();
        for queue in remote {
            let home = queue.serving(meta.as_ref());
            match by_home.iter_mut().find(|(h, _)| *h == home) {
                Some((_, names)) => names.push(queue.name.clone()),
                None => by_home.push((home, vec![queue.name.clone()])),
            }
        }
        Forwards(
            by_home
                .into_iter()
                .map(|(home, names)| meta.forward_publish(home, &self.name, names, message))
                .collect(),
        )
    }

    /// Publishes `message` to the exchange it names (404, 403 as for a
    /// channel): routes it, delivers it to reply consumers (waiting for their
    /// room) and enqueues it. The caller waits for the store's commit when
    /// the outcome says `stored` and it must know the message is safe.
    pub async fn publish(&self, message: Arc<Message>) -> Result<(Routed, Outcome), AmqpError> {
        let target = self.publish_target(&message.exchange)?;
        let headers = message.properties.headers().clone();
        if let Some(x) = target.as_ref().filter(|x| x.delayed.is_some())
            && let Some(delay) = crate::delayed::delay_of(headers.as_ref())
        {
            // Kept for later: it reaches no queue now (the plugin answers
            // `routed: false` too).
            let stored = self.delay(x, &message, delay, None)?;
            let outcome = Outcome {
                stored,
                ..Outcome::default()
            };
            return Ok((Routed::default(), outcome));
        }
        let routed = self.route_message(
            target,
            &message.routing_key,
            headers.as_ref(),
            &routing_properties(&message.properties),
        )?;
        if !routed.replies.is_empty() {
            replies::deliver(&routed.replies, &message).await;
        }
        let outcome = self.deliver(
            &message,
            &routed.queues,
            &routed.remote,
            &routed.held,
            routed.new_id.as_ref(),
            None,
        );
        Ok((routed, outcome))
    }

    /// The queues a message published to `exchange` reaches, each once: bindings
    /// are followed through exchange-to-exchange bindings, and an exchange that
    /// routes nowhere hands the message to its alternate exchange. The routing
    /// keys are the message's own plus those in its `CC` and `BCC` headers
    /// (RabbitMQ's sender-selected distribution).
    pub fn route(
        &self,
        exchange: &str,
        routing_key: &str,
        headers: Option<&FieldTable>,
    ) -> Result<Vec<Arc<Queue>>, AmqpError> {
        let target = self.publish_target(exchange)?;
        self.route_from(target, routing_key, headers)
    }

    /// Routes from a target found by [`VHost::publish_target`], without the
    /// message properties a `hash-property` exchange hashes.
    pub fn route_from(
        &self,
        first: Option<Arc<ExchangeEntry>>,
        routing_key: &str,
        headers: Option<&FieldTable>,
    ) -> Result<Vec<Arc<Queue>>, AmqpError> {
        let none = MessageProperties::default();
        self.walk(first, routing_key, headers, &none, false, &mut |_| {})
            .map(Queues::into_vec)
    }

    /// The exchange a publish names: 404 if missing, 403 if internal; `None` for
    /// the default exchange. RabbitMQ checks these before anything in the message.
    pub fn publish_target(&self, exchange: &str) -> Result<Option<Arc<ExchangeEntry>>, AmqpError> {
        if exchange.is_empty() {
            return Ok(None);
        }
        let x = self.exchange_or_404(exchange)?;
        if x.spec.internal {
            return Err(AmqpError::access_refused(format!(
                "cannot publish to internal {}",
                resource("exchange", exchange, &self.name)
            )));
        }
        Ok(Some(x))
    }

    /// The routing walk every publish takes (route explain too, reporting
    /// each [`Step`] to `step`): from `first` (`None`: the default exchange)
    /// through exchange-to-exchange bindings and alternate exchanges. With
    /// `hold`, a delayed exchange it reaches with a message that has an
    /// `x-delay` keeps the message ([`Step::Held`]) instead of routing it
    /// now; without, the walk shows where today's bindings would lead.
    pub(crate) fn walk(
        &self,
        first: Option<Arc<ExchangeEntry>>,
        routing_key: &str,
        headers: Option<&FieldTable>,
        properties: &MessageProperties<'_>,
        hold: bool,
        step: &mut dyn FnMut(Step<'_>),
    ) -> Result<Queues, AmqpError> {
        // Without headers there are no CC/BCC keys and no x-delay to read.
        let (cc, delayed) = match headers {
            None => (Vec::new(), false),
            Some(_) => (
                header_routing_keys(headers)?,
                hold && crate::delayed::delay_of(headers).is_some(),
            ),
        };
        let keys = || std::iter::once(routing_key).chain(cc.iter().copied());
        let Some(first) = first else {
            // The default exchange: the queue each key names. A reply-to address
            // names no queue ([`VHost::route_replies`]).
            let mut queues = Queues::new();
            let mut remote_seen: Vec<String> = Vec::new();
            for key in keys() {
                if key.starts_with(replies::ADDRESS_PREFIX) || queues.iter().any(|q| q.name == key)
                {
                    continue;
                }
                if let Some(q) = self.queue(key) {
                    queues.push(q);
                } else if let Some(r) = self.remote_queue(key)
                    && !remote_seen.contains(&r.name)
                {
                    remote_seen.push(r.name.clone());
                    step(Step::Remote { queue: &r });
                }
            }
            step(Step::Default { queues: &queues });
            return Ok(queues);
        };
        let mut queues = Queues::new();
        let mut remote_seen: Vec<String> = Vec::new();
        // Most walks visit one exchange: no list of others is made for it.
        let origin = first.name.clone();
        let mut seen: Vec<ExchangeName> = Vec::new();
        let mut work = Vec::new();
        let mut next = Some(first);
        let mut scratch = Vec::new();
        let mut found = Vec::new();
        while let Some(x) = next.take().or_else(|| work.pop()) {
            if delayed && x.delayed.is_some() {
                step(Step::Held { exchange: &x });
                continue;
            }
            // One exchange's destinations are distinct, and so are their
            // queues (a queue is found only under its own name): each is
            // checked against those of earlier exchanges only.
            let earlier = queues.len();
            let routed = {
                let routes = x.routes.read();
                let reached = routes.routes(keys(), headers, properties, &mut scratch);
                let routed = reached.len() != 0;
                queues.reserve(reached.len());
                for bound in reached {
                    // The binding's handle (no lock, see `bound.rs`), else
                    // the name, looked up once the routes are released.
                    match bound.queue() {
                        Some(q) => {
                            if !queues[..earlier].iter().any(|seen| Arc::ptr_eq(seen, &q)) {
                                queues.push(q);
                            }
                        }
                        None => found.push(bound.destination.clone()),
                    }
                }
                routed
            };
            step(Step::Exchange {
                exchange: &x,
                routed,
            });
            if !routed {
                if let Some(ae) = x.alternate_exchange()
                    && *origin != *ae
                    && !seen.iter().any(|s| **s == *ae)
                    && let Some(alt) = self.exchange(&ae)
                {
                    seen.push(alt.name.clone());
                    work.push(alt);
                }
                continue;
            }
            for destination in found.drain(..) {
                match destination {
                    Destination::Queue(name) => {
                        // Told apart by identity after the lookup: comparing
                        // names (alike in length and prefix, so each a memcmp)
                        // cost 90 instructions per delivery on fanout-10.
                        if let Some(q) = self.queue(&name) {
                            if !queues[..earlier].iter().any(|seen| Arc::ptr_eq(seen, &q)) {
                                queues.push(q);
                            }
                        } else if let Some(r) = self.remote_queue(&name)
                            && !remote_seen.contains(&r.name)
                        {
                            remote_seen.push(r.name.clone());
                            step(Step::Remote { queue: &r });
                        }
                    }
                    Destination::Exchange(name) => {
                        if name != origin
                            && !seen.contains(&name)
                            && let Some(next) = self.exchange(&name)
                        {
                            seen.push(name);
                            work.push(next);
                        }
                    }
                }
            }
        }
        Ok(queues)
    }

    /// The direct reply-to consumers a publish reaches: on the default exchange
    /// (`default_exchange`), those whose address is the routing key or one of
    /// the `CC`/`BCC` keys. They count as no queue: a mandatory message reaching
    /// only them is still returned, as in RabbitMQ.
    pub fn route_replies(
        &self,
        default_exchange: bool,
        routing_key: &str,
        headers: Option<&FieldTable>,
    ) -> Vec<replies::Target> {
        // No address among the keys: the usual publish, without a look at
        // the headers (issue 19: about 60 instructions a message).
        if !default_exchange
            || (headers.is_none() && !routing_key.starts_with(replies::ADDRESS_PREFIX))
        {
            return Vec::new();
        }
        // Invalid CC/BCC headers are refused by route_from.
        let cc = header_routing_keys(headers).unwrap_or_default();
        self.replies
            .route(std::iter::once(routing_key).chain(cc.iter().copied()))
    }
}

impl QueueHost for VHost {
    /// Dead-lettered copies are routed with the bindings of now; a missing
    /// dead-letter exchange drops them, and a copy is not delivered into a
    /// queue where it would close a cycle without a rejection.
    fn dead_letter(&self, dlx: &str, letters: Vec<DeadLetter>) {
        let target = if dlx.is_empty() {
            None
        } else {
            match self.exchange(dlx) {
                Some(x) => Some(x),
                None => return,
            }
        };
        for letter in letters {
            let copy = &letter.message;
            let headers = copy.properties.headers().clone();
            // With a dead-letter routing key, the CC keys no longer route.
            let routing_headers = match &headers {
                Some(h) if !copy.cc_routed && h.contains_key("CC") => {
                    let mut without = h.inner().clone();
                    without.remove("CC");
                    Some(FieldTable::from(without))
                }
                other => other.clone(),
            };
            let Ok(Routed {
                queues,
                remote,
                replies,
                held,
                new_id,
            }) = self.route_message(
                target.clone(),
                &copy.routing_key,
                routing_headers.as_ref(),
                &routing_properties(&copy.properties),
            )
            else {
                continue;
            };
            // A direct reply-to address as the dead-letter routing key (on the
            // default exchange) reaches that consumer, as in RabbitMQ. Its
            // delivery waits for writer room, so it goes on in a task.
            if !replies.is_empty()
                && let Ok(runtime) = tokio::runtime::Handle::try_current()
            {
                let copy = copy.clone();
                runtime.spawn(async move { replies::deliver(&replies, &copy).await });
            }
            let queues: Vec<Arc<Queue>> = queues
                .into_iter()
                .filter(|queue| {
                    let cycles = letter.cycles_into(&queue.name);
                    if cycles {
                        tracing::debug!(
                            queue = %queue.name,
                            "dead-lettered message dropped: a dead-letter cycle without rejection"
                        );
                    }
                    !cycles
                })
                .collect();
            // A delayed dead-letter exchange keeps a copy with an `x-delay`, as
            // the plugin's exchange does.
            let remote: Vec<Arc<RemoteQueue>> = remote
                .into_iter()
                .filter(|queue| !letter.cycles_into(&queue.name))
                .collect();
            // Forwarded without waiting: dead-lettering confirms nothing.
            let _ = self.deliver(copy, &queues, &remote, &held, new_id.as_ref(), None);
        }
    }

    fn delete_expired(&self, queue: &Arc<Queue>) {
        self.retire_queue(queue);
    }
}

/// One step of a routing walk ([`VHost::walk`]), as route explain reports it.
#[derive(Debug)]
pub(crate) enum Step<'a> {
    /// The default exchange delivered to the queues the keys name.
    Default {
        /// The queues found.
        queues: &'a [Arc<Queue>],
    },
    /// An exchange routed the message (or found it unroutable there).
    Exchange {
        /// The exchange.
        exchange: &'a Arc<ExchangeEntry>,
        /// Whether its bindings lead anywhere.
        routed: bool,
    },
    /// A delayed exchange keeps the message (it has an `x-delay`): the walk
    /// goes no further through it (only when the walk holds, see
    /// [`VHost::walk`]).
    Held {
        /// The delayed exchange.
        exchange: &'a Arc<ExchangeEntry>,
    },
    /// A queue it reaches lives on another cluster node (the message is forwarded).
    Remote {
        /// The queue's record.
        queue: &'a Arc<RemoteQueue>,
    },
}

/// The properties an `x-consistent-hash` exchange's `hash-property` may name.
pub fn routing_properties(properties: &BasicProperties) -> MessageProperties<'_> {
    MessageProperties {
        message_id: properties.message_id().as_ref().map(|s| s.as_str()),
        correlation_id: properties.correlation_id().as_ref().map(|s| s.as_str()),
        timestamp: *properties.timestamp(),
    }
}

/// The extra routing keys a message names in its `CC` and `BCC` headers: the
/// strings in those arrays (other elements are ignored, as RabbitMQ does). A
/// `CC` or `BCC` header that is not an array makes the message invalid (406).
pub(crate) fn header_routing_keys(headers: Option<&FieldTable>) -> Result<Vec<&str>, AmqpError> {
    let mut keys = Vec::new();
    let Some(headers) = headers else {
        return Ok(keys);
    };
    for name in ["CC", "BCC"] {
        match headers.inner().get(name) {
            None => {}
            Some(AMQPValue::FieldArray(routes)) => {
                keys.extend(routes.as_slice().iter().filter_map(|v| match v {
                    AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
                    _ => None,
                }));
            }
            Some(other) => {
                return Err(AmqpError::precondition_failed(format!(
                    "invalid message: {{unacceptable_type_in_header,\"{name}\",{}}}",
                    type_name(other)
                )));
            }
        }
    }
    Ok(keys)
}
