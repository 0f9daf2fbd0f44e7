//! The portal's HTML, rendered with maud (checked at compile time, every value escaped). Each
//! function returns one page; [`layout`] is the frame they share: a header with the signed-in
//! admin and sign-out, the navigation, and the page's main region.

use crate::alerts::PolicyView;
use crate::view::RestrictionView;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use quench_store::AuditRecord;

/// Who is signed in, as the frame shows it.
pub struct Frame<'a> {
    /// The token's name.
    pub name: &'a str,
    /// The role, as configured.
    pub role: String,
    /// The session's CSRF token (every form carries it).
    pub csrf: &'a str,
    /// Which navigation entry is current: `restricted`, `alerts`, `audit`.
    pub current: &'static str,
}

/// An entity kind as the tabs show it: the URL value, the tab label, the column heading.
pub const KINDS: [(&str, &str, &str); 3] = [
    ("user", "Users", "User"),
    ("connector", "Connectors", "Connector"),
    // Relays are envelope senders of unauthenticated clients on trusted networks (not IPs).
    ("relay", "Relayed senders", "Relayed sender"),
];

fn head(title: &str) -> Markup {
    html! {
        (DOCTYPE)
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        title { (title) " · quench" }
        link rel="stylesheet" href="/portal/static/app.css";
        script src="/portal/static/app.js" defer {}
    }
}

