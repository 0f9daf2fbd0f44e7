//! Bounded audit of refused admin requests: no token, an unknown token, or a request refused
//! while its path, query or body was read. Such requests are anonymous noise (scanners,
//! misconfigured scripts, floods); writing one durable audit record for each let 1,100
//! requests with 8 KB paths fill a 40 MB store in 3.5 s. Here every one is counted (in the
//! metrics and in the records), and at most one durable record per client address per
//! interval is written, standing for every request since the client's previous record, with
//! the path cut short.
//!
//! Bounds: the table tracks at most `anonymous_audit_clients` addresses (IPv6 by /64, since
//! one host holds a whole /64); when it is full, the entry that wrote its last record longest
//! ago is evicted once that record is an interval old, and requests from further new
//! addresses are counted under one shared "other clients" entry. Every entry writes at most
//! once per interval, so the audit log takes at most `anonymous_audit_clients + 1` sampled
//! records per interval, and the table's memory is fixed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Why a request was refused before it reached an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedKind {
    /// No bearer token, or a token no `[[admin.tokens]]` entry has.
    Unauthenticated,
    /// A path, query or body that could not be read (or no such route).
    Malformed,
}

/// One refused request.
#[derive(Debug, Clone)]
pub struct Refused<'a> {
    /// The client's address.
    pub client: IpAddr,
    /// `anonymous`, or the token's name for an authenticated request that was malformed.
    pub actor: &'a str,
    /// Why it was refused.
    pub kind: RefusedKind,
    /// The request method.
    pub method: &'a str,
    /// The request path and query, as sent (cut short in the record).
    pub path: &'a str,
    /// The status answered.
    pub status: u16,
}

/// An audit record to write: the sampler's verdict on a request or a flush.
#[derive(Debug, Clone, PartialEq)]
pub struct SampledRecord {
    /// `anonymous`, or the last token name seen from that client.
    pub actor: String,
    /// What the record says: how many requests, from whom, since when, the last one's path.
    pub detail: String,
    /// The number of refused requests the record stands for (at least 1).
    pub requests: u64,
}

/// The audit action of sampled records.
pub const SAMPLED_ACTION: &str = "refused-requests";
/// The audit outcome of sampled records.
pub const SAMPLED_OUTCOME: &str = "sampled";

/// Sampler settings, from `[admin]` (they change on reload).
#[derive(Debug, Clone, Copy)]
pub struct SamplerSettings {
    /// At most one record per client per this long.
    pub interval: Duration,
    /// Client addresses tracked at once.
    pub clients: usize,
    /// Bytes of the path kept in a record.
    pub path_bytes: usize,
}

