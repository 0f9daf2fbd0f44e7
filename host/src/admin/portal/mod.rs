//! The admin portal: the Restricted entities page an EOP admin expects, served by the admin
//! listener under `/portal/` (and `/`, which leads there), beside the JSON API.
//!
//! - [`session`]: sign-in with an admin token exchanged for a session cookie, expiry,
//!   sign-out.
//! - [`csrf`]: the CSRF token every POST carries.
//! - [`pages`]: the HTML (maud templates).
//! - `static/`: the stylesheet and the small script, compiled into the binary.
//!
//! The portal calls the same [`Service`](crate::service::Service) functions as the API
//! (restrictions, restriction, unblock, audit) and the same alert policies; the role checks
//! are the API's ([`crate::admin::auth`]). Failed sign-ins go through the API's bounded audit
//! of refused requests.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET  | `/portal/sign-in`, POST the same | sign in |
//! | POST | `/portal/sign-out` | sign out |
//! | GET  | `/portal/restricted?kind=user&q=&sort=&dir=&entity=` | the list, with a flyout |
//! | GET  | `/portal/unblock?kind=&entity=&step=1\|2` | the unblock steps |
//! | POST | `/portal/unblock/confirm`, `/portal/unblock` | "Are you sure?", then the unblock |
//! | GET  | `/portal/alerts`, POST the same | alert policies |
//! | GET  | `/portal/audit?entity=&action=&since=&until=&page=` | the audit log |

// The helpers answer `Result<_, Response>`: the error is the page to send back at once (a
// redirect, a refusal), taken once per request, so its size does not matter.
#![allow(clippy::result_large_err)]

pub mod csrf;
pub mod pages;
pub mod session;

use super::auth::{Caller, may_manage_alerts, may_unblock};
use super::routes::{AdminState, refused_sign_in};
use crate::alerts::PolicyChange;
use crate::bindings::{Entity, EntityKind, Role, UnblockError};
use crate::view::RestrictionView;
use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::Markup;
use pages::Frame;
use quench_store::AuditQuery;
use serde::Deserialize;
use session::{COOKIE, PRE_COOKIE, SESSION_LIFETIME, Session, Sessions};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// What the portal keeps: the sessions, and whether it is served over TLS (Secure cookies).
#[derive(Debug, Default)]
pub struct PortalState {
    sessions: Sessions,
    tls: bool,
}

impl PortalState {
    /// Portal state; `tls` marks cookies Secure.
    pub fn new(tls: bool) -> Self {
        PortalState {
            sessions: Sessions::default(),
            tls,
        }
    }
}

const CSS: &str = include_str!("static/app.css");
const JS: &str = include_str!("static/app.js");

