//! Hostile admin and policy clients against a real `quench serve` (issue 12): refused admin
//! requests are audited in bounded form; half-sent HTTP requests neither starve the policy
//! port nor hold descriptors past the header timeout; a policy client that never reads is
//! dropped; the descriptor budget is checked at start; group- or world-readable secret files
//! are refused.

use crate::server::{QuenchServer, admin_call as http};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const TOKEN: &str = "token-for-the-limits-tests";

fn token_config(role: &str) -> String {
    format!(
        "\n[[admin.tokens]]\nname = \"ops\"\nrole = \"{role}\"\ntoken_sha256 = \"{}\"\n",
        quench::admin::hash_token(TOKEN)
    )
}

/// Bytes under `dir`, recursively, leaving out the compiled-code cache.
fn size_of(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == "cache") {
            continue;
        }
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            size_of(&path)
        } else {
            meta.len()
        };
    }
    total
}

/// The sampled records of refused requests, and how many requests they stand for.
fn sampled(admin: SocketAddr) -> (Vec<Value>, u64) {
    let (status, body) = http(
        admin,
        "GET",
        "/v1/audit?action=refused-requests&limit=10000",
        Some(TOKEN),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let records = body["records"].as_array().unwrap().clone();
    let requests = records
        .iter()
        .map(|r| {
            let detail = r["detail"].as_str().unwrap();
            detail.split(' ').next().unwrap().parse::<u64>().unwrap()
        })
        .sum();
    (records, requests)
}

#[test]
fn admin_refused_requests_are_counted_and_sampled_not_written_one_by_one() {
    let config = format!(
        "[admin]\nanonymous_audit_interval_secs = 2\n{}",
        token_config("GlobalReader")
    );
    let server = QuenchServer::start("admin-sampled", &config);
    let admin = server.admin.unwrap();
    let data = server.data_dir.join("data");
    // One authenticated call first, so the store's files exist and are warm.
    assert_eq!(
        http(admin, "GET", "/v1/blocked-senders", Some(TOKEN), None).0,
        200
    );
    let before = size_of(&data);

    let path = format!("/v1/blocked-senders/{}", "a".repeat(8 * 1024));
    let started = Instant::now();
    for i in 0..2000 {
        let token = (i % 2 == 0).then_some("not-a-token");
        let (status, _) = http(admin, "GET", &path, token, None);
        assert_eq!(status, 401);
    }
    let sending = started.elapsed();
    // Malformed requests from an authenticated client: sampled too.
    let malformed = [
        ("GET", "/v1/audit?limit=many", None),
        ("GET", "/v1/no-such-route", None),
        (
            "POST",
            "/v1/blocked-senders/x@contoso.com/unblock",
            Some("{not json"),
        ),
    ];
    for (method, path, body) in malformed {
        let (status, body) = http(admin, method, path, Some(TOKEN), body);
        assert!(
            (400..500).contains(&status),
            "{method} {path}: {status} {body}"
        );
    }
    // An 8 KB address is no address, with a token too: refused before the operation, so it
    // cannot make an audit record of its own (each was ~70 to 120 KB of store growth).
    let (status, body) = http(admin, "GET", &path, Some(TOKEN), None);
    assert_eq!(status, 400, "{body}");
    // Let the sampler flush what is pending (it writes when a client's interval is over).
    std::thread::sleep(Duration::from_secs(5));
    // Saturating: the store may shrink meanwhile (redb gives back free pages at a commit).
    let grown = size_of(&data).saturating_sub(before);

    let (records, requests) = sampled(admin);
    assert_eq!(
        requests, 2004,
        "every refused request is counted: {records:#?}"
    );
    let most = sending.as_secs() / 2 + 4;
    assert!(
        records.len() as u64 <= most,
        "{} records for 2,004 requests in {sending:?} (at most one per 2 s): {records:#?}",
        records.len()
    );
    for record in &records {
        let detail = record["detail"].as_str().unwrap();
        assert!(detail.len() < 600, "the path is cut short: {detail}");
        assert!(detail.contains("from 127.0.0.1"), "{detail}");
    }
    let cut = format!("... ({} bytes) -> 401", path.len());
    assert!(
        records
            .iter()
            .any(|r| { r["detail"].as_str().unwrap().contains(&cut) && r["actor"] == "anonymous" }),
        "{records:#?}"
    );
    assert_eq!(
        server.metric("quench_admin_refused_requests_total{kind=\"unauthenticated\"}"),
        Some(2000.0)
    );
    assert_eq!(
        server.metric("quench_admin_refused_requests_total{kind=\"malformed\"}"),
        Some(4.0)
    );
    eprintln!(
        "2,004 refused requests (2,001 with 8 KB paths) in {sending:?}: {} sampled records, \
         data directory grew by {grown} bytes",
        records.len()
    );
    // One durable record per request grew the store by about 71 KB each (142 MB for 2,000).
    assert!(grown < 2_000_000, "the store grew by {grown} bytes");
}

/// Config for the descriptor tests: policy connections capped so the budget fits 1,024.
fn small_budget_config() -> String {
    format!(
        "[serve]\nmax_connections = 512\n[admin]\nheader_timeout_secs = 2\n{}",
        token_config("GlobalReader")
    )
}

#[test]
fn admin_half_sent_requests_neither_starve_the_policy_port_nor_outlive_the_header_timeout() {
    let server = QuenchServer::start_under(
        "admin-half-sent",
        &small_budget_config(),
        &["prlimit", "--nofile=1024:1024"],
    );
    let admin = server.admin.unwrap();
    let mut held = Vec::new();
    for _ in 0..1100 {
        let mut stream = TcpStream::connect(admin).unwrap();
        // Headers never finished.
        let _ = stream.write_all(b"GET /v1/blocked-senders HTTP/1.1\r\nHost: x\r\n");
        held.push(stream);
    }
    // The policy port still answers, at once.
    let started = Instant::now();
    let mut client = server.connect();
    assert_eq!(
        client
            .rcpt("someone@contoso.com", "a@fabrikam.com", "half-sent")
            .as_deref(),
        Some("action=DUNNO")
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    // The first connections were taken (up to the cap of 64) and are held until the header
    // timeout (2 s from their start), not closed at once.
    let mut buf = [0u8; 512];
    held[0]
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let early = held[0].read(&mut buf);
    assert!(
        early.as_ref().is_err_and(|e| matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )),
        "a connection within the cap is held until its header timeout: {early:?}"
    );
    // Every held connection is closed: those past the cap at once, the rest after the header
    // timeout.
    let deadline = Instant::now() + Duration::from_secs(10);
    for stream in &mut held {
        let left = deadline.saturating_duration_since(Instant::now());
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(10))))
            .unwrap();
        let mut buf = [0u8; 512];
        match stream.read(&mut buf) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("a half-sent request is still open after the header timeout: {e}"),
        }
    }
    assert!(Instant::now() < deadline);
    let refused = server
        .metric("quench_http_refused_connections_total{kind=\"admin\"}")
        .unwrap_or(0.0);
    assert!(
        refused >= 1000.0,
        "{refused} connections refused at the cap"
    );
    // And the admin API serves again.
    drop(held);
    assert_eq!(
        http(admin, "GET", "/v1/blocked-senders", Some(TOKEN), None).0,
        200
    );
    assert!(!server.log().contains("os error 24"), "{}", server.log());
}

