//! The admin API's routes and handlers, behind a guard that authenticates every request
//! before any of it is read, and audits every refused request in bounded form
//! ([`super::sampler`]).

use super::auth::{Caller, may_manage_alerts, may_reload, may_unblock};
use super::sampler::{
    RefusedAudit, RefusedKind, SAMPLED_ACTION, SAMPLED_OUTCOME, SampledRecord, SamplerSettings,
};
use crate::alerts::PolicyChange;
use crate::bindings::{Entity, EntityKind, UnblockError};
use crate::metrics::Metrics;
use crate::reload::{Live, Reloader};
use crate::service::Service;
use crate::view::RestrictionView;
use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use quench_store::AuditQuery;
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What the handlers (the API's and the portal's) share.
pub(super) struct AdminState {
    pub(super) service: Arc<Service>,
    pub(super) live: Arc<Live>,
    reloader: Option<Arc<Reloader>>,
    metrics: Arc<Metrics>,
    sampler: RefusedAudit,
    pub(super) portal: super::portal::PortalState,
}

/// Marks a response whose request was audited in full by its handler; a response without it
/// was refused before an operation ran (a bad path, query or body, no such route), and the
/// guard audits it through the sampler.
#[derive(Clone, Copy)]
struct Audited;

/// What an operation needs from the caller's role.
#[derive(Clone, Copy, PartialEq)]
enum Need {
    Read,
    Unblock,
    Reload,
    ManageAlerts,
}

/// A handler's answer and what to audit about it.
struct Reply {
    status: StatusCode,
    body: Value,
    /// `None`: the operation audited itself (unblocks are audited by the service).
    audit: Option<(&'static str, String)>,
}

impl Reply {
    fn ok(body: Value, detail: impl Into<String>) -> Self {
        Reply {
            status: StatusCode::OK,
            body,
            audit: Some(("ok", detail.into())),
        }
    }

    fn error(status: StatusCode, outcome: &'static str, message: String) -> Self {
        Reply {
            status,
            body: json!({ "error": message }),
            audit: Some((outcome, message)),
        }
    }
}

/// The admin API: its router, and the sampler's background flush.
#[derive(Clone)]
pub struct AdminApi {
    state: Arc<AdminState>,
}

impl AdminApi {
    /// The admin API over `service`, authenticating with the tokens `live` holds (re-read at
    /// every request, so a reload takes effect at once).
    pub fn new(
        service: Arc<Service>,
        live: Arc<Live>,
        reloader: Option<Arc<Reloader>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let tls = live.config().admin.tls_cert.is_some();
        AdminApi {
            state: Arc::new(AdminState {
                service,
                live,
                reloader,
                metrics,
                sampler: RefusedAudit::new(),
                portal: super::portal::PortalState::new(tls),
            }),
        }
    }

    /// The router: every API route behind the guard, and the portal (which authenticates by
    /// session instead, see [`super::portal`]).
    pub fn router(&self) -> Router {
        let state = self.state.clone();
        Router::new()
            .merge(super::portal::router())
            .route("/v1/blocked-senders", list_of(EntityKind::User))
            .route("/v1/blocked-senders/{id}", get_of(EntityKind::User))
            .route(
                "/v1/blocked-senders/{id}/unblock",
                unblock_of(EntityKind::User),
            )
            .route("/v1/blocked-connectors", list_of(EntityKind::Connector))
            .route("/v1/blocked-connectors/{id}", get_of(EntityKind::Connector))
            .route(
                "/v1/blocked-connectors/{id}/unblock",
                unblock_of(EntityKind::Connector),
            )
            .route("/v1/blocked-relays", list_of(EntityKind::Relay))
            .route("/v1/blocked-relays/{id}", get_of(EntityKind::Relay))
            .route(
                "/v1/blocked-relays/{id}/unblock",
                unblock_of(EntityKind::Relay),
            )
            .route("/v1/audit", get(list_audit))
            .route("/v1/policy", get(policy_info))
            .route("/v1/policy/reload", post(reload_policy))
            .route("/v1/alert-policies", get(list_alert_policies))
            .route(
                "/v1/alert-policies/{name}",
                get(get_alert_policy).put(put_alert_policy),
            )
            .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
            .with_state(state)
    }

