//! A permission entry's three regular expressions, compiled once. A pattern
//! is matched unanchored, as Erlang's `re:run`; the empty pattern matches
//! only the empty name, as RabbitMQ reads it as `^$`.

use regex::Regex;

/// The three kinds of access RabbitMQ distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Create, delete, redeclare.
    Configure,
    /// Publish to, bind to.
    Write,
    /// Consume, get, purge, bind from.
    Read,
}

/// One permission entry with its patterns compiled.
#[derive(Debug)]
pub struct Compiled {
    configure: Regex,
    write: Regex,
    read: Regex,
}

impl Compiled {
    /// Compiles the configure, write and read patterns.
    pub fn new(configure: &str, write: &str, read: &str) -> Result<Self, BadPattern> {
        Ok(Compiled {
            configure: compile(configure)?,
            write: compile(write)?,
            read: compile(read)?,
        })
    }

    /// Whether `permission` covers a resource called `name`.
    pub fn allows(&self, permission: Permission, name: &str) -> bool {
        match permission {
            Permission::Configure => &self.configure,
            Permission::Write => &self.write,
            Permission::Read => &self.read,
        }
        .is_match(name)
    }
}

/// A permission pattern that does not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPattern {
    /// The pattern.
    pub pattern: String,
    /// What the regex engine said.
    pub reason: String,
}

fn compile(pattern: &str) -> Result<Regex, BadPattern> {
    let pattern = if pattern.is_empty() { "^$" } else { pattern };
    Regex::new(pattern).map_err(|e| BadPattern {
        pattern: pattern.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_rabbitmq_reads_them() {
        let c = Compiled::new("", "^w", "r").expect("compile");
        assert!(!c.allows(Permission::Configure, "q"));
        assert!(c.allows(Permission::Configure, ""), "empty is ^$");
        assert!(c.allows(Permission::Write, "wq") && !c.allows(Permission::Write, "qw"));
        assert!(c.allows(Permission::Read, "xrx"), "unanchored, as re:run");
        assert_eq!(Compiled::new("(", "", "").expect_err("bad").pattern, "(");
    }
}
