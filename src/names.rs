//! Names that cross rooms: how RabbitMQ's texts name a resource, and where a
//! binding leads. A leaf room: it imports nothing of the broker.

/// `kind 'name' in vhost 'v'`, as RabbitMQ names resources in its texts.
pub fn resource(kind: &str, name: &str, vhost: &str) -> String {
    format!("{kind} '{name}' in vhost '{vhost}'")
}

/// Where a binding leads.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Destination {
    /// A queue, by name.
    Queue(String),
    /// An exchange, by name (exchange-to-exchange binding).
    Exchange(String),
}

impl Destination {
    /// The destination's name.
    pub fn name(&self) -> &str {
        match self {
            Destination::Queue(n) | Destination::Exchange(n) => n,
        }
    }

    /// `queue 'q' in vhost '/'` / `exchange 'x' in vhost '/'`.
    pub fn describe(&self, vhost: &str) -> String {
        match self {
            Destination::Queue(n) => resource("queue", n, vhost),
            Destination::Exchange(n) => resource("exchange", n, vhost),
        }
    }
}

/// A connection's id, unique in the broker's life: the owner of exclusive
/// queues, the key of the live-connection registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

impl std::fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A consumer tag (`basic.consume`), shared by the consumer, its channel's
/// registry and every delivery it gets.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConsumerTag(std::sync::Arc<str>);

impl ConsumerTag {
    /// The tag as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for ConsumerTag {
    fn from(tag: &str) -> Self {
        ConsumerTag(std::sync::Arc::from(tag))
    }
}

impl From<String> for ConsumerTag {
    fn from(tag: String) -> Self {
        ConsumerTag(std::sync::Arc::from(tag))
    }
}

impl std::borrow::Borrow<str> for ConsumerTag {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for ConsumerTag {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ConsumerTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A delivery tag: a channel's number for one delivery (basic.deliver or
/// get-ok), from 1, in the order the client receives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct DeliveryTag(pub u64);

impl std::fmt::Display for DeliveryTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