    /// Write the sampler's pending counts as they fall due (every second), and all of them
    /// when `stop` changes, so a flood's last minute is in the audit log too.
    pub async fn flush_sampled(&self, mut stop: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let all = tokio::select! {
                _ = ticker.tick() => false,
                _ = stop.changed() => true,
            };
            let settings = SamplerSettings::from_config(&self.state.live.config().admin);
            let records = self.state.sampler.due(settings, Instant::now(), all);
            write_sampled(&self.state, records).await;
            if all {
                return;
            }
        }
    }
}

/// Write sampled records (on the blocking pool: they are durable writes).
async fn write_sampled(state: &Arc<AdminState>, records: Vec<SampledRecord>) {
    if records.is_empty() {
        return;
    }
    state
        .metrics
        .admin_sampled_records
        .inc_by(records.len() as u64);
    let writer = state.clone();
    let written = tokio::task::spawn_blocking(move || {
        let now = crate::time::now();
        for record in records {
            writer.service.audit(
                &record.actor,
                SAMPLED_ACTION,
                None,
                SAMPLED_OUTCOME,
                &record.detail,
                now,
            )?;
        }
        anyhow::Ok(())
    })
    .await;
    if !matches!(written, Ok(Ok(()))) {
        tracing::error!(
            ?written,
            "could not write the sampled audit of refused admin requests"
        );
    }
}

/// Count a refused request and audit it through the sampler.
async fn refused(
    state: &Arc<AdminState>,
    client: IpAddr,
    actor: &str,
    kind: RefusedKind,
    method: &str,
    path: &str,
    status: StatusCode,
) {
    state.metrics.admin_refused(match kind {
        RefusedKind::Unauthenticated => "unauthenticated",
        RefusedKind::Malformed => "malformed",
    });
    let settings = SamplerSettings::from_config(&state.live.config().admin);
    let request = super::sampler::Refused {
        client,
        actor,
        kind,
        method,
        path,
        status: status.as_u16(),
    };
    let records = state
        .sampler
        .refused(settings, &request, crate::time::now(), Instant::now());
    write_sampled(state, records).await;
}

/// A failed portal sign-in, counted and audited like a request with an unknown token.
pub(super) async fn refused_sign_in(
    state: &Arc<AdminState>,
    client: IpAddr,
    path: &str,
    status: StatusCode,
) {
    refused(
        state,
        client,
        "anonymous",
        RefusedKind::Unauthenticated,
        "POST",
        path,
        status,
    )
    .await;
}

/// Whether `path` is the portal's (authenticated by session, not by bearer token).
fn is_portal(path: &str) -> bool {
    path == "/" || path == "/favicon.ico" || path == "/portal" || path.starts_with("/portal/")
}

/// Authenticate before anything of the request is read; bound the body's size and time;
/// audit what is refused before an operation runs. Portal pages authenticate by session
/// themselves; their bodies are bounded here the same way.
async fn guard(State(state): State<Arc<AdminState>>, request: Request, next: Next) -> Response {
    if is_portal(request.uri().path()) {
        let admin = state.live.config().admin.clone();
        let (parts, body) = request.into_parts();
        let body = Body::new(http_body_util::Limited::new(
            tower_http::timeout::TimeoutBody::new(
                Duration::from_secs(admin.body_timeout_secs),
                body,
            ),
            admin.max_body_bytes,
        ));
        return next.run(Request::from_parts(parts, body)).await;
    }
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let method = request.method().to_string();
    let path = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_string(),
        |p| p.as_str().to_string(),
    );
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let caller = token.and_then(|t| state.live.tokens().caller(t).cloned());
    let Some(caller) = caller else {
        let why = if token.is_some() {
            "unknown token"
        } else {
            "no bearer token"
        };
        refused(
            &state,
            client,
            "anonymous",
            RefusedKind::Unauthenticated,
            &method,
            &path,
            StatusCode::UNAUTHORIZED,
        )
        .await;
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": format!("{why}: send `Authorization: Bearer <token>`") })),
        )
            .into_response();
    };
    let admin = state.live.config().admin.clone();
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(caller.clone());
    let body = Body::new(http_body_util::Limited::new(
        tower_http::timeout::TimeoutBody::new(Duration::from_secs(admin.body_timeout_secs), body),
        admin.max_body_bytes,
    ));
    let response = next.run(Request::from_parts(parts, body)).await;
    if response.extensions().get::<Audited>().is_none() {
        refused(
            &state,
            client,
            &caller.name,
            RefusedKind::Malformed,
            &method,
            &path,
            response.status(),
        )
        .await;
    }
    response
}

