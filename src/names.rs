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
    Queue(QueueName),
    /// An exchange, by name (exchange-to-exchange binding).
    Exchange(ExchangeName),
}

impl Destination {
    /// The destination's name.
    pub fn name(&self) -> &str {
        match self {
            Destination::Queue(n) => n.as_str(),
            Destination::Exchange(n) => n.as_str(),
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

/// A node of the cluster, by its Raft id.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct NodeId(pub u64);

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
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

/// A name of one kind of resource: a string with its own type, so a queue's
/// name cannot be passed where a vhost's is meant. Reads as `&str`. Shared
/// (`Arc<str>`): routing clones a binding's destination per message, which as
/// a `String` was an allocation and a copy per queue reached.
macro_rules! resource_name {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(std::sync::Arc<str>);

        impl $name {
            /// The name as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(name: &str) -> Self {
                $name(std::sync::Arc::from(name))
            }
        }

        impl From<String> for $name {
            fn from(name: String) -> Self {
                $name(std::sync::Arc::from(name))
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> Self {
                name.0.to_string()
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                *self.0 == *other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                *self.0 == **other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                *self.0 == **other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                *self == *other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                **self == *other.0
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                **self == *other.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    };
}

resource_name!(
    /// A queue's name.
    QueueName
);
resource_name!(
    /// An exchange's name (empty for the default exchange).
    ExchangeName
);
resource_name!(
    /// A virtual host's name.
    VHostName
);
