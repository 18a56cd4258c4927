//! Route explain: which queues a message would reach and through which
//! bindings, without publishing. It follows the publish path's own walk
//! ([`VHost::walk`]), so the two cannot disagree, and only reads: no queue
//! is touched, no reply consumer is delivered to.

use warren_codec::types::FieldTable;
use warren_exchanges::MessageProperties;

use super::publish::{Step, header_routing_keys};
use super::{Destination, VHost};
use crate::error::AmqpError;

/// The route a message would take.
#[derive(Debug, Clone, Default)]
pub struct Explanation {
    /// The message's routing key, then the `CC` and `BCC` keys it routes by.
    pub routing_keys: Vec<String>,
    /// Each exchange the message passes, in the order the walk takes them.
    pub hops: Vec<Hop>,
    /// The queues it would reach, each once.
    pub queues: Vec<String>,
    /// Direct reply-to consumers it would reach (default exchange only).
    pub replies: usize,
}

/// One exchange on the route and what it did with the message.
#[derive(Debug, Clone)]
pub struct Hop {
    /// The exchange's name (`""`: the default exchange).
    pub exchange: String,
    /// Its type name (`direct`, ..., `x-consistent-hash`).
    pub kind: &'static str,
    /// The bindings the message goes through (the default exchange's are
    /// the implicit ones: each key to the queue it names).
    pub bindings: Vec<BindingHop>,
    /// For `x-consistent-hash` and `x-modulus-hash`: the partition picked.
    pub partition: Option<PartitionHop>,
    /// Nothing matched: the alternate exchange in force (argument or policy),
    /// followed when it exists and was not passed already.
    pub alternate_exchange: Option<String>,
}

/// A binding the message goes through.
#[derive(Debug, Clone)]
pub struct BindingHop {
    /// Where it leads.
    pub destination: Destination,
    /// Its routing key (a weight for `x-consistent-hash`).
    pub routing_key: String,
    /// Its arguments.
    pub arguments: FieldTable,
}

/// Which destination a partitioning exchange picks, and why.
#[derive(Debug, Clone)]
pub struct PartitionHop {
    /// What was hashed (`routing key`, `header 'h'`, `property 'message_id'`, `routing keys`).
    pub hashed: String,
    /// The hash.
    pub hash: u64,
    /// The destination picked.
    pub destination: Destination,
    /// `x-modulus-hash`: how many destinations; `x-consistent-hash`: ring points.
    pub of: usize,
}

impl VHost {
    /// Explains where a message published to `exchange` would go (404/403 as
    /// a publish would be refused; 406 for invalid `CC`/`BCC` headers).
    pub fn explain(
        &self,
        exchange: &str,
        routing_key: &str,
        headers: Option<&FieldTable>,
        properties: &MessageProperties<'_>,
    ) -> Result<Explanation, AmqpError> {
        let target = self.publish_target(exchange)?;
        let cc = header_routing_keys(headers)?;
        let keys: Vec<&str> = std::iter::once(routing_key).chain(cc).collect();
        let default_exchange = target.is_none();
        let mut hops: Vec<Hop> = Vec::new();
        // Queues living on other cluster nodes, after the local ones.
        let mut elsewhere: Vec<String> = Vec::new();
        let queues = self.walk(
            target,
            routing_key,
            headers,
            properties,
            false,
            &mut |step| match step {
                Step::Default { queues } => hops.push(Hop {
                    exchange: String::new(),
                    kind: "direct",
                    bindings: queues
                        .iter()
                        .map(|q| BindingHop {
                            destination: Destination::Queue(q.name.clone()),
                            routing_key: q.name.to_string(),
                            arguments: FieldTable::default(),
                        })
                        .collect(),
                    partition: None,
                    alternate_exchange: None,
                }),
                Step::Exchange { exchange, routed } => {
                    let routes = exchange.routes.read();
                    let keys = keys.iter().copied();
                    hops.push(Hop {
                        exchange: exchange.name.to_string(),
                        kind: exchange.spec.type_name(),
                        bindings: routes
                            .matching_bindings(keys.clone(), headers, properties)
                            .into_iter()
                            .map(|(d, k, a)| BindingHop {
                                destination: d.destination.clone(),
                                routing_key: k.to_owned(),
                                arguments: a.clone(),
                            })
                            .collect(),
                        partition: routes.partition(keys, headers, properties).map(|p| {
                            PartitionHop {
                                hashed: p.hashed,
                                hash: p.hash,
                                destination: p.destination.destination,
                                of: p.of,
                            }
                        }),
                        alternate_exchange: if !routed {
                            exchange.alternate_exchange()
                        } else {
                            None
                        },
                    });
                }
                // The walk does not hold: it shows today's route.
                Step::Held { .. } => {}
                Step::Remote { queue } => elsewhere.push(queue.name.clone()),
            },
        )?;
        let replies = self
            .route_replies(default_exchange, routing_key, headers)
            .len();
        Ok(Explanation {
            routing_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            hops,
            queues: queues
                .iter()
                .map(|q| q.name.to_string())
                .chain(elsewhere)
                .collect(),
            replies,
        })
    }
}
