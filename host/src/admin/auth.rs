//! Bearer tokens and roles. The config holds only SHA-256 hashes of tokens (`token_sha256`),
//! so the file holds no secret; a request's token is hashed and looked up.

use crate::bindings::Role;
use anyhow::{Result, bail};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// One `[[admin.tokens]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds the token: recorded as the actor in the audit log.
    pub name: String,
    /// What the holder may do.
    pub role: Role,
    /// Hex SHA-256 of the token (`quench admin hash-token` prints it).
    pub token_sha256: String,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// The token's name.
    pub name: String,
    /// The token's role.
    pub role: Role,
}

/// Tokens by hash.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    by_hash: HashMap<String, Caller>,
}

impl Tokens {
    /// Index the configured tokens; malformed hashes and duplicate names are errors.
    pub fn new(tokens: &[TokenConfig]) -> Result<Self> {
        let mut by_hash = HashMap::new();
        let mut names = std::collections::HashSet::new();
        for (index, token) in tokens.iter().enumerate() {
            let hash = token.token_sha256.trim().to_ascii_lowercase();
            if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
                bail!(
                    "admin.tokens[{index}].token_sha256 must be 64 hex digits (use `quench admin hash-token`)"
                );
            }
            if !names.insert(token.name.clone()) {
                bail!("admin.tokens[{index}].name `{}` is used twice", token.name);
            }
            by_hash.insert(
                hash,
                Caller {
                    name: token.name.clone(),
                    role: token.role,
                },
            );
        }
        Ok(Tokens { by_hash })
    }

    /// The caller whose token hashes to `hash`, if any (portal sessions keep only the hash).
    pub fn caller_by_hash(&self, hash: &str) -> Option<&Caller> {
        self.by_hash.get(hash)
    }

    /// The caller a presented token belongs to, if any.
    pub fn caller(&self, token: &str) -> Option<&Caller> {
        self.by_hash.get(&hash_token(token))
    }
}

/// Hex SHA-256 of a token, as stored in `token_sha256`. Surrounding white space (a trailing
/// newline from `echo`) is not part of the token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

/// Whether `role` may lift restrictions at all (the policy then decides the unblock limit).
pub fn may_unblock(role: Role) -> bool {
    matches!(
        role,
        Role::GlobalAdministrator
            | Role::OrganizationManagement
            | Role::SecurityAdministrator
            | Role::Support
    )
}

/// Whether `role` may reload the policy (Global Administrator has OrganizationManagement's
/// rights).
pub fn may_reload(role: Role) -> bool {
    matches!(
        role,
        Role::GlobalAdministrator | Role::OrganizationManagement
    )
}

/// Whether `role` may change the alert policies (status, recipients, daily limit). Every role
/// may read them.
pub fn may_manage_alerts(role: Role) -> bool {
    matches!(
        role,
        Role::GlobalAdministrator | Role::OrganizationManagement | Role::SecurityAdministrator
    )
}
