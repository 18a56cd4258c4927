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
