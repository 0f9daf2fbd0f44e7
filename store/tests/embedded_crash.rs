//! `kill -9` durability of the redb store, with a real child process: the test binary re-runs
//! itself in a child role (selected by an environment variable), the child acknowledges writes
//! on stdout, the parent kills it with SIGKILL and reopens the files.

use std::env;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use quench_store::conformance::{counter, increment, record};
use quench_store::stress::{self, Load, Op, Versioned};
use quench_store::{AuditQuery, Durability, EmbeddedStore, StateStore, StoreError, Update};

/// Selects the child's role; unset in a normal test run.
const ROLE: &str = "QUENCH_STORE_CHILD_ROLE";
/// The data directory the child opens.
const DIR: &str = "QUENCH_STORE_CHILD_DIR";
/// Acknowledged immediate writes the parent waits for before it kills the writer.
const ACKS_BEFORE_KILL: u64 = 150;
/// The writer flushes its lazy counter every this many rounds.
const FLUSH_EVERY: u64 = 10;

/// Not a test of its own: the body of the child process. Does nothing unless [`ROLE`] is set.
#[test]
fn child_process_role() {
    let Ok(role) = env::var(ROLE) else { return };
    let dir = env::var(DIR).expect("QUENCH_STORE_CHILD_DIR");
    let store = EmbeddedStore::open(&dir).expect("child opens the store");
    let mut out = std::io::stdout().lock();
    match role.as_str() {
        "writer" => {
            // A child whose parent vanished stops at its next write to the closed pipe.
            for i in 0..1_000_000u64 {
                let key = format!("user:imm{i}@contoso.com");
                store
                    .update(&key, &mut |_| Update {
                        state: Some(i.to_le_bytes().to_vec()),
                        durability: Durability::Immediate,
                        restricted: Some(true),
                    })
                    .unwrap();
                let seq = store
                    .append_audit(&record(i as i64, "restrict", Some(&key), &format!("#{i}")))
                    .unwrap();
                increment(&store, "user:lazy@contoso.com", Durability::Lazy);
                if (i + 1) % FLUSH_EVERY == 0 {
                    store.flush().unwrap();
                    writeln!(out, "flushed {}", i + 1).unwrap();
                }
                writeln!(out, "ack {i} {seq}").unwrap();
                out.flush().unwrap();
            }
        }
        "stress" => {
            // The issue 12 load (deciders, unblockers, a flusher in a tight loop); every
            // immediate write is announced before it starts and acknowledged once `update`
            // returns. The stdout lock keeps each line whole.
            // The main thread's stdout lock would stall the load threads: let it go.
            drop(out);
            let load = Load {
                duration: std::time::Duration::from_secs(120),
                ..Load::default()
            };
            stress::run_observed(&store, &load, &|thread, key, op, acked| {
                if op == Op::Count {
                    return;
                }
                let mut out = std::io::stdout().lock();
                match acked {
                    None => writeln!(out, "try {thread} {key}").unwrap(),
                    Some(state) => writeln!(
                        out,
                        "imm {thread} {key} {} {}",
                        state.immediate,
                        u8::from(state.restricted)
                    )
                    .unwrap(),
                }
                out.flush().unwrap();
            });
        }
        "holder" => {
            writeln!(out, "ready").unwrap();
            out.flush().unwrap();
            // Holds the store until killed, or until the parent is gone (stdin closes).
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
        }
        other => panic!("unknown child role {other}"),
    }
}

/// The child process, killed (SIGKILL) when dropped if the test did not kill it already.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(role: &str, dir: &Path) -> (ChildGuard, BufReader<ChildStdout>) {
    let mut child = Command::new(env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_role",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, role)
        .env(DIR, dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("re-run the test binary as a child");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    (ChildGuard(child), stdout)
}

/// Kills the child with SIGKILL and checks that is how it ended.
fn kill_9(child: &mut ChildGuard) {
    child.0.kill().unwrap(); // SIGKILL on Unix
    let status = child.0.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "the child must die by SIGKILL: {status:?}"
    );
}

/// What the writer acknowledged: (round, audit seq) pairs and the last flushed lazy count.
#[derive(Default)]
struct Acks {
    immediate: Vec<(u64, u64)>,
    flushed: u64,
}

impl Acks {
    /// Records one protocol line; test-harness output around it is ignored.
    fn read(&mut self, line: &str) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let start = words
            .iter()
            .position(|w| *w == "ack" || *w == "flushed")
            .unwrap_or(words.len());
        match &words[start..] {
            ["ack", i, seq] => self
                .immediate
                .push((i.parse().unwrap(), seq.parse().unwrap())),
            ["flushed", n] => self.flushed = n.parse().unwrap(),
            _ => {}
        }
    }
}

