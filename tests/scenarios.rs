//! Behaviour scenarios, run through the real sandbox: every `tests/scenarios/*.toml` is a
//! policy configuration plus a list of steps, each a `quench simulate` input line with the
//! answer it must get. The steps go through `quench::simulate::Simulator` over a real
//! `quench::Sandbox` (the compiled default policy in wasmtime), exactly as `quench simulate`
//! runs them.
//!
//! A scenario file (see `tests/scenarios/README.md` for the full reference):
//!
//! ```toml
//! description = "What this scenario shows, in a sentence or two."
//!
//! [policy]                         # the [policy] table of quench.toml
//! accepted_domains = ["contoso.com"]
//! [[policy.outbound]]
//! name = "Default"
//! recipient_limit_external_per_hour = 3
//!
//! [[step]]                         # a simulate input line ...
//! at = "2026-11-23T10:00:00Z"
//! sender = "alice@contoso.com"
//! generate = { count = 3, domain = "fabrikam.com" }
//! expect = { verdict = "accept", restricted = false }   # ... and its expected answer
//! ```
//!
//! Run one scenario (or several) by a part of its file name:
//! `cargo test --test scenarios -- block_user`.

mod common;

use anyhow::{Context, Result, bail, ensure};
use quench::sandbox::{Allocation, Sandbox, SandboxLimits};
use quench::simulate::Simulator;
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Keys of a step that belong to the runner; every other key is part of the simulate line.
const RUNNER_KEYS: &[&str] = &["expect", "repeat", "every", "generate", "note"];

