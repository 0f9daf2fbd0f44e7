//! Live policy swap: load the component and config again (SIGHUP or the admin API's
//! `POST /v1/policy/reload`), validate them fully before anything changes (compile, link,
//! configure every ready instance, compare state formats), then put the new policy in force.
//! A bad policy is refused with the reason while the old one keeps serving; decisions in
//! flight finish on the policy they started with.

use crate::config::QuenchConfig;
use crate::sandbox::{PolicySource, Sandbox};
use crate::service::Service;
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Where a server's policy comes from, so it can be loaded again the same way.
#[derive(Debug, Clone)]
pub struct PolicyLoader {
    /// The config file, re-read on every load (`None`: defaults).
    pub config_path: Option<PathBuf>,
    /// `--policy` given on the command line, which wins over the config's `serve.policy`.
    pub policy_override: Option<PathBuf>,
    /// Where compiled code is cached.
    pub cache_dir: PathBuf,
}

impl PolicyLoader {
    /// Read the config and build (compile, link, configure) the policy it names.
    pub fn load(&self) -> Result<(Sandbox, QuenchConfig)> {
        let config = match &self.config_path {
            Some(path) => QuenchConfig::load(path)?,
            None => QuenchConfig::default(),
        };
        let policy = self
            .policy_override
            .clone()
            .or_else(|| config.serve.policy.clone());
        let sandbox = Sandbox::builder()
            .source(policy.map_or(PolicySource::Embedded, PolicySource::File))
            .config(config.policy_text())
            .limits(config.sandbox.clone())
            .cache_dir(&self.cache_dir)
            .build()?;
        Ok((sandbox, config))
    }
}

/// What a reload did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Swapped {
    /// SHA-256 of the component that was in force.
    pub previous: String,
    /// SHA-256 of the component now in force.
    pub current: String,
    /// The state format the new policy writes.
    pub state_format: String,
    /// Whether every entity's state was reset (the formats differed).
    pub reset_state: bool,
}

/// Reloads one service's policy; one reload at a time.
pub struct Reloader {
    loader: PolicyLoader,
    service: Arc<Service>,
    busy: Mutex<()>,
}

impl Reloader {
    /// A reloader for `service`, loading with `loader`.
    pub fn new(loader: PolicyLoader, service: Arc<Service>) -> Self {
        Reloader {
            loader,
            service,
            busy: Mutex::new(()),
        }
    }

    /// Load and validate the policy again and put it in force. With `reset_state`, a policy
    /// whose state format differs from the running one's is accepted and every entity's state
    /// is cleared (restrictions and counts are lost; the audit log stays).
    pub fn reload(&self, reset_state: bool) -> Result<Swapped> {
        let _one_at_a_time = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        let (next, _) = self
            .loader
            .load()
            .context("the new policy was refused; the running one keeps serving")?;
        swap(&self.service, next, reset_state)
    }
}

/// Put `next` in force on `service` if its state format matches, or if `reset_state`.
pub fn swap(service: &Service, next: Sandbox, reset_state: bool) -> Result<Swapped> {
    let running = service.policy();
    let (old, new) = (running.sandbox.state_format(), next.state_format());
    let formats_differ = old != new;
    if formats_differ {
        if !reset_state {
            bail!(
                "the new policy writes state format `{new}` but the running one wrote `{old}`: \
                 the new policy could not read the stored state, so the swap is refused; reload \
                 with reset_state to start every entity afresh (their restrictions are lost)"
            );
        }
        service
            .store()
            .clear_states()
            .context("resetting state for the new policy")?;
    }
    let swapped = Swapped {
        previous: running.sandbox.component_hash().to_string(),
        current: next.component_hash().to_string(),
        state_format: new.to_string(),
        reset_state: formats_differ,
    };
    service.replace_policy(next);
    tracing::info!(previous = %swapped.previous, current = %swapped.current, state_format = %swapped.state_format, reset = swapped.reset_state, "policy reloaded");
    Ok(swapped)
}
