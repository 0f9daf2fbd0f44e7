//! Non-delivery reports to restricted users (issue 13): when quench refuses a restricted
//! user's mail, the user also gets the policy's RFC 3464 NDR in their inbox, as in Exchange
//! Online, where the one-line SMTP reply alone leaves them guessing.
//!
//! - **Never on the decision path.** [`NdrSender::refused`] only checks the per-entity limit and
//!   queues; a worker task renders the NDR with the policy (`render-bounce`) and hands it to
//!   the `[ndr] relay` over SMTP with lettre.
//! - **Bounded.** At most one NDR per entity per `per_entity_interval_secs` (the table of
//!   recent entities is bounded too), a bounded queue, a bounded number of delivery attempts.
//! - **No loops.** Never for a null sender (the refused message was itself a bounce), always
//!   sent with a null envelope sender (`MAIL FROM:<>`), which quench's mapping never counts and
//!   no receiving system answers with another bounce.
//!
//! Outcomes are counted in `quench_ndr_total{outcome=...}`: `queued`, `sent`, `failed` (given
//! up after the attempts, or refused by the relay), `suppressed` (the entity had one within the
//! interval), `dropped` (the queue was full).

pub mod config;

pub use config::NdrConfig;

use crate::bindings::{BounceRequest, Decision, EntityKind, Submission, Timestamp};
use crate::metrics::KindLabel;
use crate::normalize;
use crate::service::Service;
use anyhow::{Context, Result, anyhow};
use lettre::address::Envelope;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

/// Entities remembered for the per-entity limit at most. 100,000 (a few MB): more restricted
/// entities refused within one interval than that is an attack on the table itself; past it,
/// entries older than the interval are forgotten first, and if none is, the NDR is suppressed
/// (a missing NDR costs an explanation, an unbounded table costs the host).
const MAX_TRACKED: usize = 100_000;

/// First wait before a failed delivery is tried again; doubles each attempt.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// One NDR to render and deliver.
struct Job {
    to: Address,
    request: BounceRequest,
}

/// Queues and delivers NDRs; see the module docs.
pub struct NdrSender {
    queue: mpsc::Sender<Job>,
    recent: Mutex<HashMap<String, Timestamp>>,
    interval: i64,
    reporting_mta: String,
    serial: AtomicU64,
    outcomes: Family<KindLabel, Counter>,
}

impl NdrSender {
    /// Start the delivery worker on `runtime` when `[ndr] relay` is set; `None` when NDRs are
    /// off. `outcomes` is the metrics family the outcomes are counted in.
    pub fn start(
        config: &NdrConfig,
        service: Arc<Service>,
        outcomes: Family<KindLabel, Counter>,
        runtime: &Handle,
    ) -> Result<Option<Self>> {
        let Some((host, port)) = config.relay_address()? else {
            return Ok(None);
        };
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
            .port(port)
            .timeout(Some(Duration::from_secs(config.timeout_secs.max(1))))
            .build();
        let (queue, jobs) = mpsc::channel(config.queue_capacity.max(1));
        let worker = Worker {
            transport,
            relay: format!("{host}:{port}"),
            service,
            max_attempts: config.max_attempts.max(1),
            outcomes: outcomes.clone(),
        };
        runtime.spawn(worker.run(jobs));
        Ok(Some(NdrSender {
            queue,
            recent: Mutex::new(HashMap::new()),
            interval: i64::try_from(config.per_entity_interval_secs).unwrap_or(i64::MAX),
            reporting_mta: config.reporting_mta.clone().unwrap_or_else(host_name),
            serial: AtomicU64::new(0),
            outcomes,
        }))
    }

    /// After a decision: queue an NDR when it refused a restricted user's (or relay's) mail,
    /// within the per-entity limit. Returns whether one was queued. Never waits.
    pub fn refused(&self, submission: &Submission, decision: &Decision, now: Timestamp) -> bool {
        let (Some(restriction), Some(reply)) = (&decision.restriction, &decision.verdict.reply)
        else {
            return false;
        };
        if decision.verdict.action != crate::bindings::Action::Reject
            || submission.sender.is_empty()
        {
            return false;
        }
        let to = match submission.entity.kind {
            EntityKind::User => normalize::normalize(&submission.entity.id),
            EntityKind::Relay => normalize::normalize(&submission.sender),
            EntityKind::Connector => return false,
        };
        if !normalize::is_plausible(&to) {
            return false;
        }
        let Ok(address) = to.parse::<Address>() else {
            return false;
        };
        if !self.admit(&submission.entity.key(), now) {
            self.count("suppressed");
            return false;
        }
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let request = BounceRequest {
            reporting_mta: self.reporting_mta.clone(),
            original_sender: to,
            recipients: submission.recipients.clone(),
            original_headers: String::new(),
            reply: reply.clone(),
            restriction: Some(restriction.clone()),
            arrival: now,
            now,
            bounce_id: format!("{now:x}.{serial:x}.{:x}", std::process::id()),
        };
        match self.queue.try_send(Job {
            to: address,
            request,
        }) {
            Ok(()) => {
                self.count("queued");
                true
            }
            Err(_) => {
                self.count("dropped");
                tracing::warn!(entity = %submission.entity.key(), "NDR dropped: the NDR queue is full ([ndr] queue_capacity)");
                false
            }
        }
    }