fn main() -> ExitCode {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/scenarios exists")
        .map(|e| e.expect("readable directory").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scenarios in {}", dir.display());

    let mut failed = Vec::new();
    let mut ran = 0;
    for file in &files {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        ran += 1;
        match run_file(file) {
            Ok(steps) => println!("scenario {name} ... ok ({steps} steps)"),
            Err(error) => {
                println!("scenario {name} ... FAILED");
                failed.push(format!(
                    "---- {name} ({}) ----\n{error:#}\n",
                    file.display()
                ));
            }
        }
    }
    println!();
    if failed.is_empty() {
        println!("scenarios: {ran} passed");
        ExitCode::SUCCESS
    } else {
        for f in &failed {
            println!("{f}");
        }
        println!(
            "scenarios: {} failed, {} passed",
            failed.len(),
            ran - failed.len()
        );
        ExitCode::FAILURE
    }
}

/// Run one scenario file; returns how many steps ran (repetitions counted).
fn run_file(path: &Path) -> Result<usize> {
    let text = std::fs::read_to_string(path)?;
    let mut scenario: toml::Table = text.parse().context("not valid TOML")?;
    for key in scenario.keys() {
        ensure!(
            ["description", "policy", "step"].contains(&key.as_str()),
            "unknown top-level key `{key}` (expected description, policy, step)"
        );
    }
    ensure!(
        scenario.get("description").is_some_and(toml::Value::is_str),
        "a scenario needs a `description` string"
    );
    let policy = match scenario.remove("policy") {
        Some(toml::Value::Table(t)) => toml::to_string(&t)?,
        Some(_) => bail!("`policy` must be a table"),
        None => String::new(),
    };
    let Some(toml::Value::Array(steps)) = scenario.remove("step") else {
        bail!("a scenario needs [[step]] tables");
    };

    let sandbox = sandbox(&policy)?;
    let mut simulator = Simulator::new(sandbox);
    let mut count = 0;
    for (index, step) in steps.into_iter().enumerate() {
        let toml::Value::Table(step) = step else {
            bail!("step {} is not a table", index + 1);
        };
        let step = Step::parse(step).with_context(|| format!("step {}", index + 1))?;
        for repetition in 0..step.repeat {
            let line = step.line(repetition)?;
            let answer = serde_json::to_value(simulator.answer(&line))?;
            count += 1;
            let mut problems = Vec::new();
            check_always(&answer, &step.expect, &mut problems);
            check(&step.expect, &answer, "", &mut problems);
            if !problems.is_empty() {
                let which = if step.repeat > 1 {
                    format!(" (repetition {} of {})", repetition + 1, step.repeat)
                } else {
                    String::new()
                };
                let note = step
                    .note
                    .as_deref()
                    .map(|n| format!("\n  note:   {n}"))
                    .unwrap_or_default();
                bail!(
                    "step {}{which}:{note}\n  input:  {}\n  output: {answer}\n  {}",
                    index + 1,
                    abbreviate(&line),
                    problems.join("\n  ")
                );
            }
        }
    }
    Ok(count)
}

/// The embedded default policy in a real sandbox, as `common::default_policy` builds it but
/// with a generous deadline: scenarios check the policy's answers, and a slow call on a loaded
/// machine (these tests run unoptimised) must not turn into the fail action. The deadline
/// itself is tested in `sandbox_faults.rs`.
fn sandbox(policy: &str) -> Result<Sandbox> {
    Sandbox::builder()
        .config(policy)
        .limits(SandboxLimits {
            deadline_ms: 10_000,
            ..SandboxLimits::default()
        })
        .allocation(Allocation::OnDemand)
        .cache_dir(common::cache_dir())
        .build()
}

/// One `[[step]]`: the simulate line and what the runner does with it.
struct Step {
    /// The simulate input line, without generated recipients and with `at` as written.
    line: Map<String, Value>,
    /// Recipients appended by `generate`.
    generated: Vec<String>,
    /// Times to run the step (`repeat`, default 1).
    repeat: u32,
    /// Seconds between repetitions (`every`).
    every: i64,
    /// The expected answer.
    expect: Map<String, Value>,
    /// A comment shown when the step fails.
    note: Option<String>,
}

impl Step {
    fn parse(mut table: toml::Table) -> Result<Step> {
        let expect = match table.remove("expect") {
            Some(toml::Value::Table(t)) => to_json(t)?,
            Some(_) => bail!("`expect` must be a table"),
            None => bail!("every step needs `expect` (use `expect = {{}}` to check nothing)"),
        };
        let repeat = match table.remove("repeat") {
            Some(v) => {
                let n = v.as_integer().context("`repeat` must be an integer")?;
                u32::try_from(n)
                    .ok()
                    .filter(|&n| n >= 1)
                    .context("`repeat` must be at least 1")?
            }
            None => 1,
        };
        let every = match table.remove("every") {
            Some(v) => duration(
                v.as_str()
                    .context("`every` must be a string like \"10s\"")?,
            )?,
            None if repeat > 1 => bail!("a repeated step needs `every` (e.g. \"1s\", \"5m\")"),
            None => 0,
        };
        let note = match table.remove("note") {
            Some(v) => Some(v.as_str().context("`note` must be a string")?.to_string()),
            None => None,
        };
        let generated = match table.remove("generate") {
            Some(v) => generate(v)?,
            None => Vec::new(),
        };
        debug_assert!(RUNNER_KEYS.iter().all(|k| !table.contains_key(*k)));
        let line = to_json(table)?;
        Ok(Step {
            line,
            generated,
            repeat,
            every,
            expect,
            note,
        })
    }

    /// The simulate input line of repetition `i`.
    fn line(&self, i: u32) -> Result<String> {
        let mut line = self.line.clone();
        if self.every != 0 {
            let at = line
                .get("at")
                .and_then(Value::as_str)
                .context("a repeated step needs `at`")?;
            let at = quench::time::parse(at)? + self.every * i64::from(i);
            line.insert("at".into(), json!(quench::time::format(at)));
        }
        if !self.generated.is_empty() {
            let recipients = line
                .entry("recipients")
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .context("`recipients` must be a list")?;
            recipients.extend(self.generated.iter().map(|r| json!(r)));
        }
        Ok(Value::Object(line).to_string())
    }
}

fn to_json(table: toml::Table) -> Result<Map<String, Value>> {
    match serde_json::to_value(table)? {
        Value::Object(map) => Ok(map),
        _ => unreachable!("a table serialises to an object"),
    }
}

/// `"30s"`, `"5m"`, `"1h"`, `"1d"` in seconds.
fn duration(text: &str) -> Result<i64> {
    let text = text.trim();
    let split = text.len() - 1;
    let (number, unit) = (&text[..split], &text[split..]);
    let n: i64 = number
        .parse()
        .with_context(|| format!("`{text}` is not a duration like \"10s\", \"5m\", \"1h\""))?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => bail!("`{text}`: the unit must be s, m, h or d"),
    };
    Ok(n * unit)
}

/// `generate = { count = 500, domain = "fabrikam.com" }` (or a list of such tables):
/// recipients `r1@fabrikam.com` .. `r500@fabrikam.com`.
fn generate(value: toml::Value) -> Result<Vec<String>> {
    let tables = match value {
        toml::Value::Table(t) => vec![t],
        toml::Value::Array(items) => items
            .into_iter()
            .map(|i| match i {
                toml::Value::Table(t) => Ok(t),
                _ => bail!("`generate` entries must be tables"),
            })
            .collect::<Result<_>>()?,
        _ => bail!("`generate` must be a table or a list of tables"),
    };
    let mut out = Vec::new();
    for t in tables {
        for key in t.keys() {
            ensure!(
                key == "count" || key == "domain" || key == "prefix",
                "unknown `generate` key `{key}` (count, domain, prefix)"
            );
        }
        let count = t
            .get("count")
            .and_then(toml::Value::as_integer)
            .context("`generate.count` must be an integer")?;
        let domain = t
            .get("domain")
            .and_then(toml::Value::as_str)
            .context("`generate.domain` must be a string")?;
        let prefix = t.get("prefix").and_then(toml::Value::as_str).unwrap_or("r");
        out.extend((1..=count).map(|i| format!("{prefix}{i}@{domain}")));
    }
    Ok(out)
}

