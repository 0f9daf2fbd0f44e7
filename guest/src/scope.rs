//! Outbound policy scoping (EOP's rule conditions) and selection by priority.
//!
//! Semantics follow EOP: values of one condition are ORed, different conditions are ANDed, and
//! any matching exception excludes the sender. A policy with no conditions at all is the
//! default policy, which always comes last.

use std::collections::{BTreeMap, BTreeSet};

use crate::addr;

/// Group name (normalised) to its flattened member addresses (normalised), from `[groups]`.
pub type Groups = BTreeMap<String, BTreeSet<String>>;

/// The scoping conditions of one outbound policy. All values are normalised (lower case).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// `from`: sender addresses.
    pub from: Vec<String>,
    /// `from_member_of`: group names from `[groups]`.
    pub from_member_of: Vec<String>,
    /// `sender_domain_is`: sender domains (exact match).
    pub sender_domain_is: Vec<String>,
    /// `except_if_from`.
    pub except_if_from: Vec<String>,
    /// `except_if_from_member_of`.
    pub except_if_from_member_of: Vec<String>,
    /// `except_if_sender_domain_is`.
    pub except_if_sender_domain_is: Vec<String>,
}

impl Scope {
    /// No conditions and no exceptions: this is the default policy.
    pub fn is_unscoped(&self) -> bool {
        self.from.is_empty()
            && self.from_member_of.is_empty()
            && self.sender_domain_is.is_empty()
            && self.except_if_from.is_empty()
            && self.except_if_from_member_of.is_empty()
            && self.except_if_sender_domain_is.is_empty()
    }

    /// Whether the policy applies to the (normalised) sender address.
    pub fn matches(&self, sender: &str, groups: &Groups) -> bool {
        let domain = addr::domain(sender);
        let in_groups = |names: &[String]| {
            names.iter().any(|g| {
                groups
                    .get(g)
                    .is_some_and(|members| members.contains(sender))
            })
        };
        let in_domains =
            |domains: &[String]| domain.is_some_and(|d| domains.iter().any(|x| x == d));
        let in_addresses = |list: &[String]| list.iter().any(|a| a == sender);

        let included = (self.from.is_empty() || in_addresses(&self.from))
            && (self.from_member_of.is_empty() || in_groups(&self.from_member_of))
            && (self.sender_domain_is.is_empty() || in_domains(&self.sender_domain_is));
        let excepted = in_addresses(&self.except_if_from)
            || in_groups(&self.except_if_from_member_of)
            || in_domains(&self.except_if_sender_domain_is);
        included && !excepted
    }
}

/// The outbound policy for a sender: the first enabled scoped policy (by priority) whose
/// conditions match, else the default policy. `sender` must be normalised.
pub fn select<'c>(
    cfg: &'c crate::config::Config,
    sender: &str,
) -> &'c crate::config::OutboundPolicy {
    cfg.policies
        .iter()
        .find(|p| p.scope.matches(sender, &cfg.groups))
        .unwrap_or(&cfg.default_policy)
}
