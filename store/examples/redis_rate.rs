//! Update rate of one host against a Redis: threads making decisions (one `update` each, the
//! compare-and-set round trips of fleet mode), first on distinct entities, then all on one
//! entity (the contended case).
//!
//! ```text
//! redis-server --port 6390 --save '' --appendonly no &
//! cargo run --release -p quench-store --example redis_rate -- redis://127.0.0.1:6390/0 [THREADS]
//! ```

use std::time::Instant;

use quench_store::{Durability, RedisOptions, RedisStore, StateStore, Update};

/// Updates per thread in each phase.
const UPDATES: u64 = 5_000;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "redis://127.0.0.1:6379/0".to_owned());
    let threads: u64 = args.next().map_or(Ok(8), |n| n.parse())?;
    let mut options = RedisOptions::new(url);
    options.key_prefix = format!("quench-rate-{}:", std::process::id());
    let store = RedisStore::new(options)?;
    store.ping()?;
    for (phase, shared) in [("distinct entities", false), ("one shared entity", true)] {
        let started = Instant::now();
        std::thread::scope(|scope| {
            for t in 0..threads {
                let store = &store;
                scope.spawn(move || {
                    for i in 0..UPDATES {
                        let key = if shared {
                            "user:shared@contoso.com".to_owned()
                        } else {
                            format!("user:t{t}-{i}@contoso.com")
                        };
                        store
                            .update(&key, &mut |state| {
                                let mut next = state.to_vec();
                                next.resize(100, 0);
                                next[0] = next[0].wrapping_add(1);
                                Update {
                                    state: Some(next),
                                    durability: Durability::Lazy,
                                    restricted: None,
                                }
                            })
                            .expect("update");
                    }
                });
            }
        });
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "{phase}: {threads} threads, {} updates/s",
            ((threads * UPDATES) as f64 / elapsed) as u64
        );
    }
    Ok(())
}
