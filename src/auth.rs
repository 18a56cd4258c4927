//! Users and SASL. For now one configured user (guest/guest by default), restricted
//! to loopback like RabbitMQ's guest; users, vhost permissions and password hashes
//! arrive with the management work.

use std::net::IpAddr;

use warren_codec::types::{AMQPValue, FieldTable, parsing::parse_field_table};

use crate::config::Config;

/// SASL mechanisms offered in connection.start, in RabbitMQ's order.
pub const MECHANISMS: &str = "PLAIN AMQPLAIN";

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

/// A user known to the broker.
#[derive(Clone, Debug)]
struct User {
    name: String,
    password: String,
    loopback_only: bool,
}

/// The user registry.
#[derive(Clone, Debug)]
pub struct Users {
    users: Vec<User>,
}

impl Users {
    /// The users a fresh broker has: the configured default user.
    pub fn from_config(config: &Config) -> Self {
        Users {
            users: vec![User {
                name: config.default_user.clone(),
                password: config.default_pass.clone(),
                loopback_only: config.loopback_users.contains(&config.default_user),
            }],
        }
    }

    /// Checks a SASL start-ok response from `peer`; returns the user name.
    pub fn login(
        &self,
        mechanism: &str,
        response: &[u8],
        peer: IpAddr,
    ) -> Result<String, LoginError> {
        let (user, pass) = match mechanism {
            "PLAIN" => parse_plain(response),
            "AMQPLAIN" => parse_amqplain(response),
            other => return Err(LoginError::UnknownMechanism(other.to_owned())),
        }
        .ok_or_else(|| LoginError::BadResponse {
            mechanism: mechanism.to_owned(),
        })?;
        let refused = || LoginError::Refused {
            mechanism: mechanism.to_owned(),
        };
        let found = self
            .users
            .iter()
            .find(|u| u.name == user)
            .ok_or_else(refused)?;
        if !constant_time_eq(found.password.as_bytes(), pass.as_bytes()) {
            return Err(refused());
        }
        if found.loopback_only && !is_loopback(peer) {
            return Err(LoginError::LoopbackOnly { user });
        }
        Ok(user)
    }
}

fn is_loopback(peer: IpAddr) -> bool {
    match peer {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// PLAIN: `authzid NUL authcid NUL passwd` (RFC 4616).
fn parse_plain(response: &[u8]) -> Option<(String, String)> {
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
fn parse_amqplain(response: &[u8]) -> Option<(String, String)> {
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use warren_codec::types::generation::gen_field_table;

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const REMOTE: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

    fn users() -> Users {
        Users::from_config(&Config::default())
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
}
