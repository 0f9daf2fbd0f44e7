//! Alert policies as EOP shows them: each alert kind with its status (on/off), email
//! recipients and daily notification limit, readable and changeable while the server runs
//! (`GET`/`PUT /v1/alert-policies/{name}`, `quench alert-policy`, the portal's Alert policies
//! page).
//!
//! The `[alerts]` table gives the initial values. A change made through the API is kept in
//! memory (the dispatcher reads it for the next alert) and in `alert-policies.json` in the
//! data directory (written to a temporary file, synced and renamed; mode 0600), so it survives
//! a restart. **On restart the saved settings win** over the config file for the kinds they
//! name; kinds never changed through the API follow the file (and a reload). Deleting the file
//! while the server is stopped returns every kind to the file's values.

use super::config::{AlertsConfig, BUILT_IN_KINDS, Rule, built_in_id, built_in_name};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// The file, in the data directory, that keeps the settings changed through the API.
pub const FILE_NAME: &str = "alert-policies.json";

/// One kind's saved settings: each field set replaces what the config file says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// On or off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Email recipients; `None` follows the config (the kind's own list, or the tenant admins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients: Option<Vec<String>>,
    /// Daily notification limit; `Some(0)` is "No limit".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_limit: Option<u32>,
}

/// A change asked for through the API: every field optional, absent fields kept.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyChange {
    /// On or off.
    pub enabled: Option<bool>,
    /// The new recipient list (replaces the current one).
    pub recipients: Option<Vec<String>>,
    /// The new daily notification limit: a number, or `0`/`null` for no limit.
    #[serde(default, deserialize_with = "limit_or_null")]
    pub daily_limit: Option<Option<u32>>,
}

fn limit_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    Ok(Some(Option::<u32>::deserialize(d)?))
}

/// One alert policy as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PolicyView {
    /// The kind's id (`user_restricted`), used in the URL.
    pub id: String,
    /// The alert's name ("User restricted from sending email").
    pub name: String,
    /// On or off.
    pub enabled: bool,
    /// Who receives its email.
    pub recipients: Vec<String>,
    /// Whether the recipients are the tenant admins (`[alerts] tenant_admins`), not a list
    /// of the kind's own.
    pub recipients_are_tenant_admins: bool,
    /// Notifications per UTC day; `null` for "No limit".
    pub daily_limit: Option<u32>,
    /// Whether the settings were changed through the API (and saved in the data directory).
    pub changed_live: bool,
    /// What stops this policy from notifying anyone, in words, if anything does.
    pub warning: Option<String>,
}

/// The settings changed through the API, shared by the dispatchers (across reloads) and the
/// admin API.
#[derive(Debug, Default)]
pub struct AlertPolicies {
    saved: RwLock<BTreeMap<String, PolicySettings>>,
    path: Option<PathBuf>,
}

impl AlertPolicies {
    /// In memory only (tests, embedders): changes last until the process ends.
    pub fn in_memory() -> Self {
        AlertPolicies::default()
    }