/// The frame around every signed-in page.
pub fn layout(title: &str, frame: &Frame, main: Markup) -> Markup {
    let nav = [
        ("restricted", "/portal/restricted", "Restricted entities"),
        ("alerts", "/portal/alerts", "Alert policies"),
        ("audit", "/portal/audit", "Audit log"),
    ];
    html! {
        html lang="en" {
            head { (head(title)) }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "quench" }
                    nav aria-label="Main" {
                        ul {
                            @for (id, href, label) in nav {
                                li {
                                    @if id == frame.current {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    div.who {
                        span #signed-in { (frame.name) " (" (frame.role) ")" }
                        form method="post" action="/portal/sign-out" {
                            input type="hidden" name="csrf" value=(frame.csrf);
                            button #sign-out type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" { (main) }
            }
        }
    }
}

/// The sign-in page.
pub fn sign_in(pre_csrf: &str, error: Option<&str>, notice: Option<&str>) -> Markup {
    html! {
        html lang="en" {
            head { (head("Sign in")) }
            body.signin {
                main #main {
                    h1 { "quench admin portal" }
                    p { "Sign in with your admin token. It is exchanged for a session cookie and is never put in a URL." }
                    @if let Some(error) = error {
                        p.error role="alert" #error { (error) }
                    }
                    @if let Some(notice) = notice {
                        p.notice role="status" #notice { (notice) }
                    }
                    form method="post" action="/portal/sign-in" {
                        input type="hidden" name="csrf" value=(pre_csrf);
                        label for="token" { "Admin token" }
                        input #token type="password" name="token" autocomplete="off" required autofocus;
                        button #sign-in type="submit" { "Sign in" }
                    }
                }
            }
        }
    }
}

/// A page saying something went wrong, in words.
pub fn problem(frame: &Frame, title: &str, message: &str) -> Markup {
    layout(
        title,
        frame,
        html! {
            h1 { (title) }
            p.error role="alert" #error { (message) }
            p { a href="/portal/restricted" { "Back to Restricted entities" } }
        },
    )
}

/// The restricted-entities list: tabs, search, sort, the table, and the flyout if one
/// entity is open.
pub struct ListPage<'a> {
    /// Which tab.
    pub kind: &'a str,
    /// The search text.
    pub query: &'a str,
    /// The sort column and direction.
    pub sort: &'a str,
    /// Descending.
    pub desc: bool,
    /// The rows (already filtered and sorted).
    pub rows: &'a [RestrictionView],
    /// Counts per tab, in [`KINDS`] order.
    pub counts: [usize; 3],
    /// The open flyout.
    pub flyout: Option<Markup>,
}

const COLUMNS: [(&str, &str); 6] = [
    ("entity", "Entity"),
    ("restriction", "Restriction"),
    ("limit", "Limit that tripped"),
    ("created", "Since"),
    ("expires", "Expires"),
    ("unblocks", "Unblocks used / left"),
];

/// The list page.
pub fn list(frame: &Frame, page: &ListPage) -> Markup {
    let label = KINDS
        .iter()
        .find(|k| k.0 == page.kind)
        .map_or("Entity", |k| k.2);
    let href = |kind: &str, sort: &str, desc: bool, entity: Option<&str>| {
        let mut url = format!(
            "/portal/restricted?kind={kind}&q={}&sort={sort}&dir={}",
            encode(page.query),
            if desc { "desc" } else { "asc" }
        );
        if let Some(entity) = entity {
            url.push_str(&format!("&entity={}", encode(entity)));
        }
        url
    };
    layout(
        "Restricted entities",
        frame,
        html! {
            h1 { "Restricted entities" }
            p.lead { "Users, connectors and relays that quench stopped from sending. Select one to read why, and unblock it if the account is secured." }
            nav.tabs aria-label="Entity kinds" {
                @for (i, (kind, tab, _)) in KINDS.iter().enumerate() {
                    @if *kind == page.kind {
                        a.tab href=(href(kind, page.sort, page.desc, None)) aria-current="page" { (tab) " (" (page.counts[i]) ")" }
                    } @else {
                        a.tab href=(href(kind, page.sort, page.desc, None)) { (tab) " (" (page.counts[i]) ")" }
                    }
                }
            }
            form.search method="get" action="/portal/restricted" role="search" {
                input type="hidden" name="kind" value=(page.kind);
                input type="hidden" name="sort" value=(page.sort);
                input type="hidden" name="dir" value=(if page.desc { "desc" } else { "asc" });
                label for="q" { "Search" }
                input #q type="search" name="q" value=(page.query) placeholder="address, id, limit…";
                button type="submit" { "Search" }
            }
            p #count role="status" aria-live="polite" { (page.rows.len()) " " (if page.rows.len() == 1 { "item" } else { "items" }) }
            div.tablewrap {
                table #restricted {
                    caption.visually-hidden { "Restricted " (label) "s" }
                    thead { tr {
                        @for (key, heading) in COLUMNS {
                            @let heading = if key == "entity" { label } else { heading };
                            @let active = key == page.sort;
                            @let next_desc = active && !page.desc;
                            th scope="col" aria-sort=(if !active { "none" } else if page.desc { "descending" } else { "ascending" }) {
                                a href=(href(page.kind, key, next_desc, None)) { (heading) @if active { (if page.desc { " ▼" } else { " ▲" }) } }
                            }
                        }
                    } }
                    tbody {
                        @if page.rows.is_empty() {
                            tr { td colspan="6" { "Nothing is restricted here." } }
                        }
                        @for row in page.rows {
                            tr data-search=(format!("{} {} {} {}", row.entity, row.restriction, row.limit, row.policy).to_lowercase()) {
                                th scope="row" { a.open href=(href(page.kind, page.sort, page.desc, Some(&row.entity))) { (row.entity) } }
                                td { (row.restriction) }
                                td { (row.limit) " (" (row.threshold) ")" }
                                td { time datetime=(row.created) { (short_time(&row.created)) } }
                                td { (short_time(&row.expires)) }
                                td { (row.unblocks_used) " / " (row.unblocks_left) }
                            }
                        }
                    }
                }
            }
            @if let Some(flyout) = &page.flyout { (flyout) }
        },
    )
}

/// One line of the details flyout's timeline.
pub struct TimelineEntry {
    /// When.
    pub at: String,
    /// What, in words.
    pub what: String,
}

/// What the flyout needs beside the restriction.
pub struct Details<'a> {
    /// The restriction.
    pub view: &'a RestrictionView,
    /// The timeline from the audit log, oldest first.
    pub timeline: &'a [TimelineEntry],
    /// Whether the caller may unblock at all.
    pub may_unblock: bool,
    /// Whether the caller is Support (may unblock past the limit).
    pub support: bool,
    /// Past the unblock limit, as the policy says for the caller: (used, limit, next allowed).
    pub limit: Option<(u32, u32, String)>,
    /// Where closing the flyout goes.
    pub close: &'a str,
}

/// The evidence in words.
pub fn evidence_words(v: &RestrictionView) -> String {
    let window = window_words(v.window_seconds);
    if v.limit.contains("spam") {
        format!(
            "It sent {} messages classified as spam {window}, reaching the policy \"{}\"'s threshold {} of {}.",
            v.observed, v.policy, v.limit, v.threshold
        )
    } else {
        format!(
            "It reached {} where the limit {} of the policy \"{}\" allows {} {window}.",
            v.observed, v.limit, v.policy, v.threshold
        )
    }
}

fn window_words(seconds: u32) -> String {
    match seconds {
        0 => "at once".into(),
        60 => "per minute".into(),
        3600 => "per hour".into(),
        86_400 => "per day (sliding 24 hours)".into(),
        s if s % 86_400 == 0 => format!("per {} days", s / 86_400),
        s if s % 3600 == 0 => format!("per {} hours", s / 3600),
        s => format!("per {s} seconds"),
    }
}

/// The details flyout.
pub fn flyout(d: &Details) -> Markup {
    let v = d.view;
    let exhausted = v.unblocks_left == 0;
    let unblock_href = format!(
        "/portal/unblock?kind={}&entity={}&step=1",
        v.kind,
        encode(&v.entity)
    );
    html! {
        aside.flyout #flyout role="dialog" aria-modal="false" aria-labelledby="flyout-title" {
            div.flyout-head {
                h2 #flyout-title { (v.entity) }
                a.close #close-flyout href=(d.close) aria-label="Close details" { "✕" }
            }
            p.badge { (v.kind) " · " (v.restriction) }
            h3 { "Why it was restricted" }
            p #evidence { (evidence_words(v)) }
            dl.facts {
                dt { "Limit that tripped" } dd { (v.limit) " = " (v.threshold) }
                dt { "Count reached" } dd { (v.observed) }
                dt { "Window" } dd { (window_words(v.window_seconds)) }
                dt { "Tripped at" } dd { (v.at) }
                dt { "Last message" } dd { (v.last_message_id.as_deref().unwrap_or("unknown")) }
                dt { "Restricted since" } dd { (v.created) }
                dt { "Expires" } dd { (v.expires) }
            }
            h3 { "Reason" }
            p { code #reason { (v.reason) } }
            h3 { "Timeline" }
            @if d.timeline.is_empty() {
                p { "No audit records about this entity." }
            } @else {
                ol.timeline #timeline {
                    @for entry in d.timeline {
                        li { time { (short_time(&entry.at)) } " " (entry.what) }
                    }
                }
            }
            h3 { "Unblock limit" }
            p #unblock-limit { (v.unblocks_used) " unblocks used, " (v.unblocks_left) " left in the unblock window." }
            @if let Some((used, limit, next)) = &d.limit {
                p.warning #limit-reached role="note" {
                    "The unblock limit is reached: " (used) " of " (limit) " unblocks were used in the unblock window. "
                    "The next unblock is allowed at " time #next-allowed datetime=(next) { (short_time(next)) } ". "
                    "Until then, contact Support: only the Support role may unblock past the limit."
                }
            } @else if exhausted {
                p.warning #limit-reached role="note" {
                    "The unblock limit is reached: " (v.unblocks_used) " unblocks were used in the window. "
                    @if d.support { "As Support, you may unblock past it." } @else { "Contact Support." }
                }
            }
            @if d.may_unblock && (!exhausted || d.support) {
                p { a.button.primary #unblock href=(unblock_href) {
                    @if exhausted { "Unblock (Support override)" } @else { "Unblock" }
                } }
            } @else if !d.may_unblock {
                p.muted #read-only { "Your role can read restrictions but not unblock them." }
            }
        }
    }
}

