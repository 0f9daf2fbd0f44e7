//! The in-process store keeps the shared contract.

use quench_store::MemoryStore;

#[test]
fn memory_store_conforms() {
    quench_store::conformance::run_all(MemoryStore::new);
}
