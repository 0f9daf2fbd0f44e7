//! Disk footprint of the embedded store: bytes on disk per tracked entity, and how long
//! reopening takes after a crash (redb's repair walk; see the `EmbeddedStore` docs).
//!
//! Writes 100,000 entities (`user:user123456@contoso.com`) with about 100 bytes of state each,
//! the way `quench serve` does (one lazy update per decision, a flush every second, here every
//! 1,000 updates), then updates every entity once more (steady state: counters change, pages
//! are copied on write and freed) and prints the file size per entity after each pass. Then a
//! child process does the same and aborts without closing the store (like `kill -9`), and the
//! reopen that repairs the file is timed.
//!
//! ```text
//! cargo run --release -p quench-store --example footprint [ENTITIES]
//! ```

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;
use std::time::Instant;

use quench_store::{Durability, EmbeddedStore, StateStore, Update};

/// Updates between flushes: the host flushes every second; 1,000 decisions a second is a busy
/// single MTA.
const FLUSH_EVERY: u64 = 1_000;
/// Bytes of policy state per entity, unless `QUENCH_STATE_BYTES` says otherwise: 100 is a
/// busy sender's state under the default policy with room to spare (a typical one is 59).
fn state_bytes() -> usize {
    std::env::var("QUENCH_STATE_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if first.as_deref() == Some("--write-and-abort") {
        // The child: fill the store given, then die without closing it.
        let dir = args.next().expect("directory");
        let entities = args.next().expect("entities").parse()?;
        let store = EmbeddedStore::open(dir)?;
        write_all(&store, entities, 0)?;
        std::process::abort();
    }
    let entities: u64 = first.map_or(Ok(100_000), |n| n.parse())?;

    let dir = tempfile::tempdir()?;
    let store = EmbeddedStore::open(dir.path())?;
    let file = store.path().to_owned();
    for round in 0..2u8 {
        let started = Instant::now();
        write_all(&store, entities, round)?;
        let elapsed = started.elapsed();
        let bytes = std::fs::metadata(&file)?.len();
        let pass = if round == 0 {
            "first write"
        } else {
            "rewrite of all"
        };
        println!(
            "{pass}: {entities} entities, {bytes} bytes on disk, {:.0} bytes per entity \
             ({:.0} lazy updates/s)",
            bytes as f64 / entities as f64,
            entities as f64 / elapsed.as_secs_f64()
        );
    }
    assert_eq!(store.entity_count()?, entities);
    drop(store);
    let bytes = std::fs::metadata(&file)?.len();
    println!(
        "after close: {bytes} bytes on disk, {:.0} bytes per entity",
        bytes as f64 / entities as f64
    );

    let crashed = tempfile::tempdir()?;
    let status = std::process::Command::new(std::env::current_exe()?)
        .arg("--write-and-abort")
        .arg(crashed.path())
        .arg(entities.to_string())
        .status()?;
    assert!(!status.success(), "the child must die");
    reopen_timed(crashed.path(), entities)?;
    Ok(())
}

/// One lazy update per entity, flushing every [`FLUSH_EVERY`].
fn write_all(store: &EmbeddedStore, entities: u64, round: u8) -> anyhow::Result<()> {
    for i in 0..entities {
        let key = format!("user:user{i:06}@contoso.com");
        let state: Vec<u8> = (0..state_bytes())
            .map(|b| {
                (i as usize)
                    .wrapping_mul(31)
                    .wrapping_add(b * 7 + round as usize) as u8
            })
            .collect();
        store.update(&key, &mut |_| Update {
            state: Some(state.clone()),
            durability: Durability::Lazy,
            restricted: None,
        })?;
        if (i + 1) % FLUSH_EVERY == 0 {
            store.flush()?;
        }
    }
    store.flush()?;
    Ok(())
}

fn reopen_timed(dir: &Path, entities: u64) -> anyhow::Result<()> {
    // Opened through redb directly for its repair callback, which says the repair really ran.
    let repaired = Rc::new(Cell::new(false));
    let seen = repaired.clone();
    let started = Instant::now();
    let db = redb::Database::builder()
        .set_repair_callback(move |_| seen.set(true))
        .open(dir.join("quench.redb"))?;
    let elapsed = started.elapsed();
    drop(db);
    assert!(repaired.get(), "the crash left nothing to repair");
    let store = EmbeddedStore::open(dir)?;
    assert_eq!(store.entity_count()?, entities);
    println!(
        "reopen after a crash (repair of {entities} entities): {} ms",
        elapsed.as_millis()
    );
    Ok(())
}
