//! Alert delivery through real sockets: a webhook receiver on 127.0.0.1, a private Postfix
//! delivering alert email into a mailbox, the daily notification limit, dead and hung sinks
//! that must never hold up `submit`, and config errors that name their key.
//!
//! Alerts are submitted from the test's own thread, outside the runtime, as `quench serve`'s
//! blocking decision threads do. Nothing here asserts on wall-clock time: that `submit`
//! never waits is shown by tests that finish while their sinks hang, and by the counts.

use crate::server;

use crate::postfix::{PostfixOptions, PrivatePostfix};
use quench::alerts::{AlertDispatcher, AlertsConfig, EmailConfig, RuleConfig, WebhookConfig};
use quench::{Alert, Entity, EntityKind, Severity};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Generous bound for anything that should happen promptly (a flush, a delivery); a test
/// only waits this long when it is about to fail.
const WAIT: Duration = Duration::from_secs(60);
/// 2026-11-16T00:00:00Z, a UTC midnight.
const DAY1: i64 = 1_794_787_200;
const DAY: i64 = 86_400;

const RESTRICTED: &str = "User restricted from sending email";
const EXCEEDED: &str = "Email sending limit exceeded";

fn alert(name: &str, severity: Severity, user: &str, at: i64) -> Alert {
    Alert {
        name: name.into(),
        severity,
        entity: Entity {
            kind: EntityKind::User,
            id: user.into(),
        },
        summary: format!(
            "User {user} was restricted from sending email: 3 external recipients in the last \
             hour against a limit of 2. The restriction lasts until an admin unblocks it."
        ),
        at,
    }
}

fn restricted(user: &str, at: i64) -> Alert {
    alert(RESTRICTED, Severity::High, user, at)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A webhook config with quick retries, for tests.
fn webhook(url: String) -> WebhookConfig {
    WebhookConfig {
        retry_backoff_ms: 10,
        ..WebhookConfig::new(url)
    }
}

fn rule(daily_limit: Option<u32>, enabled: bool) -> RuleConfig {
    RuleConfig {
        daily_limit,
        enabled,
        ..RuleConfig::default()
    }
}

// ---- a webhook receiver ------------------------------------------------------------------

/// One request the receiver got.
#[derive(Debug)]
struct Received {
    path: String,
    content_type: String,
    body: serde_json::Value,
    /// The body as sent, byte for byte (what a signature covers).
    raw: Vec<u8>,
    /// `X-Quench-Timestamp` and `X-Quench-Signature`, when sent.
    timestamp: Option<String>,
    signature: Option<String>,
}

/// A tiny HTTP/1.1 server on 127.0.0.1: answers each POST with the next scripted status (200
/// once the script runs out) and hands the JSON body to the test. One request per connection.
struct Receiver {
    addr: SocketAddr,
    bodies: mpsc::Receiver<Received>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    fn start(statuses: &[u16]) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let (send, bodies) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let script = Arc::new(Mutex::new(
            statuses.iter().copied().collect::<VecDeque<_>>(),
        ));
        let thread = {
            let stop = stop.clone();
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let status = script.lock().unwrap().pop_front().unwrap_or(200);
                    let _ = serve_one(stream, status, &send);
                }
            })
        };
        Receiver {
            addr,
            bodies,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hooks/quench", self.addr)
    }

    /// Everything received so far.
    fn drain(&self) -> Vec<Received> {
        self.bodies.try_iter().collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Read one request, hand it to the test, then answer: the body is in the channel before the
/// sender sees its status, so a test that waited for delivery can read it at once.
fn serve_one(
    stream: TcpStream,
    status: u16,
    received: &mpsc::Sender<Received>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut length = 0;
    let mut content_type = String::new();
    let (mut timestamp, mut signature) = (None, None);
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap_or(0),
            "content-type" => content_type = value.trim().to_string(),
            "x-quench-timestamp" => timestamp = Some(value.trim().to_string()),
            "x-quench-signature" => signature = Some(value.trim().to_string()),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default();
    assert_eq!(method, "POST", "the webhook is called with POST");
    let _ = received.send(Received {
        path: parts.next().unwrap_or_default().to_string(),
        content_type,
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        raw: body,
        timestamp,
        signature,
    });
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status} Scripted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
}

