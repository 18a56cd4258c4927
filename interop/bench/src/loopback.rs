//! The benches load brokers on this machine only: a `--uri` whose host is not a loopback
//! address or `localhost` is refused.

use std::net::IpAddr;

use anyhow::{anyhow, bail};
use lapin::uri::AMQPUri;

/// The parsed URI and its host (brackets of an IPv6 address removed), if loopback;
/// `tool` names the bench in the refusal.
pub fn loopback_uri(uri: &str, tool: &str) -> anyhow::Result<(AMQPUri, String)> {
    let parsed: AMQPUri = uri.parse().map_err(|e: String| anyhow!("bad --uri: {e}"))?;
    let host = parsed
        .authority
        .host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!("--uri host {host} is not loopback: {tool} only loads brokers on this machine");
    }
    Ok((parsed, host))
}
