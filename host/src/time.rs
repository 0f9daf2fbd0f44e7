//! Time at the edges: the contract counts seconds since the Unix epoch (UTC); people and JSON
//! read RFC 3339.

use crate::bindings::Timestamp;
use anyhow::{Context, Result};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Now, as a contract timestamp.
pub fn now() -> Timestamp {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Parse an RFC 3339 date-time (`2026-11-23T10:00:00Z`, any offset).
pub fn parse(text: &str) -> Result<Timestamp> {
    Ok(OffsetDateTime::parse(text, &Rfc3339)
        .with_context(|| format!("`{text}` is not an RFC 3339 date-time"))?
        .unix_timestamp())
}

/// Format a timestamp as RFC 3339 in UTC; out-of-range values print as raw seconds.
pub fn format(at: Timestamp) -> String {
    OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| at.to_string())
}