/// The portal's routes (served without the API's bearer guard: they authenticate by session).
pub(super) fn router() -> Router<Arc<AdminState>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/portal/restricted") }))
        .route(
            "/portal",
            get(|| async { Redirect::to("/portal/restricted") }),
        )
        // Browsers ask for it on every page; answered empty rather than as a refused API call.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route(
            "/portal/",
            get(|| async { Redirect::to("/portal/restricted") }),
        )
        .route(
            "/portal/static/app.css",
            get(|| async { asset(CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/portal/static/app.js",
            get(|| async { asset(JS, "text/javascript; charset=utf-8") }),
        )
        .route("/portal/sign-in", get(sign_in_page).post(sign_in))
        .route("/portal/sign-out", post(sign_out))
        .route("/portal/restricted", get(restricted))
        .route("/portal/unblock", get(unblock_steps).post(unblock))
        .route("/portal/unblock/confirm", post(unblock_confirm))
        .route("/portal/alerts", get(alerts_page).post(alerts_save))
        .route("/portal/audit", get(audit_page))
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// An HTML page with the portal's security headers.
fn html(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn with_cookie(mut response: Response, cookie: String) -> Response {
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The signed-in caller, or the redirect to the sign-in page.
struct Signed {
    caller: Caller,
    session: Session,
}

impl Signed {
    fn frame(&self, current: &'static str) -> Frame<'_> {
        Frame {
            name: &self.caller.name,
            role: self.caller.role.to_string(),
            csrf: &self.session.csrf,
            current,
        }
    }
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| session::cookie(v, COOKIE).map(str::to_string))
}

fn signed(state: &AdminState, headers: &HeaderMap) -> Result<Signed, Response> {
    let id = session_id(headers);
    match id.and_then(|id| state.portal.sessions.resolve(&id, &state.live.tokens())) {
        Some((caller, session)) => Ok(Signed { caller, session }),
        None => Err(Redirect::to("/portal/sign-in").into_response()),
    }
}

/// The form's CSRF token must match the session's; a mismatch is refused (403) and audited.
async fn check_csrf(
    state: &Arc<AdminState>,
    who: &Signed,
    presented: &str,
    action: &'static str,
) -> Result<(), Response> {
    if csrf::matches(&who.session.csrf, presented) {
        return Ok(());
    }
    audit(
        state,
        &who.caller.name,
        action,
        None,
        "forbidden",
        "portal: the form's CSRF token did not match the session".into(),
    )
    .await;
    Err(html(
        StatusCode::FORBIDDEN,
        pages::problem(
            &who.frame("restricted"),
            "Request refused",
            "This form has expired or did not come from this portal (its security token does not \
             match your session). Reload the page and try again.",
        ),
    ))
}

/// Append an audit record on the blocking pool; a failure is logged.
async fn audit(
    state: &Arc<AdminState>,
    actor: &str,
    action: &'static str,
    entity: Option<String>,
    outcome: &'static str,
    detail: String,
) {
    let writer = state.clone();
    let actor = actor.to_string();
    let written = tokio::task::spawn_blocking(move || {
        writer
            .service
            .audit(&actor, action, entity, outcome, &detail, crate::time::now())
    })
    .await;
    if !matches!(written, Ok(Ok(_))) {
        tracing::error!(?written, action, "portal audit write failed");
    }
}

/// Run blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
    state: &Arc<AdminState>,
    work: impl FnOnce(&AdminState) -> T + Send + 'static,
) -> Option<T> {
    let worker = state.clone();
    tokio::task::spawn_blocking(move || work(&worker))
        .await
        .ok()
}

fn entity_for(kind: &str, id: &str) -> Option<Entity> {
    let id = id.trim();
    if id.is_empty() || id.len() > 320 {
        return None;
    }
    match kind {
        "user" => Some(Entity::user(id)),
        "connector" => Some(Entity::connector(id)),
        "relay" => Some(Entity::relay(id)),
        _ => None,
    }
}

fn kind_of(kind: &str) -> EntityKind {
    match kind {
        "connector" => EntityKind::Connector,
        "relay" => EntityKind::Relay,
        _ => EntityKind::User,
    }
}

// ---- sign-in and sign-out ----

#[derive(Debug, Default, Deserialize)]
struct SignInQuery {
    #[serde(default)]
    signed_out: Option<String>,
}

async fn sign_in_page(
    State(state): State<Arc<AdminState>>,
    Query(query): Query<SignInQuery>,
) -> Response {
    let pre = csrf::random_token();
    let notice = query.signed_out.is_some().then_some("You are signed out.");
    with_cookie(
        html(StatusCode::OK, pages::sign_in(&pre, None, notice)),
        session::set_cookie(
            PRE_COOKIE,
            &pre,
            Duration::from_secs(3600),
            state.portal.tls,
        ),
    )
}

#[derive(Debug, Deserialize)]
struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
}

async fn sign_in(
    State(state): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Response {
    let client = peer.ip();
    let form = form.ok().map(|f| f.0);
    let pre = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| session::cookie(v, PRE_COOKIE).map(str::to_string))
        .unwrap_or_default();
    let again = |status: StatusCode, error: &str| {
        let fresh = csrf::random_token();
        with_cookie(
            html(status, pages::sign_in(&fresh, Some(error), None)),
            session::set_cookie(
                PRE_COOKIE,
                &fresh,
                Duration::from_secs(3600),
                state.portal.tls,
            ),
        )
    };
    let Some(form) = form else {
        return again(
            StatusCode::BAD_REQUEST,
            "The sign-in form was incomplete. Try again.",
        );
    };
    if !csrf::matches(&pre, &form.csrf) {
        refused_sign_in(
            &state,
            client,
            "/portal/sign-in (csrf)",
            StatusCode::FORBIDDEN,
        )
        .await;
        return again(
            StatusCode::FORBIDDEN,
            "The sign-in form expired or did not come from this portal. Try again.",
        );
    }
    let token = form.token.trim();
    let hash = crate::admin::hash_token(token);
    if token.is_empty() || state.live.tokens().caller_by_hash(&hash).is_none() {
        refused_sign_in(&state, client, "/portal/sign-in", StatusCode::UNAUTHORIZED).await;
        return again(
            StatusCode::UNAUTHORIZED,
            "That token is not recognised. Check it and try again.",
        );
    }
    let caller = state
        .live
        .tokens()
        .caller_by_hash(&hash)
        .cloned()
        .expect("checked above");
    let id = state.portal.sessions.start(hash);
    audit(
        &state,
        &caller.name,
        "portal-sign-in",
        None,
        "ok",
        format!("portal session from {client}"),
    )
    .await;
    let response = Redirect::to("/portal/restricted").into_response();
    let response = with_cookie(
        response,
        session::set_cookie(COOKIE, &id, SESSION_LIFETIME, state.portal.tls),
    );
    with_cookie(
        response,
        session::set_cookie(PRE_COOKIE, "", Duration::ZERO, state.portal.tls),
    )
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let who = match signed(&state, &headers) {
        Ok(who) => who,
        Err(redirect) => return redirect,
    };
    let presented = form.map(|f| f.0.csrf).unwrap_or_default();
    if let Err(refused) = check_csrf(&state, &who, &presented, "portal-sign-out").await {
        return refused;
    }
    if let Some(id) = session_id(&headers) {
        state.portal.sessions.end(&id);
    }
    audit(
        &state,
        &who.caller.name,
        "portal-sign-out",
        None,
        "ok",
        "portal session ended".into(),
    )
    .await;
    with_cookie(
        Redirect::to("/portal/sign-in?signed_out=1").into_response(),
        session::set_cookie(COOKIE, "", Duration::ZERO, state.portal.tls),
    )
}

// ---- restricted entities ----

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    kind: Option<String>,
    q: Option<String>,
    sort: Option<String>,
    dir: Option<String>,
    entity: Option<String>,
}

fn sort_rows(rows: &mut [RestrictionView], sort: &str, desc: bool) {
    rows.sort_by(|a, b| {
        let order = match sort {
            "restriction" => a.restriction.cmp(b.restriction),
            "limit" => a.limit.cmp(&b.limit),
            "created" => a.created.cmp(&b.created),
            "expires" => a.expires.cmp(&b.expires),
            "unblocks" => a.unblocks_used.cmp(&b.unblocks_used),
            _ => a.entity.cmp(&b.entity),
        };
        if desc { order.reverse() } else { order }
    });
}

async fn restricted(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    let who = match signed(&state, &headers) {
        Ok(who) => who,
        Err(redirect) => return redirect,
    };
    let kind = match query.kind.as_deref() {
        Some(k @ ("user" | "connector" | "relay")) => k.to_string(),
        _ => "user".to_string(),
    };
    let search = query.q.unwrap_or_default();
    let sort = query
        .sort
        .as_deref()
        .filter(|s| {
            [
                "entity",
                "restriction",
                "limit",
                "created",
                "expires",
                "unblocks",
            ]
            .contains(s)
        })
        .unwrap_or("created")
        .to_string();
    let desc = query
        .dir
        .as_deref()
        .map_or(sort == "created", |d| d == "desc");
    let now = crate::time::now();
    let open = query.entity.clone();
    let kind_for_work = kind.clone();
    let role = who.caller.role;
    let listed = blocking(&state, move |s| {
        let all = s.service.restrictions(now)?;
        let detail = match open
            .as_deref()
            .and_then(|id| entity_for(&kind_for_work, id))
        {
            Some(entity) => {
                let restriction = s.service.restriction(&entity, now)?;
                // Past the unblock limit, ask the policy (changing nothing) when the next
                // unblock is allowed, so the flyout can say so before any step is taken.
                let limit = match &restriction {
                    Some(r) if r.unblocks_left == 0 && may_unblock(role) => {
                        match s.service.unblock_preview(&entity, role, now)? {
                            Err(UnblockError::LimitReached(limit)) => Some((
                                limit.used,
                                limit.limit,
                                crate::time::format(limit.next_allowed),
                            )),
                            _ => None,
                        }
                    }
                    _ => None,
                };
                let timeline = s.service.store().audit(&AuditQuery {
                    entity: Some(entity.key()),
                    limit: Some(200),
                    ..AuditQuery::default()
                })?;
                Some((entity, restriction, timeline, limit))
            }
            None => None,
        };
        anyhow::Ok((all, detail))
    })
    .await;
    let (all, detail) = match listed {
        Some(Ok(listed)) => listed,
        Some(Err(error)) => {
            return html(
                StatusCode::SERVICE_UNAVAILABLE,
                pages::problem(
                    &who.frame("restricted"),
                    "Restricted entities",
                    &format!("The state store did not answer: {error:#}"),
                ),
            );
        }
        None => {
            return html(
                StatusCode::INTERNAL_SERVER_ERROR,
                pages::problem(
                    &who.frame("restricted"),
                    "Restricted entities",
                    "The listing failed. Try again.",
                ),
            );
        }
    };
    let mut counts = [0usize; 3];
    for r in &all {
        let i = match r.entity.kind {
            EntityKind::User => 0,
            EntityKind::Connector => 1,
            EntityKind::Relay => 2,
        };
        counts[i] += 1;
    }
    let wanted = kind_of(&kind);
    let needle = search.trim().to_lowercase();
    let mut rows: Vec<RestrictionView> = all
        .iter()
        .filter(|r| r.entity.kind == wanted)
        .map(RestrictionView::from)
        .filter(|v| {
            needle.is_empty()
                || format!("{} {} {} {}", v.entity, v.restriction, v.limit, v.policy)
                    .to_lowercase()
                    .contains(&needle)
        })
        .collect();
    sort_rows(&mut rows, &sort, desc);
    let close = format!(
        "/portal/restricted?kind={kind}&q={}&sort={sort}&dir={}",
        pages::encode(&search),
        if desc { "desc" } else { "asc" }
    );
    let list_action = match wanted {
        EntityKind::User => "list-blocked-senders",
        EntityKind::Connector => "list-blocked-connectors",
        EntityKind::Relay => "list-blocked-relays",
    };
    audit(
        &state,
        &who.caller.name,
        list_action,
        None,
        "ok",
        format!("portal: {} listed", rows.len()),
    )
    .await;
    let mut status = StatusCode::OK;
    let flyout = match detail {
        Some((entity, Some(restriction), timeline, limit)) => {
            let view = RestrictionView::from(&restriction);
            let timeline: Vec<pages::TimelineEntry> = timeline
                .iter()
                .filter(|r| !r.action.starts_with("get-") && !r.action.starts_with("list-"))
                .map(|r| pages::TimelineEntry {
                    at: crate::time::format(r.at),
                    what: timeline_words(r),
                })
                .collect();
            audit(
                &state,
                &who.caller.name,
                "get-blocked-sender",
                Some(entity.key()),
                "ok",
                format!("portal: {}", view.reason),
            )
            .await;
            Some(pages::flyout(&pages::Details {
                view: &view,
                timeline: &timeline,
                may_unblock: may_unblock(who.caller.role),
                support: who.caller.role == Role::Support,
                limit,
                close: &close,
            }))
        }
        Some((entity, None, _, _)) => {
            status = StatusCode::NOT_FOUND;
            Some(maud::html! {
                aside.flyout #flyout role="dialog" aria-labelledby="flyout-title" {
                    div.flyout-head {
                        h2 #flyout-title { (entity.id) }
                        a.close #close-flyout href=(close) aria-label="Close details" { "✕" }
                    }
                    p #error role="alert" { (entity.id) " is not restricted (any more)." }
                }
            })
        }
        None => None,
    };
    let page = pages::ListPage {
        kind: &kind,
        query: &search,
        sort: &sort,
        desc,
        rows: &rows,
        counts,
        flyout,
    };
    html(status, pages::list(&who.frame("restricted"), &page))
}

/// One audit record as a timeline line.
fn timeline_words(r: &quench_store::AuditRecord) -> String {
    match (r.action.as_str(), r.outcome.as_str()) {
        ("restrict", _) => "Restricted by the policy.".to_string(),
        ("unblock", "ok") => {
            // "reason: ...; lifted <Reason string>; unblocks used N, left M": the reason and
            // the counts say it; the Reason string is in the flyout already.
            let reason = r.detail.split("; lifted ").next().unwrap_or(&r.detail);
            let counts = r.detail.rsplit("; ").next().unwrap_or("");
            format!("Unblocked by {} ({reason}; {counts}).", r.actor)
        }
        ("unblock", outcome) => format!("Unblock by {} refused ({outcome}): {}", r.actor, r.detail),
        (action, outcome) => format!("{action} by {} ({outcome}): {}", r.actor, r.detail),
    }
}

// ---- the unblock flow ----

#[derive(Debug, Default, Deserialize)]
struct UnblockQuery {
    kind: Option<String>,
    entity: Option<String>,
    step: Option<String>,
}

/// The restriction of `kind`/`id`, or the page saying why there is none.
async fn target(
    state: &Arc<AdminState>,
    who: &Signed,
    kind: &str,
    id: &str,
) -> Result<(Entity, RestrictionView), Response> {
    let Some(entity) = entity_for(kind, id) else {
        return Err(html(
            StatusCode::BAD_REQUEST,
            pages::problem(
                &who.frame("restricted"),
                "Unblock",
                "No such entity: choose one from the list.",
            ),
        ));
    };
    let now = crate::time::now();
    let lookup = entity.clone();
    match blocking(state, move |s| s.service.restriction(&lookup, now)).await {
        Some(Ok(Some(restriction))) => Ok((entity, RestrictionView::from(&restriction))),
        Some(Ok(None)) => Err(html(
            StatusCode::NOT_FOUND,
            pages::problem(
                &who.frame("restricted"),
                "Unblock",
                &format!("{} is not restricted (any more).", entity.id),
            ),
        )),
        Some(Err(error)) => Err(html(
            StatusCode::SERVICE_UNAVAILABLE,
            pages::problem(
                &who.frame("restricted"),
                "Unblock",
                &format!("The state store did not answer: {error:#}"),
            ),
        )),
        None => Err(html(
            StatusCode::INTERNAL_SERVER_ERROR,
            pages::problem(
                &who.frame("restricted"),
                "Unblock",
                "The lookup failed. Try again.",
            ),
        )),
    }
}

/// Read-only roles are refused here too, not only by the missing button.
async fn may_unblock_or_refuse(
    state: &Arc<AdminState>,
    who: &Signed,
    entity: Option<String>,
) -> Result<(), Response> {
    if may_unblock(who.caller.role) {
        return Ok(());
    }
    audit(
        state,
        &who.caller.name,
        "unblock",
        entity,
        "forbidden",
        format!("portal: the {} role may not unblock", who.caller.role),
    )
    .await;
    Err(html(
        StatusCode::FORBIDDEN,
        pages::problem(
            &who.frame("restricted"),
            "Unblock refused",
            &format!(
                "Your role ({}) may read restrictions but not unblock them. OrganizationManagement, \
                 SecurityAdministrator or Support may.",
                who.caller.role
            ),
        ),
    ))
}

async fn unblock_steps(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Query(query): Query<UnblockQuery>,
) -> Response {
    let who = match signed(&state, &headers) {
        Ok(who) => who,
        Err(redirect) => return redirect,
    };
    let kind = query.kind.unwrap_or_default();
    let id = query.entity.unwrap_or_default();
    if let Err(refused) =
        may_unblock_or_refuse(&state, &who, entity_for(&kind, &id).map(|e| e.key())).await
    {
        return refused;
    }
    let (_, view) = match target(&state, &who, &kind, &id).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let frame = who.frame("restricted");
    match query.step.as_deref() {
        Some("2") => html(StatusCode::OK, pages::unblock_step2(&frame, &view)),
        _ => html(StatusCode::OK, pages::unblock_step1(&frame, &view)),
    }
}

#[derive(Debug, Default, Deserialize)]
struct UnblockForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    entity: String,
    #[serde(default)]
    reason: String,
    /// `rest-of-day` (default) or `none`.
    #[serde(default)]
    grace: String,
    #[serde(default)]
    confirm: String,
}

