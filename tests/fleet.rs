//! Fleet mode end to end: several real `quench serve` processes sharing one real `redis-server`
//! (started on a free loopback port in a temporary directory, stopped at the end). The limit
//! holds exactly across hosts driven concurrently with the same senders, an unblock made
//! through one host is seen by the next decision on another, and Redis killed mid-run keeps
//! known restrictions enforced from memory and gives everyone else the configured
//! `on_unavailable` answer until it is back, then service resumes with the state Redis
//! persisted.

use crate::server;

use crate::server::{PolicyClient, QuenchServer};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

const DUNNO: &str = "action=DUNNO";
const RESTRICTED: &str = "action=550 5.1.8 Access denied, bad outbound sender";
const DEFERRED: &str = "action=451 4.7.1 Policy temporarily unavailable, try again later";
/// The external recipients per hour each sender may have.
const LIMIT: usize = 5;
const ADMIN_TOKEN: &str = "fleet-admin-token";

/// A `redis-server` child process; killed and reaped when dropped.
struct RedisServer {
    child: Option<Child>,
    port: u16,
    durable: bool,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// A server on a free port without persistence (`--save '' --appendonly no`), or with
    /// `durable`, an append-only file fsynced on every write (what the README advises), so a
    /// restart after SIGKILL has everything it acknowledged. Fails (never skips) when
    /// `redis-server` is missing.
    fn start(durable: bool) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = RedisServer {
            child: None,
            port,
            durable,
            dir: tempfile::tempdir().unwrap(),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let persistence: &[&str] = if self.durable {
            &["--appendonly", "yes", "--appendfsync", "always"]
        } else {
            &["--appendonly", "no"]
        };
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(persistence)
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot run redis-server ({err}): the fleet tests need it; install it with \
                     `apt-get install redis-server` (scripts/test does)"
                )
            });
        self.child = Some(child);
        self.wait_ready();
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Waits (bounded) until the server answers PING with PONG (not LOADING).
    fn wait_ready(&mut self) {
        for _ in 0..400 {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("redis-server on port {} exited: {status}", self.port);
            }
            if redis_ping(self.port) {
                return;
            }
            thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server on port {} never answered", self.port);
    }

    /// SIGKILL: what a crash looks like.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        assert!(!redis_ping(self.port), "Redis is down");
    }

    /// Starts Redis again on the same port and directory (replaying its append-only file).
    fn restart(&mut self) {
        assert!(self.child.is_none(), "killed first");
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sets its flag when dropped (also while unwinding).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Whether a Redis on `port` answers PING with PONG.
fn redis_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

/// A quench config: `LIMIT` external recipients per hour then BlockUser, state in `redis`
/// under `prefix`, the given `on_unavailable`, one admin token.
fn config(redis: &RedisServer, prefix: &str, on_unavailable: &str) -> String {
    format!(
        r#"
[policy]
accepted_domains = ["contoso.com"]
unblock_limit = {{ count = 3, window_days = 30 }}
# Many messages per sender within a minute in these tests: only the hourly limit should act.
message_rate_limit = 10000

[[policy.outbound]]
name = "Default"
recipient_limit_external_per_hour = {LIMIT}
recipient_limit_internal_per_hour = 10000
recipient_limit_per_day = 10000
action_when_threshold_reached = "BlockUser"

[store]
backend = "redis"
url = "{url}"
key_prefix = "{prefix}"
# Hosts hammer the same senders on a 2-core machine: a thread descheduled mid-update must not
# turn an exactness test into a timing test.
contention_timeout_ms = 30000
on_unavailable = "{on_unavailable}"

[[admin.tokens]]
name = "fleet-admin"
role = "OrganizationManagement"
token_sha256 = "{hash}"
"#,
        url = redis.url(),
        hash = quench::admin::hash_token(ADMIN_TOKEN),
    )
}

/// Start `n` hosts on one config, in parallel.
fn start_hosts(name: &str, config: &str, n: usize) -> Vec<QuenchServer> {
    thread::scope(|scope| {
        let starting: Vec<_> = (0..n)
            .map(|i| scope.spawn(move || QuenchServer::start(&format!("{name}-{i}"), config)))
            .collect();
        starting.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// A call to an admin API with the fleet admin's token: (status, JSON body).
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    server::admin_call(
        addr,
        method,
        path,
        Some(ADMIN_TOKEN),
        (!body.is_empty()).then_some(body),
    )
}

fn admin(host: &QuenchServer) -> SocketAddr {
    host.admin.expect("the admin API is on")
}

/// The sum of one metric series over `hosts` (absent counts as 0).
fn fleet_metric(hosts: &[QuenchServer], series: &str) -> f64 {
    hosts.iter().map(|h| h.metric(series).unwrap_or(0.0)).sum()
}

/// Send external recipients as `sender` through `client` until one is refused; returns how
/// many were accepted (bounded: at most `LIMIT` + 1 requests).
fn send_until_restricted(client: &mut PolicyClient, sender: &str, tag: &str) -> usize {
    for i in 0..=LIMIT {
        let answer = client.rcpt(
            sender,
            &format!("{tag}-{i}@fabrikam.com"),
            &format!("{sender}-{tag}-{i}"),
        );
        match answer.as_deref() {
            Some(DUNNO) => {}
            Some(RESTRICTED) => return i,
            other => panic!("{sender} #{i}: unexpected answer {other:?}"),
        }
    }
    panic!("{sender}: more than {LIMIT} external recipients accepted");
}

#[test]
fn four_hosts_sharing_redis_accept_exactly_the_limit_per_sender() {
    const HOSTS: usize = 4;
    const SENDERS: usize = 20;
    const PER_SENDER: usize = 24;
    const THREADS: usize = 8;
    let redis = RedisServer::start(false);
    // Fail closed: a store failure would show as a 451, never as an extra acceptance.
    let config = config(&redis, "fleet-exact:", "closed");
    let hosts = start_hosts("fleet-exact", &config, HOSTS);
    let addrs: Vec<SocketAddr> = hosts.iter().map(|h| h.policy).collect();

    // Sender-major work list, dealt round-robin to the threads: at any moment most threads
    // are sending as the same sender, each through a different host.
    let answers: Vec<(usize, String)> = thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let addrs = &addrs;
                scope.spawn(move || {
                    let mut clients: Vec<PolicyClient> =
                        addrs.iter().map(|a| PolicyClient::connect(*a)).collect();
                    let mut answers = Vec::new();
                    for item in (t..SENDERS * PER_SENDER).step_by(THREADS) {
                        let (sender, n) = (item / PER_SENDER, item % PER_SENDER);
                        let host = (item + sender) % HOSTS;
                        let answer = clients[host]
                            .rcpt(
                                &format!("sender{sender}@contoso.com"),
                                &format!("rcpt{n}@fabrikam.com"),
                                &format!("s{sender}-m{n}"),
                            )
                            .unwrap_or_else(|| panic!("host {host} closed the connection"));
                        answers.push((sender, answer));
                    }
                    answers
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });

    assert_eq!(answers.len(), SENDERS * PER_SENDER);
    let mut per_sender: HashMap<usize, HashMap<String, usize>> = HashMap::new();
    for (sender, answer) in answers {
        *per_sender
            .entry(sender)
            .or_default()
            .entry(answer)
            .or_default() += 1;
    }
    for sender in 0..SENDERS {
        let counts = &per_sender[&sender];
        let expected = HashMap::from([
            (DUNNO.to_string(), LIMIT),
            (RESTRICTED.to_string(), PER_SENDER - LIMIT),
        ]);
        assert_eq!(
            counts, &expected,
            "sender{sender}: exactly {LIMIT} accepted across the fleet, the rest refused"
        );
    }

    // Each sender's restriction started exactly once fleet-wide, audited once, listed by
    // every host; no store error anywhere.
    assert_eq!(
        fleet_metric(&hosts, "quench_restrictions_total{kind=\"started\"}"),
        SENDERS as f64
    );
    assert_eq!(
        fleet_metric(&hosts, "quench_decisions_total{kind=\"accept\"}"),
        (SENDERS * LIMIT) as f64
    );
    assert_eq!(fleet_metric(&hosts, "quench_store_errors_total"), 0.0);
    for host in &hosts {
        let (status, listing) = http(admin(host), "GET", "/v1/blocked-senders", "");
        assert_eq!(status, 200, "{listing}");
        assert_eq!(
            listing["restrictions"].as_array().unwrap().len(),
            SENDERS,
            "every host lists every restriction"
        );
    }
    let (_, audit) = http(admin(&hosts[3]), "GET", "/v1/audit?limit=10000", "");
    let restricts = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "restrict")
        .count();
    assert_eq!(
        restricts, SENDERS,
        "one restrict record per sender, fleet-wide"
    );
}

/// Issue 12: Redis contention never accepts uncounted. 64 connections hammer one user across
/// two hosts, with the default `on_unavailable` (open: a store outage accepts) and the default
/// contention bound: exactly the limit is accepted, every recipient over it is refused.
#[test]
fn sixty_four_connections_on_one_user_across_two_hosts_never_accept_past_the_limit() {
    const CONNECTIONS: usize = 64;
    const PER_CONNECTION: usize = 3;
    let redis = RedisServer::start(false);
    let config =
        config(&redis, "fleet-hot:", "open").replace("contention_timeout_ms = 30000\n", "");
    let hosts = start_hosts("fleet-hot", &config, 2);
    let addrs: Vec<SocketAddr> = hosts.iter().map(|h| h.policy).collect();
    let start = std::sync::Barrier::new(CONNECTIONS);
    let answers: Vec<String> = thread::scope(|scope| {
        let workers: Vec<_> = (0..CONNECTIONS)
            .map(|c| {
                let (addrs, start) = (&addrs, &start);
                scope.spawn(move || {
                    let mut client = PolicyClient::connect(addrs[c % addrs.len()]);
                    start.wait();
                    (0..PER_CONNECTION)
                        .map(|n| {
                            client
                                .rcpt(
                                    "hot@contoso.com",
                                    &format!("c{c}-{n}@fabrikam.com"),
                                    &format!("hot-c{c}-m{n}"),
                                )
                                .expect("answered")
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let accepted = answers.iter().filter(|a| a.as_str() == DUNNO).count();
    let refused = answers
        .iter()
        .filter(|a| a.as_str() == RESTRICTED || a.starts_with("action=4"))
        .count();
    assert_eq!(
        (accepted, refused),
        (LIMIT, CONNECTIONS * PER_CONNECTION - LIMIT),
        "exactly the limit accepted, the rest refused: {answers:?}"
    );
    assert_eq!(fleet_metric(&hosts, "quench_store_errors_total"), 0.0);
}

#[test]
fn an_unblock_through_host_a_is_seen_by_the_next_decision_on_host_b() {
    let redis = RedisServer::start(false);
    let config = config(&redis, "fleet-unblock:", "closed");
    let hosts = start_hosts("fleet-unblock", &config, 2);
    let (a, b) = (&hosts[0], &hosts[1]);
    let sender = "mallory@contoso.com";
    let (mut on_a, mut on_b) = (a.connect(), b.connect());

    // Restricted through host B; host A refuses the sender at once and lists the restriction.
    assert_eq!(send_until_restricted(&mut on_b, sender, "first"), LIMIT);
    assert_eq!(
        on_a.rcpt(sender, "x@fabrikam.com", "on-a").as_deref(),
        Some(RESTRICTED)
    );
    let (status, one) = http(
        admin(a),
        "GET",
        &format!("/v1/blocked-senders/{sender}"),
        "",
    );
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["limit"], "recipient_limit_external_per_hour");

    // Unblocked through host A's admin API.
    let (status, granted) = http(
        admin(a),
        "POST",
        &format!("/v1/blocked-senders/{sender}/unblock"),
        r#"{"reason":"password reset"}"#,
    );
    assert_eq!(status, 200, "{granted}");
    assert_eq!(granted["unblocks_used"], 1);

    // The very next decision on host B accepts. The policy exempts an unblocked sender from
    // its outbound limits for the rest of the UTC day: both hosts keep accepting, past the
    // limit, because both read the same unblocked state.
    assert_eq!(
        on_b.rcpt(sender, "after@fabrikam.com", "after-b")
            .as_deref(),
        Some(DUNNO)
    );
    for i in 0..=LIMIT {
        let client = if i % 2 == 0 { &mut on_a } else { &mut on_b };
        assert_eq!(
            client
                .rcpt(
                    sender,
                    &format!("after{i}@fabrikam.com"),
                    &format!("after-{i}")
                )
                .as_deref(),
            Some(DUNNO),
            "#{i} after the unblock"
        );
    }
    let (status, _) = http(
        admin(b),
        "GET",
        &format!("/v1/blocked-senders/{sender}"),
        "",
    );
    assert_eq!(
        status, 404,
        "no longer listed as restricted, through either host"
    );

    // Host B sees host A's unblock in the shared audit log.
    let (_, audit) = http(
        admin(b),
        "GET",
        &format!("/v1/audit?entity=user:{sender}"),
        "",
    );
    let actions: Vec<(String, String)> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "restrict" || r["action"] == "unblock")
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_string(),
                r["actor"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [("restrict", "policy"), ("unblock", "fleet-admin")];
    assert_eq!(
        actions
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect::<Vec<_>>(),
        expected
    );
}

#[test]
fn redis_killed_mid_run_gives_the_configured_answer_and_service_resumes_with_state() {
    // appendfsync always: what Redis acknowledged survives its SIGKILL.
    let mut redis = RedisServer::start(true);
    let prefix = "fleet-outage:";
    let open = QuenchServer::start("fleet-outage-open", &config(&redis, prefix, "open"));
    let closed = QuenchServer::start("fleet-outage-closed", &config(&redis, prefix, "closed"));
    let hosts = [&open, &closed];

    // Before: one sender restricted (through the open host), one with 3 of its 5 used
    // (through the closed host).
    let (mut via_open, mut via_closed) = (open.connect(), closed.connect());
    assert_eq!(
        send_until_restricted(&mut via_open, "victim@contoso.com", "before"),
        LIMIT
    );
    for i in 0..3 {
        assert_eq!(
            via_closed
                .rcpt(
                    "counted@contoso.com",
                    &format!("b{i}@fabrikam.com"),
                    &format!("counted-b{i}"),
                )
                .as_deref(),
            Some(DUNNO)
        );
    }
    for host in hosts {
        assert_eq!(host.metric("quench_store_errors_total"), Some(0.0));
        assert_eq!(host.metric("quench_store_unavailable"), Some(0.0));
    }

    // Background traffic through both hosts for the whole run: every request gets an answer
    // (no crash, no hang, no dropped connection), and only answers the configuration allows.
    let stop = AtomicBool::new(false);
    let background = thread::scope(|scope| {
        let workers: Vec<_> = hosts
            .iter()
            .enumerate()
            .flat_map(|(h, host)| {
                let stop = &stop;
                (0..2).map(move |t| {
                    let addr = host.policy;
                    scope.spawn(move || {
                        let mut client = PolicyClient::connect(addr);
                        let mut seen: HashMap<String, usize> = HashMap::new();
                        // Bounded: stops when told, or after this many requests.
                        for i in 0..200_000 {
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                            let answer = client
                                .rcpt(
                                    &format!("bg{h}-{t}-{}@contoso.com", i % 50),
                                    &format!("colleague{i}@contoso.com"),
                                    &format!("bg{h}-{t}-{i}"),
                                )
                                .unwrap_or_else(|| panic!("host {h} dropped the connection"));
                            *seen.entry(answer).or_default() += 1;
                        }
                        (h, seen)
                    })
                })
            })
            .collect();

        // Should an assertion below fail, the workers stop before the scope waits for them.
        let _stop_on_panic = StopOnDrop(&stop);
        // Let the traffic run, then kill Redis under it.
        thread::sleep(Duration::from_millis(300));
        redis.kill();

        // While Redis is down, each host decides from memory (issue 12): a restriction it
        // knows stays enforced whatever on_unavailable says; fail-open counts everyone else in
        // memory; fail-closed defers everyone else with a temporary error.
        assert_eq!(
            via_open
                .rcpt("victim@contoso.com", "down@fabrikam.com", "victim-down")
                .as_deref(),
            Some(RESTRICTED),
            "a known restriction never fails open"
        );
        assert_eq!(
            via_open
                .rcpt("fresh@contoso.com", "down@fabrikam.com", "fresh-down")
                .as_deref(),
            Some(DUNNO)
        );
        assert_eq!(
            via_closed
                .rcpt("counted@contoso.com", "down@fabrikam.com", "counted-down")
                .as_deref(),
            Some(DEFERRED)
        );
        assert_eq!(
            via_closed
                .rcpt("fresh@contoso.com", "down@fabrikam.com", "fresh-down-2")
                .as_deref(),
            Some(DEFERRED)
        );
        assert!(closed.metric("quench_store_errors_total").unwrap() >= 2.0);
        for host in hosts {
            assert_eq!(host.metric("quench_store_unavailable"), Some(1.0));
        }
        thread::sleep(Duration::from_millis(300));

        redis.restart();
        // Let the traffic run on the restarted Redis, then stop it.
        thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .collect::<Vec<_>>()
    });

    // Both hosts write back what they kept in memory and leave degraded mode.
    for host in hosts {
        let start = std::time::Instant::now();
        while host.metric("quench_store_unavailable") != Some(0.0) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the store recovers (retried with backoff every flush):\n{}",
                host.log()
            );
            thread::sleep(Duration::from_millis(100));
        }
        let log = host.log();
        assert!(log.contains("the store stopped taking writes"), "{log}");
        assert!(log.contains("the store takes writes again"), "{log}");
    }
    // Service resumed on the state written before the kill: the restriction holds on both
    // hosts, and the half-used sender has exactly 2 of its 5 left.
    assert_eq!(
        via_closed
            .rcpt("victim@contoso.com", "up@fabrikam.com", "victim-up")
            .as_deref(),
        Some(RESTRICTED)
    );
    assert_eq!(
        via_open
            .rcpt("victim@contoso.com", "up@fabrikam.com", "victim-up-2")
            .as_deref(),
        Some(RESTRICTED)
    );
    assert_eq!(
        send_until_restricted(&mut via_open, "counted@contoso.com", "after"),
        LIMIT - 3
    );
    let (status, listing) = http(admin(&closed), "GET", "/v1/blocked-senders", "");
    assert_eq!(status, 200, "{listing}");
    let listed: Vec<&str> = listing["restrictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["entity"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["counted@contoso.com", "victim@contoso.com"]);

    // Background answers: the open host never deferred; the closed host deferred only while
    // Redis was down; every request was answered, with traffic before, during and after.
    for (h, seen) in background {
        let allowed: &[&str] = if h == 0 {
            &[DUNNO, RESTRICTED]
        } else {
            &[DUNNO, RESTRICTED, DEFERRED]
        };
        for answer in seen.keys() {
            assert!(
                allowed.contains(&answer.as_str()),
                "host {h}: unexpected answer {answer:?} in {seen:?}"
            );
        }
        assert!(seen.get(DUNNO).copied().unwrap_or(0) > 0, "{seen:?}");
    }
}

/// A config for the message-counting tests: the default message rate (30 per minute), 50
/// internal recipients per hour, BlockUser.
fn message_config(redis: &RedisServer, prefix: &str) -> String {
    format!(
        r#"
[policy]
accepted_domains = ["contoso.com"]

[[policy.outbound]]
name = "Default"
recipient_limit_external_per_hour = 10000
recipient_limit_internal_per_hour = 50
recipient_limit_per_day = 10000
action_when_threshold_reached = "BlockUser"

[store]
backend = "redis"
url = "{url}"
key_prefix = "{prefix}"
contention_timeout_ms = 30000
"#,
        url = redis.url(),
    )
}

/// Issue 11: a message counts once, however its recipients interleave with the sender's
/// other messages, on one host or across a fleet. 20 senders each send 8 messages of 10
/// internal recipients at once, RCPT by RCPT, the messages spread over 4 hosts:
/// exactly the limit (50) is admitted per sender, the rest refused as restricted, and the
/// message-rate throttle (30 a minute) never answers, since each sender sent 8 messages.
#[test]
fn interleaved_messages_across_four_hosts_count_once_and_admit_exactly_the_limit() {
    const HOSTS: usize = 4;
    const SENDERS: usize = 20;
    const MESSAGES: usize = 8;
    const RECIPIENTS: usize = 10;
    const LIMIT: usize = 50;
    let redis = RedisServer::start(false);
    let config = message_config(&redis, "fleet-msgs:");
    let hosts = start_hosts("fleet-msgs", &config, HOSTS);
    let addrs: Vec<SocketAddr> = hosts.iter().map(|h| h.policy).collect();
    // One thread per message number; each goes through the senders and recipients so that
    // every sender's 8 messages are in flight at once, interleaved.
    let answers: Vec<(usize, String)> = thread::scope(|scope| {
        let workers: Vec<_> = (0..MESSAGES)
            .map(|m| {
                let addrs = &addrs;
                scope.spawn(move || {
                    let mut clients: Vec<PolicyClient> =
                        addrs.iter().map(|a| PolicyClient::connect(*a)).collect();
                    let mut answers = Vec::new();
                    for r in 0..RECIPIENTS {
                        for s in 0..SENDERS {
                            // A message is on one MTA; a sender's messages are on all four.
                            let host = (s + m) % HOSTS;
                            let answer = clients[host]
                                .rcpt(
                                    &format!("sender{s}@contoso.com"),
                                    &format!("colleague{m}-{r}@contoso.com"),
                                    &format!("mta{host}-s{s}-m{m}"),
                                )
                                .expect("answered");
                            answers.push((s, answer));
                        }
                    }
                    answers
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    for s in 0..SENDERS {
        let mine: Vec<&str> = answers
            .iter()
            .filter(|(sender, _)| *sender == s)
            .map(|(_, a)| a.as_str())
            .collect();
        let accepted = mine.iter().filter(|a| **a == DUNNO).count();
        let restricted = mine.iter().filter(|a| **a == RESTRICTED).count();
        assert_eq!(
            (accepted, restricted, mine.len()),
            (LIMIT, MESSAGES * RECIPIENTS - LIMIT, MESSAGES * RECIPIENTS),
            "sender{s}: exactly the limit admitted, the rest refused, no 4xx: {mine:?}"
        );
    }
}

/// Issue 11: the message rate counts messages, not switches between them. 40 one-recipient
/// messages within a minute, over 4 connections (one per host): exactly 30 get through, the
/// other 10 are deferred with 4.4.2.
#[test]
fn forty_messages_in_a_minute_over_four_connections_get_exactly_thirty_through() {
    let redis = RedisServer::start(false);
    let config = message_config(&redis, "fleet-rate:");
    let hosts = start_hosts("fleet-rate", &config, 4);
    let answers: Vec<String> = thread::scope(|scope| {
        let workers: Vec<_> = hosts
            .iter()
            .enumerate()
            .map(|(h, host)| {
                let addr = host.policy;
                scope.spawn(move || {
                    let mut client = PolicyClient::connect(addr);
                    (0..10)
                        .map(|i| {
                            client
                                .rcpt(
                                    "bulk@contoso.com",
                                    &format!("x{h}-{i}@fabrikam.com"),
                                    &format!("mta{h}-m{i}"),
                                )
                                .expect("answered")
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let accepted = answers.iter().filter(|a| a.as_str() == DUNNO).count();
    let throttled = answers
        .iter()
        .filter(|a| a.starts_with("action=450 4.4.2 "))
        .count();
    assert_eq!((accepted, throttled), (30, 10), "{answers:?}");
}
