//! Configuration: the `[policy]` table of quench's TOML config, parsed and validated once.
//!
//! We walk the TOML tree by hand instead of deriving serde structs so that every problem is
//! reported (not only the first) and each error names its key as a dotted path relative to
//! `[policy]`, e.g. `outbound[0].recipient_limit_per_day`. Key names follow the EOP cmdlet
//! parameters in snake_case. See `docs/policy.md` for the reference.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use toml::{Table, Value};

use crate::addr;
use crate::limits::{self, Limits, OutboundAction};
use crate::scope::{Groups, Scope};
use crate::types::ConfigError;

/// Longest policy name or connector id (EOP's limit on names).
pub const MAX_NAME_LEN: usize = 64;
/// Largest allowed `priority` value.
pub const MAX_PRIORITY: u32 = 1_000_000;
/// Nesting depth at which group expansion stops (cycles are cut earlier by a visited set).
const MAX_GROUP_DEPTH: usize = 16;

/// Top-level keys of the `[policy]` table.
const TOP_KEYS: &[&str] = &[
    "accepted_domains",
    "unblock_limit",
    "max_recipient_envelope_limit",
    "message_rate_limit",
    "recipient_rate_limit",
    "groups",
    "outbound",
    "connectors",
];
const OUTBOUND_KEYS: &[&str] = &[
    "name",
    "priority",
    "enabled",
    "comments",
    "preset",
    "recipient_limit_external_per_hour",
    "recipient_limit_internal_per_hour",
    "recipient_limit_per_day",
    "action_when_threshold_reached",
    "from",
    "from_member_of",
    "sender_domain_is",
    "except_if_from",
    "except_if_from_member_of",
    "except_if_sender_domain_is",
];
const CONNECTOR_KEYS: &[&str] = &[
    "id",
    "comments",
    "client_addresses",
    "certificate_fingerprints",
    "preset",
    "recipient_limit_external_per_hour",
    "recipient_limit_internal_per_hour",
    "recipient_limit_per_day",
    "action_when_threshold_reached",
];
const UNBLOCK_KEYS: &[&str] = &["count", "window_days"];

/// One outbound spam policy (EOP's `HostedOutboundSpamFilterPolicy` plus its rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// `name`: unique, shown in evidence.
    pub name: String,
    /// `priority`: lower comes first (0 is the highest, as in EOP). `None` = after all
    /// explicit priorities, in file order.
    pub priority: Option<u32>,
    /// Effective limits and action.
    pub limits: Limits,
    /// Scoping conditions; empty for the default policy.
    pub scope: Scope,
}

impl OutboundPolicy {
    /// The policy used when the configuration has no unscoped entry.
    pub fn builtin_default() -> OutboundPolicy {
        OutboundPolicy {
            name: "Default".to_string(),
            priority: None,
            limits: Limits::SERVICE_DEFAULT,
            scope: Scope::default(),
        }
    }
}

/// An inbound connector: a relaying host whose traffic is counted as one entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connector {
    /// `id`: the entity id of the connector's restrictions (matched case-insensitively).
    pub id: String,
    /// `client_addresses`, in canonical form.
    pub client_addresses: Vec<String>,
    /// `certificate_fingerprints`, lower-cased.
    pub certificate_fingerprints: Vec<String>,
    /// Effective limits and action.
    pub limits: Limits,
}

/// `unblock_limit = { count, window_days }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnblockLimit {
    /// Unblocks an unblocking role may do per entity per window.
    pub count: u32,
    /// Rolling window length in days.
    pub window_days: u32,
}

