//! The admin API: restricted users and connectors, unblocking within the unblock limit, and
//! the audit log, over HTTP/JSON on its own (loopback by default) listener. Every call is
//! authenticated with a bearer token, checked against the token's role, and audited, whether
//! it was allowed or not.
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

pub mod auth;
mod routes;

pub use auth::{Caller, TokenConfig, Tokens, hash_token};
pub use routes::router;

use serde::Deserialize;

/// The `[admin]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// `[[admin.tokens]]`: who may call the API, with which role.
    pub tokens: Vec<TokenConfig>,
}
