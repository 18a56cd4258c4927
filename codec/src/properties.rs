//! A message's parsed properties, without an allocation for the shapes most
//! publishes carry.
//!
//! `BasicProperties` is about 300 bytes. Boxing it for a message's whole life
//! cost more in the allocator than its copies did (issue 19, step 3), and
//! most publishes carry no property at all, or delivery-mode alone: those
//! point at a shared value instead of a box of their own.

use std::fmt;
use std::ops::Deref;
use std::sync::LazyLock;

use amq_protocol::protocol::BasicProperties;

/// The shared values: no property, delivery-mode 1, delivery-mode 2.
static COMMON: LazyLock<[BasicProperties; 3]> = LazyLock::new(|| {
    [
        BasicProperties::default(),
        BasicProperties::default().with_delivery_mode(1),
        BasicProperties::default().with_delivery_mode(2),
    ]
});

/// Parsed properties: a shared value for the common shapes, else a box.
/// Reads as a `BasicProperties` (`Deref`); compares by value.
#[derive(Clone)]
pub struct Properties(Repr);

#[derive(Clone)]
enum Repr {
    /// One of [`COMMON`], looked up once (a read through the `LazyLock`
    /// on every access cost about 100 instructions per message).
    Shared(&'static BasicProperties),
    Boxed(Box<BasicProperties>),
}

impl Properties {
    /// No property set (property flags 0).
    pub fn none() -> Properties {
        Properties(Repr::Shared(&COMMON[0]))
    }

    /// delivery-mode `mode` alone, when it is 1 or 2; `None` otherwise.
    pub fn delivery_mode_only(mode: u8) -> Option<Properties> {
        let shared = COMMON.get(usize::from(mode)).filter(|_| mode != 0)?;
        Some(Properties(Repr::Shared(shared)))
    }

    /// The properties as an owned value (a copy when shared).
    pub fn into_inner(self) -> BasicProperties {
        match self.0 {
            Repr::Shared(p) => p.clone(),
            Repr::Boxed(p) => *p,
        }
    }
}

impl Default for Properties {
    fn default() -> Self {
        Properties::none()
    }
}

impl Deref for Properties {
    type Target = BasicProperties;

    fn deref(&self) -> &BasicProperties {
        match &self.0 {
            Repr::Shared(p) => p,
            Repr::Boxed(p) => p,
        }
    }
}

impl AsRef<BasicProperties> for Properties {
    fn as_ref(&self) -> &BasicProperties {
        self
    }
}

impl From<BasicProperties> for Properties {
    fn from(properties: BasicProperties) -> Self {
        Properties(Repr::Boxed(Box::new(properties)))
    }
}

impl From<Box<BasicProperties>> for Properties {
    fn from(properties: Box<BasicProperties>) -> Self {
        Properties(Repr::Boxed(properties))
    }
}

impl PartialEq for Properties {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl PartialEq<BasicProperties> for Properties {
    fn eq(&self, other: &BasicProperties) -> bool {
        **self == *other
    }
}

impl PartialEq<Properties> for BasicProperties {
    fn eq(&self, other: &Properties) -> bool {
        *self == **other
    }
}

impl fmt::Debug for Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_shapes_read_as_their_values() {
        assert_eq!(Properties::none(), BasicProperties::default());
        let persistent = Properties::delivery_mode_only(2).expect("shared");
        assert_eq!(*persistent.delivery_mode(), Some(2));
        assert_eq!(
            persistent,
            Properties::from(BasicProperties::default().with_delivery_mode(2))
        );
        assert!(Properties::delivery_mode_only(3).is_none());
        assert_eq!(
            Properties::delivery_mode_only(1).map(Properties::into_inner),
            Some(BasicProperties::default().with_delivery_mode(1))
        );
    }
}