#[test]
fn kill_9_keeps_every_acknowledged_immediate_write_audit_record_and_flushed_lazy_write() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, mut stdout) = spawn("writer", dir.path());
    let mut acks = Acks::default();
    let mut line = String::new();
    while (acks.immediate.len() as u64) < ACKS_BEFORE_KILL {
        line.clear();
        let n = stdout.read_line(&mut line).unwrap();
        assert!(n > 0, "the writer stopped early");
        acks.read(&line);
    }
    // Killed while it keeps writing: mid-transaction, mid-fsync, wherever it is.
    kill_9(&mut child);
    // Lines already written before the kill were acknowledged too.
    for line in stdout.lines() {
        acks.read(&line.unwrap());
    }
    assert!(acks.flushed >= FLUSH_EVERY, "no flush was acknowledged");

    let store = EmbeddedStore::open(dir.path()).expect("reopen after kill -9");
    let restricted = store.restricted_keys().unwrap();
    let log = store.audit(&AuditQuery::default()).unwrap();
    for &(i, seq) in &acks.immediate {
        let key = format!("user:imm{i}@contoso.com");
        assert_eq!(
            store.get(&key).unwrap(),
            Some(i.to_le_bytes().to_vec()),
            "acknowledged immediate write {i} lost"
        );
        assert!(restricted.contains(&key), "restriction {i} lost");
        let entry = log
            .iter()
            .find(|r| r.seq == seq)
            .unwrap_or_else(|| panic!("acknowledged audit record {seq} lost"));
        assert_eq!(entry.detail, format!("#{i}"));
        assert_eq!(entry.entity.as_deref(), Some(key.as_str()));
    }
    let lazy = counter(&store.get("user:lazy@contoso.com").unwrap().unwrap());
    assert!(
        lazy >= acks.flushed,
        "flushed lazy writes lost: {lazy} < {}",
        acks.flushed
    );
    // The reopened store is fully usable: the log continues after the last surviving record.
    let last = log.last().unwrap().seq;
    let next = store.append_audit(&record(0, "reopen", None, "")).unwrap();
    assert_eq!(next, last + 1);
}

#[test]
fn another_process_holding_the_directory_is_refused_and_kill_9_releases_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, mut stdout) = spawn("holder", dir.path());
    let mut line = String::new();
    // The harness may print "test child_process_role ... " before it on the same line.
    while !line.trim_end().ends_with("ready") {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "the holder died");
    }
    let err = EmbeddedStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("already open"), "{err}");
    kill_9(&mut child);
    EmbeddedStore::open(dir.path()).expect("kill -9 releases the lock");
}

/// Immediate writes the parent waits for before it kills the stress child: hundreds of
/// restrictions and unblocks racing hundreds of flushes.
const STRESS_ACKS_BEFORE_KILL: usize = 400;

/// What the stress child said about one key.
#[derive(Default)]
struct KeyAcks {
    /// The last acknowledged immediate write: (its version, restricted).
    last: Option<(u64, bool)>,
    /// Every acknowledged immediate version: one acknowledged twice means the key's state
    /// went back under an acknowledged write (it was overwritten) and was counted up again.
    versions: std::collections::BTreeSet<u64>,
    /// Threads that announced an immediate write of this key and had not acknowledged it.
    in_flight: std::collections::BTreeSet<u64>,
}

/// Issue 12 under `kill -9`: the child runs deciders, unblockers and a flusher in a tight loop
/// and prints every immediate write (restriction, unblock) as it is acknowledged; after the
/// kill, each key's last acknowledged immediate write is in the file, not reverted, and the
/// index agrees. A newer immediate write than the last acknowledged one is accepted only
/// where one was in flight at the kill.
#[test]
fn kill_9_under_concurrent_load_keeps_every_acknowledged_restriction_and_unblock() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, mut stdout) = spawn("stress", dir.path());
    let mut keys: std::collections::BTreeMap<String, KeyAcks> = Default::default();
    let mut acked = 0;
    let mut read = |line: &str, acked: &mut usize| {
        let words: Vec<&str> = line.split_whitespace().collect();
        let start = words
            .iter()
            .position(|w| *w == "try" || *w == "imm")
            .unwrap_or(words.len());
        match &words[start..] {
            ["try", thread, key] => {
                let entry = keys.entry(key.to_string()).or_default();
                entry.in_flight.insert(thread.parse().unwrap());
            }
            ["imm", thread, key, version, flag] => {
                let entry = keys.entry(key.to_string()).or_default();
                entry.in_flight.remove(&thread.parse().unwrap());
                let version: u64 = version.parse().unwrap();
                assert!(
                    entry.versions.insert(version),
                    "{key}: immediate write {version} acknowledged twice: an acknowledged \
                     write was overwritten by an older state while the child ran"
                );
                if entry.last.is_none_or(|(v, _)| v < version) {
                    entry.last = Some((version, *flag == "1"));
                }
                *acked += 1;
            }
            _ => {}
        }
    };
    let mut line = String::new();
    while acked < STRESS_ACKS_BEFORE_KILL {
        line.clear();
        let n = stdout.read_line(&mut line).unwrap();
        assert!(n > 0, "the stress child stopped early");
        read(&line, &mut acked);
    }
    kill_9(&mut child);
    for line in stdout.lines() {
        read(&line.unwrap(), &mut acked);
    }

    let store = EmbeddedStore::open(dir.path()).expect("reopen after kill -9");
    let index = store.restricted_keys().unwrap();
    let mut checked = 0;
    for (key, acks) in &keys {
        let Some((version, restricted)) = acks.last else {
            continue;
        };
        let stored = Versioned::decode(
            &store
                .get(key)
                .unwrap()
                .unwrap_or_else(|| panic!("{key}: state lost")),
        );
        assert!(
            stored.immediate >= version,
            "{key}: acknowledged immediate write {version} lost (the file has {})",
            stored.immediate
        );
        if stored.immediate == version {
            assert_eq!(
                stored.restricted, restricted,
                "{key}: immediate write {version} reverted"
            );
        } else {
            assert!(
                !acks.in_flight.is_empty(),
                "{key}: the file has immediate write {} that nobody made",
                stored.immediate
            );
        }
        assert_eq!(
            index.contains(key),
            stored.restricted,
            "{key}: the index disagrees with the state"
        );
        checked += 1;
    }
    eprintln!("{acked} acknowledged immediate writes, {checked} keys checked");
    assert_eq!(
        checked,
        Load::default().keys,
        "every key had an immediate write"
    );
}