/// The recommendations shown before an unblock.
pub fn recommendations(v: &RestrictionView) -> Vec<String> {
    let mut list = vec![
        "Turn on multifactor authentication (MFA) for the account.".to_string(),
        "Reset the account's password, and sign it out of every session.".to_string(),
        "Check the mailbox for forwarding rules and inbox rules the owner did not make, and remove them.".to_string(),
        "Check mailbox delegation (Send As, Send on Behalf, Full Access) for accounts that should not have it.".to_string(),
    ];
    list.push(format!(
        "Review the sending pattern that tripped: {}",
        evidence_words(v)
    ));
    list
}

/// The unblock flow's hidden fields: kind and entity.
fn target_fields(v: &RestrictionView) -> Markup {
    html! {
        input type="hidden" name="kind" value=(v.kind);
        input type="hidden" name="entity" value=(v.entity);
    }
}

fn steps(current: usize) -> Markup {
    let names = ["Details and recommendations", "Reason", "Confirm", "Done"];
    html! {
        ol.steps aria-label="Unblock steps" {
            @for (i, name) in names.iter().enumerate() {
                @if i + 1 == current {
                    li aria-current="step" { (name) }
                } @else {
                    li { (name) }
                }
            }
        }
    }
}

/// Step 1: the details and recommendations, then **Next**.
pub fn unblock_step1(frame: &Frame, v: &RestrictionView) -> Markup {
    layout(
        "Unblock",
        frame,
        html! {
            h1 { "Unblock " (v.entity) }
            (steps(1))
            section.card {
                h2 { "Why it was restricted" }
                p { (evidence_words(v)) }
                p { code { (v.reason) } }
                h2 { "Before you unblock" }
                p { "An account that sends spam is often compromised. Secure it first:" }
                ul #recommendations {
                    @for r in recommendations(v) { li { (r) } }
                }
                p { (v.unblocks_used) " unblocks used, " (v.unblocks_left) " left in the unblock window." }
            }
            form method="get" action="/portal/unblock" {
                (target_fields(v))
                input type="hidden" name="step" value="2";
                div.actions {
                    button.primary #next type="submit" { "Next" }
                    a.button href=(format!("/portal/restricted?kind={}&entity={}", v.kind, encode(&v.entity))) { "Cancel" }
                }
            }
        },
    )
}