/// Authorise, run `work` on a blocking thread, audit, answer.
async fn call(
    state: Arc<AdminState>,
    caller: Caller,
    action: &'static str,
    entity: Option<Entity>,
    need: Need,
    work: impl FnOnce(&Service, &Caller, i64) -> Reply + Send + 'static,
) -> Response {
    let now = crate::time::now();
    let entity_key = entity.as_ref().map(Entity::key);
    if need == Need::Reload && !may_reload(caller.role) {
        let reply = Reply::error(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "the {} role may not reload the policy (OrganizationManagement may)",
                caller.role
            ),
        );
        return finish(&state, &caller.name, action, entity_key, now, reply).await;
    }
    if need == Need::ManageAlerts && !may_manage_alerts(caller.role) {
        let reply = Reply::error(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "the {} role may not change alert policies (OrganizationManagement or SecurityAdministrator may)",
                caller.role
            ),
        );
        return finish(&state, &caller.name, action, entity_key, now, reply).await;
    }
    if need == Need::Unblock && !may_unblock(caller.role) {
        let reply = Reply::error(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "the {} role may not unblock (OrganizationManagement, SecurityAdministrator or Support may)",
                caller.role
            ),
        );
        return finish(&state, &caller.name, action, entity_key, now, reply).await;
    }
    let worker = state.clone();
    let worker_caller = caller.clone();
    let reply = tokio::task::spawn_blocking(move || work(&worker.service, &worker_caller, now))
        .await
        .unwrap_or_else(|error| {
            Reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "error",
                format!("task failed: {error}"),
            )
        });
    finish(&state, &caller.name, action, entity_key, now, reply).await
}

async fn finish(
    state: &Arc<AdminState>,
    actor: &str,
    action: &'static str,
    entity: Option<String>,
    now: i64,
    reply: Reply,
) -> Response {
    if let Some((outcome, detail)) = reply.audit {
        let state = state.clone();
        let actor = actor.to_string();
        let audited = tokio::task::spawn_blocking(move || {
            state
                .service
                .audit(&actor, action, entity, outcome, &detail, now)
        })
        .await;
        if !matches!(audited, Ok(Ok(_))) {
            // An admin action that cannot be audited is not done quietly.
            tracing::error!(?audited, action, "audit write failed");
            let mut response = (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": "the audit log is unavailable" })),
            )
                .into_response();
            response.extensions_mut().insert(Audited);
            return response;
        }
    }
    let mut response = (reply.status, Json(reply.body)).into_response();
    response.extensions_mut().insert(Audited);
    response
}

fn list(service: &Service, kind: EntityKind, now: i64) -> Reply {
    match service.restrictions(now) {
        Ok(all) => {
            let views: Vec<RestrictionView> = all
                .iter()
                .filter(|r| r.entity.kind == kind)
                .map(RestrictionView::from)
                .collect();
            let count = views.len();
            Reply::ok(json!({ "restrictions": views }), format!("{count} listed"))
        }
        Err(error) => Reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "error",
            format!("{error:#}"),
        ),
    }
}

fn describe(service: &Service, entity: &Entity, now: i64) -> Reply {
    match service.restriction(entity, now) {
        Ok(Some(restriction)) => Reply::ok(
            serde_json::to_value(RestrictionView::from(&restriction)).unwrap_or(Value::Null),
            restriction.evidence.reason.clone(),
        ),
        Ok(None) => Reply::error(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("{} is not restricted", entity.id),
        ),
        Err(error) => Reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "error",
            format!("{error:#}"),
        ),
    }
}

/// The body of an unblock request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnblockBody {
    reason: Option<String>,
    /// `"rest-of-day"` (the default, as in EOP) or `"none"`.
    #[serde(default)]
    grace: GraceChoice,
}

/// The unblock body's `grace`, as the API spells it.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum GraceChoice {
    #[default]
    RestOfDay,
    None,
}

