//! What the overload run samples: the broker's RSS (`/proc/PID/status`), and
//! a queue's depth and the alarms from the management API (plain HTTP/1.1
//! over a `TcpStream`, basic auth; RabbitMQ's and Warren's API alike).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The management API of the broker.
#[derive(Clone, Debug)]
pub struct Mgmt {
    /// host:port
    pub addr: String,
    /// `user:password`, base64.
    pub auth: String,
}

/// A queue's depth as the management API reports it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Depth {
    /// `messages`.
    pub messages: u64,
    /// `messages_ram`, where reported.
    pub ram: Option<u64>,
    /// `messages_paged_out`, where reported.
    pub paged_out: Option<u64>,
}

impl Mgmt {
    /// The API on `addr` as `user` with `password`.
    pub fn new(addr: String, user: &str, password: &str) -> Mgmt {
        Mgmt {
            addr,
            auth: base64(format!("{user}:{password}").as_bytes()),
        }
    }

    /// GET `path`: the status code and the body.
    fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let mut s = TcpStream::connect(&self.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {}\r\nConnection: close\r\n\r\n",
            self.addr, self.auth
        )?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| anyhow::anyhow!("no HTTP header end"))?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no HTTP status"))?;
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_string()
        };
        Ok((status, body))
    }

    /// The depth of queue `name` in vhost `/`.
    pub fn depth(&self, name: &str) -> anyhow::Result<Depth> {
        let (status, body) = self.get(&format!("/api/queues/%2F/{name}"))?;
        if status != 200 {
            anyhow::bail!("GET /api/queues: {status}");
        }
        let v: serde_json::Value = serde_json::from_str(&body)?;
        Ok(Depth {
            messages: v["messages"].as_u64().unwrap_or(0),
            ram: v["messages_ram"].as_u64(),
            paged_out: v["messages_paged_out"].as_u64(),
        })
    }

    /// Whether a resource alarm is on (publishers blocked).
    pub fn alarm(&self) -> anyhow::Result<bool> {
        let (status, _) = self.get("/api/health/checks/alarms")?;
        Ok(status != 200)
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// VmRSS of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_of_guest() {
        assert_eq!(base64(b"guest:guest"), "Z3Vlc3Q6Z3Vlc3Q=");
        assert_eq!(base64(b"ab"), "YWI=");
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), "abcde");
    }
}