/// The grace the form chose: anything but `none` is the default, the rest of the day.
fn grace_of(form: &UnblockForm) -> (crate::bindings::UnblockGrace, &'static str) {
    if form.grace == "none" {
        (crate::bindings::UnblockGrace::None, "none")
    } else {
        (crate::bindings::UnblockGrace::RestOfDay, "rest-of-day")
    }
}

async fn unblock_confirm(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    form: Result<Form<UnblockForm>, FormRejection>,
) -> Response {
    let who = match signed(&state, &headers) {
        Ok(who) => who,
        Err(redirect) => return redirect,
    };
    let form = form.ok().map(|f| f.0).unwrap_or_default();
    if let Err(refused) = check_csrf(&state, &who, &form.csrf, "unblock").await {
        return refused;
    }
    if let Err(refused) = may_unblock_or_refuse(
        &state,
        &who,
        entity_for(&form.kind, &form.entity).map(|e| e.key()),
    )
    .await
    {
        return refused;
    }
    let (_, view) = match target(&state, &who, &form.kind, &form.entity).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let reason: String = form.reason.trim().chars().take(1000).collect();
    html(
        StatusCode::OK,
        pages::unblock_confirm(&who.frame("restricted"), &view, &reason, grace_of(&form).1),
    )
}

async fn unblock(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    form: Result<Form<UnblockForm>, FormRejection>,
) -> Response {
    let who = match signed(&state, &headers) {
        Ok(who) => who,
        Err(redirect) => return redirect,
    };
    let form = form.ok().map(|f| f.0).unwrap_or_default();
    if let Err(refused) = check_csrf(&state, &who, &form.csrf, "unblock").await {
        return refused;
    }
    let Some(entity) = entity_for(&form.kind, &form.entity) else {
        return html(
            StatusCode::BAD_REQUEST,
            pages::problem(
                &who.frame("restricted"),
                "Unblock",
                "No such entity: choose one from the list.",
            ),
        );
    };
    if let Err(refused) = may_unblock_or_refuse(&state, &who, Some(entity.key())).await {
        return refused;
    }
    if form.confirm != "yes" {
        return Redirect::to(&format!(
            "/portal/restricted?kind={}&entity={}",
            form.kind,
            pages::encode(&entity.id)
        ))
        .into_response();
    }
    // An empty reason stays empty: the audit record then says "no reason given".
    let reason: String = form.reason.trim().chars().take(1000).collect();
    let grace = grace_of(&form).0;
    let caller = who.caller.clone();
    let target = entity.clone();
    let now = crate::time::now();
    let answer = blocking(&state, move |s| {
        s.service
            .unblock_with_grace(&target, caller.role, &caller.name, &reason, grace, now)
    })
    .await;
    let frame = who.frame("restricted");
    match answer {
        Some(Ok(Ok(granted))) => {
            let lifted = RestrictionView::from(&granted.lifted);
            html(
                StatusCode::OK,
                pages::unblock_done(
                    &frame,
                    &pages::UnblockResult {
                        entity: &entity.id,
                        kind: &form.kind,
                        lifted: &lifted,
                        used: granted.unblocks_used,
                        left: granted.unblocks_left,
                        recommendations: &granted.recommendations,
                    },
                ),
            )
        }
        Some(Ok(Err(error))) => {
            let status = match &error {
                UnblockError::NotRestricted => StatusCode::NOT_FOUND,
                UnblockError::RoleNotAllowed(_) => StatusCode::FORBIDDEN,
                _ => StatusCode::CONFLICT,
            };
            let limit = match &error {
                UnblockError::LimitReached(limit) => Some((
                    limit.used,
                    limit.limit,
                    crate::time::format(limit.next_allowed),
                )),
                _ => None,
            };
            let message = crate::simulate::describe_unblock_error(&error);
            html(
                status,
                pages::unblock_refused(
                    &frame,
                    &entity.id,
                    &form.kind,
                    &capitalise(&message),
                    limit,
                ),
            )
        }
        Some(Err(error)) => html(
            StatusCode::SERVICE_UNAVAILABLE,
            pages::problem(
                &frame,
                "Unblock",
                &format!("The unblock could not be done: {error:#}"),
            ),
        ),
        None => html(
            StatusCode::INTERNAL_SERVER_ERROR,
            pages::problem(&frame, "Unblock", "The unblock failed. Try again."),
        ),
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>() + ".",
        None => String::new(),
    }
}