impl UnblockLimit {
    /// The window in seconds.
    pub fn window_seconds(&self) -> i64 {
        i64::from(self.window_days) * crate::time::DAY
    }
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `accepted_domains`, normalised: recipients there are internal.
    pub accepted_domains: BTreeSet<String>,
    /// `[groups]`, flattened.
    pub groups: Groups,
    /// Enabled scoped policies, in evaluation order.
    pub policies: Vec<OutboundPolicy>,
    /// The default policy (the unscoped entry, or the built-in one), evaluated last.
    pub default_policy: OutboundPolicy,
    /// `[[connectors]]`.
    pub connectors: Vec<Connector>,
    /// `unblock_limit`.
    pub unblock: UnblockLimit,
    /// `max_recipient_envelope_limit`: recipients per message.
    pub max_recipients_per_message: u32,
    /// `message_rate_limit`: messages per sliding minute per user.
    pub message_rate_limit: u32,
    /// `recipient_rate_limit`: recipients per sliding 24 hours per user.
    pub recipient_rate_limit: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            accepted_domains: BTreeSet::new(),
            groups: Groups::new(),
            policies: Vec::new(),
            default_policy: OutboundPolicy::builtin_default(),
            connectors: Vec::new(),
            unblock: UnblockLimit {
                count: limits::DEFAULT_UNBLOCK_COUNT,
                window_days: limits::DEFAULT_UNBLOCK_WINDOW_DAYS,
            },
            max_recipients_per_message: limits::DEFAULT_MAX_RECIPIENTS_PER_MESSAGE,
            message_rate_limit: limits::DEFAULT_MESSAGE_RATE_LIMIT,
            recipient_rate_limit: limits::DEFAULT_RECIPIENT_RATE_LIMIT,
        }
    }
}

/// Collects errors while walking the tree.
#[derive(Default)]
struct Ctx {
    errors: Vec<ConfigError>,
}

impl Ctx {
    fn err(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            field: field.into(),
            message: message.into(),
        });
    }

    fn unknown(&mut self, path: String, allowed: &[&str]) {
        self.err(
            path,
            format!("unknown key; expected one of: {}", allowed.join(", ")),
        );
    }

    fn wrong_type(&mut self, path: &str, want: &str, got: &Value) {
        self.err(path, format!("must be {want}, got {}", got.type_str()));
    }

    fn int(&mut self, path: &str, v: &Value, min: u32, max: u32, hint: &str) -> Option<u32> {
        let Some(i) = v.as_integer() else {
            self.wrong_type(path, &format!("an integer from {min} to {max}{hint}"), v);
            return None;
        };
        match u32::try_from(i) {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.err(
                    path,
                    format!("must be an integer from {min} to {max}{hint}, got {i}"),
                );
                None
            }
        }
    }

    fn string<'v>(&mut self, path: &str, v: &'v Value) -> Option<&'v str> {
        let s = v.as_str();
        if s.is_none() {
            self.wrong_type(path, "a string", v);
        }
        s
    }

    fn name(&mut self, path: &str, v: &Value) -> Option<String> {
        let s = self.string(path, v)?.trim();
        if s.is_empty() || s.chars().count() > MAX_NAME_LEN || s.chars().any(char::is_control) {
            self.err(
                path,
                format!("must be 1 to {MAX_NAME_LEN} characters without control characters"),
            );
            return None;
        }
        Some(s.to_string())
    }

    /// An array of strings (a lone string counts as a one-element list), with each
    /// element's path.
    fn strings<'v>(&mut self, path: &str, v: &'v Value) -> Vec<(String, &'v str)> {
        match v {
            Value::String(s) => vec![(path.to_string(), s.as_str())],
            Value::Array(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    let p = format!("{path}[{i}]");
                    self.string(&p, item).map(|s| (p, s))
                })
                .collect(),
            other => {
                self.wrong_type(path, "an array of strings", other);
                Vec::new()
            }
        }
    }

    fn addresses(&mut self, path: &str, v: &Value) -> Vec<String> {
        let mut out = Vec::new();
        for (p, s) in self.strings(path, v) {
            let a = addr::normalize(s);
            if addr::is_plausible(&a) {
                out.push(a);
            } else {
                self.err(p, format!("{s:?} is not an email address (local@domain)"));
            }
        }
        out
    }

    fn domains(&mut self, path: &str, v: &Value) -> Vec<String> {
        let mut out = Vec::new();
        for (p, s) in self.strings(path, v) {
            let d = addr::normalize_domain(s);
            if is_domain(&d) {
                out.push(d);
            } else {
                self.err(p, format!("{s:?} is not a domain name"));
            }
        }
        out
    }
}

