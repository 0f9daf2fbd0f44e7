//! Check `config-errors`: a configuration the policy cannot accept is refused at load with
//! errors a person can act on. A custom policy defines its own keys, so the kit only adds
//! keys no policy would accept to the given config and requires that the errors name them.

use super::{Finding, Subject, clip};
use crate::ConfigError;
use crate::sandbox::SandboxError;

/// An unknown top-level key (prepended: it must not land inside one of the config's tables).
const UNKNOWN_KEY: &str = "this_key_does_not_exist_xyz";
/// An unknown table with an out-of-range value (appended: after every table of the config).
const UNKNOWN_TABLE: &str = "this_table_does_not_exist_xyz";

/// One deliberately bad config: its text, and the key the errors must name (none for a
/// syntax error, which has no key).
struct Probe {
    what: &'static str,
    text: String,
    names: Option<&'static str>,
}

fn probes(config: &str) -> [Probe; 3] {
    [
        Probe {
            what: "unknown key",
            text: format!("{UNKNOWN_KEY} = 1\n{config}"),
            names: Some(UNKNOWN_KEY),
        },
        Probe {
            what: "unknown table with an out-of-range value",
            text: format!("{config}\n[{UNKNOWN_TABLE}]\nlimit = -99999999999\n"),
            names: Some(UNKNOWN_TABLE),
        },
        Probe {
            what: "TOML syntax error",
            text: format!("{config}\nthis is = = not toml\n"),
            names: None,
        },
    ]
}

/// Run the check.
pub(crate) fn check(subject: &Subject<'_>) -> Finding {
    let mut examples = Vec::new();
    for probe in probes(&subject.options.config) {
        let errors = match subject.sandbox(&probe.text, subject.limits()) {
            Ok(_) => {
                return Finding::fail(format!(
                    "a config with an {} was accepted (`{}`)",
                    probe.what,
                    clip(probe.text.lines().next().unwrap_or(""), 60)
                ));
            }
            Err(error) => match error.downcast_ref::<SandboxError>() {
                Some(SandboxError::Config(errors)) => errors.clone(),
                _ => {
                    return Finding::fail(format!(
                        "a config with an {} was not refused with config errors: {}",
                        probe.what,
                        clip(&format!("{error:#}"), 200)
                    ));
                }
            },
        };
        if let Err(why) = readable(&errors, probe.names) {
            return Finding::fail(format!("{}: {why}", probe.what));
        }
        let first = errors
            .iter()
            .find(|e| probe.names.is_none_or(|n| e.field.contains(n)))
            .unwrap_or(&errors[0]);
        examples.push(if first.field.is_empty() {
            format!("`{}`", clip(&first.message, 70))
        } else {
            format!("`{}: {}`", first.field, clip(&first.message, 70))
        });
    }
    Finding::pass(format!(
        "unknown key, unknown table and TOML syntax error refused, e.g. {}",
        examples.join(", ")
    ))
}

/// Every error has a message; when the probe has a key, some error names it in `field`.
fn readable(errors: &[ConfigError], names: Option<&str>) -> Result<(), String> {
    if errors.is_empty() {
        return Err("refused with an empty error list".into());
    }
    if let Some(e) = errors.iter().find(|e| e.message.trim().is_empty()) {
        return Err(format!(
            "an error has an empty message (field `{}`)",
            e.field
        ));
    }
    if let Some(key) = names {
        let named = errors
            .iter()
            .any(|e| e.field.contains(key) && !e.message.trim().is_empty());
        if !named {
            let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
            return Err(format!(
                "no error names `{key}` in its field (fields: {fields:?})"
            ));
        }
    }
    Ok(())
}