// ---- alert policies ----

async fn alerts_page(State(state): State<Arc<AdminState>>, headers: HeaderMap) -> Response {
    let who = match signed(&state, &headers) {
        Ok(who) => who,
        Err(redirect) => return redirect,
    };
    audit(
        &state,
        &who.caller.name,
        "list-alert-policies",
        None,
        "ok",
        "portal".into(),
    )
    .await;
    render_alerts(&state, &who, StatusCode::OK, None)
}

fn render_alerts(
    state: &AdminState,
    who: &Signed,
    status: StatusCode,
    message: Option<(&str, bool)>,
) -> Response {
    let config = state.live.config();
    let policies = state
        .live
        .alerts()
        .current()
        .policies()
        .list(&config.alerts);
    html(
        status,
        pages::alerts(
            &who.frame("alerts"),
            &policies,
            may_manage_alerts(who.caller.role),
            message,
        ),
    )
}

async fn alerts_save(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let who = match signed(&state, &headers) {
        Ok(who) => who,
        Err(redirect) => return redirect,
    };
    let fields = form.ok().map(|f| f.0).unwrap_or_default();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    if let Err(refused) = check_csrf(&state, &who, &field("csrf"), "change-alert-policy").await {
        return refused;
    }
    let id = field("id");
    if !may_manage_alerts(who.caller.role) {
        let message = format!(
            "Your role ({}) may read alert policies but not change them.",
            who.caller.role
        );
        audit(
            &state,
            &who.caller.name,
            "change-alert-policy",
            None,
            "forbidden",
            format!("portal: {id}: {message}"),
        )
        .await;
        return render_alerts(&state, &who, StatusCode::FORBIDDEN, Some((&message, false)));
    }
    let removed: Vec<&str> = fields
        .iter()
        .filter(|(k, _)| k == "remove")
        .map(|(_, v)| v.trim())
        .collect();
    let mut recipients: Vec<String> = fields
        .iter()
        .filter(|(k, v)| k == "recipient" && !removed.contains(&v.trim()))
        .map(|(_, v)| v.trim().to_string())
        .collect();
    let added = field("add");
    if !added.is_empty() {
        recipients.push(added);
    }
    let daily_limit = match field("limit_kind").as_str() {
        "number" => match field("limit").parse::<u32>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                return render_alerts(
                    &state,
                    &who,
                    StatusCode::BAD_REQUEST,
                    Some((
                        "The daily notification limit must be a whole number of at least 1, or choose \"No limit\".",
                        false,
                    )),
                );
            }
        },
        _ => None,
    };
    let change = PolicyChange {
        enabled: Some(field("enabled") == "on"),
        recipients: Some(recipients),
        daily_limit: Some(daily_limit),
    };
    let config = state.live.config();
    let policies = state.live.alerts().current().policies().clone();
    match policies.change(&config.alerts, &id, &change) {
        Ok((view, detail)) => {
            audit(
                &state,
                &who.caller.name,
                "change-alert-policy",
                None,
                "ok",
                format!("portal: {detail}"),
            )
            .await;
            let message = format!("Saved \"{}\".", view.name);
            render_alerts(&state, &who, StatusCode::OK, Some((&message, true)))
        }
        Err(error) => {
            let message = format!("Not saved: {error:#}.");
            audit(
                &state,
                &who.caller.name,
                "change-alert-policy",
                None,
                "invalid",
                format!("portal: {id}: {error:#}"),
            )
            .await;
            render_alerts(
                &state,
                &who,
                StatusCode::BAD_REQUEST,
                Some((&message, false)),
            )
        }
    }
}

