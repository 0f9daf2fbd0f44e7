//! The admin CLI over the admin API, named after the Exchange cmdlets admins know
//! (Get-BlockedSenderAddress, Remove-BlockedSenderAddress): `blocked-sender`,
//! `blocked-connector`, `audit`, and `admin hash-token`. Human tables by default, `--json`
//! for scripts. Any refusal (401, 403, 404, 409) prints the API's error and exits 1.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Value, json};
use std::io::Read;
use std::process::ExitCode;

/// How to reach the admin API.
#[derive(Debug, Args)]
pub(crate) struct ApiArgs {
    /// Admin API base URL.
    #[arg(
        long,
        env = "QUENCH_ADMIN_URL",
        default_value = "http://127.0.0.1:10041"
    )]
    url: String,
    /// Bearer token (prefer the environment variable: flags show up in `ps`).
    #[arg(long, env = "QUENCH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// `quench blocked-sender ...`, `quench blocked-connector ...` and `quench blocked-relay ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum BlockedCommand {
    /// List restricted entities (Get-BlockedSenderAddress).
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show one entity's restriction and its evidence.
    Get {
        /// The address (senders) or id (connectors).
        entity: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Lift a restriction, within the unblock limit (Remove-BlockedSenderAddress).
    Remove {
        /// The address (senders) or id (connectors).
        entity: String,
        /// Why: what was done to secure the account (recorded in the audit log; optional, as
        /// with Remove-BlockedSenderAddress, and the audit log then says none was given).
        #[arg(long)]
        reason: Option<String>,
        /// No rest-of-day exemption: the outbound policy's limits apply from the next message
        /// (by default an unblocked sender is exempt from them until UTC midnight, as in EOP).
        #[arg(long)]
        no_grace: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// `quench audit ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// List audit records, oldest first.
    List {
        /// Only records at or after this time (RFC 3339, e.g. 2026-11-23T00:00:00Z).
        #[arg(long)]
        since: Option<String>,
        /// Only records about this entity key (e.g. user:alice@contoso.com).
        #[arg(long)]
        entity: Option<String>,
        /// Only records of this action (e.g. unblock, restrict).
        #[arg(long)]
        action: Option<String>,
        /// At most this many (the newest).
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// `quench alert-policy ...`: the alert policies (status, recipients, daily notification
/// limit), as EOP's alert policy flyout shows them.
#[derive(Debug, Subcommand)]
pub(crate) enum AlertPolicyCommand {
    /// List every alert policy.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show one alert policy, by id (user_restricted) or name.
    Get {
        /// The policy's id or name.
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Change an alert policy; what is not given stays as it is.
    Set {
        /// The policy's id or name.
        name: String,
        /// Turn it on.
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Turn it off (alerts of this kind are then only logged).
        #[arg(long)]
        disable: bool,
        /// Replace the email recipients (comma-separated; an empty string for none).
        #[arg(long, value_delimiter = ',')]
        recipients: Option<Vec<String>>,
        /// Daily notification limit: a number, or `none` for no limit.
        #[arg(long)]
        daily_limit: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// `quench admin ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// Print the SHA-256 of a token read from standard input, for `[[admin.tokens]]`.
    HashToken,
}

/// Which collection a `blocked-*` command works on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Collection {
    Senders,
    Connectors,
    Relays,
}

impl Collection {
    fn path(self) -> &'static str {
        match self {
            Collection::Senders => "blocked-senders",
            Collection::Connectors => "blocked-connectors",
            Collection::Relays => "blocked-relays",
        }
    }
}

pub(crate) fn run_blocked(collection: Collection, command: BlockedCommand) -> Result<ExitCode> {
    match command {
        BlockedCommand::List { api } => {
            let body = request(&api, "GET", &format!("/v1/{}", collection.path()), None)?;
            print_or(&api, &body, |body| {
                let rows = body["restrictions"].as_array().cloned().unwrap_or_default();
                if rows.is_empty() {
                    return "nothing is restricted".to_string();
                }
                let mut table = table(&[
                    "entity",
                    "restriction",
                    "limit",
                    "threshold",
                    "observed",
                    "created",
                    "expires",
                    "unblocks left",
                ]);
                for r in rows {
                    table.add_row(vec![
                        text(&r["entity"]),
                        text(&r["restriction"]),
                        text(&r["limit"]),
                        text(&r["threshold"]),
                        text(&r["observed"]),
                        text(&r["created"]),
                        text(&r["expires"]),
                        text(&r["unblocks_left"]),
                    ]);
                }
                table.to_string()
            })
        }
        BlockedCommand::Get { entity, api } => {
            let path = format!("/v1/{}/{}", collection.path(), encode(&entity));
            let body = request(&api, "GET", &path, None)?;
            print_or(&api, &body, |r| {
                let mut table = table(&["field", "value"]);
                for key in [
                    "entity",
                    "kind",
                    "restriction",
                    "reason",
                    "policy",
                    "limit",
                    "threshold",
                    "observed",
                    "window_seconds",
                    "at",
                    "last_message_id",
                    "created",
                    "changed",
                    "expires",
                    "unblocks_used",
                    "unblocks_left",
                ] {
                    table.add_row(vec![key.to_string(), text(&r[key])]);
                }
                table.to_string()
            })
        }
        BlockedCommand::Remove {
            entity,
            reason,
            no_grace,
            api,
        } => {
            let path = format!("/v1/{}/{}/unblock", collection.path(), encode(&entity));
            let body = request(
                &api,
                "POST",
                &path,
                Some(json!({
                    "reason": reason.unwrap_or_default(),
                    "grace": if no_grace { "none" } else { "rest-of-day" },
                })),
            )?;
            print_or(&api, &body, |r| {
                let mut out = format!(
                    "{} unblocked ({} unblocks used, {} left in the window).\nBefore trusting the account again:\n",
                    text(&r["entity"]),
                    text(&r["unblocks_used"]),
                    text(&r["unblocks_left"])
                );
                for step in r["recommendations"].as_array().into_iter().flatten() {
                    out.push_str(&format!("  - {}\n", text(step)));
                }
                out.trim_end().to_string()
            })
        }
    }
}

pub(crate) fn run_audit(command: AuditCommand) -> Result<ExitCode> {
    let AuditCommand::List {
        since,
        entity,
        action,
        limit,
        api,
    } = command;
    let mut query = Vec::new();
    for (name, value) in [
        ("since", since),
        ("entity", entity),
        ("action", action),
        ("limit", limit.map(|l| l.to_string())),
    ] {
        if let Some(value) = value {
            query.push(format!("{name}={}", encode(&value)));
        }
    }
    let path = if query.is_empty() {
        "/v1/audit".to_string()
    } else {
        format!("/v1/audit?{}", query.join("&"))
    };
    let body = request(&api, "GET", &path, None)?;
    print_or(&api, &body, |body| {
        let mut table = table(&[
            "seq", "at", "actor", "action", "entity", "outcome", "detail",
        ]);
        for r in body["records"].as_array().into_iter().flatten() {
            table.add_row(
                [
                    "seq", "at", "actor", "action", "entity", "outcome", "detail",
                ]
                .map(|key| text(&r[key])),
            );
        }
        table.to_string()
    })
}

pub(crate) fn run_alert_policy(command: AlertPolicyCommand) -> Result<ExitCode> {
    fn show(p: &Value) -> String {
        let mut table = table(&["field", "value"]);
        let recipients = p["recipients"]
            .as_array()
            .map(|r| r.iter().map(text).collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        for (key, value) in [
            ("id", text(&p["id"])),
            ("name", text(&p["name"])),
            (
                "status",
                if p["enabled"] == true { "On" } else { "Off" }.to_string(),
            ),
            (
                "recipients",
                if recipients.is_empty() {
                    "(none)".to_string()
                } else if p["recipients_are_tenant_admins"] == true {
                    format!("{recipients} (tenant admins)")
                } else {
                    recipients
                },
            ),
            (
                "daily notification limit",
                if p["daily_limit"].is_null() {
                    "No limit".to_string()
                } else {
                    text(&p["daily_limit"])
                },
            ),
            ("warning", text(&p["warning"])),
        ] {
            table.add_row(vec![key.to_string(), value]);
        }
        table.to_string()
    }
    match command {
        AlertPolicyCommand::List { api } => {
            let body = request(&api, "GET", "/v1/alert-policies", None)?;
            print_or(&api, &body, |body| {
                let mut table = table(&["id", "name", "status", "recipients", "daily limit"]);
                for p in body["policies"].as_array().into_iter().flatten() {
                    table.add_row(vec![
                        text(&p["id"]),
                        text(&p["name"]),
                        if p["enabled"] == true { "On" } else { "Off" }.to_string(),
                        p["recipients"]
                            .as_array()
                            .map(|r| r.iter().map(text).collect::<Vec<_>>().join(", "))
                            .filter(|r| !r.is_empty())
                            .unwrap_or_else(|| "(none)".into()),
                        if p["daily_limit"].is_null() {
                            "No limit".to_string()
                        } else {
                            text(&p["daily_limit"])
                        },
                    ]);
                }
                table.to_string()
            })
        }
        AlertPolicyCommand::Get { name, api } => {
            let body = request(
                &api,
                "GET",
                &format!("/v1/alert-policies/{}", encode(&name)),
                None,
            )?;
            print_or(&api, &body, show)
        }
        AlertPolicyCommand::Set {
            name,
            enable,
            disable,
            recipients,
            daily_limit,
            api,
        } => {
            let mut change = serde_json::Map::new();
            if enable || disable {
                change.insert("enabled".into(), json!(enable));
            }
            if let Some(recipients) = recipients {
                let list: Vec<String> = recipients
                    .into_iter()
                    .map(|r| r.trim().to_string())
                    .filter(|r| !r.is_empty())
                    .collect();
                change.insert("recipients".into(), json!(list));
            }
            if let Some(limit) = daily_limit {
                let value = if limit.eq_ignore_ascii_case("none") {
                    Value::Null
                } else {
                    json!(limit.parse::<u32>().with_context(|| format!(
                        "--daily-limit: `{limit}` is not a number or `none`"
                    ))?)
                };
                change.insert("daily_limit".into(), value);
            }
            let body = request(
                &api,
                "PUT",
                &format!("/v1/alert-policies/{}", encode(&name)),
                Some(Value::Object(change)),
            )?;
            print_or(&api, &body, show)
        }
    }
}

pub(crate) fn run_reload(reset_state: bool, api: ApiArgs) -> Result<ExitCode> {
    let body = request(
        &api,
        "POST",
        "/v1/policy/reload",
        Some(json!({ "reset_state": reset_state })),
    )?;
    print_or(&api, &body, |r| {
        format!(
            "policy reloaded: {} -> {} (state format {}{})",
            text(&r["previous"]),
            text(&r["current"]),
            text(&r["state_format"]),
            if r["reset_state"] == true {
                ", state reset"
            } else {
                ""
            }
        )
    })
}

pub(crate) fn run_admin(command: AdminCommand) -> Result<ExitCode> {
    match command {
        AdminCommand::HashToken => {
            let mut token = String::new();
            std::io::stdin()
                .read_to_string(&mut token)
                .context("reading the token from standard input")?;
            if token.trim().is_empty() {
                bail!("no token on standard input");
            }
            println!("{}", crate::admin::hash_token(&token));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Call the API; a non-2xx answer becomes an error carrying the API's message.
fn request(api: &ApiArgs, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
    let url = format!("{}{path}", api.url.trim_end_matches('/'));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into();
    let auth = api.token.as_deref().map(|t| format!("Bearer {}", t.trim()));
    let response = match (method, body) {
        ("PUT", body) => {
            let mut call = agent.put(&url);
            if let Some(auth) = &auth {
                call = call.header("Authorization", auth);
            }
            call.send_json(body.unwrap_or(Value::Null))
        }
        ("POST", body) => {
            let mut call = agent.post(&url);
            if let Some(auth) = &auth {
                call = call.header("Authorization", auth);
            }
            call.send_json(body.unwrap_or(Value::Null))
        }
        _ => {
            let mut call = agent.get(&url);
            if let Some(auth) = &auth {
                call = call.header("Authorization", auth);
            }
            call.call()
        }
    };
    let mut response = response.with_context(|| format!("calling the admin API at {url}"))?;
    let status = response.status();
    let body: Value = response
        .body_mut()
        .read_json()
        .with_context(|| format!("reading the admin API's answer ({status})"))?;
    if !status.is_success() {
        if api.json {
            println!("{body}");
        }
        bail!("{status}: {}", text(&body["error"]));
    }
    Ok(body)
}

fn print_or(api: &ApiArgs, body: &Value, human: impl FnOnce(&Value) -> String) -> Result<ExitCode> {
    if api.json {
        println!("{}", serde_json::to_string_pretty(body)?);
    } else {
        println!("{}", human(body));
    }
    Ok(ExitCode::SUCCESS)
}

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    table
}

/// A JSON value as table text: strings bare, null as "-".
fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Percent-encode a path segment or query value (addresses contain `@` and `+`).
fn encode(segment: &str) -> String {
    let mut out = String::new();
    for byte in segment.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
