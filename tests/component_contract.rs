//! The built default policy component honours the contract: it imports nothing, and it exports
//! exactly the `quench:policy/policy` interface of `wit/`, function for function. Inspected
//! with wit-component's decoder, not by matching strings in the binary.

use std::path::Path;
use std::process::Command;
use wit_component::DecodedWasm;
use wit_parser::{Resolve, WorldItem, WorldKey};

/// The contract's world, parsed from `wit/`.
fn contract() -> (Resolve, wit_parser::WorldId) {
    let mut resolve = Resolve::default();
    let (package, _) = resolve
        .push_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("wit"))
        .expect("wit/ parses");
    let world = resolve
        .select_world(&[package], Some("restriction-policy"))
        .expect("the world exists");
    (resolve, world)
}

/// Interface name -> sorted function names, for one side (imports or exports) of a world.
fn functions_of(
    resolve: &Resolve,
    items: &wit_parser::IndexMap<WorldKey, WorldItem>,
) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for (key, item) in items {
        let name = resolve.name_world_key(key);
        match item {
            WorldItem::Interface { id, .. } => {
                let mut functions: Vec<String> =
                    resolve.interfaces[*id].functions.keys().cloned().collect();
                functions.sort();
                out.push((name, functions));
            }
            WorldItem::Function(function) => out.push((name, vec![function.name.clone()])),
            WorldItem::Type { .. } => out.push((name, Vec::new())),
        }
    }
    out.sort();
    out
}

fn check_component(bytes: &[u8]) {
    let decoded = wit_component::decode(bytes).expect("the component decodes");
    let DecodedWasm::Component(resolve, world) = decoded else {
        panic!("expected a component, got a WIT package");
    };
    let world = &resolve.worlds[world];
    assert!(
        world.imports.is_empty(),
        "the policy must import nothing, it imports {:?}",
        functions_of(&resolve, &world.imports)
    );

    let (contract_resolve, contract_world) = contract();
    let expected = functions_of(
        &contract_resolve,
        &contract_resolve.worlds[contract_world].exports,
    );
    let actual = functions_of(&resolve, &world.exports);
    assert_eq!(actual, expected, "exports differ from wit/policy.wit");
    assert!(
        expected
            .iter()
            .any(|(name, functions)| name == "quench:policy/policy@0.2.0"
                && functions.contains(&"[method]engine.evaluate".to_string())),
        "the contract itself lists engine.evaluate: {expected:?}"
    );
}

#[test]
fn embedded_default_policy_imports_nothing_and_exports_the_world() {
    check_component(quench::embedded::DEFAULT_POLICY);
}

#[test]
fn policy_default_writes_a_valid_component_with_zero_imports() {
    let dir = std::env::temp_dir().join(format!("quench-policy-default-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("default.wasm");
    let status = Command::new(env!("CARGO_BIN_EXE_quench"))
        .args(["policy", "default", "--out"])
        .arg(&out)
        .status()
        .expect("quench runs");
    assert!(status.success());
    let written = std::fs::read(&out).expect("the file was written");
    assert_eq!(written, quench::embedded::DEFAULT_POLICY);
    check_component(&written);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn misbehaving_fixture_is_a_component_of_the_same_world() {
    let bytes = std::fs::read(env!("QUENCH_TEST_GUEST_MISBEHAVING")).unwrap();
    check_component(&bytes);
}
