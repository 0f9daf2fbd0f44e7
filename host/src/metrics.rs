//! Prometheus metrics: decisions by verdict, restriction changes, decision latency, policy
//! faults, store errors and availability, protocol errors and open connections. Served as text on
//! `metrics_listen` at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A label set with one `kind` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// What is counted: a verdict, a change, a fault or error kind.
    pub kind: &'static str,
}

/// Every metric quench exports.
pub struct Metrics {
    registry: Registry,
    /// Decisions, by verdict (`accept`, `defer`, `reject`).
    pub decisions: Family<KindLabel, Counter>,
    /// Restriction changes, by change (`started`, `changed`, `lifted`).
    pub restrictions: Family<KindLabel, Counter>,
    /// Seconds per decision, policy call and store write included.
    pub decision_seconds: Histogram,
    /// Policy failures answered with the fail action, by kind (`trap`, `deadline`,
    /// `invalid_output`, `no_instance`, `config`).
    pub policy_faults: Family<KindLabel, Counter>,
    /// Store failures answered with the store's `on_unavailable` action.
    pub store_errors: Counter,
    /// 1 while the state store is unavailable (the last operation on it failed as
    /// unreachable or timed out, or the store is degraded: keeping decisions in memory until
    /// the disk or Redis takes writes again), 0 once it answers again.
    pub store_unavailable: Gauge,
    /// What a degraded store holds only in memory, by kind (`states`, `restrictions`,
    /// `unblocks`, `audit_records`): lost if the process dies now. 0 when healthy.
    pub store_unsaved: Family<KindLabel, Gauge>,
    /// Decisions by the trust boundary's verdict on who sent them (`user`, `relay`,
    /// `connector`, `untrusted`, `skipped`); `untrusted` ones are answered DUNNO, not counted.
    pub submissions: Family<KindLabel, Counter>,
    /// Audit records deleted by the audit retention (`[audit] keep_days`).
    pub audit_pruned: Counter,
    /// NDRs to restricted users, by outcome (`queued`, `sent`, `failed`, `suppressed`,
    /// `dropped`).
    pub ndr: Family<KindLabel, Counter>,
    /// Malformed policy requests (connection closed), by error kind.
    pub protocol_errors: Family<KindLabel, Counter>,
    /// Open policy-service connections.
    pub connections: Gauge,
    /// Retention sweep results since start, by outcome (`examined`, `removed`, `faults`).
    pub retention: Family<KindLabel, Counter>,
    /// Entities with stored state, as counted after the last retention sweep.
    pub entities: Gauge,
    /// Alerts handled since start, by outcome (set from the dispatcher at scrape time).
    pub alerts: Family<KindLabel, Gauge>,
    /// Alert notifications since start, by sink and outcome.
    pub alert_notifications: Family<SinkLabel, Gauge>,
    /// Admin requests refused before an operation ran, by kind (`unauthenticated`,
    /// `malformed`); each is in a sampled audit record, not one of its own.
    pub admin_refused: Family<KindLabel, Counter>,
    /// Sampled audit records written for refused admin requests.
    pub admin_sampled_records: Counter,
    /// Connections closed at once because their listener was at its connection limit, by
    /// listener (`admin`, `metrics`).
    pub http_refused_connections: Family<KindLabel, Counter>,
    /// Policy connections closed because an answer could not be written in time (the client
    /// stopped reading).
    pub write_timeouts: Counter,
}

