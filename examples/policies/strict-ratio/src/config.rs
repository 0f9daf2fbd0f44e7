//! The `[policy]` table. Walked by hand (not derived with serde) so that every problem is
//! reported at once, each naming its key and saying what is allowed: a config error is the
//! first thing an operator sees of a policy.
//!
//! ```toml
//! [policy]
//! accepted_domains = ["contoso.com"]  # recipients there are internal
//! external_per_hour = 200             # N: external recipients per sliding hour
//! max_external_ratio = 4.0            # R: external per internal recipient
//! unblock_limit = 2                   # admin unblocks per entity per window
//! unblock_window_days = 7             # the unblock window, rolling
//! ```

use std::collections::BTreeSet;
use toml::{Table, Value};

/// Default `external_per_hour`: a busy human writes to far fewer outside addresses in an hour.
pub const DEFAULT_EXTERNAL_PER_HOUR: u32 = 200;
/// Default `max_external_ratio`, in thousandths (4.0): four outside recipients for each
/// colleague is already unusual for a person.
pub const DEFAULT_RATIO_MILLI: u64 = 4_000;
/// Default `unblock_limit`: two admin unblocks per window, then only the support role.
pub const DEFAULT_UNBLOCK_LIMIT: u32 = 2;
/// Default `unblock_window_days`: a rolling week.
pub const DEFAULT_UNBLOCK_WINDOW_DAYS: u32 = 7;

const KEYS: &[&str] = &[
    "accepted_domains",
    "external_per_hour",
    "max_external_ratio",
    "unblock_limit",
    "unblock_window_days",
];

/// A problem in the configuration: the key (a dotted path) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The offending key, e.g. `external_per_hour`; empty for a TOML syntax error.
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

/// The validated settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Lower-case domains whose recipients are internal.
    pub accepted_domains: BTreeSet<String>,
    /// N: external recipients per sliding hour allowed before the ratio is looked at.
    pub external_per_hour: u32,
    /// R in thousandths: restrict when external > R × internal (integer maths, so every
    /// platform decides alike).
    pub max_external_ratio_milli: u64,
    /// Unblocks an admin may do per entity per window.
    pub unblock_limit: u32,
    /// Length of the unblock window, in days.
    pub unblock_window_days: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            accepted_domains: BTreeSet::new(),
            external_per_hour: DEFAULT_EXTERNAL_PER_HOUR,
            max_external_ratio_milli: DEFAULT_RATIO_MILLI,
            unblock_limit: DEFAULT_UNBLOCK_LIMIT,
            unblock_window_days: DEFAULT_UNBLOCK_WINDOW_DAYS,
        }
    }
}

impl Settings {
    /// The unblock window in seconds.
    pub fn unblock_window_seconds(&self) -> i64 {
        i64::from(self.unblock_window_days) * 86_400
    }
}

/// Parse and validate the table. Empty text gives the defaults.
pub fn parse(text: &str) -> Result<Settings, Vec<ConfigError>> {
    let table: Table = text.parse().map_err(|e: toml::de::Error| {
        vec![ConfigError {
            field: String::new(),
            message: format!("TOML syntax error: {}", e.message().trim()),
        }]
    })?;
    let mut settings = Settings::default();
    let mut errors = Vec::new();
    let mut err = |field: &str, message: String| {
        errors.push(ConfigError {
            field: field.to_string(),
            message,
        })
    };
    for (key, value) in &table {
        match key.as_str() {
            "accepted_domains" => match domains(value) {
                Ok(set) => settings.accepted_domains = set,
                Err((field, message)) => err(&field, message),
            },
            "external_per_hour" => match int(value, 1, 100_000) {
                Ok(n) => settings.external_per_hour = n,
                Err(message) => err(key, message),
            },
            "max_external_ratio" => match ratio_milli(value) {
                Ok(r) => settings.max_external_ratio_milli = r,
                Err(message) => err(key, message),
            },
            "unblock_limit" => match int(value, 1, 50) {
                Ok(n) => settings.unblock_limit = n,
                Err(message) => err(key, message),
            },
            "unblock_window_days" => match int(value, 1, 365) {
                Ok(n) => settings.unblock_window_days = n,
                Err(message) => err(key, message),
            },
            _ => err(
                key,
                format!("unknown key; expected one of: {}", KEYS.join(", ")),
            ),
        }
    }
    if errors.is_empty() {
        Ok(settings)
    } else {
        Err(errors)
    }
}

fn int(value: &Value, min: u32, max: u32) -> Result<u32, String> {
    let range = format!("an integer from {min} to {max}");
    match value.as_integer() {
        Some(i) => u32::try_from(i)
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or(format!("must be {range}, got {i}")),
        None => Err(format!("must be {range}, got a {}", value.type_str())),
    }
}

/// A ratio above 0 and at most 1,000,000, as an integer or a float, in thousandths.
fn ratio_milli(value: &Value) -> Result<u64, String> {
    let allowed = "a number above 0 and at most 1000000 (e.g. 4.0)";
    let r = match value {
        Value::Integer(i) => *i as f64,
        Value::Float(f) => *f,
        other => return Err(format!("must be {allowed}, got a {}", other.type_str())),
    };
    let milli = (r * 1000.0).round();
    if r.is_finite() && r > 0.0 && r <= 1_000_000.0 && milli >= 1.0 {
        Ok(milli as u64)
    } else {
        Err(format!("must be {allowed}, got {r}"))
    }
}

fn domains(value: &Value) -> Result<BTreeSet<String>, (String, String)> {
    let key = "accepted_domains";
    let Some(list) = value.as_array() else {
        return Err((
            key.into(),
            format!("must be a list of domain names, got a {}", value.type_str()),
        ));
    };
    let mut set = BTreeSet::new();
    for (i, item) in list.iter().enumerate() {
        let field = format!("{key}[{i}]");
        let domain = item
            .as_str()
            .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|d| !d.is_empty() && !d.contains(['@', ' ', '<', '>']) && d.len() <= 253);
        match domain {
            Some(d) => set.insert(d),
            None => return Err((field, format!("must be a domain name, got {item}"))),
        };
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_a_full_table() {
        assert_eq!(parse("").unwrap(), Settings::default());
        let s = parse(
            "accepted_domains = [\"Contoso.COM.\"]\nexternal_per_hour = 50\nmax_external_ratio = 2.5\nunblock_limit = 3\nunblock_window_days = 30\n",
        )
        .unwrap();
        assert!(s.accepted_domains.contains("contoso.com"));
        assert_eq!(
            (s.external_per_hour, s.max_external_ratio_milli),
            (50, 2_500)
        );
        assert_eq!((s.unblock_limit, s.unblock_window_days), (3, 30));
    }

    #[test]
    fn every_problem_is_reported_by_key() {
        let errors = parse(
            "external_per_hour = 0\nmax_external_ratio = \"high\"\nbogus = 1\naccepted_domains = [\"a@b\"]\n",
        )
        .unwrap_err();
        let mut fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "accepted_domains[0]",
                "bogus",
                "external_per_hour",
                "max_external_ratio"
            ]
        );
        assert!(errors.iter().all(|e| !e.message.is_empty()));
        let n = errors
            .iter()
            .find(|e| e.field == "external_per_hour")
            .unwrap();
        assert!(n.message.contains("from 1 to 100000, got 0"), "{n:?}");
        assert_eq!(parse("= =").unwrap_err()[0].field, "");
    }
}
