//! Check `contract`: the component's own type information (decoded with wit-component, not
//! by matching strings) imports nothing and exports the contract's interface with every
//! function, parameter for parameter.

use super::Finding;
use std::collections::BTreeMap;
use wit_component::DecodedWasm;
use wit_parser::{Resolve, WorldItem};

/// The contract, as this host was built against it.
const CONTRACT_WIT: &str = include_str!("../../../wit/policy.wit");
/// The interface a policy must export.
pub(crate) const INTERFACE: &str = "quench:policy/policy@0.2.0";

/// Function name -> parameter names, for one interface.
type Functions = BTreeMap<String, Vec<String>>;

/// The contract's interface, parsed from the embedded WIT.
fn expected() -> anyhow::Result<Functions> {
    let mut resolve = Resolve::default();
    let package = resolve.push_str("policy.wit", CONTRACT_WIT)?;
    let world = resolve.select_world(&[package], Some("restriction-policy"))?;
    let exports = exported(&resolve, &resolve.worlds[world].exports);
    exports
        .get(INTERFACE)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("the contract has no {INTERFACE}"))
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
    let expected = match expected() {
        Ok(expected) => expected,
        Err(e) => return Finding::fail(format!("the host's contract does not parse: {e:#}")),
    };
    if !crate::componentize::is_component(bytes) {
        let what = if bytes.starts_with(b"\0asm") {
            "a core wasm module, not a component: turn it into one with `quench policy componentize`"
        } else {
            "not a WebAssembly component (no `\\0asm` component preamble)"
        };
        return Finding::fail(what);
    }
    let (resolve, world) = match wit_component::decode(bytes) {
        Ok(DecodedWasm::Component(resolve, world)) => (resolve, world),
        Ok(DecodedWasm::WitPackage(..)) => {
            return Finding::fail("this is a WIT package, not a component");
        }
        Err(e) => {
            return Finding::fail(format!(
                "not a component (a core module must be componentized first: `quench policy componentize`): {}",
                super::clip(&format!("{e:#}"), 200)
            ));
        }
    };
    let world = &resolve.worlds[world];
    if !world.imports.is_empty() {
        let names: Vec<String> = world
            .imports
            .keys()
            .map(|k| resolve.name_world_key(k))
            .collect();
        return Finding::fail(format!(
            "the world allows no imports, the component imports: {} (a WASI build? build for wasm32-unknown-unknown)",
            names.join(", ")
        ));
    }
    let exports = exported(&resolve, &world.exports);
    let Some(actual) = exports.get(INTERFACE) else {
        let names: Vec<&String> = exports.keys().collect();
        return Finding::fail(format!("{INTERFACE} is not exported; exports: {names:?}"));
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
        return Finding::fail(format!("{INTERFACE}: {}", problems.join("; ")));
    }
    let extra: Vec<&String> = exports.keys().filter(|k| *k != INTERFACE).collect();
    let mut reason = format!(
        "imports nothing; exports {INTERFACE} with all {} functions",
        expected.len()
    );
    if !extra.is_empty() {
        reason.push_str(&format!(" (and also {extra:?}, which hosts ignore)"));
    }
    Finding::pass(reason)
}