    /// Loads `data_dir/alert-policies.json` if it exists; changes are saved there.
    pub fn load(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join(FILE_NAME);
        let saved = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("reading the saved alert policies {}", path.display()))?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(error) => {
                return Err(error).with_context(|| format!("reading {}", path.display()));
            }
        };
        Ok(AlertPolicies {
            saved: RwLock::new(saved),
            path: Some(path),
        })
    }

    /// The settings for the alert called `name`: the config's, with any saved change applied.
    pub fn rule_for(&self, config: &AlertsConfig, name: &str) -> Rule {
        let mut rule = config.rule_for(name);
        let saved = self.saved.read().unwrap_or_else(|p| p.into_inner());
        if let Some(settings) = saved.get(&rule.kind) {
            if let Some(enabled) = settings.enabled {
                rule.enabled = enabled;
            }
            if let Some(recipients) = &settings.recipients {
                rule.recipients = recipients.clone();
            }
            if let Some(limit) = settings.daily_limit {
                rule.daily_limit = (limit > 0).then_some(limit);
            }
        }
        rule
    }

    /// Every alert policy: the built-in kinds, then the config's custom ones.
    pub fn list(&self, config: &AlertsConfig) -> Vec<PolicyView> {
        let mut ids: Vec<(String, String)> = BUILT_IN_KINDS
            .iter()
            .map(|(id, name)| (id.to_string(), name.to_string()))
            .collect();
        for (id, rule) in &config.rules {
            if let Some(name) = &rule.name {
                ids.push((id.clone(), name.clone()));
            }
        }
        ids.into_iter()
            .map(|(id, name)| self.view(config, &id, &name))
            .collect()
    }

    /// One alert policy by id (`user_restricted`) or name ("User restricted from sending
    /// email"), case-insensitively.
    pub fn get(&self, config: &AlertsConfig, wanted: &str) -> Option<PolicyView> {
        let wanted = wanted.trim();
        self.list(config)
            .into_iter()
            .find(|p| p.id.eq_ignore_ascii_case(wanted) || p.name.eq_ignore_ascii_case(wanted))
    }

    fn view(&self, config: &AlertsConfig, id: &str, name: &str) -> PolicyView {
        let rule = self.rule_for(config, name);
        let saved = self.saved.read().unwrap_or_else(|p| p.into_inner());
        let own = saved.get(id).and_then(|s| s.recipients.as_ref()).is_some()
            || config
                .rules
                .get(id)
                .and_then(|r| r.recipients.as_ref())
                .is_some();
        let warning = if !rule.enabled {
            None
        } else if rule.recipients.is_empty() && config.webhook.is_none() {
            Some(
                "no recipients: alerts of this kind are only logged (set [alerts] tenant_admins \
                 or this policy's recipients)"
                    .to_string(),
            )
        } else if !rule.recipients.is_empty() && config.email.is_none() {
            Some(
                "there is no [alerts.email] table: the recipients receive nothing until it is set"
                    .to_string(),
            )
        } else {
            None
        };
        PolicyView {
            id: id.to_string(),
            name: name.to_string(),
            enabled: rule.enabled,
            recipients: rule.recipients,
            recipients_are_tenant_admins: !own,
            daily_limit: rule.daily_limit,
            changed_live: saved.contains_key(id),
            warning,
        }
    }

    /// Apply `change` to the policy `wanted` (id or name), save it, and return the new view
    /// and a one-line description of what changed (for the audit log).
    pub fn change(
        &self,
        config: &AlertsConfig,
        wanted: &str,
        change: &PolicyChange,
    ) -> Result<(PolicyView, String)> {
        let Some(current) = self.get(config, wanted) else {
            bail!("there is no alert policy `{wanted}`");
        };
        if let Some(recipients) = &change.recipients {
            if recipients.len() > 100 {
                bail!("at most 100 recipients per alert policy");
            }
            for recipient in recipients {
                if recipient.len() > 320 || recipient.parse::<lettre::Address>().is_err() {
                    bail!("`{recipient}` is not an email address");
                }
            }
        }
        let mut described = Vec::new();
        {
            let mut saved = self.saved.write().unwrap_or_else(|p| p.into_inner());
            let before = saved.clone();
            let entry = saved.entry(current.id.clone()).or_default();
            if let Some(enabled) = change.enabled {
                entry.enabled = Some(enabled);
                described.push(format!("enabled={enabled}"));
            }
            if let Some(recipients) = &change.recipients {
                let mut list: Vec<String> = Vec::new();
                for r in recipients {
                    let r = r.trim().to_string();
                    if !list.iter().any(|l| l.eq_ignore_ascii_case(&r)) {
                        list.push(r);
                    }
                }
                described.push(format!("recipients=[{}]", list.join(",")));
                entry.recipients = Some(list);
            }
            if let Some(limit) = change.daily_limit {
                let limit = limit.unwrap_or(0);
                entry.daily_limit = Some(limit);
                described.push(if limit == 0 {
                    "daily_limit=none".to_string()
                } else {
                    format!("daily_limit={limit}")
                });
            }
            if let Err(error) = self.save(&saved) {
                *saved = before;
                return Err(error);
            }
        }
        if described.is_empty() {
            described.push("no change".into());
        }
        let view = self
            .get(config, &current.id)
            .context("the alert policy vanished")?;
        Ok((view, format!("{}: {}", current.id, described.join(" "))))
    }

    fn save(&self, saved: &BTreeMap<String, PolicySettings>) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let text = serde_json::to_vec_pretty(saved)?;
        let tmp = path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&tmp)?;
            file.write_all(&text)?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)?;
            if let Some(dir) = path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().with_context(|| format!("saving the alert policies to {}", path.display()))
    }
}