/// Step 2: an optional reason, then **Submit**.
pub fn unblock_step2(frame: &Frame, v: &RestrictionView) -> Markup {
    layout(
        "Unblock",
        frame,
        html! {
            h1 { "Unblock " (v.entity) }
            (steps(2))
            form method="post" action="/portal/unblock/confirm" {
                input type="hidden" name="csrf" value=(frame.csrf);
                (target_fields(v))
                label for="reason" { "Reason (optional): what was done to secure the account" }
                textarea #reason name="reason" rows="3" maxlength="1000" {}
                fieldset {
                    legend { "After the unblock" }
                    label {
                        input #grace-rest-of-day type="radio" name="grace" value="rest-of-day" checked;
                        " Exempt from the outbound limits until midnight UTC (the default, as in Exchange Online)"
                    }
                    label {
                        input #grace-none type="radio" name="grace" value="none";
                        " Apply the limits from the next message (no grace)"
                    }
                }
                div.actions {
                    button.primary #submit type="submit" { "Submit" }
                    a.button href=(format!("/portal/unblock?kind={}&entity={}&step=1", v.kind, encode(&v.entity))) { "Back" }
                }
            }
        },
    )
}

/// Step 3: "Are you sure?" with **Yes** and **No**.
pub fn unblock_confirm(frame: &Frame, v: &RestrictionView, reason: &str, grace: &str) -> Markup {
    layout(
        "Confirm unblock",
        frame,
        html! {
            h1 { "Unblock " (v.entity) "?" }
            (steps(3))
            p #confirm-question { "Are you sure you want to unblock " strong { (v.entity) } "? It can send again at once, and this uses one of its " (v.unblocks_left) " remaining unblocks." }
            form method="post" action="/portal/unblock" {
                input type="hidden" name="csrf" value=(frame.csrf);
                (target_fields(v))
                input type="hidden" name="reason" value=(reason);
                input type="hidden" name="grace" value=(grace);
                div.actions {
                    button.primary #yes type="submit" name="confirm" value="yes" { "Yes" }
                    a.button #no href=(format!("/portal/restricted?kind={}&entity={}", v.kind, encode(&v.entity))) { "No" }
                }
            }
        },
    )
}