/// Checks made on every answer whatever the step expects: the default policy never faults,
/// an accepted submission has no reply, and an error line is only fine when expected.
fn check_always(answer: &Value, expect: &Map<String, Value>, problems: &mut Vec<String>) {
    let expects_error = expect.contains_key("error") || expect.contains_key("error_contains");
    if let Some(error) = answer.get("error")
        && !error.is_null()
        && answer.get("unblock").is_none()
        && !expects_error
    {
        problems.push(format!("the line was refused as input: {error}"));
    }
    if let Some(fault) = answer.get("fault")
        && !fault.is_null()
    {
        problems.push(format!("the sandbox reported a fault: {fault}"));
    }
    if answer.get("verdict") == Some(&json!("accept"))
        && answer.get("reply").is_some_and(|r| !r.is_null())
    {
        problems.push("an accepted submission came with a reply".into());
    }
}

/// Compare the expected table with the actual answer, field by field. Only the fields the
/// expectation names are checked:
/// - `field = value`: equal (`false` also matches null, so `restricted = false` means "no
///   restriction");
/// - `field = { ... }`: the actual object has at least these fields, compared the same way;
/// - `alerts = ["name", ...]`: exactly these alerts, by name, in order (tables compare as
///   above);
/// - `field_contains = "text"` or `["text", ...]`: the field's text (JSON text for lists and
///   objects) contains each fragment.
fn check(expected: &Map<String, Value>, actual: &Value, path: &str, problems: &mut Vec<String>) {
    for (key, want) in expected {
        let here = format!("{path}{key}");
        if let Some(field) = key.strip_suffix("_contains") {
            let Some(got) = actual.get(field) else {
                problems.push(format!("{here}: the answer has no field `{field}`"));
                continue;
            };
            let text = match got {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let fragments: Vec<&Value> = match want {
                Value::Array(items) => items.iter().collect(),
                single => vec![single],
            };
            for fragment in fragments {
                match fragment.as_str() {
                    Some(f) if text.contains(f) => {}
                    Some(f) => problems.push(format!("{here}: {f:?} not found in: {text}")),
                    None => problems.push(format!("{here}: fragments must be strings")),
                }
            }
            continue;
        }
        let Some(got) = actual.get(key) else {
            problems.push(format!("{here}: the answer has no field `{key}`"));
            continue;
        };
        compare(want, got, &here, problems);
    }
}

fn compare(want: &Value, got: &Value, here: &str, problems: &mut Vec<String>) {
    match (want, got) {
        (Value::Bool(false), Value::Null) => {}
        (Value::Object(w), Value::Object(_)) => check(w, got, &format!("{here}."), problems),
        (Value::Array(w), Value::Array(g)) => {
            if w.len() != g.len() {
                problems.push(format!(
                    "{here}: expected {} items {}, got {} {}",
                    w.len(),
                    Value::Array(w.clone()),
                    g.len(),
                    names(g)
                ));
                return;
            }
            for (i, (w, g)) in w.iter().zip(g).enumerate() {
                let here = format!("{here}[{i}]");
                match (w, g) {
                    // An alert (or anything with a name) given by its name.
                    (Value::String(name), Value::Object(o)) if o.contains_key("name") => {
                        if o.get("name") != Some(&json!(name)) {
                            problems.push(format!("{here}: expected {name:?}, got {}", o["name"]));
                        }
                    }
                    _ => compare(w, g, &here, problems),
                }
            }
        }
        _ if want == got => {}
        _ => problems.push(format!("{here}: expected {want}, got {got}")),
    }
}

/// A list shown by its items' names when they have some.
fn names(items: &[Value]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|i| i.get("name").cloned().unwrap_or_else(|| i.clone()))
            .collect(),
    )
}

/// An input line for a failure message, with long recipient lists cut short.
fn abbreviate(line: &str) -> String {
    let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(line) else {
        return line.to_string();
    };
    if let Some(Value::Array(r)) = map.get_mut("recipients")
        && r.len() > 6
    {
        let n = r.len();
        r.truncate(3);
        r.push(json!(format!("... {} more", n - 3)));
    }
    Value::Object(map).to_string()
}
