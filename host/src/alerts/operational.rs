//! Alerts quench raises about itself rather than about a sender: today, the state store going
//! degraded. They go through the same dispatcher, rules and sinks as the policy's alerts (an
//! `[alerts.rules."Store unavailable"]` table turns them off or routes them), so an operator
//! who receives "User restricted" mail also learns that restrictions are being kept in memory.

use crate::bindings::{Alert, Entity, EntityKind, Severity, Timestamp};
use quench_store::Unsaved;

/// The name of the store alert.
pub const STORE_UNAVAILABLE: &str = "Store unavailable";

/// The entity operational alerts name: the pseudo-connector `quench-store` (the contract's
/// alert record needs an entity; no policy-defined connector can take this id, since policy
/// connector ids are the operator's own names and this one is reserved in the docs).
pub const STORE_ENTITY: &str = "quench-store";

/// Whether `alert` is one of quench's own (not about a sender).
pub fn is_operational(alert: &Alert) -> bool {
    alert.name == STORE_UNAVAILABLE && alert.entity.id == STORE_ENTITY
}

/// High: the store stopped taking writes; quench enforces from memory.
pub fn store_unavailable(at: Timestamp, unsaved: &Unsaved) -> Alert {
    Alert {
        name: STORE_UNAVAILABLE.into(),
        severity: Severity::High,
        entity: Entity {
            kind: EntityKind::Connector,
            id: STORE_ENTITY.into(),
        },
        summary: format!(
            "The state store stopped taking writes (disk full, an I/O error, or Redis down). \
             quench keeps enforcing: restricted senders stay refused and counting goes on in \
             memory, and the store is retried with backoff; what is kept in memory is written \
             back once it takes writes again. Held only in memory now: {} states ({} \
             restrictions, {} unblocks), {} audit records. A restart or crash before the store \
             recovers loses them. Free the disk or bring Redis back; see the log for the error.",
            unsaved.states, unsaved.restrictions, unsaved.unblocks, unsaved.audit_records
        ),
        at,
    }
}