/// What an unblock did.
pub struct UnblockResult<'a> {
    /// The entity.
    pub entity: &'a str,
    /// Its kind.
    pub kind: &'a str,
    /// The lifted restriction.
    pub lifted: &'a RestrictionView,
    /// Unblocks used now.
    pub used: u32,
    /// Unblocks left.
    pub left: u32,
    /// The policy's recommendations.
    pub recommendations: &'a [String],
}

/// Step 4: the result.
pub fn unblock_done(frame: &Frame, r: &UnblockResult) -> Markup {
    layout(
        "Unblocked",
        frame,
        html! {
            h1 { (r.entity) " is unblocked" }
            (steps(4))
            p.success #result role="status" {
                (r.entity) " can send again. The " (r.lifted.restriction) " restriction (" (r.lifted.limit) ") was lifted and the windows that tripped were cleared. "
                (r.used) " unblocks used, " (r.left) " left in the unblock window."
            }
            @if !r.recommendations.is_empty() {
                h2 { "Recommended next steps" }
                ul { @for step in r.recommendations { li { (step) } } }
            }
            p { a.button href=(format!("/portal/restricted?kind={}", r.kind)) { "Back to Restricted entities" } }
        },
    )
}

/// The unblock was refused (the limit, a role, a state).
pub fn unblock_refused(
    frame: &Frame,
    entity: &str,
    kind: &str,
    message: &str,
    limit: Option<(u32, u32, String)>,
) -> Markup {
    layout(
        "Unblock refused",
        frame,
        html! {
            h1 { (entity) " was not unblocked" }
            p.error #error role="alert" { (message) }
            @if let Some((used, limit, next)) = limit {
                p.warning #limit-reached {
                    (used) " of " (limit) " unblocks were used in the unblock window. The next unblock is allowed at "
                    time #next-allowed datetime=(next) { (next) } ". Until then, contact Support: only the Support role may unblock past the limit."
                }
            }
            p { a.button href=(format!("/portal/restricted?kind={kind}&entity={}", encode(entity))) { "Back" } }
        },
    )
}

/// The alert policies page.
pub fn alerts(
    frame: &Frame,
    policies: &[PolicyView],
    may_change: bool,
    message: Option<(&str, bool)>,
) -> Markup {
    layout(
        "Alert policies",
        frame,
        html! {
            h1 { "Alert policies" }
            p.lead { "Who is notified when quench raises an alert, and how often. Changes take effect at once and are kept across restarts." }
            @if let Some((text, ok)) = message {
                @if ok { p.success #message role="status" { (text) } } @else { p.error #message role="alert" { (text) } }
            }
            @for p in policies {
                section.card.policy #(format!("policy-{}", p.id)) aria-labelledby=(format!("title-{}", p.id)) {
                    h2 #(format!("title-{}", p.id)) { (p.name) }
                    @if let Some(warning) = &p.warning { p.warning { (warning) } }
                    form method="post" action="/portal/alerts" {
                        input type="hidden" name="csrf" value=(frame.csrf);
                        input type="hidden" name="id" value=(p.id);
                        fieldset disabled[!may_change] {
                            legend { "Settings" }
                            div.field {
                                span.label { "Status" }
                                input #(format!("enabled-{}", p.id)) type="checkbox" name="enabled" value="on" checked[p.enabled];
                                label for=(format!("enabled-{}", p.id)) { "On" }
                            }
                            div.field {
                                span.label { "Email recipients" @if p.recipients_are_tenant_admins { " (the tenant admins)" } }
                                @if p.recipients.is_empty() { p.muted { "No recipients." } }
                                ul.recipients {
                                    @for (i, r) in p.recipients.iter().enumerate() {
                                        li {
                                            input type="hidden" name="recipient" value=(r);
                                            span { (r) " " }
                                            input #(format!("remove-{}-{i}", p.id)) type="checkbox" name="remove" value=(r);
                                            label for=(format!("remove-{}-{i}", p.id)) { "Remove " (r) }
                                        }
                                    }
                                }
                                label for=(format!("add-{}", p.id)) { "Add recipient" }
                                input #(format!("add-{}", p.id)) type="email" name="add" placeholder="admin@contoso.com";
                            }
                            div.field {
                                span.label { "Daily notification limit" }
                                div {
                                    input #(format!("nolimit-{}", p.id)) type="radio" name="limit_kind" value="none" checked[p.daily_limit.is_none()];
                                    label for=(format!("nolimit-{}", p.id)) { "No limit" }
                                }
                                div {
                                    input #(format!("haslimit-{}", p.id)) type="radio" name="limit_kind" value="number" checked[p.daily_limit.is_some()];
                                    label for=(format!("haslimit-{}", p.id)) { "At most" }
                                    " "
                                    input #(format!("limit-{}", p.id)) type="number" min="1" max="100000" name="limit" value=[p.daily_limit] aria-label="notifications per day";
                                    " per day"
                                }
                            }
                            @if may_change {
                                button.primary #(format!("save-{}", p.id)) type="submit" { "Save" }
                            }
                        }
                    }
                    @if !may_change { p.muted { "Your role can read alert policies but not change them." } }
                }
            }
        },
    )
}