    /// Whether `key` may get an NDR at `now`; records it if so.
    fn admit(&self, key: &str, now: Timestamp) -> bool {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(last) = recent.get(key)
            && now.saturating_sub(*last) < self.interval
        {
            return false;
        }
        if recent.len() >= MAX_TRACKED && !recent.contains_key(key) {
            let interval = self.interval;
            recent.retain(|_, last| now.saturating_sub(*last) < interval);
            if recent.len() >= MAX_TRACKED {
                return false;
            }
        }
        recent.insert(key.to_string(), now);
        true
    }

    fn count(&self, outcome: &'static str) {
        self.outcomes
            .get_or_create(&KindLabel { kind: outcome })
            .inc();
    }
}

/// The delivery task.
struct Worker {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    relay: String,
    service: Arc<Service>,
    max_attempts: u32,
    outcomes: Family<KindLabel, Counter>,
}

impl Worker {
    async fn run(self, mut jobs: mpsc::Receiver<Job>) {
        while let Some(job) = jobs.recv().await {
            let outcome = match self.deliver(&job).await {
                Ok(()) => {
                    tracing::info!(to = %job.to, relay = %self.relay, "NDR sent");
                    "sent"
                }
                Err(error) => {
                    tracing::warn!(to = %job.to, relay = %self.relay, error = %format!("{error:#}"), "NDR not delivered");
                    "failed"
                }
            };
            self.outcomes
                .get_or_create(&KindLabel { kind: outcome })
                .inc();
        }
    }

    async fn deliver(&self, job: &Job) -> Result<()> {
        let raw = self
            .service
            .policy()
            .sandbox
            .render_bounce(&job.request)
            .map_err(|fault| anyhow!("the policy could not render the NDR: {fault}"))?;
        // The null reverse path: an NDR is never answered with another.
        let envelope =
            Envelope::new(None, vec![job.to.clone()]).context("building the NDR's envelope")?;
        let mut wait = FIRST_RETRY;
        let mut attempt = 1;
        loop {
            match self.transport.send_raw(&envelope, raw.as_bytes()).await {
                Ok(_) => return Ok(()),
                Err(error) if error.is_permanent() || attempt >= self.max_attempts => {
                    return Err(anyhow!(
                        "relay {} (attempt {attempt} of {}): {error}",
                        self.relay,
                        self.max_attempts
                    ));
                }
                Err(error) => {
                    tracing::debug!(%error, attempt, "NDR delivery failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    attempt += 1;
                }
            }
        }
    }
}

/// The host's name for `Reporting-MTA` (Linux: the kernel's host name), else `localhost`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sender without a worker: only the per-entity limit is exercised.
    fn limiter(interval: i64) -> NdrSender {
        let (queue, _jobs) = mpsc::channel(1);
        NdrSender {
            queue,
            recent: Mutex::new(HashMap::new()),
            interval,
            reporting_mta: "mx.test".into(),
            serial: AtomicU64::new(0),
            outcomes: Family::default(),
        }
    }

    /// The per-entity limit under concurrency, against the sequential model: however many
    /// threads ask for the same entities at the same moments, each entity is admitted exactly
    /// once per interval.
    #[test]
    fn concurrent_refusals_admit_one_ndr_per_entity_per_interval() {
        const THREADS: usize = 8;
        const ENTITIES: usize = 500;
        let sender = limiter(3600);
        let admitted: Vec<Vec<(usize, i64)>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..THREADS)
                .map(|t| {
                    let sender = &sender;
                    scope.spawn(move || {
                        let mut mine = Vec::new();
                        // Three rounds: at 0 s, 10 s (inside the interval), 3,600 s (after it).
                        for now in [0, 10, 3600] {
                            for i in 0..ENTITIES {
                                let e = (i + t * 37) % ENTITIES;
                                if sender.admit(&format!("user:u{e}@contoso.com"), now) {
                                    mine.push((e, now));
                                }
                            }
                        }
                        mine
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let mut per_entity: HashMap<usize, Vec<i64>> = HashMap::new();
        for (e, now) in admitted.into_iter().flatten() {
            per_entity.entry(e).or_default().push(now);
        }
        // The sequential model: admitted at 0 and again at 3,600, never at 10.
        assert_eq!(per_entity.len(), ENTITIES);
        for (e, mut times) in per_entity {
            times.sort_unstable();
            assert_eq!(times, [0, 3600], "entity {e}");
        }
    }

    #[test]
    fn the_table_of_recent_entities_is_bounded() {
        let sender = limiter(3600);
        for i in 0..MAX_TRACKED {
            assert!(sender.admit(&format!("user:u{i}"), 0));
        }
        // Full of entries still inside their interval: a newcomer is suppressed, not stored.
        assert!(!sender.admit("user:one-more", 10));
        assert_eq!(sender.recent.lock().unwrap().len(), MAX_TRACKED);
        // Once they are older than the interval, they make room.
        assert!(sender.admit("user:one-more", 3600));
        assert_eq!(sender.recent.lock().unwrap().len(), 1);
    }
}