fn is_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && !d.starts_with('.')
        && !d.contains("..")
        && !d
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "@<>[]();:,\\\"".contains(c))
}

/// Parse and validate configuration text. Empty text is valid: the built-in default policy.
pub fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
    let mut table: Table = match text.parse() {
        Ok(t) => t,
        Err(e) => return Err(vec![syntax_error(text, &e)]),
    };
    // Forgive a whole config file whose only table is `[policy]`: its errors then name keys
    // from the file's top (`policy.outbound[0]...`).
    let mut prefix = "";
    if table.len() == 1
        && let Some(Value::Table(inner)) = table.get("policy")
    {
        table = inner.clone();
        prefix = "policy.";
    }

    let mut cx = Ctx::default();
    let mut cfg = Config::default();

    let groups = match table.get("groups") {
        Some(v) => parse_groups(&mut cx, v),
        None => Groups::new(),
    };

    let mut outbound = None;
    let mut connectors = None;
    for (key, value) in &table {
        let key = key.as_str();
        match key {
            "accepted_domains" => {
                cfg.accepted_domains = cx.domains(key, value).into_iter().collect();
            }
            "unblock_limit" => {
                if let Some(u) = parse_unblock(&mut cx, value) {
                    cfg.unblock = u;
                }
            }
            "max_recipient_envelope_limit" => {
                let max = limits::MAX_RECIPIENTS_PER_MESSAGE;
                if let Some(n) = cx.int(key, value, 1, max, "") {
                    cfg.max_recipients_per_message = n;
                }
            }
            "message_rate_limit" => {
                let hint = " (messages per minute)";
                if let Some(n) = cx.int(key, value, 1, limits::MAX_POLICY_LIMIT, hint) {
                    cfg.message_rate_limit = n;
                }
            }
            "recipient_rate_limit" => {
                let hint = " (recipients per 24 hours)";
                if let Some(n) = cx.int(key, value, 1, limits::MAX_POLICY_LIMIT, hint) {
                    cfg.recipient_rate_limit = n;
                }
            }
            "groups" => {}
            "outbound" => outbound = Some(value),
            "connectors" => connectors = Some(value),
            _ if key == "policy" => cx.err(
                key,
                "unknown key: pass the contents of the [policy] table (its keys), not a nested policy table",
            ),
            _ => cx.unknown(key.to_string(), TOP_KEYS),
        }
    }

    if let Some(v) = outbound {
        parse_outbound(&mut cx, v, &groups, &mut cfg);
    }
    if let Some(v) = connectors {
        cfg.connectors = parse_connectors(&mut cx, v);
    }
    cfg.groups = groups;

    if cx.errors.is_empty() {
        return Ok(cfg);
    }
    for e in &mut cx.errors {
        e.field.insert_str(0, prefix);
    }
    Err(cx.errors)
}

fn syntax_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let at = e.span().map(|s| s.start.min(text.len())).unwrap_or(0);
    let before = text.get(..at).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let message = e.message().trim();
    ConfigError {
        field: String::new(),
        message: format!("TOML syntax error at line {line}, column {column}: {message}"),
    }
}

fn parse_unblock(cx: &mut Ctx, v: &Value) -> Option<UnblockLimit> {
    let Some(t) = v.as_table() else {
        cx.wrong_type("unblock_limit", "a table { count, window_days }", v);
        return None;
    };
    let mut u = Config::default().unblock;
    let mut ok = true;
    for (k, v) in t {
        let p = format!("unblock_limit.{k}");
        let parsed = match k.as_str() {
            "count" => cx
                .int(&p, v, 1, limits::MAX_UNBLOCK_COUNT, "")
                .map(|n| u.count = n),
            "window_days" => cx
                .int(&p, v, 1, limits::MAX_UNBLOCK_WINDOW_DAYS, "")
                .map(|n| u.window_days = n),
            _ => {
                cx.unknown(p, UNBLOCK_KEYS);
                None
            }
        };
        ok &= parsed.is_some();
    }
    ok.then_some(u)
}

