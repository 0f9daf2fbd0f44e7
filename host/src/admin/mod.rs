//! The admin API: restricted users and connectors, unblocking within the unblock limit, and
//! the audit log, over HTTP/JSON on its own (loopback by default) listener. Every call is
//! authenticated with a bearer token before any of it is read, checked against the token's
//! role, and audited, whether it was allowed or not: an authenticated operation in full, one
//! record per call; a refused request (no token, an unknown token, a bad path, query or body)
//! in bounded form, counted and sampled per client address ([`sampler`]). The listener caps
//! its connections and times out slow headers and bodies ([`http`]).
//!
//! | method | path | who |
//! |---|---|---|
//! | GET  | `/v1/blocked-senders` | every role |
//! | GET  | `/v1/blocked-senders/{address}` | every role |
//! | POST | `/v1/blocked-senders/{address}/unblock` `{"reason": "..."}` | OrganizationManagement, SecurityAdministrator, Support |
//! | GET  | `/v1/blocked-connectors` | every role |
//! | GET  | `/v1/blocked-connectors/{id}` | every role |
//! | POST | `/v1/blocked-connectors/{id}/unblock` `{"reason": "..."}` | as for senders |
//! | GET  | `/v1/audit?since=RFC3339&entity=KEY&action=NAME&limit=N` | every role |
//! | GET  | `/v1/policy` | every role |
//! | POST | `/v1/policy/reload` `{"reset_state": false}` | OrganizationManagement |
//! | GET  | `/v1/alert-policies` | every role |
//! | GET  | `/v1/alert-policies/{name}` | every role |
//! | PUT  | `/v1/alert-policies/{name}` `{"enabled": true, "recipients": [...], "daily_limit": null}` | OrganizationManagement, SecurityAdministrator |
//!
//! The same listener serves the web portal under `/portal/` ([`portal`]), over TLS when
//! `tls_cert` and `tls_key` are set.

pub mod auth;
pub mod http;
pub mod portal;
mod routes;
pub mod sampler;

pub use auth::{Caller, TokenConfig, Tokens, hash_token};
pub use http::{HttpLimits, serve_http};
pub use routes::AdminApi;
pub use sampler::RefusedAudit;

use serde::Deserialize;

/// The `[admin]` table. Everything but `max_connections` changes on reload.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// `[[admin.tokens]]`: who may call the API, with which role.
    pub tokens: Vec<TokenConfig>,
    /// Most admin API connections open at once; more are closed as soon as they are accepted
    /// (counted in `quench_http_refused_connections_total`). Default 64: the API serves a few
    /// people, the CLI and scripts, each with a connection or two, while a flood of
    /// connections can hold at most 64 descriptors. Needs a restart (the descriptor budget is
    /// checked at start).
    pub max_connections: usize,
    /// A request's headers must arrive within this many seconds of the connection opening (or
    /// of the previous answer on a kept-alive connection), or the connection is closed.
    /// Default 10: clients send their headers in one go; this only cuts off clients that
    /// hold a connection open without finishing a request.
    pub header_timeout_secs: u64,
    /// A request body must arrive within this many seconds of the handler starting to read
    /// it, or the request is refused (408). Default 10, for the same reason.
    pub body_timeout_secs: u64,
    /// Largest request body accepted, in bytes; larger ones are refused (413) unread.
    /// Default 65536: the largest body the API takes is an unblock reason, a sentence.
    pub max_body_bytes: usize,
    /// Requests refused before they reach an operation (no token, an unknown token, a bad
    /// path, query or body) are counted in a metric and audited in bounded form: at most one
    /// audit record per client address per this many seconds, carrying how many requests it
    /// stands for. Default 60: a minute's resolution is enough to see who probes the API and
    /// when, and a flood costs one small durable write a minute instead of one per request.
    pub anonymous_audit_interval_secs: u64,
    /// Client addresses the sampler tracks at once (IPv6 clients by their /64). Default 256:
    /// more distinct refused clients than that within one interval is a distributed flood;
    /// the table then stops admitting new addresses until an entry is older than the
    /// interval, and folds the rest into one "other clients" entry, so the audit log takes
    /// at most 257 sampled records per interval, whatever the flood.
    pub anonymous_audit_clients: usize,
    /// The request path in a sampled record is cut to this many bytes. Default 256: enough
    /// for every real API path and a recognisable prefix of a hostile one.
    pub anonymous_audit_path_bytes: usize,
    /// PEM certificate chain: serve the admin API and portal over TLS (rustls). Needs
    /// `tls_key` too, and a restart to change. Default: plain HTTP, right for the loopback
    /// listener; set it (or put a reverse proxy in front) when admins reach the portal from
    /// another machine.
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key for `tls_cert` (PKCS#8, PKCS#1 or SEC1). Must not be readable by
    /// group or others.
    pub tls_key: Option<std::path::PathBuf>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            tokens: Vec::new(),
            max_connections: 64,
            header_timeout_secs: 10,
            body_timeout_secs: 10,
            max_body_bytes: 65_536,
            anonymous_audit_interval_secs: 60,
            anonymous_audit_clients: 256,
            anonymous_audit_path_bytes: 256,
            tls_cert: None,
            tls_key: None,
        }
    }
}