/// A listener that accepts connections and never says a word: a hung webhook or SMTP relay.
struct BlackHole {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BlackHole {
    fn start() -> BlackHole {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (accepted, stop) = (accepted.clone(), stop.clone());
            thread::spawn(move || {
                let mut held = Vec::new();
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        held.push(stream);
                        accepted.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        };
        BlackHole {
            addr,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    fn wait_for_connection(&self) {
        let deadline = std::time::Instant::now() + WAIT;
        while self.accepted.load(Ordering::SeqCst) == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "nothing connected to the hung sink at {}",
                self.addr
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A port on 127.0.0.1 where nothing listens: connections are refused.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}

// ---- (1) webhook -------------------------------------------------------------------------

#[test]
fn webhook_receives_the_alert_as_json() {
    let receiver = Receiver::start(&[]);
    let config = AlertsConfig {
        webhook: Some(webhook(receiver.url())),
        ..AlertsConfig::default()
    };
    let rt = runtime();
    let alerts = AlertDispatcher::start(&config, rt.handle().clone()).expect("start");
    let sent = restricted("alice@contoso.com", DAY1 + 3600);
    assert!(alerts.submit(&sent));
    assert!(rt.block_on(alerts.flush(WAIT)), "flush timed out");

    let received = receiver.drain();
    assert_eq!(received.len(), 1, "{received:?}");
    let got = &received[0];
    assert_eq!(got.path, "/hooks/quench");
    assert_eq!(got.content_type, "application/json");
    assert_eq!(
        got.body,
        serde_json::json!({
            "source": "quench",
            "kind": "user_restricted",
            "name": RESTRICTED,
            "severity": "High",
            "entity": { "kind": "User", "id": "alice@contoso.com" },
            "summary": sent.summary,
            "at": DAY1 + 3600,
            "time": "2026-11-16T01:00:00Z",
        })
    );
    let stats = alerts.stats();
    assert_eq!(
        (stats.submitted, stats.notified, stats.log.delivered),
        (1, 1, 1)
    );
    assert_eq!((stats.webhook.delivered, stats.webhook.failed), (1, 0));
    assert_eq!(
        (&got.timestamp, &got.signature),
        (&None, &None),
        "no secret, no signature"
    );
    assert!(rt.block_on(alerts.shutdown(WAIT)));
}

#[test]
fn webhook_calls_are_signed_with_the_secret_from_its_file() {
    use hmac::{Hmac, Mac};
    let receiver = Receiver::start(&[503]);
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("webhook.secret");
    std::fs::write(&secret_file, "s3cr3t-shared-with-the-receiver\n").unwrap();
    let config = AlertsConfig {
        webhook: Some(WebhookConfig {
            secret_file: Some(secret_file),
            ..webhook(receiver.url())
        }),
        ..AlertsConfig::default()
    };
    let rt = runtime();
    let alerts = AlertDispatcher::start(&config, rt.handle().clone()).expect("start");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(alerts.submit(&restricted("alice@contoso.com", DAY1 + 3600)));
    assert!(rt.block_on(alerts.flush(WAIT)), "flush timed out");

    // The first call was answered 503 and retried: both are signed, each afresh.
    let received = receiver.drain();
    assert_eq!(received.len(), 2, "{received:?}");
    for got in &received {
        let timestamp = got.timestamp.as_deref().expect("X-Quench-Timestamp");
        let sent_at: i64 = timestamp.parse().expect("Unix seconds");
        assert!(
            (before..before + 60).contains(&sent_at),
            "the time of sending, not of the alert"
        );
        let mut mac =
            Hmac::<sha2::Sha256>::new_from_slice(b"s3cr3t-shared-with-the-receiver").unwrap();
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(&got.raw);
        let expected = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(got.signature.as_deref(), Some(expected.as_str()));
        assert_eq!(got.body["entity"]["id"], "alice@contoso.com");
    }
    assert!(rt.block_on(alerts.shutdown(WAIT)));

    // A secret file that is missing or empty is a startup error naming the key.
    for (name, content) in [("missing", None), ("empty", Some("\n"))] {
        let file = dir.path().join(name);
        if let Some(content) = content {
            std::fs::write(&file, content).unwrap();
        }
        let config = AlertsConfig {
            webhook: Some(WebhookConfig {
                secret_file: Some(file),
                ..webhook(receiver.url())
            }),
            ..AlertsConfig::default()
        };
        let error = AlertDispatcher::start(&config, rt.handle().clone())
            .err()
            .unwrap_or_else(|| panic!("{name} secret file accepted"));
        assert!(
            format!("{error:#}").contains("alerts.webhook.secret_file"),
            "{name}: {error:#}"
        );
    }
}

#[test]
fn webhook_retries_a_5xx_and_gives_up_at_once_on_a_4xx() {
    // The first alert meets 503 then 200: delivered on the retry. The second meets 400:
    // permanent, not retried.
    let receiver = Receiver::start(&[503, 200, 400]);
    let config = AlertsConfig {
        webhook: Some(webhook(receiver.url())),
        ..AlertsConfig::default()
    };
    let rt = runtime();
    let alerts = AlertDispatcher::start(&config, rt.handle().clone()).expect("start");
    assert!(alerts.submit(&restricted("alice@contoso.com", DAY1)));
    assert!(rt.block_on(alerts.flush(WAIT)));
    assert!(alerts.submit(&restricted("bob@contoso.com", DAY1)));
    assert!(rt.block_on(alerts.flush(WAIT)));

    assert_eq!(receiver.drain().len(), 3);
    let webhook = alerts.stats().webhook;
    assert_eq!(
        (webhook.delivered, webhook.failed, webhook.retries),
        (1, 1, 1),
        "{webhook:?}"
    );
    assert_eq!(webhook.pending(), 0);
}

// ---- (2) email through a real Postfix ----------------------------------------------------

#[test]
fn alert_email_lands_in_a_real_mailbox_and_the_daily_limit_holds() {
    let postfix = PrivatePostfix::start(PostfixOptions {
        deliver_domain: Some("alerts.test".into()),
        ..PostfixOptions::default()
    })
    .expect("private Postfix");
    let mut config = AlertsConfig {
        tenant_admins: vec!["secops@alerts.test".into()],
        email: Some(EmailConfig {
            port: postfix.port(),
            retry_backoff_ms: 10,
            ..EmailConfig::new("quench@quench-test.localdomain")
        }),
        ..AlertsConfig::default()
    };
    config
        .rules
        .insert("user_restricted".into(), rule(Some(2), true));
    let rt = runtime();
    let alerts = AlertDispatcher::start(&config, rt.handle().clone()).expect("start");

    // Two alerts of one kind in one UTC day are mailed, the third is not; the next UTC day
    // mails again.
    for (user, at) in [
        ("alice@contoso.com", DAY1 + 600),
        ("bob@contoso.com", DAY1 + 700),
        ("carol@contoso.com", DAY1 + DAY - 1),
        ("dave@contoso.com", DAY1 + DAY),
    ] {
        assert!(alerts.submit(&restricted(user, at)));
    }
    assert!(rt.block_on(alerts.flush(WAIT)), "flush timed out");
    let stats = alerts.stats();
    assert_eq!(stats.suppressed, 1, "{stats:?}");
    assert_eq!(
        (stats.email.delivered, stats.email.failed),
        (3, 0),
        "{stats:?}\n{}",
        postfix.log()
    );

    let messages = postfix.wait_for_mailbox(3, WAIT).expect("mailbox");
    assert_eq!(messages.len(), 3, "exactly three alert emails");
    let parsed: Vec<_> = messages
        .iter()
        .map(|m| {
            mail_parser::MessageParser::default()
                .parse(m.raw.as_bytes())
                .expect("an RFC 5322 message")
        })
        .collect();
    let subjects: Vec<_> = parsed.iter().map(|m| m.subject().unwrap_or("")).collect();
    assert_eq!(
        subjects,
        [
            "[quench] High: User restricted from sending email: alice@contoso.com",
            "[quench] High: User restricted from sending email: bob@contoso.com",
            "[quench] High: User restricted from sending email: dave@contoso.com",
        ]
    );

    let first = &parsed[0];
    let from = first.from().and_then(|a| a.first()).expect("From");
    assert_eq!(from.address(), Some("quench@quench-test.localdomain"));
    let to = first.to().and_then(|a| a.first()).expect("To");
    assert_eq!(to.address(), Some("secops@alerts.test"));
    assert_eq!(
        first.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-generated")
    );
    assert_eq!(
        first.header_raw("X-Quench-Alert").map(str::trim),
        Some("user_restricted")
    );
    let body = first.body_text(0).expect("a text body");
    for needle in [
        "User alice@contoso.com was restricted from sending email",
        "Entity: user alice@contoso.com",
        "Time:   2026-11-16T00:10:00Z",
        "quench blocked-sender get alice@contoso.com",
        "quench blocked-sender remove alice@contoso.com --reason TEXT",
    ] {
        assert!(body.contains(needle), "{needle:?} not in the body:\n{body}");
    }
    assert!(rt.block_on(alerts.shutdown(WAIT)));
}

// ---- (3) the daily notification limit ----------------------------------------------------

#[test]
fn daily_limit_counts_per_kind_per_utc_day() {
    let receiver = Receiver::start(&[]);
    let mut config = AlertsConfig {
        daily_limit: 3,
        webhook: Some(webhook(receiver.url())),
        ..AlertsConfig::default()
    };
    config
        .rules
        .insert("limit_exceeded".into(), rule(Some(1), true));
    let rt = runtime();
    let alerts = AlertDispatcher::start(&config, rt.handle().clone()).expect("start");

    // Day 1: four restrictions (limit 3), two limit-exceeded alerts (limit 1).
    for i in 0..4 {
        assert!(alerts.submit(&restricted(&format!("u{i}@contoso.com"), DAY1 + i)));
    }
    for i in 0..2 {
        let exceeded = alert(EXCEEDED, Severity::Medium, "x@contoso.com", DAY1 + 100 + i);
        assert!(alerts.submit(&exceeded));
    }
    assert!(rt.block_on(alerts.flush(WAIT)));
    let day1 = receiver.drain();
    let kinds = |received: &[Received]| -> Vec<String> {
        received
            .iter()
            .map(|r| r.body["kind"].as_str().unwrap_or("?").to_string())
            .collect()
    };
    let mut got = kinds(&day1);
    got.sort();
    assert_eq!(
        got,
        [
            "limit_exceeded",
            "user_restricted",
            "user_restricted",
            "user_restricted"
        ]
    );
    let stats = alerts.stats();
    assert_eq!((stats.notified, stats.suppressed), (4, 2), "{stats:?}");
    assert_eq!(stats.log.delivered, 6, "suppressed alerts are still logged");

    // Day 2 (by the alerts' own time): both kinds notify again.
    assert!(alerts.submit(&restricted("u9@contoso.com", DAY1 + DAY)));
    assert!(alerts.submit(&alert(
        EXCEEDED,
        Severity::Medium,
        "x@contoso.com",
        DAY1 + DAY + 5
    )));
    assert!(rt.block_on(alerts.flush(WAIT)));
    let mut got = kinds(&receiver.drain());
    got.sort();
    assert_eq!(got, ["limit_exceeded", "user_restricted"]);
    let stats = alerts.stats();
    assert_eq!((stats.notified, stats.suppressed), (6, 2));
    assert_eq!(stats.webhook.delivered, 6);
}

#[test]
fn a_disabled_kind_is_logged_but_not_notified() {
    let receiver = Receiver::start(&[]);
    let mut config = AlertsConfig {
        webhook: Some(webhook(receiver.url())),
        ..AlertsConfig::default()
    };
    config
        .rules
        .insert("limit_exceeded".into(), rule(None, false));
    let rt = runtime();
    let alerts = AlertDispatcher::start(&config, rt.handle().clone()).expect("start");
    assert!(alerts.submit(&alert(EXCEEDED, Severity::Medium, "x@contoso.com", DAY1)));
    assert!(alerts.submit(&restricted("x@contoso.com", DAY1)));
    assert!(rt.block_on(alerts.flush(WAIT)));
    let received = receiver.drain();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body["kind"], "user_restricted");
    let stats = alerts.stats();
    assert_eq!(
        (stats.disabled, stats.notified, stats.log.delivered),
        (1, 1, 2)
    );
}

// ---- (4) dead and hung sinks never hold up submit ----------------------------------------

#[test]
fn refused_sinks_fail_counted_and_submit_never_waits() {
    let config = AlertsConfig {
        tenant_admins: vec!["secops@alerts.test".into()],
        daily_limit: 0, // no limit: every alert is a notification
        queue_capacity: 8,
        webhook: Some(WebhookConfig {
            retries: 2,
            retry_backoff_ms: 1,
            ..WebhookConfig::new(format!("http://127.0.0.1:{}/", closed_port()))
        }),
        email: Some(EmailConfig {
            port: closed_port(),
            retries: 2,
            retry_backoff_ms: 1,
            ..EmailConfig::new("quench@quench-test.localdomain")
        }),
        ..AlertsConfig::default()
    };
    let rt = runtime();
    let alerts = AlertDispatcher::start(&config, rt.handle().clone()).expect("start");
    const N: u64 = 200;
    let queued = (0..N)
        .filter(|i| alerts.submit(&restricted(&format!("u{i}@contoso.com"), DAY1)))
        .count() as u64;
    let stats = alerts.stats();
    assert_eq!(stats.submitted, queued);
    assert_eq!(stats.submitted + stats.dropped, N);

    assert!(
        rt.block_on(alerts.shutdown(WAIT)),
        "refusals are quick: the queues drain"
    );
    let stats = alerts.stats();
    assert_eq!(stats.log.delivered, stats.submitted);
    assert_eq!(stats.notified, stats.submitted);
    for (name, sink) in [("webhook", stats.webhook), ("email", stats.email)] {
        assert_eq!(sink.delivered, 0, "{name}: {sink:?}");
        assert!(sink.failed > 0, "{name}: {sink:?}");
        assert_eq!(sink.failed, sink.queued, "{name}: every queued one failed");
        assert_eq!(sink.retries, 2 * sink.failed, "{name}: two retries each");
        assert_eq!(
            sink.queued + sink.dropped,
            stats.notified,
            "{name}: {sink:?}"
        );
    }
    // After shutdown, alerts are refused and counted, still without waiting.
    assert!(!alerts.submit(&restricted("late@contoso.com", DAY1)));
    assert_eq!(alerts.stats().dropped, stats.dropped + 1);
}

#[test]
fn hung_sinks_never_hold_up_submit_and_shutdown_is_bounded() {
    let hung_webhook = BlackHole::start();
    let hung_relay = BlackHole::start();
    let capacity = 4;
    let config = AlertsConfig {
        tenant_admins: vec!["secops@alerts.test".into()],
        daily_limit: 0,
        queue_capacity: capacity,
        webhook: Some(WebhookConfig {
            timeout_secs: 300,
            ..WebhookConfig::new(format!("http://{}/", hung_webhook.addr))
        }),
        email: Some(EmailConfig {
            port: hung_relay.addr.port(),
            timeout_secs: 300,
            ..EmailConfig::new("quench@quench-test.localdomain")
        }),
        ..AlertsConfig::default()
    };
    let rt = runtime();
    let alerts = AlertDispatcher::start(&config, rt.handle().clone()).expect("start");

    // Get both sinks stuck on their first notification, then pile on.
    assert!(alerts.submit(&restricted("first@contoso.com", DAY1)));
    hung_webhook.wait_for_connection();
    hung_relay.wait_for_connection();
    const N: u64 = 500;
    for i in 0..N {
        alerts.submit(&restricted(&format!("u{i}@contoso.com"), DAY1));
    }
    let stats = alerts.stats();
    assert_eq!(stats.submitted + stats.dropped, N + 1);

    // The sinks stay hung: shutdown gives up after its bounded wait and says so.
    assert!(!rt.block_on(alerts.shutdown(Duration::from_millis(500))));
    let stats = alerts.stats();
    for (name, sink) in [("webhook", stats.webhook), ("email", stats.email)] {
        assert_eq!((sink.delivered, sink.failed), (0, 0), "{name}: {sink:?}");
        // The stuck notification plus a full queue, no more; the rest were dropped.
        assert!(
            sink.queued <= capacity as u64 + 1,
            "{name}: queue bound: {sink:?}"
        );
        assert!(sink.pending() >= 1, "{name}: {sink:?}");
        assert_eq!(
            sink.queued + sink.dropped,
            stats.notified,
            "{name}: {sink:?}"
        );
    }
    assert!(
        stats.webhook.dropped + stats.dropped > 0,
        "a flood against a hung sink drops: {stats:?}"
    );
}

// ---- (5) config validation ---------------------------------------------------------------

#[test]
fn config_errors_name_the_key() {
    let rt = runtime();
    let cases: &[(&str, &str)] = &[
        (
            r#"recipients = ["not an address"]
               [email]
               from = "q@contoso.com""#,
            "alerts.recipients[0]",
        ),
        (
            r#"[rules.user_restricted]
               recipients = ["ok@contoso.com", "nope"]
               [email]
               from = "q@contoso.com""#,
            "alerts.rules.user_restricted.recipients[1]",
        ),
        ("[rules.made_up]", "alerts.rules.made_up"),
        (
            r#"[rules.user_restricted]
               name = "Something""#,
            "alerts.rules.user_restricted.name",
        ),
        (
            r#"[webhook]
               url = "ftp://example.com/""#,
            "alerts.webhook.url",
        ),
        (
            r#"[webhook]
               url = "http://example.com/"
               timeout_secs = 0"#,
            "alerts.webhook.timeout_secs",
        ),
        (
            r#"[webhook]
               url = "http://example.com/"
               retries = 99"#,
            "alerts.webhook.retries",
        ),
        (
            r#"recipients = ["a@contoso.com"]
               [email]
               from = "quench""#,
            "alerts.email.from",
        ),
        (
            r#"recipients = ["a@contoso.com"]
               [email]
               from = "q@contoso.com"
               username = "quench"
               password_file = "/run/secrets/smtp""#,
            "alerts.email.tls",
        ),
        (
            r#"recipients = ["a@contoso.com"]
               [email]
               from = "q@contoso.com"
               username = "quench""#,
            "alerts.email.password_file",
        ),
        (
            r#"[email]
               from = "q@contoso.com""#,
            "alerts.tenant_admins",
        ),
        (r#"recipients = ["a@contoso.com"]"#, "alerts.recipients"),
        (
            r#"tenant_admins = ["a@contoso.com"]"#,
            "alerts.tenant_admins",
        ),
        (
            r#"tenant_admins = ["a@contoso.com"]
               recipients = ["b@contoso.com"]"#,
            "alerts.recipients",
        ),
        ("queue_capacity = 0", "alerts.queue_capacity"),
    ];
    for (text, key) in cases {
        let config: AlertsConfig = toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let error = config.validate().expect_err(text);
        assert!(
            error.to_string().starts_with(&format!("{key}:")),
            "{text}\n=> {error}\nexpected it to name {key}"
        );
        let error = AlertDispatcher::start(&config, rt.handle().clone())
            .err()
            .expect("start validates too");
        assert!(format!("{error:#}").contains(key), "{error:#}");
    }

    // Misspelt and missing keys are caught by the parser, which names them too.
    for (text, needle) in [
        ("[alerts]\nrecipents = []", "recipents"),
        ("[alerts.rules.user_restricted]\nenabeld = false", "enabeld"),
        ("[alerts.email]\nrelay = \"mx\"", "from"),
        ("[alerts.webhook]\ntimeout_secs = 5", "url"),
        ("[alerts.email]\nfrom = \"q@x.com\"\ntls = \"ssl\"", "ssl"),
    ] {
        let error = quench::config::QuenchConfig::parse(text).expect_err(text);
        assert!(
            format!("{error:#}").contains(needle),
            "{text}\n=> {error:#}\nexpected it to name {needle}"
        );
    }

    // No [alerts] at all is valid: log only.
    let config = quench::config::QuenchConfig::parse("").unwrap();
    config.alerts.validate().unwrap();
}

/// The whole path: a real `quench serve` restricts a user over the policy protocol, and the
/// policy's alerts reach the configured webhook (and the metrics) without the decision waiting.
#[test]
fn quench_serve_delivers_the_policy_alerts_to_the_webhook() {
    let receiver = Receiver::start(&[]);
    let config = format!(
        r#"
[policy]
accepted_domains = ["contoso.com"]
[[policy.outbound]]
name = "Default"
recipient_limit_external_per_hour = 1
recipient_limit_internal_per_hour = 100
recipient_limit_per_day = 100
action_when_threshold_reached = "BlockUser"

[alerts.webhook]
url = "{}"
"#,
        receiver.url()
    );
    let server = server::QuenchServer::start("alerts-serve", &config);
    let mut client = server.connect();
    client.rcpt("mallory@contoso.com", "x1@fabrikam.com", "1");
    assert_eq!(
        client
            .rcpt("mallory@contoso.com", "x2@fabrikam.com", "2")
            .as_deref(),
        Some("action=550 5.1.8 Access denied, bad outbound sender")
    );
    let mut names = Vec::new();
    for _ in 0..2 {
        let received = receiver
            .bodies
            .recv_timeout(WAIT)
            .expect("the webhook receives the alerts");
        assert_eq!(
            received.body["entity"]["id"], "mallory@contoso.com",
            "{}",
            received.body
        );
        names.push(received.body["name"].as_str().unwrap().to_string());
    }
    names.sort();
    assert_eq!(names, [EXCEEDED, RESTRICTED]);
    let metrics = server.metrics_text();
    assert!(
        metrics.contains("quench_alerts{kind=\"submitted\"} 2"),
        "{metrics}"
    );
}
