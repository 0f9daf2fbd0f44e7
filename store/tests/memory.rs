//! The in-process store keeps the shared contract.

use quench_store::MemoryStore;

#[test]
fn memory_store_conforms() {
    quench_store::conformance::run_all(MemoryStore::new);
}

/// Issue 12, same load and model as the embedded store's test: deciders, unblockers and a
/// flusher at once; every key ends with exactly its last acknowledged update's state.
#[test]
fn concurrent_load_matches_the_sequential_model() {
    use quench_store::stress::{self, Load};
    let store = MemoryStore::new();
    let model = stress::run(&store, &Load::default());
    assert!(model.immediate_writes() > 50, "too few immediate writes");
    model.check(&store);
}