fn parse_groups(cx: &mut Ctx, v: &Value) -> Groups {
    let Some(t) = v.as_table() else {
        cx.wrong_type("groups", "a table of group name = [members]", v);
        return Groups::new();
    };
    // Raw: group -> direct members (addresses or group names).
    let names: BTreeSet<String> = t.keys().map(|k| addr::normalize(k)).collect();
    let mut raw: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, members) in t {
        let path = format!("groups.{k}");
        let name = addr::normalize(k);
        if name.is_empty() {
            cx.err(path.clone(), "group name must not be empty");
        }
        let mut list = Vec::new();
        for (p, m) in cx.strings(&path, members) {
            let m = addr::normalize(m);
            if names.contains(&m) || addr::is_plausible(&m) {
                list.push(m);
            } else {
                cx.err(
                    p,
                    format!("{m:?} is neither an email address nor a group in [groups]"),
                );
            }
        }
        raw.entry(name).or_default().extend(list);
    }
    // Flatten nested groups, cutting cycles with a visited set.
    fn expand(
        raw: &BTreeMap<String, Vec<String>>,
        g: &str,
        seen: &mut BTreeSet<String>,
        out: &mut BTreeSet<String>,
        depth: usize,
    ) {
        if depth > MAX_GROUP_DEPTH || !seen.insert(g.to_string()) {
            return;
        }
        for m in raw.get(g).into_iter().flatten() {
            if raw.contains_key(m) {
                expand(raw, m, seen, out, depth + 1);
            } else {
                out.insert(m.clone());
            }
        }
    }
    raw.keys()
        .map(|g| {
            let mut out = BTreeSet::new();
            expand(&raw, g, &mut BTreeSet::new(), &mut out, 0);
            (g.clone(), out)
        })
        .collect()
}

/// Limit and action keys shared by outbound policies and connectors; returns whether `key`
/// was one of them.
#[derive(Default)]
struct LimitFields {
    preset: Option<&'static limits::Preset>,
    external_per_hour: Option<u32>,
    internal_per_hour: Option<u32>,
    per_day: Option<u32>,
    action: Option<OutboundAction>,
}

impl LimitFields {
    fn take(&mut self, cx: &mut Ctx, path: &str, key: &str, v: &Value) -> bool {
        let hint = " (0 = service default)";
        let max = limits::MAX_POLICY_LIMIT;
        match key {
            "recipient_limit_external_per_hour" => {
                self.external_per_hour = cx.int(path, v, 0, max, hint);
            }
            "recipient_limit_internal_per_hour" => {
                self.internal_per_hour = cx.int(path, v, 0, max, hint);
            }
            "recipient_limit_per_day" => self.per_day = cx.int(path, v, 0, max, hint),
            "action_when_threshold_reached" => {
                if let Some(s) = cx.string(path, v) {
                    self.action = OutboundAction::parse(s);
                    if self.action.is_none() {
                        cx.err(
                            path,
                            format!("{s:?} is not an action; expected BlockUserForToday, BlockUser or Alert"),
                        );
                    }
                }
            }
            "preset" => {
                if let Some(s) = cx.string(path, v) {
                    self.preset = limits::preset(s);
                    if self.preset.is_none() {
                        cx.err(
                            path,
                            format!("{s:?} is not a preset; expected standard or strict"),
                        );
                    }
                }
            }
            _ => return false,
        }
        true
    }

