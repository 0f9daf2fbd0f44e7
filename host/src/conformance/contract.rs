//! Check `contract`: the component's own type information (decoded with wit-component, not
//! by matching strings) imports nothing and exports the interface of a contract version this
//! host loads (0.2.0, or the previous 0.1.0) with every function, parameter for parameter.

use super::Finding;
use crate::sandbox::ContractVersion;
use std::collections::BTreeMap;
use wit_component::DecodedWasm;
use wit_parser::{Resolve, WorldItem};

/// The contract versions this host loads, as it was built against them.
fn contract_wit(version: ContractVersion) -> &'static str {
    match version {
        ContractVersion::V0_2 => include_str!("../../../wit/policy.wit"),
        ContractVersion::V0_1 => include_str!("../../../wit/compat/v0.1.0/policy.wit"),
    }
}

/// Function name -> parameter names, for one interface.
type Functions = BTreeMap<String, Vec<String>>;

/// One contract version's interface, parsed from the embedded WIT.
fn expected(version: ContractVersion) -> anyhow::Result<Functions> {
    let interface = version.interface();
    let mut resolve = Resolve::default();
    let package = resolve.push_str("policy.wit", contract_wit(version))?;
    let world = resolve.select_world(&[package], Some("restriction-policy"))?;
    let exports = exported(&resolve, &resolve.worlds[world].exports);
    exports
        .get(interface)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("the {version} contract has no {interface}"))
}