// ---- audit log ----

#[derive(Debug, Default, Deserialize)]
struct AuditFilter {
    entity: Option<String>,
    action: Option<String>,
    since: Option<String>,
    until: Option<String>,
    page: Option<String>,
}

/// Records per page.
const PAGE: usize = 50;

/// A time filter: RFC 3339, or a bare date (midnight UTC).
fn parse_time(text: &str) -> anyhow::Result<Option<i64>> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.len() == 10 {
        return crate::time::parse(&format!("{text}T00:00:00Z")).map(Some);
    }
    crate::time::parse(text).map(Some)
}

async fn audit_page(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Query(filter): Query<AuditFilter>,
) -> Response {
    let who = match signed(&state, &headers) {
        Ok(who) => who,
        Err(redirect) => return redirect,
    };
    let entity = filter.entity.unwrap_or_default();
    let action = filter.action.unwrap_or_default();
    let since_text = filter.since.unwrap_or_default();
    let until_text = filter.until.unwrap_or_default();
    // Anything but a page number is the first page (a query string is never an error page).
    let page = filter
        .page
        .and_then(|p| p.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(199);
    let mut error = None;
    let since = parse_time(&since_text).unwrap_or_else(|e| {
        error = Some(format!(
            "\"From\" is not a time ({e:#}); use 2026-12-01 or 2026-12-01T00:00:00Z."
        ));
        None
    });
    let until = parse_time(&until_text).unwrap_or_else(|e| {
        error = Some(format!(
            "\"Until\" is not a time ({e:#}); use 2026-12-01 or 2026-12-01T00:00:00Z."
        ));
        None
    });
    let query = AuditQuery {
        since,
        entity: (!entity.trim().is_empty()).then(|| entity.trim().to_string()),
        action: (!action.trim().is_empty()).then(|| action.trim().to_string()),
        limit: Some(10_000),
    };
    let records = blocking(&state, move |s| s.service.store().audit(&query)).await;
    let mut records = match records {
        Some(Ok(records)) => records,
        Some(Err(e)) => {
            error = Some(format!("The audit log did not answer: {e:#}"));
            Vec::new()
        }
        None => Vec::new(),
    };
    if let Some(until) = until {
        records.retain(|r| r.at < until);
    }
    records.reverse();
    let more = records.len() > (page + 1) * PAGE;
    let shown: Vec<_> = records.into_iter().skip(page * PAGE).take(PAGE).collect();
    audit(
        &state,
        &who.caller.name,
        "list-audit",
        None,
        "ok",
        format!("portal: {} listed", shown.len()),
    )
    .await;
    html(
        if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        pages::audit(
            &who.frame("audit"),
            &pages::AuditPage {
                entity: &entity,
                action: &action,
                since: &since_text,
                until: &until_text,
                records: &shown,
                page,
                more,
                error,
            },
        ),
    )
}
