//! Compiled code is cached on disk by component hash and engine compatibility hash: the second
//! load reuses the file, and a corrupt file is replaced instead of loaded.

use crate::common::{MONDAY_10AM, submission};
use quench::Action;
use quench::sandbox::{PolicySource, Sandbox};

fn load(dir: &std::path::Path) -> Sandbox {
    Sandbox::builder()
        .source(PolicySource::Embedded)
        .cache_dir(dir)
        .build()
        .expect("loads")
}

fn cached_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

#[test]
fn second_load_reuses_the_cached_code_and_corrupt_entries_are_replaced() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("code-cache-test");
    let _ = std::fs::remove_dir_all(&dir);

    let first = load(&dir);
    let files = cached_files(&dir);
    assert_eq!(files.len(), 1, "one entry: {files:?}");
    let entry = &files[0];
    let name = entry.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        name.starts_with(first.component_hash()),
        "keyed by component hash: {name}"
    );
    let written = std::fs::metadata(entry).unwrap().modified().unwrap();

    let second = load(&dir);
    assert_eq!(
        std::fs::metadata(entry).unwrap().modified().unwrap(),
        written
    );
    let decision = second
        .evaluate(
            &[],
            &submission("a@contoso.com", &["b@fabrikam.com"]),
            MONDAY_10AM,
        )
        .unwrap();
    assert_eq!(decision.verdict.action, Action::Accept);

    std::fs::write(entry, b"not compiled code").unwrap();
    let third = load(&dir);
    let decision = third
        .evaluate(
            &[],
            &submission("a@contoso.com", &["b@fabrikam.com"]),
            MONDAY_10AM,
        )
        .unwrap();
    assert_eq!(decision.verdict.action, Action::Accept);
    assert!(
        std::fs::metadata(entry).unwrap().len() > 1000,
        "the entry was rewritten"
    );
    std::fs::remove_dir_all(&dir).ok();
}