#[test]
fn admin_descriptor_budget_is_checked_at_start() {
    let dir = QuenchServer::fresh_dir("admin-budget");
    let config = dir.join("quench.toml");
    std::fs::write(&config, "").unwrap();
    let output = Command::new("prlimit")
        .arg("--nofile=1024:1024")
        .arg(env!("CARGO_BIN_EXE_quench"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .args(["--admin-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("(RLIMIT_NOFILE) is 1024")
            && stderr.contains("serve.max_connections = 1024")
            && stderr.contains("LimitNOFILE"),
        "{stderr}"
    );
}

#[test]
fn admin_policy_client_that_never_reads_is_disconnected() {
    let server = QuenchServer::start("admin-never-reads", "[serve]\nwrite_timeout_secs = 1\n");
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.policy.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream
        .set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // Pipeline requests and never read an answer, until the server gives up on us.
    let request = "request=smtpd_access_policy\nprotocol_state=DATA\n\n".repeat(100);
    let started = Instant::now();
    let mut sent = 0u64;
    let error = loop {
        match stream.write_all(request.as_bytes()) {
            Ok(()) => sent += 100,
            Err(error) => break error,
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still connected after {sent} requests"
        );
    };
    assert!(
        matches!(
            error.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{error}"
    );
    assert_eq!(
        server.metric("quench_policy_write_timeouts_total"),
        Some(1.0)
    );
    // Other clients are served meanwhile and after.
    let mut client = server.connect();
    assert_eq!(
        client
            .rcpt("x@contoso.com", "y@fabrikam.com", "after")
            .as_deref(),
        Some("action=DUNNO")
    );
}

#[test]
fn admin_secret_files_others_can_read_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = QuenchServer::fresh_dir("admin-secret");
    let secret = dir.join("webhook.secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o640)).unwrap();
    let config = format!(
        "[alerts.webhook]\nurl = \"http://127.0.0.1:9/hook\"\nsecret_file = \"{}\"\n",
        secret.display()
    );
    let config_path = dir.join("quench.toml");
    std::fs::write(&config_path, &config).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_quench"))
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .args(["--admin-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("alerts.webhook.secret_file") && stderr.contains("mode 640"),
        "{stderr}"
    );
    assert!(stderr.contains("chmod 600"), "{stderr}");

    // Private: starts. Made readable again and reloaded: refused, the server keeps running.
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = format!("{config}{}", token_config("OrganizationManagement"));
    let server = QuenchServer::start("admin-secret-ok", &config);
    let admin = server.admin.unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o604)).unwrap();
    let (status, body) = http(admin, "POST", "/v1/policy/reload", Some(TOKEN), None);
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("alerts.webhook.secret_file"),
        "{body}"
    );
}

#[test]
fn admin_bodies_are_bounded_in_size_and_time() {
    let config = format!(
        "[admin]\nbody_timeout_secs = 1\nmax_body_bytes = 1024\n{}",
        token_config("SecurityAdministrator")
    );
    let server = QuenchServer::start("admin-bodies", &config);
    let admin = server.admin.unwrap();
    let path = "/v1/blocked-senders/x@contoso.com/unblock";

    // Too large: refused unread.
    let big = format!(r#"{{"reason":"{}"}}"#, "a".repeat(4096));
    let (status, body) = http(admin, "POST", path, Some(TOKEN), Some(&big));
    assert_eq!(status, 413, "{body}");

    // Too slow: headers promise a body that never comes.
    let mut stream = TcpStream::connect(admin).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"reason\""
    )
    .unwrap();
    let started = Instant::now();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.0 4") || answer.starts_with("HTTP/1.1 4"),
        "{answer}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    assert_eq!(
        server.metric("quench_admin_refused_requests_total{kind=\"malformed\"}"),
        Some(2.0)
    );
    // Neither reached the unblock, so neither has a record of its own.
    let (_, audit) = http(admin, "GET", "/v1/audit?action=unblock", Some(TOKEN), None);
    assert_eq!(audit["records"].as_array().unwrap().len(), 0, "{audit}");
}

#[test]
fn admin_metrics_listener_is_capped_too() {
    let server = QuenchServer::start(
        "admin-metrics-cap",
        "[metrics]\nmax_connections = 4\nheader_timeout_secs = 1\n",
    );
    let mut held: Vec<TcpStream> = (0..12)
        .map(|_| {
            let mut stream = TcpStream::connect(server.metrics).unwrap();
            let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\n");
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut closed_at_once = 0;
    for stream in &mut held {
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = [0u8; 64];
        let closed = match stream.read(&mut buf) {
            Ok(0) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            Ok(_) => false,
        };
        closed_at_once += usize::from(closed);
    }
    assert_eq!(
        closed_at_once, 8,
        "connections past the cap of 4 are closed at once"
    );
    // The held ones time out; then a scrape gets through.
    std::thread::sleep(Duration::from_millis(1500));
    let refused = server
        .metric("quench_http_refused_connections_total{kind=\"metrics\"}")
        .unwrap();
    assert_eq!(refused, 8.0);
}
