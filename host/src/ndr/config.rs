//! The `[ndr]` table: where non-delivery reports to restricted users go, and how many.

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// The `[ndr]` table. Off unless `relay` is set. Changes need a restart.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NdrConfig {
    /// The SMTP relay NDRs are handed to, `smtp://HOST:PORT` (e.g. `smtp://127.0.0.1:25`, the
    /// local Postfix, which delivers to the user's mailbox). `None`: no NDRs are sent, and the
    /// user sees only the one-line SMTP reply.
    pub relay: Option<String>,
    /// At most one NDR per entity per this many seconds. Default 3600 (one an hour, as the
    /// design says): a client retrying a refused message every minute must not fill the
    /// user's inbox, while a user who tries again later still learns why.
    pub per_entity_interval_secs: u64,
    /// NDRs waiting for delivery at most; past it new ones are dropped and counted. Default
    /// 1,000: NDRs are rate-limited per entity, so this only fills when the relay is down.
    pub queue_capacity: usize,
    /// Delivery attempts per NDR before it is given up (logged and counted). Default 5, with
    /// a backoff of 1 s doubling: about half a minute of relay trouble is ridden out.
    pub max_attempts: u32,
    /// Seconds an SMTP conversation with the relay may take. Default 10.
    pub timeout_secs: u64,
    /// The name in the NDR's `Reporting-MTA` and `Message-ID`. Default: the host's name.
    pub reporting_mta: Option<String>,
}

impl Default for NdrConfig {
    fn default() -> Self {
        NdrConfig {
            relay: None,
            per_entity_interval_secs: 3600,
            queue_capacity: 1000,
            max_attempts: 5,
            timeout_secs: 10,
            reporting_mta: None,
        }
    }
}

impl NdrConfig {
    /// The relay's host and port, when NDRs are on. Errors name the key.
    pub fn relay_address(&self) -> Result<Option<(String, u16)>> {
        let Some(relay) = &self.relay else {
            return Ok(None);
        };
        let rest = relay
            .strip_prefix("smtp://")
            .with_context(|| format!("[ndr] relay `{relay}`: must start with smtp://"))?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse::<u16>()
                    .with_context(|| format!("[ndr] relay `{relay}`: bad port"))?,
            ),
            None => (rest, 25),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            bail!("[ndr] relay `{relay}`: no host");
        }
        Ok(Some((host.to_string(), port)))
    }

    /// Check the values (called when the config is loaded).
    pub fn validate(&self) -> Result<()> {
        self.relay_address()?;
        if self.per_entity_interval_secs == 0 || self.queue_capacity == 0 || self.max_attempts == 0
        {
            bail!(
                "[ndr] per_entity_interval_secs, queue_capacity and max_attempts must be at least 1"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_urls_parse_with_and_without_a_port_and_bad_ones_are_refused() {
        let relay = |url: &str| NdrConfig {
            relay: Some(url.into()),
            ..NdrConfig::default()
        };
        assert_eq!(
            relay("smtp://127.0.0.1:2525").relay_address().unwrap(),
            Some(("127.0.0.1".into(), 2525))
        );
        assert_eq!(
            relay("smtp://mail.example").relay_address().unwrap(),
            Some(("mail.example".into(), 25))
        );
        assert_eq!(
            relay("smtp://[::1]:25").relay_address().unwrap(),
            Some(("::1".into(), 25))
        );
        assert!(relay("http://x").relay_address().is_err());
        assert!(relay("smtp://x:port").relay_address().is_err());
        assert_eq!(NdrConfig::default().relay_address().unwrap(), None);
    }
}