/// Whether no alert kind has anyone to notify: no webhook, and no recipient for any enabled
/// kind (the start-up warning).
pub fn nobody_is_notified(policies: &AlertPolicies, config: &AlertsConfig) -> bool {
    config.webhook.is_none()
        && policies
            .list(config)
            .iter()
            .all(|p| !p.enabled || p.recipients.is_empty())
}

/// The id of an alert name, or the name itself.
pub fn id_of(name: &str) -> String {
    built_in_id(name).map_or_else(|| name.to_string(), str::to_string)
}

/// The name of a built-in id.
pub fn name_of(id: &str) -> Option<&'static str> {
    built_in_name(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_changes_win_and_survive_a_reload_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let config: AlertsConfig =
            toml::from_str("tenant_admins = [\"admin@contoso.com\"]").unwrap();
        let policies = AlertPolicies::load(dir.path()).unwrap();
        let view = policies.get(&config, "user_restricted").unwrap();
        assert_eq!(view.recipients, ["admin@contoso.com"]);
        assert!(view.recipients_are_tenant_admins);
        assert_eq!(view.daily_limit, None);
        let change = PolicyChange {
            enabled: Some(false),
            recipients: Some(vec!["soc@contoso.com".into()]),
            daily_limit: Some(Some(5)),
        };
        let (view, detail) = policies
            .change(&config, "User restricted from sending email", &change)
            .unwrap();
        assert!(!view.enabled && view.changed_live);
        assert!(detail.contains("daily_limit=5"), "{detail}");
        let again = AlertPolicies::load(dir.path()).unwrap();
        let rule = again.rule_for(&config, "User restricted from sending email");
        assert!(!rule.enabled);
        assert_eq!(rule.recipients, ["soc@contoso.com"]);
        assert_eq!(rule.daily_limit, Some(5));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            again
                .change(
                    &config,
                    "user_restricted",
                    &PolicyChange {
                        recipients: Some(vec!["not an address".into()]),
                        ..Default::default()
                    }
                )
                .is_err()
        );
        assert!(again.get(&config, "nope").is_none());
    }

    /// Concurrent changes against the sequential model: threads each own one alert kind and
    /// change its daily limit many times, while others change a shared kind. Changes are
    /// serialised with their save, so what is in memory, and what a fresh load reads from the
    /// file, is each owner's last value, and for the shared kind one of the values written.
    #[test]
    fn concurrent_changes_end_as_the_last_write_in_memory_and_on_disk() {
        use crate::alerts::config::BUILT_IN_KINDS;
        const CHANGES: u32 = 25;
        let dir = tempfile::tempdir().unwrap();
        let config = AlertsConfig::default();
        let policies = AlertPolicies::load(dir.path()).unwrap();
        let (shared, owned) = BUILT_IN_KINDS.split_first().unwrap();
        std::thread::scope(|scope| {
            for (t, (id, _)) in owned.iter().enumerate() {
                let (policies, config) = (&policies, &config);
                scope.spawn(move || {
                    for n in 1..=CHANGES {
                        let mine = PolicyChange {
                            daily_limit: Some(Some(n)),
                            ..Default::default()
                        };
                        policies.change(config, id, &mine).unwrap();
                        let theirs = PolicyChange {
                            daily_limit: Some(Some(1000 + t as u32)),
                            ..Default::default()
                        };
                        policies.change(config, shared.0, &theirs).unwrap();
                    }
                });
            }
        });
        let reloaded = AlertPolicies::load(dir.path()).unwrap();
        for which in [&policies, &reloaded] {
            for (id, _) in owned {
                assert_eq!(which.get(&config, id).unwrap().daily_limit, Some(CHANGES));
            }
            let last = which.get(&config, shared.0).unwrap().daily_limit.unwrap();
            assert!((1000..1000 + owned.len() as u32).contains(&last), "{last}");
        }
        assert_eq!(
            reloaded.get(&config, shared.0).unwrap().daily_limit,
            policies.get(&config, shared.0).unwrap().daily_limit,
            "the file holds what memory holds"
        );
    }
}