/// The audit log page's filter and one page of records (newest first).
pub struct AuditPage<'a> {
    /// The entity filter.
    pub entity: &'a str,
    /// The action filter.
    pub action: &'a str,
    /// From (RFC 3339 or a date).
    pub since: &'a str,
    /// Until.
    pub until: &'a str,
    /// The records on this page.
    pub records: &'a [AuditRecord],
    /// This page (0-based), and whether there are more.
    pub page: usize,
    /// Whether an older page exists.
    pub more: bool,
    /// A filter error, in words.
    pub error: Option<String>,
}

/// The audit log page.
pub fn audit(frame: &Frame, a: &AuditPage) -> Markup {
    let link = |page: usize| {
        format!(
            "/portal/audit?entity={}&action={}&since={}&until={}&page={page}",
            encode(a.entity),
            encode(a.action),
            encode(a.since),
            encode(a.until)
        )
    };
    layout(
        "Audit log",
        frame,
        html! {
            h1 { "Audit log" }
            form.filters method="get" action="/portal/audit" {
                div.field { label for="f-entity" { "Entity" } input #f-entity name="entity" value=(a.entity) placeholder="user:alice@contoso.com"; }
                div.field { label for="f-action" { "Action" } input #f-action name="action" value=(a.action) placeholder="unblock"; }
                div.field { label for="f-since" { "From (UTC)" } input #f-since name="since" value=(a.since) placeholder="2026-12-01T00:00:00Z"; }
                div.field { label for="f-until" { "Until (UTC)" } input #f-until name="until" value=(a.until) placeholder="2026-12-02T00:00:00Z"; }
                button type="submit" { "Filter" }
            }
            @if let Some(error) = &a.error { p.error #error role="alert" { (error) } }
            p role="status" { (a.records.len()) " records on this page" }
            div.tablewrap {
                table #audit {
                    thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "Action" } th scope="col" { "Entity" } th scope="col" { "Outcome" } th scope="col" { "Detail" } } }
                    tbody {
                        @for r in a.records {
                            tr {
                                td { (short_time(&crate::time::format(r.at))) }
                                td { (r.actor) }
                                td { (r.action) }
                                td { (r.entity.as_deref().unwrap_or("")) }
                                td { (r.outcome) }
                                td.detail { (r.detail) }
                            }
                        }
                    }
                }
            }
            nav.pager aria-label="Pages" {
                @if a.page > 0 { a.button href=(link(a.page - 1)) { "Newer" } }
                @if a.more { a.button #older href=(link(a.page + 1)) { "Older" } }
            }
        },
    )
}

/// An RFC 3339 time shortened for a table ("2026-12-03 14:05 UTC"); other text as it is.
pub fn short_time(time: &str) -> String {
    if time.len() >= 16 && time.as_bytes().get(10) == Some(&b'T') {
        format!("{} {} UTC", &time[..10], &time[11..16])
    } else {
        time.to_string()
    }
}

/// Percent-encode for a URL query value.
pub fn encode(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Nothing, for pages that need an empty fragment.
pub fn nothing() -> Markup {
    PreEscaped(String::new())
}
