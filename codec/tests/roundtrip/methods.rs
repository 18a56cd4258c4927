//! The generator of every method of every class, with random arguments.

use proptest::prelude::*;
use proptest::strategy::Union;
use warren_codec::protocol::{
    AMQPClass, access, basic, channel, confirm, connection, exchange, queue, tx,
};

use super::strategies::*;

/// Every method of every class, with random arguments.
pub(crate) fn any_method() -> BoxedStrategy<AMQPClass> {
    use AMQPClass as C;
    let b = any::<bool>;
    let conn = |m| C::Connection(m);
    let methods: Vec<BoxedStrategy<AMQPClass>> = vec![
        // connection
        (
            any::<u8>(),
            any::<u8>(),
            field_table(),
            long_string(64),
            long_string(64),
        )
            .prop_map(
                move |(version_major, version_minor, server_properties, mechanisms, locales)| {
                    conn(connection::AMQPMethod::Start(connection::Start {
                        version_major,
                        version_minor,
                        server_properties,
                        mechanisms,
                        locales,
                    }))
                },
            )
            .boxed(),
        (field_table(), short(), long_string(64), short())
            .prop_map(move |(client_properties, mechanism, response, locale)| {
                conn(connection::AMQPMethod::StartOk(connection::StartOk {
                    client_properties,
                    mechanism,
                    response,
                    locale,
                }))
            })
            .boxed(),
        long_string(64)
            .prop_map(move |challenge| {
                conn(connection::AMQPMethod::Secure(connection::Secure {
                    challenge,
                }))
            })
            .boxed(),
        long_string(64)
            .prop_map(move |response| {
                conn(connection::AMQPMethod::SecureOk(connection::SecureOk {
                    response,
                }))
            })
            .boxed(),
        (any::<u16>(), any::<u32>(), any::<u16>())
            .prop_map(move |(channel_max, frame_max, heartbeat)| {
                conn(connection::AMQPMethod::Tune(connection::Tune {
                    channel_max,
                    frame_max,
                    heartbeat,
                }))
            })
            .boxed(),
        (any::<u16>(), any::<u32>(), any::<u16>())
            .prop_map(move |(channel_max, frame_max, heartbeat)| {
                conn(connection::AMQPMethod::TuneOk(connection::TuneOk {
                    channel_max,
                    frame_max,
                    heartbeat,
                }))
            })
            .boxed(),
        short()
            .prop_map(move |virtual_host| {
                conn(connection::AMQPMethod::Open(connection::Open {
                    virtual_host,
                }))
            })
            .boxed(),
        Just(conn(connection::AMQPMethod::OpenOk(connection::OpenOk {}))).boxed(),
        (any::<u16>(), short(), any::<u16>(), any::<u16>())
            .prop_map(move |(reply_code, reply_text, class_id, method_id)| {
                conn(connection::AMQPMethod::Close(connection::Close {
                    reply_code,
                    reply_text,
                    class_id,
                    method_id,
                }))
            })
            .boxed(),
        Just(conn(connection::AMQPMethod::CloseOk(
            connection::CloseOk {},
        )))
        .boxed(),
        short()
            .prop_map(move |reason| {
                conn(connection::AMQPMethod::Blocked(connection::Blocked {
                    reason,
                }))
            })
            .boxed(),
        Just(conn(connection::AMQPMethod::Unblocked(
            connection::Unblocked {},
        )))
        .boxed(),
        (long_string(64), short())
            .prop_map(move |(new_secret, reason)| {
                conn(connection::AMQPMethod::UpdateSecret(
                    connection::UpdateSecret { new_secret, reason },
                ))
            })
            .boxed(),
        Just(conn(connection::AMQPMethod::UpdateSecretOk(
            connection::UpdateSecretOk {},
        )))
        .boxed(),
        // channel
        Just(C::Channel(channel::AMQPMethod::Open(channel::Open {}))).boxed(),
        Just(C::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {}))).boxed(),
        b().prop_map(|active| C::Channel(channel::AMQPMethod::Flow(channel::Flow { active })))
            .boxed(),
        b().prop_map(|active| C::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk { active })))
            .boxed(),
        (any::<u16>(), short(), any::<u16>(), any::<u16>())
            .prop_map(|(reply_code, reply_text, class_id, method_id)| {
                C::Channel(channel::AMQPMethod::Close(channel::Close {
                    reply_code,
                    reply_text,
                    class_id,
                    method_id,
                }))
            })
            .boxed(),
        Just(C::Channel(channel::AMQPMethod::CloseOk(
            channel::CloseOk {},
        )))
        .boxed(),
        // access (deprecated, still parsed)
        (short(), b(), b(), b(), b(), b())
            .prop_map(|(realm, exclusive, passive, active, write, read)| {
                C::Access(access::AMQPMethod::Request(access::Request {
                    realm,
                    exclusive,
                    passive,
                    active,
                    write,
                    read,
                }))
            })
            .boxed(),
        Just(C::Access(access::AMQPMethod::RequestOk(
            access::RequestOk {},
        )))
        .boxed(),
        // exchange
        (short(), short(), b(), b(), b(), b(), b(), field_table())
            .prop_map(
                |(exchange, kind, passive, durable, auto_delete, internal, nowait, arguments)| {
                    C::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
                        exchange,
                        kind,
                        passive,
                        durable,
                        auto_delete,
                        internal,
                        nowait,
                        arguments,
                    }))
                },
            )
            .boxed(),
        Just(C::Exchange(exchange::AMQPMethod::DeclareOk(
            exchange::DeclareOk {},
        )))
        .boxed(),
        (short(), b(), b())
            .prop_map(|(exchange, if_unused, nowait)| {
                C::Exchange(exchange::AMQPMethod::Delete(exchange::Delete {
                    exchange,
                    if_unused,
                    nowait,
                }))
            })
            .boxed(),
        Just(C::Exchange(exchange::AMQPMethod::DeleteOk(
            exchange::DeleteOk {},
        )))
        .boxed(),
        (short(), short(), short(), b(), field_table())
            .prop_map(|(destination, source, routing_key, nowait, arguments)| {
                C::Exchange(exchange::AMQPMethod::Bind(exchange::Bind {
                    destination,
                    source,
                    routing_key,
                    nowait,
                    arguments,
                }))
            })
            .boxed(),
        Just(C::Exchange(exchange::AMQPMethod::BindOk(
            exchange::BindOk {},
        )))
        .boxed(),
        (short(), short(), short(), b(), field_table())
            .prop_map(|(destination, source, routing_key, nowait, arguments)| {
                C::Exchange(exchange::AMQPMethod::Unbind(exchange::Unbind {
                    destination,
                    source,
                    routing_key,
                    nowait,
                    arguments,
                }))
            })
            .boxed(),
        Just(C::Exchange(exchange::AMQPMethod::UnbindOk(
            exchange::UnbindOk {},
        )))
        .boxed(),
        // queue
        (short(), b(), b(), b(), b(), b(), field_table())
            .prop_map(
                |(queue, passive, durable, exclusive, auto_delete, nowait, arguments)| {
                    C::Queue(queue::AMQPMethod::Declare(queue::Declare {
                        queue,
                        passive,
                        durable,
                        exclusive,
                        auto_delete,
                        nowait,
                        arguments,
                    }))
                },
            )
            .boxed(),
        (short(), any::<u32>(), any::<u32>())
            .prop_map(|(queue, message_count, consumer_count)| {
                C::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
                    queue,
                    message_count,
                    consumer_count,
                }))
            })
            .boxed(),
        (short(), short(), short(), b(), field_table())
            .prop_map(|(queue, exchange, routing_key, nowait, arguments)| {
                C::Queue(queue::AMQPMethod::Bind(queue::Bind {
                    queue,
                    exchange,
                    routing_key,
                    nowait,
                    arguments,
                }))
            })
            .boxed(),
        Just(C::Queue(queue::AMQPMethod::BindOk(queue::BindOk {}))).boxed(),
        (short(), b())
            .prop_map(|(queue, nowait)| {
                C::Queue(queue::AMQPMethod::Purge(queue::Purge { queue, nowait }))
            })
            .boxed(),
        any::<u32>()
            .prop_map(|message_count| {
                C::Queue(queue::AMQPMethod::PurgeOk(queue::PurgeOk { message_count }))
            })
            .boxed(),
        (short(), b(), b(), b())
            .prop_map(|(queue, if_unused, if_empty, nowait)| {
                C::Queue(queue::AMQPMethod::Delete(queue::Delete {
                    queue,
                    if_unused,
                    if_empty,
                    nowait,
                }))
            })
            .boxed(),
        any::<u32>()
            .prop_map(|message_count| {
                C::Queue(queue::AMQPMethod::DeleteOk(queue::DeleteOk {
                    message_count,
                }))
            })
            .boxed(),
        (short(), short(), short(), field_table())
            .prop_map(|(queue, exchange, routing_key, arguments)| {
                C::Queue(queue::AMQPMethod::Unbind(queue::Unbind {
                    queue,
                    exchange,
                    routing_key,
                    arguments,
                }))
            })
            .boxed(),
        Just(C::Queue(queue::AMQPMethod::UnbindOk(queue::UnbindOk {}))).boxed(),
        // basic
        (any::<u16>(), b())
            .prop_map(|(prefetch_count, global)| {
                C::Basic(basic::AMQPMethod::Qos(basic::Qos {
                    prefetch_count,
                    global,
                }))
            })
            .boxed(),
        Just(C::Basic(basic::AMQPMethod::QosOk(basic::QosOk {}))).boxed(),
        (short(), short(), b(), b(), b(), b(), field_table())
            .prop_map(
                |(queue, consumer_tag, no_local, no_ack, exclusive, nowait, arguments)| {
                    C::Basic(basic::AMQPMethod::Consume(basic::Consume {
                        queue,
                        consumer_tag,
                        no_local,
                        no_ack,
                        exclusive,
                        nowait,
                        arguments,
                    }))
                },
            )
            .boxed(),
        short()
            .prop_map(|consumer_tag| {
                C::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                    consumer_tag,
                }))
            })
            .boxed(),
        (short(), b())
            .prop_map(|(consumer_tag, nowait)| {
                C::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
                    consumer_tag,
                    nowait,
                }))
            })
            .boxed(),
        short()
            .prop_map(|consumer_tag| {
                C::Basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
                    consumer_tag,
                }))
            })
            .boxed(),
        (short(), short(), b(), b())
            .prop_map(|(exchange, routing_key, mandatory, immediate)| {
                C::Basic(basic::AMQPMethod::Publish(basic::Publish {
                    exchange,
                    routing_key,
                    mandatory,
                    immediate,
                }))
            })
            .boxed(),
        (any::<u16>(), short(), short(), short())
            .prop_map(|(reply_code, reply_text, exchange, routing_key)| {
                C::Basic(basic::AMQPMethod::Return(basic::Return {
                    reply_code,
                    reply_text,
                    exchange,
                    routing_key,
                }))
            })
            .boxed(),
        (short(), any::<u64>(), b(), short(), short())
            .prop_map(
                |(consumer_tag, delivery_tag, redelivered, exchange, routing_key)| {
                    C::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
                        consumer_tag,
                        delivery_tag,
                        redelivered,
                        exchange,
                        routing_key,
                    }))
                },
            )
            .boxed(),
        (short(), b())
            .prop_map(|(queue, no_ack)| {
                C::Basic(basic::AMQPMethod::Get(basic::Get { queue, no_ack }))
            })
            .boxed(),
        (any::<u64>(), b(), short(), short(), any::<u32>())
            .prop_map(
                |(delivery_tag, redelivered, exchange, routing_key, message_count)| {
                    C::Basic(basic::AMQPMethod::GetOk(basic::GetOk {
                        delivery_tag,
                        redelivered,
                        exchange,
                        routing_key,
                        message_count,
                    }))
                },
            )
            .boxed(),
        Just(C::Basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {}))).boxed(),
        (any::<u64>(), b())
            .prop_map(|(delivery_tag, multiple)| {
                C::Basic(basic::AMQPMethod::Ack(basic::Ack {
                    delivery_tag,
                    multiple,
                }))
            })
            .boxed(),
        (any::<u64>(), b())
            .prop_map(|(delivery_tag, requeue)| {
                C::Basic(basic::AMQPMethod::Reject(basic::Reject {
                    delivery_tag,
                    requeue,
                }))
            })
            .boxed(),
        b().prop_map(|requeue| {
            C::Basic(basic::AMQPMethod::RecoverAsync(basic::RecoverAsync {
                requeue,
            }))
        })
        .boxed(),
        b().prop_map(|requeue| C::Basic(basic::AMQPMethod::Recover(basic::Recover { requeue })))
            .boxed(),
        Just(C::Basic(basic::AMQPMethod::RecoverOk(basic::RecoverOk {}))).boxed(),
        (any::<u64>(), b(), b())
            .prop_map(|(delivery_tag, multiple, requeue)| {
                C::Basic(basic::AMQPMethod::Nack(basic::Nack {
                    delivery_tag,
                    multiple,
                    requeue,
                }))
            })
            .boxed(),
        // tx
        Just(C::Tx(tx::AMQPMethod::Select(tx::Select {}))).boxed(),
        Just(C::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {}))).boxed(),
        Just(C::Tx(tx::AMQPMethod::Commit(tx::Commit {}))).boxed(),
        Just(C::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {}))).boxed(),
        Just(C::Tx(tx::AMQPMethod::Rollback(tx::Rollback {}))).boxed(),
        Just(C::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {}))).boxed(),
        // confirm
        b().prop_map(|nowait| C::Confirm(confirm::AMQPMethod::Select(confirm::Select { nowait })))
            .boxed(),
        Just(C::Confirm(confirm::AMQPMethod::SelectOk(
            confirm::SelectOk {},
        )))
        .boxed(),
    ];
    Union::new(methods).boxed()
}