impl From<GraceChoice> for crate::bindings::UnblockGrace {
    fn from(choice: GraceChoice) -> Self {
        match choice {
            GraceChoice::RestOfDay => crate::bindings::UnblockGrace::RestOfDay,
            GraceChoice::None => crate::bindings::UnblockGrace::None,
        }
    }
}

/// An unblock; `reason` may be empty, as Remove-BlockedSenderAddress takes the address alone
/// (the audit record then says that no reason was given).
fn unblock(
    service: &Service,
    caller: &Caller,
    entity: &Entity,
    reason: &str,
    grace: GraceChoice,
    now: i64,
) -> Reply {
    let answer =
        service.unblock_with_grace(entity, caller.role, &caller.name, reason, grace.into(), now);
    let (status, body) = match answer {
        Ok(Ok(granted)) => (
            StatusCode::OK,
            json!({
                "entity": entity.id,
                "unblocked": true,
                "lifted": RestrictionView::from(&granted.lifted),
                "unblocks_used": granted.unblocks_used,
                "unblocks_left": granted.unblocks_left,
                "recommendations": granted.recommendations,
            }),
        ),
        Ok(Err(error)) => {
            let status = match &error {
                UnblockError::NotRestricted => StatusCode::NOT_FOUND,
                UnblockError::RoleNotAllowed(_) => StatusCode::FORBIDDEN,
                UnblockError::InvalidState(_) => StatusCode::INTERNAL_SERVER_ERROR,
                UnblockError::LimitReached(_) | UnblockError::NotUnblockable(_) => {
                    StatusCode::CONFLICT
                }
            };
            let mut body = json!({ "error": crate::simulate::describe_unblock_error(&error) });
            if let UnblockError::LimitReached(limit) = &error {
                body["unblocks_used"] = json!(limit.used);
                body["unblock_limit"] = json!(limit.limit);
                body["next_allowed"] = json!(crate::time::format(limit.next_allowed));
            }
            (status, body)
        }
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "error": format!("{error:#}") }),
        ),
    };
    Reply {
        status,
        body,
        audit: None,
    }
}

/// What the admin API calls each entity kind's collection: the audit actions of its list and
/// get, and how an id from a path becomes an entity (normalised like everywhere else).
struct Collection {
    list_action: &'static str,
    get_action: &'static str,
    entity: fn(&str) -> Entity,
}

fn collection(kind: EntityKind) -> Collection {
    match kind {
        EntityKind::User => Collection {
            list_action: "list-blocked-senders",
            get_action: "get-blocked-sender",
            entity: Entity::user,
        },
        EntityKind::Connector => Collection {
            list_action: "list-blocked-connectors",
            get_action: "get-blocked-connector",
            entity: Entity::connector,
        },
        EntityKind::Relay => Collection {
            list_action: "list-blocked-relays",
            get_action: "get-blocked-relay",
            entity: Entity::relay,
        },
    }
}

/// `GET /v1/blocked-<kind>s`: every restricted entity of `kind`.
fn list_of(kind: EntityKind) -> axum::routing::MethodRouter<Arc<AdminState>> {
    get(
        move |State(s): State<Arc<AdminState>>, Extension(caller): Extension<Caller>| async move {
            let action = collection(kind).list_action;
            call(s, caller, action, None, Need::Read, move |svc, _, now| {
                list(svc, kind, now)
            })
            .await
        },
    )
}

/// `GET /v1/blocked-<kind>s/{id}`: one entity's restriction.
fn get_of(kind: EntityKind) -> axum::routing::MethodRouter<Arc<AdminState>> {
    get(
        move |State(s): State<Arc<AdminState>>,
              Path(id): Path<String>,
              Extension(caller): Extension<Caller>| async move {
            let collection = collection(kind);
            get_one(s, caller, (collection.entity)(&id), collection.get_action).await
        },
    )
}

/// `POST /v1/blocked-<kind>s/{id}/unblock`.
fn unblock_of(kind: EntityKind) -> axum::routing::MethodRouter<Arc<AdminState>> {
    post(
        move |State(s): State<Arc<AdminState>>,
              Path(id): Path<String>,
              Extension(caller): Extension<Caller>,
              body: Result<Json<UnblockBody>, JsonRejection>| async move {
            unblock_one(s, caller, (collection(kind).entity)(&id), body).await
        },
    )
}