/// The supported version an exported interface name implements: its own, or a
/// semver-compatible later one (`@0.2.3` implements 0.2.0, as wasmtime matches it).
fn implements(name: &str, version: ContractVersion) -> bool {
    let interface = version.interface();
    let (Some((package, wanted)), Some((exported_package, exported))) =
        (interface.split_once('@'), name.split_once('@'))
    else {
        return false;
    };
    if package != exported_package {
        return false;
    }
    let numbers = |v: &str| -> Option<[u64; 3]> {
        let core = v.split(['-', '+']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
        let parsed = [parts.next()??, parts.next()??, parts.next()??];
        parts.next().is_none().then_some(parsed)
    };
    let (Some(w), Some(e)) = (numbers(wanted), numbers(exported)) else {
        return false;
    };
    // Semver compatibility: the same major, and for 0.x the same minor; not older.
    let track = if w[0] == 0 {
        w[..2] == e[..2]
    } else {
        w[0] == e[0]
    };
    track && e >= w
}

/// Interface name -> functions, for one side of a world.
fn exported(
    resolve: &Resolve,
    items: &wit_parser::IndexMap<wit_parser::WorldKey, WorldItem>,
) -> BTreeMap<String, Functions> {
    let mut out = BTreeMap::new();
    for (key, item) in items {
        let name = resolve.name_world_key(key);
        let functions = match item {
            WorldItem::Interface { id, .. } => resolve.interfaces[*id]
                .functions
                .iter()
                .map(|(name, f)| {
                    let params = f.params.iter().map(|p| p.name.clone()).collect();
                    (name.clone(), params)
                })
                .collect(),
            WorldItem::Function(f) => {
                let params = f.params.iter().map(|p| p.name.clone()).collect();
                BTreeMap::from([(f.name.clone(), params)])
            }
            WorldItem::Type { .. } => Functions::new(),
        };
        out.insert(name, functions);
    }
    out
}

/// Run the check on the component's bytes.
pub(crate) fn check(bytes: &[u8]) -> Finding {
    inspect(bytes).0
}

/// Run the check; also the contract version the component implements, when it passes.
pub(crate) fn inspect(bytes: &[u8]) -> (Finding, Option<ContractVersion>) {
    match inspect_inner(bytes) {
        Ok((finding, version)) => (finding, Some(version)),
        Err(finding) => (finding, None),
    }
}

fn inspect_inner(bytes: &[u8]) -> Result<(Finding, ContractVersion), Finding> {
    if !crate::componentize::is_component(bytes) {
        let what = if bytes.starts_with(b"\0asm") {
            "a core wasm module, not a component: turn it into one with `quench policy componentize`"
        } else {
            "not a WebAssembly component (no `\\0asm` component preamble)"
        };
        return Err(Finding::fail(what));
    }
    let (resolve, world) = match wit_component::decode(bytes) {
        Ok(DecodedWasm::Component(resolve, world)) => (resolve, world),
        Ok(DecodedWasm::WitPackage(..)) => {
            return Err(Finding::fail("this is a WIT package, not a component"));
        }
        Err(e) => {
            return Err(Finding::fail(format!(
                "not a component (a core module must be componentized first: `quench policy componentize`): {}",
                super::clip(&format!("{e:#}"), 200)
            )));
        }
    };
    let world = &resolve.worlds[world];
    if !world.imports.is_empty() {
        let names: Vec<String> = world
            .imports
            .keys()
            .map(|k| resolve.name_world_key(k))
            .collect();
        return Err(Finding::fail(format!(
            "the world allows no imports, the component imports: {} (a WASI build? build for wasm32-unknown-unknown)",
            names.join(", ")
        )));
    }
    let exports = exported(&resolve, &world.exports);
    // The newest version the component implements, as the sandbox picks it.
    let Some((version, interface, actual)) = ContractVersion::ALL.into_iter().find_map(|v| {
        exports
            .iter()
            .find(|(name, _)| implements(name, v))
            .map(|(name, functions)| (v, name.clone(), functions))
    }) else {
        let names: Vec<&String> = exports.keys().collect();
        return Err(Finding::fail(format!(
            "exports neither {} (contract 0.2.0) nor {} (0.1.0), the versions this host loads; exports: {names:?}",
            ContractVersion::V0_2.interface(),
            ContractVersion::V0_1.interface()
        )));
    };
    let expected = match expected(version) {
        Ok(expected) => expected,
        Err(e) => {
            return Err(Finding::fail(format!(
                "the host's contract does not parse: {e:#}"
            )));
        }
    };
    let mut problems = Vec::new();
    for (function, params) in &expected {
        match actual.get(function) {
            None => problems.push(format!("missing {function}")),
            Some(p) if p != params => problems.push(format!(
                "{function} takes ({}) instead of ({})",
                p.join(", "),
                params.join(", ")
            )),
            Some(_) => {}
        }
    }
    for function in actual.keys().filter(|f| !expected.contains_key(*f)) {
        problems.push(format!("unknown function {function}"));
    }
    if !problems.is_empty() {
        return Err(Finding::fail(format!(
            "{interface}: {}",
            problems.join("; ")
        )));
    }
    let extra: Vec<&String> = exports.keys().filter(|k| **k != interface).collect();
    let mut reason = format!(
        "implements contract {version}: imports nothing; exports {interface} with all {} functions",
        expected.len()
    );
    if version == ContractVersion::V0_1 {
        reason.push_str(
            " (the previous contract, still loaded: relays reach it as users, and it keeps 0.1.0's message-id rule)",
        );
    }
    if !extra.is_empty() {
        reason.push_str(&format!(" (and also {extra:?}, which hosts ignore)"));
    }
    Ok((Finding::pass(reason), version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_names_implement_their_version_and_later_compatible_ones_only() {
        let v2 = ContractVersion::V0_2;
        let v1 = ContractVersion::V0_1;
        assert!(implements("quench:policy/policy@0.2.0", v2));
        assert!(implements("quench:policy/policy@0.2.7", v2));
        assert!(!implements("quench:policy/policy@0.3.0", v2));
        assert!(!implements("quench:policy/policy@0.1.0", v2));
        assert!(implements("quench:policy/policy@0.1.0", v1));
        assert!(!implements("quench:policy/policy@9.0.0", v1));
        assert!(!implements("quench:policy/policy@9.0.0", v2));
        assert!(!implements("quench:other/policy@0.2.0", v2));
        assert!(!implements("quench:policy/policy", v2));
        for version in ContractVersion::ALL {
            assert!(
                expected(version)
                    .unwrap()
                    .contains_key("[method]engine.evaluate")
            );
        }
    }
}