    /// Explicit value, else the preset's, else quench's default (the `standard` preset's
    /// numbers). An explicit 0 is EOP's "the service defaults are used": the policy adds no
    /// limit of its own ([`limits::NO_LIMIT`]), and only the service limits apply.
    fn resolve(&self) -> Limits {
        let base = self.preset.map_or(Limits::SERVICE_DEFAULT, |p| p.limits);
        let pick = |explicit: Option<u32>, preset: u32| match explicit {
            Some(0) => limits::NO_LIMIT,
            Some(n) => n,
            None => preset,
        };
        Limits {
            external_per_hour: pick(self.external_per_hour, base.external_per_hour),
            internal_per_hour: pick(self.internal_per_hour, base.internal_per_hour),
            per_day: pick(self.per_day, base.per_day),
            action: self.action.unwrap_or(base.action),
        }
    }
}

fn array_of_tables<'v>(cx: &mut Ctx, key: &str, v: &'v Value) -> Vec<(String, &'v Table)> {
    let Some(items) = v.as_array() else {
        cx.wrong_type(key, &format!("an array of tables ([[{key}]])"), v);
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| {
            let p = format!("{key}[{i}]");
            match item.as_table() {
                Some(t) => Some((p, t)),
                None => {
                    cx.wrong_type(&p, "a table", item);
                    None
                }
            }
        })
        .collect()
}

fn parse_outbound(cx: &mut Ctx, v: &Value, groups: &Groups, cfg: &mut Config) {
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut priorities: BTreeMap<u32, String> = BTreeMap::new();
    let mut default_at: Option<String> = None;
    let mut scoped: Vec<(u32, usize, OutboundPolicy)> = Vec::new();

    for (index, (path, t)) in array_of_tables(cx, "outbound", v).into_iter().enumerate() {
        let mut name = None;
        let mut priority = None;
        let mut enabled = true;
        let mut lf = LimitFields::default();
        let mut scope = Scope::default();
        for (k, v) in t {
            let p = format!("{path}.{k}");
            if lf.take(cx, &p, k, v) {
                continue;
            }
            match k.as_str() {
                "name" => name = cx.name(&p, v),
                "priority" => priority = cx.int(&p, v, 0, MAX_PRIORITY, " (0 = highest)"),
                "enabled" => match v.as_bool() {
                    Some(b) => enabled = b,
                    None => cx.wrong_type(&p, "true or false", v),
                },
                "comments" => {
                    cx.string(&p, v);
                }
                "from" => scope.from = cx.addresses(&p, v),
                "except_if_from" => scope.except_if_from = cx.addresses(&p, v),
                "sender_domain_is" => scope.sender_domain_is = cx.domains(&p, v),
                "except_if_sender_domain_is" => {
                    scope.except_if_sender_domain_is = cx.domains(&p, v)
                }
                "from_member_of" => scope.from_member_of = group_refs(cx, &p, v, groups),
                "except_if_from_member_of" => {
                    scope.except_if_from_member_of = group_refs(cx, &p, v, groups);
                }
                _ => cx.unknown(p, OUTBOUND_KEYS),
            }
        }
        let Some(name) = name else {
            if !t.contains_key("name") {
                cx.err(
                    format!("{path}.name"),
                    "missing required key: every policy needs a name",
                );
            }
            continue;
        };
        if let Some(first) = names.insert(name.to_lowercase(), path.clone()) {
            cx.err(
                format!("{path}.name"),
                format!("duplicate policy name {name:?} (also {first})"),
            );
        }
        if !enabled {
            continue;
        }
        let policy = OutboundPolicy {
            name,
            priority,
            limits: lf.resolve(),
            scope,
        };
        if policy.scope.is_unscoped() {
            if let Some(first) = &default_at {
                cx.err(
                    path,
                    format!(
                        "a second policy without scoping conditions; only the default policy ({first}) may be unscoped"
                    ),
                );
            } else {
                default_at = Some(path);
                cfg.default_policy = policy;
            }
            continue;
        }
        if let Some(p) = priority
            && let Some(first) = priorities.insert(p, path.clone())
        {
            cx.err(
                format!("{path}.priority"),
                format!("duplicate priority {p} (also {first})"),
            );
        }
        scoped.push((priority.unwrap_or(u32::MAX), index, policy));
    }
    scoped.sort_by_key(|(p, i, _)| (*p, *i));
    cfg.policies = scoped.into_iter().map(|(_, _, p)| p).collect();
}

