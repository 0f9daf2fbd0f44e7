//! The admin API's routes and handlers.

use super::auth::{Caller, Tokens, may_reload, may_unblock};
use crate::bindings::{Entity, EntityKind, UnblockError};
use crate::reload::Reloader;
use crate::service::Service;
use crate::view::RestrictionView;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use quench_store::AuditQuery;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// What the handlers share.
struct AdminState {
    service: Arc<Service>,
    tokens: Tokens,
    reloader: Option<Arc<Reloader>>,
}

/// What an operation needs from the caller's role.
#[derive(Clone, Copy, PartialEq)]
enum Need {
    Read,
    Unblock,
    Reload,
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

/// The admin API router over `service`, authenticating with `tokens`.
pub fn router(service: Arc<Service>, tokens: Tokens, reloader: Option<Arc<Reloader>>) -> Router {
    let state = Arc::new(AdminState {
        service,
        tokens,
        reloader,
    });
    Router::new()
        .route("/v1/blocked-senders", get(list_senders))
        .route("/v1/blocked-senders/{address}", get(get_sender))
        .route(
            "/v1/blocked-senders/{address}/unblock",
            post(unblock_sender),
        )
        .route("/v1/blocked-connectors", get(list_connectors))
        .route("/v1/blocked-connectors/{id}", get(get_connector))
        .route(
            "/v1/blocked-connectors/{id}/unblock",
            post(unblock_connector),
        )
        .route("/v1/audit", get(list_audit))
        .route("/v1/policy", get(policy_info))
        .route("/v1/policy/reload", post(reload_policy))
        .with_state(state)
}

/// Authenticate, authorise, run `work` on a blocking thread, audit, answer.
async fn call(
    state: Arc<AdminState>,
    headers: HeaderMap,
    action: &'static str,
    entity: Option<Entity>,
    need: Need,
    work: impl FnOnce(&Service, &Caller, i64) -> Reply + Send + 'static,
) -> Response {
    let now = crate::time::now();
    let entity_key = entity.as_ref().map(Entity::key);
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let caller = match token.and_then(|t| state.tokens.caller(t)) {
        Some(caller) => caller.clone(),
        None => {
            let why = if token.is_some() {
                "unknown token"
            } else {
                "no bearer token"
            };
            return finish(
                &state,
                "anonymous",
                action,
                entity_key,
                now,
                Reply::error(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    format!("{why}: send `Authorization: Bearer <token>`"),
                ),
            )
            .await;
        }
    };
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
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": "the audit log is unavailable" })),
            )
                .into_response();
        }
    }
    (reply.status, Json(reply.body)).into_response()
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
struct UnblockBody {
    reason: Option<String>,
}

fn unblock(service: &Service, caller: &Caller, entity: &Entity, reason: &str, now: i64) -> Reply {
    if reason.trim().is_empty() {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "a reason is required (what was done to secure the account)".into(),
        );
    }
    let answer = service.unblock(entity, caller.role, &caller.name, reason, now);
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

async fn list_senders(State(s): State<Arc<AdminState>>, headers: HeaderMap) -> Response {
    call(
        s,
        headers,
        "list-blocked-senders",
        None,
        Need::Read,
        |svc, _, now| list(svc, EntityKind::User, now),
    )
    .await
}

async fn list_connectors(State(s): State<Arc<AdminState>>, headers: HeaderMap) -> Response {
    call(
        s,
        headers,
        "list-blocked-connectors",
        None,
        Need::Read,
        |svc, _, now| list(svc, EntityKind::Connector, now),
    )
    .await
}

async fn get_sender(
    State(s): State<Arc<AdminState>>,
    Path(address): Path<String>,
    headers: HeaderMap,
) -> Response {
    get_one(s, headers, Entity::user(&address), "get-blocked-sender").await
}

async fn get_connector(
    State(s): State<Arc<AdminState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    get_one(s, headers, Entity::connector(&id), "get-blocked-connector").await
}

async fn get_one(
    s: Arc<AdminState>,
    headers: HeaderMap,
    entity: Entity,
    action: &'static str,
) -> Response {
    let target = entity.clone();
    call(
        s,
        headers,
        action,
        Some(entity),
        Need::Read,
        move |svc, _, now| describe(svc, &target, now),
    )
    .await
}

async fn unblock_sender(
    State(s): State<Arc<AdminState>>,
    Path(address): Path<String>,
    headers: HeaderMap,
    body: Option<Json<UnblockBody>>,
) -> Response {
    unblock_one(s, headers, Entity::user(&address), body).await
}

async fn unblock_connector(
    State(s): State<Arc<AdminState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Option<Json<UnblockBody>>,
) -> Response {
    unblock_one(s, headers, Entity::connector(&id), body).await
}

async fn unblock_one(
    s: Arc<AdminState>,
    headers: HeaderMap,
    entity: Entity,
    body: Option<Json<UnblockBody>>,
) -> Response {
    let reason = body.and_then(|Json(b)| b.reason).unwrap_or_default();
    let target = entity.clone();
    call(
        s,
        headers,
        "unblock",
        Some(entity),
        Need::Unblock,
        move |svc, caller, now| unblock(svc, caller, &target, &reason, now),
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
    headers: HeaderMap,
) -> Response {
    call(
        s,
        headers,
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

async fn policy_info(State(s): State<Arc<AdminState>>, headers: HeaderMap) -> Response {
    call(s, headers, "get-policy", None, Need::Read, |svc, _, _| {
        let policy = svc.policy();
        Reply::ok(
            json!({
                "component_sha256": policy.sandbox.component_hash(),
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
    headers: HeaderMap,
    body: Option<Json<ReloadBody>>,
) -> Response {
    let reset_state = body.map(|Json(b)| b.reset_state).unwrap_or_default();
    let reloader = s.reloader.clone();
    call(s, headers, "reload", None, Need::Reload, move |_, _, _| {
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