/// Labels of an alert sink's counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabel {
    /// `log`, `webhook` or `email`.
    pub sink: &'static str,
    /// `delivered`, `failed`, `retried` or `dropped`.
    pub outcome: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("quench");
        let decisions = Family::<KindLabel, Counter>::default();
        registry.register(
            "decisions",
            "Policy decisions by verdict",
            decisions.clone(),
        );
        let restrictions = Family::<KindLabel, Counter>::default();
        registry.register(
            "restrictions",
            "Restriction changes by kind of change",
            restrictions.clone(),
        );
        // 10 µs to about 20 s in powers of two: a sandboxed decision takes microseconds, a
        // durable write milliseconds, a policy stuck at its deadline tens of milliseconds.
        let decision_seconds = Histogram::new(exponential_buckets(1e-5, 2.0, 21));
        registry.register(
            "decision_seconds",
            "Time to decide one request, store write included",
            decision_seconds.clone(),
        );
        let policy_faults = Family::<KindLabel, Counter>::default();
        registry.register(
            "policy_faults",
            "Policy calls that failed and got the fail action, by kind",
            policy_faults.clone(),
        );
        let store_errors = Counter::default();
        registry.register(
            "store_errors",
            "Decisions answered with the store's on_unavailable action because the store failed",
            store_errors.clone(),
        );
        let store_unavailable = Gauge::default();
        registry.register(
            "store_unavailable",
            "1 while the state store is unreachable or timing out, 0 when it answers",
            store_unavailable.clone(),
        );
        let store_unsaved = Family::<KindLabel, Gauge>::default();
        registry.register(
            "store_unsaved",
            "What a degraded store holds only in memory, by kind (lost if the process dies now)",
            store_unsaved.clone(),
        );
        let submissions = Family::<KindLabel, Counter>::default();
        registry.register(
            "submissions",
            "Policy requests by who sent them (user, relay, connector; untrusted and skipped are not counted)",
            submissions.clone(),
        );
        let audit_pruned = Counter::default();
        registry.register(
            "audit_pruned",
            "Audit records deleted by the audit retention ([audit] keep_days)",
            audit_pruned.clone(),
        );
        let ndr = Family::<KindLabel, Counter>::default();
        registry.register(
            "ndr",
            "NDRs to restricted users by outcome (queued, sent, failed, suppressed, dropped)",
            ndr.clone(),
        );
        let protocol_errors = Family::<KindLabel, Counter>::default();
        registry.register(
            "protocol_errors",
            "Malformed policy requests (connection closed), by kind",
            protocol_errors.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "connections",
            "Open policy-service connections",
            connections.clone(),
        );
        let retention = Family::<KindLabel, Counter>::default();
        registry.register(
            "retention",
            "Retention sweep: states examined, removed as idle, kept after a policy fault",
            retention.clone(),
        );
        let entities = Gauge::default();
        registry.register(
            "entities",
            "Entities with stored state, counted after each retention sweep",
            entities.clone(),
        );
        let alerts = Family::<KindLabel, Gauge>::default();
        registry.register(
            "alerts",
            "Alerts since start by outcome (submitted, dropped, disabled, suppressed, notified)",
            alerts.clone(),
        );
        let alert_notifications = Family::<SinkLabel, Gauge>::default();
        registry.register(
            "alert_notifications",
            "Alert notifications since start by sink and outcome",
            alert_notifications.clone(),
        );
        let admin_refused = Family::<KindLabel, Counter>::default();
        registry.register(
            "admin_refused_requests",
            "Admin API requests refused before an operation ran, by kind (unauthenticated, malformed)",
            admin_refused.clone(),
        );
        let admin_sampled_records = Counter::default();
        registry.register(
            "admin_sampled_audit_records",
            "Sampled audit records written for refused admin requests",
            admin_sampled_records.clone(),
        );
        let http_refused_connections = Family::<KindLabel, Counter>::default();
        registry.register(
            "http_refused_connections",
            "HTTP connections closed at once because the listener (kind) was at its connection limit",
            http_refused_connections.clone(),
        );
        let write_timeouts = Counter::default();
        registry.register(
            "policy_write_timeouts",
            "Policy connections closed because the client did not read its answer in time",
            write_timeouts.clone(),
        );
        Metrics {
            registry,
            admin_refused,
            admin_sampled_records,
            http_refused_connections,
            write_timeouts,
            retention,
            entities,
            alerts,
            alert_notifications,
            decisions,
            restrictions,
            decision_seconds,
            policy_faults,
            store_errors,
            store_unavailable,
            store_unsaved,
            submissions,
            audit_pruned,
            ndr,
            protocol_errors,
            connections,
        }
    }
}

impl Metrics {
    /// Count a refused admin request of `kind`.
    pub fn admin_refused(&self, kind: &'static str) {
        Self::count(&self.admin_refused, kind);
    }

    /// Count a connection `listener` closed at its connection limit.
    pub fn http_refused(&self, listener: &'static str) {
        Self::count(&self.http_refused_connections, listener);
    }

    /// Count one of `family` with label `kind`.
    pub fn count(family: &Family<KindLabel, Counter>, kind: &'static str) {
        family.get_or_create(&KindLabel { kind }).inc();
    }

    /// Copy the alert dispatcher's counts into the alert gauges.
    pub fn record_alerts(&self, stats: &crate::alerts::AlertStats) {
        for (kind, value) in [
            ("submitted", stats.submitted),
            ("dropped", stats.dropped),
            ("disabled", stats.disabled),
            ("suppressed", stats.suppressed),
            ("notified", stats.notified),
        ] {
            self.alerts
                .get_or_create(&KindLabel { kind })
                .set(value as i64);
        }
        for (sink, counts) in [
            ("log", &stats.log),
            ("webhook", &stats.webhook),
            ("email", &stats.email),
        ] {
            for (outcome, value) in [
                ("delivered", counts.delivered),
                ("failed", counts.failed),
                ("retried", counts.retries),
                ("dropped", counts.dropped),
            ] {
                self.alert_notifications
                    .get_or_create(&SinkLabel { sink, outcome })
                    .set(value as i64);
            }
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