fn group_refs(cx: &mut Ctx, path: &str, v: &Value, groups: &Groups) -> Vec<String> {
    let mut out = Vec::new();
    for (p, s) in cx.strings(path, v) {
        let g = addr::normalize(s);
        if groups.contains_key(&g) {
            out.push(g);
        } else {
            cx.err(p, format!("unknown group {s:?}; define it under [groups]"));
        }
    }
    out
}

fn parse_connectors(cx: &mut Ctx, v: &Value) -> Vec<Connector> {
    let mut out: Vec<Connector> = Vec::new();
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    let mut seen_addresses: BTreeMap<String, String> = BTreeMap::new();
    for (path, t) in array_of_tables(cx, "connectors", v) {
        let mut id = None;
        let mut lf = LimitFields::default();
        let mut client_addresses = Vec::new();
        let mut certificate_fingerprints = Vec::new();
        for (k, v) in t {
            let p = format!("{path}.{k}");
            if lf.take(cx, &p, k, v) {
                continue;
            }
            match k.as_str() {
                "id" => id = cx.name(&p, v),
                "comments" => {
                    cx.string(&p, v);
                }
                "client_addresses" => {
                    for (p, s) in cx.strings(&p, v) {
                        match s.trim().parse::<IpAddr>() {
                            Ok(ip) => {
                                let canon = ip.to_string();
                                if let Some(first) = seen_addresses.insert(canon.clone(), p.clone())
                                {
                                    cx.err(p, format!("{canon} is already listed at {first}"));
                                } else {
                                    client_addresses.push(canon);
                                }
                            }
                            Err(_) => cx.err(
                                p,
                                format!(
                                    "{s:?} is not an IP address (list single addresses, no ranges)"
                                ),
                            ),
                        }
                    }
                }
                "certificate_fingerprints" => {
                    for (p, s) in cx.strings(&p, v) {
                        match fingerprint(s) {
                            Some(f) => {
                                let key = f.replace(':', "");
                                if let Some(first) = seen_addresses.insert(key, p.clone()) {
                                    cx.err(p, format!("fingerprint is already listed at {first}"));
                                } else {
                                    certificate_fingerprints.push(f);
                                }
                            }
                            None => cx.err(
                                p,
                                format!("{s:?} is not a certificate fingerprint (hex, with or without colons: MD5, SHA-1, SHA-256 or SHA-512)"),
                            ),
                        }
                    }
                }
                _ => cx.unknown(p, CONNECTOR_KEYS),
            }
        }
        let Some(id) = id else {
            if !t.contains_key("id") {
                cx.err(
                    format!("{path}.id"),
                    "missing required key: every connector needs an id",
                );
            }
            continue;
        };
        if let Some(first) = ids.insert(id.to_lowercase(), path.clone()) {
            cx.err(
                format!("{path}.id"),
                format!("duplicate connector id {id:?} (also {first})"),
            );
            continue;
        }
        if !t.contains_key("client_addresses") && !t.contains_key("certificate_fingerprints") {
            cx.err(
                path,
                "a connector needs client_addresses or certificate_fingerprints, or its traffic can't be recognised",
            );
            continue;
        }
        out.push(Connector {
            id,
            client_addresses,
            certificate_fingerprints,
            limits: lf.resolve(),
        });
    }
    out
}

/// Lower-case a fingerprint and check it is hex of a known digest length, optionally with a
/// colon between every byte.
fn fingerprint(s: &str) -> Option<String> {
    let f = s.trim().to_ascii_lowercase();
    let hex: String = f.chars().filter(|&c| c != ':').collect();
    let colons_ok = !f.contains(':') || f.split(':').all(|byte| byte.len() == 2);
    let ok = colons_ok
        && [32, 40, 64, 128].contains(&hex.len())
        && hex.chars().all(|c| c.is_ascii_hexdigit());
    ok.then_some(f)
}