impl SamplerSettings {
    /// The settings `[admin]` gives.
    pub fn from_config(admin: &super::AdminConfig) -> Self {
        SamplerSettings {
            interval: Duration::from_secs(admin.anonymous_audit_interval_secs),
            clients: admin.anonymous_audit_clients,
            path_bytes: admin.anonymous_audit_path_bytes,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    Addr(IpAddr),
    /// Every client that found the table full.
    Other,
}

#[derive(Debug, Default)]
struct Entry {
    /// When this entry last wrote a record (`None`: never).
    last_record: Option<Instant>,
    unauthenticated: u64,
    malformed: u64,
    /// Unix time of the first request not yet in a record.
    since: i64,
    actor: String,
    last: String,
}

impl Entry {
    fn pending(&self) -> u64 {
        self.unauthenticated + self.malformed
    }

    fn due(&self, now: Instant, interval: Duration) -> bool {
        self.last_record
            .is_none_or(|at| now.saturating_duration_since(at) >= interval)
    }

    fn take(&mut self, client: Client, now: Instant) -> SampledRecord {
        let requests = self.pending();
        let who = match client {
            Client::Addr(addr) => addr.to_string(),
            Client::Other => "other clients (the sampler's table was full)".into(),
        };
        let detail = format!(
            "{requests} refused request(s) from {who} since {}: {} unauthenticated, {} \
             malformed; last: {}",
            crate::time::format(self.since),
            self.unauthenticated,
            self.malformed,
            self.last
        );
        self.last_record = Some(now);
        self.unauthenticated = 0;
        self.malformed = 0;
        SampledRecord {
            actor: self.actor.clone(),
            detail,
            requests,
        }
    }
}

/// The sampler: share one per admin listener.
#[derive(Debug, Default)]
pub struct RefusedAudit {
    table: Mutex<HashMap<Client, Entry>>,
}

impl RefusedAudit {
    /// An empty sampler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Count `request`, refused at Unix time `at` (monotonic `now`); returns the records to
    /// write now: none while the client's last record is younger than the interval, else one
    /// standing for this request and every one since (and, rarely, one for an evicted
    /// client's remaining count).
    pub fn refused(
        &self,
        settings: SamplerSettings,
        request: &Refused<'_>,
        at: i64,
        now: Instant,
    ) -> Vec<SampledRecord> {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let mut records = Vec::new();
        let mut client = Client::Addr(group(request.client));
        if !table.contains_key(&client) && table.len() >= settings.clients.max(1) {
            // Full: evict the entry whose last record is oldest, if an interval old.
            let oldest = table
                .iter()
                .filter(|(key, entry)| **key != Client::Other && entry.due(now, settings.interval))
                .min_by_key(|(_, entry)| entry.last_record)
                .map(|(key, _)| *key);
            match oldest {
                Some(key) => {
                    if let Some(mut evicted) = table.remove(&key)
                        && evicted.pending() > 0
                    {
                        records.push(evicted.take(key, now));
                    }
                }
                None => client = Client::Other,
            }
        }
        let entry = table.entry(client).or_default();
        if entry.pending() == 0 {
            entry.since = at;
        }
        match request.kind {
            RefusedKind::Unauthenticated => entry.unauthenticated += 1,
            RefusedKind::Malformed => entry.malformed += 1,
        }
        entry.actor = request.actor.to_string();
        entry.last = format!(
            "{} {} -> {}",
            request.method,
            truncate(request.path, settings.path_bytes),
            request.status
        );
        if entry.due(now, settings.interval) {
            records.push(entry.take(client, now));
        }
        records
    }

    /// Records for the counts still pending: of every client whose last record is at least
    /// an interval old (or of every client, with `all`, at shutdown). Forgets clients with
    /// nothing pending and no record within the interval, freeing their slots.
    pub fn due(&self, settings: SamplerSettings, now: Instant, all: bool) -> Vec<SampledRecord> {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let mut records = Vec::new();
        table.retain(|client, entry| {
            let due = entry.due(now, settings.interval);
            if entry.pending() > 0 && (due || all) {
                records.push(entry.take(*client, now));
                return true;
            }
            !(due && entry.pending() == 0)
        });
        records
    }

    /// Clients tracked now.
    pub fn clients(&self) -> usize {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// IPv4 addresses as they are (IPv4-mapped IPv6 too), IPv6 by their /64.
fn group(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

/// `text` cut to at most `max` bytes (at a character boundary), saying how much was cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &text[..end], text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SamplerSettings {
        SamplerSettings {
            interval: Duration::from_secs(60),
            clients: 2,
            path_bytes: 8,
        }
    }

    fn request(client: &str) -> Refused<'static> {
        Refused {
            client: client.parse().unwrap(),
            actor: "anonymous",
            kind: RefusedKind::Unauthenticated,
            method: "GET",
            path: "/v1/blocked-senders/aaaaaaaaaaaaaaaa",
            status: 401,
        }
    }

    #[test]
    fn one_record_per_client_per_interval_with_the_count() {
        let sampler = RefusedAudit::new();
        let start = Instant::now();
        let first = sampler.refused(settings(), &request("192.0.2.1"), 0, start);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].requests, 1);
        assert!(
            first[0].detail.contains("/v1/bloc... (36 bytes)"),
            "{first:?}"
        );
        for i in 1..1000 {
            let at = start + Duration::from_millis(i);
            assert!(
                sampler
                    .refused(settings(), &request("192.0.2.1"), 0, at)
                    .is_empty()
            );
        }
        // Not yet due; then due, with the 999 suppressed.
        assert!(
            sampler
                .due(settings(), start + Duration::from_secs(30), false)
                .is_empty()
        );
        let flushed = sampler.due(settings(), start + Duration::from_secs(60), false);
        assert_eq!(flushed.len(), 1);
        assert_eq!(flushed[0].requests, 999);
        // Nothing pending and idle an interval: forgotten.
        assert!(
            sampler
                .due(settings(), start + Duration::from_secs(121), false)
                .is_empty()
        );
        assert_eq!(sampler.clients(), 0);
    }

    #[test]
    fn the_table_is_bounded_and_overflow_is_counted_together() {
        let sampler = RefusedAudit::new();
        let now = Instant::now();
        let mut records = 0;
        let mut requests = 0;
        for i in 0..100 {
            let client = format!("192.0.2.{i}");
            for record in sampler.refused(settings(), &request(&client), 0, now) {
                records += 1;
                requests += record.requests;
            }
        }
        assert_eq!(sampler.clients(), 3, "two clients and the shared entry");
        assert_eq!(records, 3, "one record per entry per interval");
        for record in sampler.due(settings(), now, true) {
            requests += record.requests;
        }
        assert_eq!(requests, 100, "every request is counted in some record");
    }

    #[test]
    fn ipv6_clients_are_grouped_by_their_64() {
        assert_eq!(
            group("2001:db8:1:2:aaaa::1".parse().unwrap()),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            group("::ffff:192.0.2.7".parse().unwrap()),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
    }
}