/// Longest entity id (an address or a connector id) accepted in a path, in bytes. An email
/// address has at most 254 (RFC 5321's path limit less the brackets); 320 leaves room for
/// odd but real ones. Longer ids are refused as malformed (and sampled) before the operation,
/// so a caller with a token cannot make each audit record carry kilobytes of path.
const MAX_ENTITY_BYTES: usize = 320;

/// The refusal of an over-long entity id (not marked audited: the guard samples it).
fn entity_too_long(entity: &Entity) -> Option<Response> {
    (entity.id.len() > MAX_ENTITY_BYTES).then(|| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({
                "error": format!("the address or id is longer than {MAX_ENTITY_BYTES} bytes")
            })),
        )
            .into_response()
    })
}

async fn get_one(
    s: Arc<AdminState>,
    caller: Caller,
    entity: Entity,
    action: &'static str,
) -> Response {
    if let Some(refused) = entity_too_long(&entity) {
        return refused;
    }
    let target = entity.clone();
    call(
        s,
        caller,
        action,
        Some(entity),
        Need::Read,
        move |svc, _, now| describe(svc, &target, now),
    )
    .await
}

/// A JSON body: `None` when there is none (no JSON content type); unreadable JSON (bad
/// syntax, wrong fields, too large, too slow) is answered with the rejection, which the guard
/// audits through the sampler.
fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<Option<T>, JsonRejection> {
    match body {
        Ok(Json(body)) => Ok(Some(body)),
        Err(JsonRejection::MissingJsonContentType(_)) => Ok(None),
        Err(rejection) => Err(rejection),
    }
}

async fn unblock_one(
    s: Arc<AdminState>,
    caller: Caller,
    entity: Entity,
    body: Result<Json<UnblockBody>, JsonRejection>,
) -> Response {
    if let Some(refused) = entity_too_long(&entity) {
        return refused;
    }
    let (reason, grace) = match json_body(body) {
        Ok(Some(body)) => (body.reason.unwrap_or_default(), body.grace),
        Ok(None) => (String::new(), GraceChoice::default()),
        Err(rejection) => return rejection.into_response(),
    };
    let target = entity.clone();
    call(
        s,
        caller,
        "unblock",
        Some(entity),
        Need::Unblock,
        move |svc, caller, now| unblock(svc, caller, &target, &reason, grace, now),
    )
    .await
}

/// Query string of `/v1/audit`.
#[derive(Debug, Deserialize)]
struct AuditParams {
    since: Option<String>,
    entity: Option<String>,
    action: Option<String>,
    limit: Option<usize>,
}

async fn list_audit(
    State(s): State<Arc<AdminState>>,
    Query(params): Query<AuditParams>,
    Extension(caller): Extension<Caller>,
) -> Response {
    call(
        s,
        caller,
        "list-audit",
        None,
        Need::Read,
        move |svc, _, _| {
            let since = match params.since.as_deref().map(crate::time::parse).transpose() {
                Ok(since) => since,
                Err(error) => {
                    return Reply::error(
                        StatusCode::BAD_REQUEST,
                        "invalid",
                        format!("since: {error:#}"),
                    );
                }
            };
            let query = AuditQuery {
                since,
                entity: params.entity,
                action: params.action,
                limit: Some(params.limit.unwrap_or(1000).min(10_000)),
            };
            match svc.store().audit(&query) {
                Ok(records) => {
                    let count = records.len();
                    let records: Vec<Value> = records
                        .into_iter()
                        .map(|r| {
                            json!({
                                "seq": r.seq,
                                "at": crate::time::format(r.at),
                                "actor": r.actor,
                                "action": r.action,
                                "entity": r.entity,
                                "outcome": r.outcome,
                                "detail": r.detail,
                            })
                        })
                        .collect();
                    Reply::ok(json!({ "records": records }), format!("{count} listed"))
                }
                Err(error) => Reply::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "error",
                    format!("{error:#}"),
                ),
            }
        },
    )
    .await
}

