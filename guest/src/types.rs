//! The contract's types in plain Rust, mirroring `wit/policy.wit` one to one. The policy logic
//! works on these so it compiles and tests natively; `component.rs` converts them at the
//! sandbox boundary. See the WIT file for the meaning of every field.

/// Seconds since the Unix epoch, UTC.
pub type Timestamp = i64;

/// What kind of sender an entity is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityKind {
    User,
    Connector,
    Relay,
}

/// The thing limits are counted for and restrictions land on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entity {
    pub kind: EntityKind,
    pub id: String,
}

/// One submission (a message, or one recipient of one) to evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    pub entity: Entity,
    pub sender: String,
    pub recipients: Vec<String>,
    pub message_id: Option<String>,
}

/// What the host should do with a submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Accept,
    Defer,
    Reject,
}

/// An SMTP reply: basic code, enhanced status, text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpReply {
    pub code: u16,
    pub status: String,
    pub text: String,
}

/// The answer for one submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub action: Action,
    pub reply: Option<SmtpReply>,
}

/// Why an entity is restricted and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestrictionKind {
    BlockUserForToday,
    BlockUser,
    ServiceDailyLimit,
}

/// The evidence behind a restriction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    pub policy: String,
    pub limit: String,
    pub threshold: u32,
    pub observed: u32,
    pub window_seconds: u32,
    pub at: Timestamp,
    pub last_message_id: Option<String>,
    pub reason: String,
}

/// A restriction record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restriction {
    pub entity: Entity,
    pub kind: RestrictionKind,
    pub evidence: Evidence,
    pub created: Timestamp,
    pub changed: Timestamp,
    pub expires: Option<Timestamp>,
    pub unblocks_used: u32,
    pub unblocks_left: u32,
}

/// How the entity's restriction changed with one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestrictionChange {
    None,
    Started,
    Changed,
    Lifted,
}

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Informational,
    Low,
    Medium,
    High,
}

/// A notification for admins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub name: String,
    pub severity: Severity,
    pub entity: Entity,
    pub summary: String,
    pub at: Timestamp,
}

/// Everything `evaluate` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub state: Vec<u8>,
    pub restriction: Option<Restriction>,
    pub change: RestrictionChange,
    pub alerts: Vec<Alert>,
}

/// The admin roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    GlobalAdministrator,
    OrganizationManagement,
    SecurityAdministrator,
    GlobalReader,
    SecurityReader,
    ViewOnlyOrganizationManagement,
    Support,
}

/// An admin's request to lift a restriction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnblockRequest {
    pub entity: Entity,
    pub role: Role,
    pub admin: String,
    pub reason: String,
    pub grace: UnblockGrace,
}

/// What follows an unblock: the rest-of-day exemption from the outbound policy's limits (EOP's
/// behaviour), or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnblockGrace {
    #[default]
    RestOfDay,
    None,
}

/// A granted unblock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnblockGranted {
    pub state: Vec<u8>,
    pub lifted: Restriction,
    pub unblocks_used: u32,
    pub unblocks_left: u32,
    pub recommendations: Vec<String>,
}

/// Facts about an exhausted unblock limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnblockLimitReached {
    pub used: u32,
    pub limit: u32,
    pub window_seconds: u32,
    pub next_allowed: Timestamp,
}

/// Why an unblock was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnblockError {
    NotRestricted,
    RoleNotAllowed(Role),
    LimitReached(UnblockLimitReached),
    NotUnblockable(String),
    InvalidState(String),
}

/// A problem in the policy configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

/// How the host recognises a connector's traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorSpec {
    pub id: String,
    pub client_addresses: Vec<String>,
    pub certificate_fingerprints: Vec<String>,
}

/// What the host knows about a message it must bounce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BounceRequest {
    pub reporting_mta: String,
    pub original_sender: String,
    pub recipients: Vec<String>,
    pub original_headers: String,
    pub reply: SmtpReply,
    pub restriction: Option<Restriction>,
    pub arrival: Timestamp,
    pub now: Timestamp,
    pub bounce_id: String,
}
