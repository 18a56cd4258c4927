//! Users, SASL and permissions.
//!
//! - [`definitions`]: users, vhosts, permissions and limits as RabbitMQ's
//!   definitions JSON describes them.
//! - [`registry`]: the internal user database (users with RabbitMQ-compatible
//!   password hashes and tags, vhost records, permissions), exported and
//!   imported in RabbitMQ's definitions shape.
//! - [`limits`]: per-vhost and per-user limits (names, validation, which
//!   value is in force).
//! - [`hashing`]: `rabbit_password_hashing_sha256` (and sha512) hashes.
//! - [`permissions`]: configure / write / read checks on AMQP operations.
//!
//! This file: the SASL mechanisms (PLAIN, AMQPLAIN, EXTERNAL) and why a login
//! fails.

pub mod definitions;
pub mod hashing;
pub mod limits;
pub mod pattern;
pub mod permissions;
pub mod registry;

use warren_codec::types::{AMQPValue, FieldTable, parsing::parse_field_table};

pub use permissions::{Kind, Permission, UserAccess};
pub use registry::{AuthDefinitions, PermissionDef, Registry, RegistryError, UserDef, VHostDef};

/// SASL mechanisms offered in connection.start, in RabbitMQ's order.
pub const MECHANISMS: &str = "PLAIN AMQPLAIN";

/// The mechanism of `rabbitmq_auth_mechanism_ssl`: the user is the verified
/// client certificate's subject CN, no password. Offered after
/// [`MECHANISMS`], only on TLS connections with a verified client certificate.
pub const EXTERNAL: &str = "EXTERNAL";

/// Why a login failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// The client picked a mechanism we do not offer.
    #[error("unknown authentication mechanism '{0}'")]
    UnknownMechanism(String),
    /// The SASL response could not be parsed.
    #[error("{mechanism} response could not be parsed")]
    BadResponse {
        /// The mechanism whose response was malformed.
        mechanism: String,
    },
    /// Wrong user name or password.
    #[error(
        "Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."
    )]
    Refused {
        /// The mechanism used.
        mechanism: String,
    },
    /// A loopback-only user connected from elsewhere.
    #[error("user '{user}' can only connect via localhost")]
    LoopbackOnly {
        /// The user.
        user: String,
    },
}

/// PLAIN: `authzid NUL authcid NUL passwd` (RFC 4616).
pub(crate) fn parse_plain(response: &[u8]) -> Option<(String, String)> {
    let mut parts = response.split(|b| *b == 0);
    let (_authzid, user, pass) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some((
        String::from_utf8(user.to_vec()).ok()?,
        String::from_utf8(pass.to_vec()).ok()?,
    ))
}

/// AMQPLAIN: a field table without its length prefix, with LOGIN and PASSWORD.
pub(crate) fn parse_amqplain(response: &[u8]) -> Option<(String, String)> {
    let mut framed = Vec::with_capacity(response.len() + 4);
    framed.extend_from_slice(&u32::try_from(response.len()).ok()?.to_be_bytes());
    framed.extend_from_slice(response);
    let (rest, table) = parse_field_table(framed.as_slice()).ok()?;
    if !rest.is_empty() {
        return None;
    }
    Some((text(&table, "LOGIN")?, text(&table, "PASSWORD")?))
}

fn text(table: &FieldTable, key: &str) -> Option<String> {
    match table.inner().get(key)? {
        AMQPValue::LongString(s) => String::from_utf8(s.as_bytes().to_vec()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;
    use warren_codec::types::generation::gen_field_table;

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const REMOTE: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

    fn users() -> Arc<Registry> {
        Registry::from_config(&Config::default())
    }

    #[test]
    fn plain_login() {
        assert_eq!(
            users().login("PLAIN", b"\0guest\0guest", LOCAL),
            Ok("guest".into())
        );
        assert!(matches!(
            users().login("PLAIN", b"\0guest\0nope", LOCAL),
            Err(LoginError::Refused { .. })
        ));
        assert!(matches!(
            users().login("PLAIN", b"guest", LOCAL),
            Err(LoginError::BadResponse { .. })
        ));
        assert!(matches!(
            users().login("PLAIN", b"\0guest\0guest", REMOTE),
            Err(LoginError::LoopbackOnly { .. })
        ));
    }

    #[test]
    fn amqplain_login() {
        let mut table = FieldTable::default();
        table.insert("LOGIN".into(), AMQPValue::LongString("guest".into()));
        table.insert("PASSWORD".into(), AMQPValue::LongString("guest".into()));
        let (bytes, _) =
            cookie_factory::r#gen(gen_field_table(&table), Vec::new()).expect("encode");
        assert_eq!(
            users().login("AMQPLAIN", &bytes[4..], LOCAL),
            Ok("guest".into())
        );
        assert!(matches!(
            users().login("EXTERNAL", b"", LOCAL),
            Err(LoginError::UnknownMechanism(_))
        ));
    }

    #[test]
    fn external_login() {
        assert_eq!(
            users().login_external(Some("guest"), LOCAL),
            Ok("guest".into())
        );
        let refused = Err(LoginError::Refused {
            mechanism: "EXTERNAL".into(),
        });
        assert_eq!(users().login_external(Some("nobody"), LOCAL), refused);
        assert_eq!(users().login_external(None, LOCAL), refused);
        assert!(matches!(
            users().login_external(Some("guest"), REMOTE),
            Err(LoginError::LoopbackOnly { .. })
        ));
    }
}