async fn policy_info(
    State(s): State<Arc<AdminState>>,
    Extension(caller): Extension<Caller>,
) -> Response {
    call(s, caller, "get-policy", None, Need::Read, |svc, _, _| {
        let policy = svc.policy();
        Reply::ok(
            json!({
                "component_sha256": policy.sandbox.component_hash(),
                "contract": policy.sandbox.contract_version(),
                "state_format": policy.sandbox.state_format(),
                "connectors": policy.sandbox.connectors().iter().map(|c| &c.id).collect::<Vec<_>>(),
            }),
            policy.sandbox.component_hash(),
        )
    })
    .await
}

/// The body of a reload request.
#[derive(Debug, Default, Deserialize)]
struct ReloadBody {
    #[serde(default)]
    reset_state: bool,
}

async fn reload_policy(
    State(s): State<Arc<AdminState>>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<ReloadBody>, JsonRejection>,
) -> Response {
    let reset_state = match json_body(body) {
        Ok(body) => body.is_some_and(|b| b.reset_state),
        Err(rejection) => return rejection.into_response(),
    };
    let reloader = s.reloader.clone();
    call(s, caller, "reload", None, Need::Reload, move |_, _, _| {
        let Some(reloader) = reloader else {
            return Reply::error(
                StatusCode::NOT_IMPLEMENTED,
                "error",
                "this server cannot reload its policy".into(),
            );
        };
        match reloader.reload(reset_state) {
            Ok(swapped) => {
                let detail = format!(
                    "{} -> {} (state format {}, reset {})",
                    swapped.previous, swapped.current, swapped.state_format, swapped.reset_state
                );
                Reply::ok(
                    serde_json::to_value(&swapped).unwrap_or(Value::Null),
                    detail,
                )
            }
            Err(error) => Reply::error(StatusCode::CONFLICT, "refused", format!("{error:#}")),
        }
    })
    .await
}

async fn list_alert_policies(
    State(s): State<Arc<AdminState>>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let live = s.live.clone();
    call(
        s,
        caller,
        "list-alert-policies",
        None,
        Need::Read,
        move |_, _, _| {
            let config = live.config();
            let policies = live.alerts().current().policies().list(&config.alerts);
            let count = policies.len();
            Reply::ok(json!({ "policies": policies }), format!("{count} listed"))
        },
    )
    .await
}

async fn get_alert_policy(
    State(s): State<Arc<AdminState>>,
    Path(name): Path<String>,
    Extension(caller): Extension<Caller>,
) -> Response {
    if name.len() > MAX_ENTITY_BYTES {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "the alert policy name is too long" })),
        )
            .into_response();
    }
    let live = s.live.clone();
    call(
        s,
        caller,
        "get-alert-policy",
        None,
        Need::Read,
        move |_, _, _| {
            let config = live.config();
            match live
                .alerts()
                .current()
                .policies()
                .get(&config.alerts, &name)
            {
                Some(policy) => Reply::ok(
                    serde_json::to_value(&policy).unwrap_or(Value::Null),
                    policy.id.clone(),
                ),
                None => Reply::error(
                    StatusCode::NOT_FOUND,
                    "not-found",
                    format!("there is no alert policy `{name}`"),
                ),
            }
        },
    )
    .await
}

async fn put_alert_policy(
    State(s): State<Arc<AdminState>>,
    Path(name): Path<String>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<PolicyChange>, JsonRejection>,
) -> Response {
    if name.len() > MAX_ENTITY_BYTES {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "the alert policy name is too long" })),
        )
            .into_response();
    }
    let change = match json_body(body) {
        Ok(change) => change.unwrap_or_default(),
        Err(rejection) => return rejection.into_response(),
    };
    let live = s.live.clone();
    call(
        s,
        caller,
        "change-alert-policy",
        None,
        Need::ManageAlerts,
        move |_, _, _| change_alert_policy(&live, &name, &change),
    )
    .await
}

fn change_alert_policy(live: &Live, name: &str, change: &PolicyChange) -> Reply {
    let config = live.config();
    let policies = live.alerts().current().policies().clone();
    if policies.get(&config.alerts, name).is_none() {
        return Reply::error(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("there is no alert policy `{name}`"),
        );
    }
    match policies.change(&config.alerts, name, change) {
        Ok((view, detail)) => Reply::ok(serde_json::to_value(&view).unwrap_or(Value::Null), detail),
        Err(error) => Reply::error(StatusCode::BAD_REQUEST, "invalid", format!("{error:#}")),
    }
}
