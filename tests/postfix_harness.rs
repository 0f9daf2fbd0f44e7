//! Proves the real-Postfix harness (tests/support/postfix.rs) with a tiny policy server written
//! here: a private Postfix asks it at RCPT, swaks sends real mail, and what the SMTP client sees
//! is checked to the letter. Needs Postfix and swaks installed (`scripts/test` installs them);
//! without them these tests fail with the install command, they never skip.

use crate::postfix;

use std::collections::BTreeMap;
use std::io::{BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::postfix::{Mail, PolicyHook, PostfixOptions, PrivatePostfix, read_policy_request};

const BLOCKED: &str = "blocked@contoso.com";
const DENIED: &str = "action=550 5.1.8 Access denied, bad outbound sender";
const WAIT: Duration = Duration::from_secs(30);

type Request = BTreeMap<String, String>;

/// A policy server in a few lines: answers `answer(request)` to every request and keeps them
/// all. Listens on 127.0.0.1 only; `Drop` stops and joins every thread.
struct TinyPolicy {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl TinyPolicy {
    fn start(answer: fn(&Request) -> String) -> TinyPolicy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (requests, stop) = (requests.clone(), stop.clone());
            thread::spawn(move || {
                let mut connections = Vec::new();
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (requests, stop) = (requests.clone(), stop.clone());
                    connections.push(thread::spawn(move || {
                        serve(stream, answer, &requests, &stop)
                    }));
                }
                for connection in connections {
                    let _ = connection.join();
                }
            })
        };
        TinyPolicy {
            addr,
            requests,
            stop,
            acceptor: Some(acceptor),
        }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(
    stream: TcpStream,
    answer: fn(&Request) -> String,
    requests: &Mutex<Vec<Request>>,
    stop: &AtomicBool,
) {
    // Postfix keeps the connection for later requests; a short read timeout lets the thread
    // notice `stop` (partial lines survive a timeout: read_until keeps what it read).
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    while !stop.load(Ordering::SeqCst) {
        match read_policy_request(&mut reader) {
            Ok(Some(request)) => {
                let reply = answer(&request);
                requests.lock().unwrap().push(request);
                if writer.write_all(format!("{reply}\n\n").as_bytes()).is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

impl Drop for TinyPolicy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the acceptor
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Blocks `blocked@contoso.com` and the "connector" at 127.0.0.2, lets everything else through.
fn block_one_sender(request: &Request) -> String {
    if request.get("sender").map(String::as_str) == Some(BLOCKED) {
        DENIED.to_string()
    } else if request.get("client_address").map(String::as_str) == Some("127.0.0.2") {
        "action=550 5.7.711 Access denied, bad inbound connector".to_string()
    } else {
        "action=DUNNO".to_string()
    }
}

fn start(options: PostfixOptions) -> PrivatePostfix {
    PrivatePostfix::start(options).unwrap_or_else(|error| panic!("{error:#}"))
}

#[test]
fn allowed_sender_is_accepted_and_discarded_and_drop_cleans_up() {
    let policy = TinyPolicy::start(block_one_sender);
    let postfix = start(PostfixOptions::with_policy(policy.addr));
    let outcome = postfix
        .swaks(&Mail::new("ok@contoso.com", &["someone@example.net"]))
        .unwrap();
    assert!(outcome.status.success(), "{}", outcome.transcript);
    assert_eq!(outcome.rcpt.len(), 1, "{}", outcome.transcript);
    assert_eq!(outcome.rcpt[0].reply.code, 250);
    assert_eq!(outcome.rcpt[0].reply.enhanced.as_deref(), Some("2.1.5"));
    assert_eq!(outcome.data.as_ref().unwrap().code, 354);
    assert!(outcome.accepted(), "{}", outcome.transcript);
    let queue_id = outcome.queue_id().expect("a queue id");

    // The discard transport took it: nothing left the machine.
    let lines = postfix.wait_for_message_done(&queue_id, WAIT).unwrap();
    let delivery = lines
        .iter()
        .find(|line| line.contains("to=<someone@example.net>"))
        .expect("a delivery line");
    assert!(delivery.contains("postfix/discard"), "{delivery}");
    assert!(delivery.contains("relay=none"), "{delivery}");
    assert!(delivery.contains("status=sent"), "{delivery}");

    let dir = postfix.dir().to_path_buf();
    let addr = postfix.addr();
    drop(postfix);
    assert!(!dir.exists(), "{} is removed", dir.display());
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "nothing listens on {addr} after drop"
    );
}

#[test]
fn blocked_sender_gets_5_1_8_at_rcpt_from_sender_restrictions() {
    let policy = TinyPolicy::start(block_one_sender);
    let postfix = start(PostfixOptions::with_policy(policy.addr));
    let outcome = postfix
        .swaks(&Mail::new(BLOCKED, &["a@example.net", "b@example.org"]))
        .unwrap();
    // swaks: 24 = no recipient accepted. Data, not an error.
    assert_eq!(outcome.status.code(), Some(24), "{}", outcome.transcript);
    assert_eq!(outcome.rcpt.len(), 2, "{}", outcome.transcript);
    for rcpt in &outcome.rcpt {
        assert_eq!(rcpt.reply.code, 550);
        assert_eq!(rcpt.reply.enhanced.as_deref(), Some("5.1.8"));
        // The exact line the SMTP client sees (recorded in the harness's module docs).
        assert_eq!(
            rcpt.reply.line(),
            "550 5.1.8 <blocked@contoso.com>: Sender address rejected: Access denied, bad \
             outbound sender"
        );
    }
    assert!(outcome.data.is_none(), "no DATA without a recipient");
    assert!(!outcome.accepted());
    postfix
        .wait_for_log("NOQUEUE: reject: RCPT from", WAIT)
        .unwrap();
}

#[test]
fn the_same_answer_from_recipient_restrictions_reaches_the_client_as_5_1_2() {
    let policy = TinyPolicy::start(block_one_sender);
    let postfix = start(PostfixOptions {
        hook: PolicyHook::RecipientRestrictions,
        ..PostfixOptions::with_policy(policy.addr)
    });
    let outcome = postfix
        .swaks(&Mail::new(BLOCKED, &["a@example.net"]))
        .unwrap();
    let reply = &outcome.rcpt[0].reply;
    assert_eq!(
        reply.line(),
        "550 5.1.2 <a@example.net>: Recipient address rejected: Access denied, bad outbound \
         sender",
        "{}",
        outcome.transcript
    );
    let outcome = postfix
        .swaks(&Mail::new("connector@contoso.com", &["a@example.net"]).local_interface("127.0.0.2"))
        .unwrap();
    assert_eq!(
        outcome.rcpt[0].reply.line(),
        "550 5.7.711 <a@example.net>: Recipient address rejected: Access denied, bad inbound \
         connector",
        "{}",
        outcome.transcript
    );
}

#[test]
fn policy_requests_come_at_rcpt_one_per_recipient_with_the_recipient() {
    let policy = TinyPolicy::start(block_one_sender);
    let postfix = start(PostfixOptions::with_policy(policy.addr));
    let outcome = postfix
        .swaks(&Mail::new(
            "ok@contoso.com",
            &["one@example.net", "two@example.org"],
        ))
        .unwrap();
    assert!(outcome.accepted(), "{}", outcome.transcript);
    let requests = policy.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    for (request, recipient) in requests.iter().zip(["one@example.net", "two@example.org"]) {
        let get = |name: &str| request.get(name).map(String::as_str);
        assert_eq!(get("request"), Some("smtpd_access_policy"));
        assert_eq!(get("protocol_state"), Some("RCPT"));
        assert_eq!(get("protocol_name"), Some("ESMTP"));
        assert_eq!(get("sender"), Some("ok@contoso.com"));
        assert_eq!(get("recipient"), Some(recipient));
        assert_eq!(get("client_address"), Some("127.0.0.1"));
        assert_eq!(get("sasl_username"), Some(""));
        assert!(!get("instance").unwrap_or("").is_empty(), "{request:?}");
    }
    // One message's requests share `instance`.
    assert_eq!(requests[0]["instance"], requests[1]["instance"]);
}

#[test]
fn mail_to_the_deliver_domain_lands_in_the_readable_mailbox() {
    let postfix = start(PostfixOptions {
        deliver_domain: Some("alerts.test".into()),
        ..PostfixOptions::default()
    });
    let outcome = postfix
        .swaks(
            &Mail::new(
                "quench@alerts.test",
                &["admin@alerts.test", "else@example.net"],
            )
            .header("Subject", "User restricted from sending email")
            .body("blocked@contoso.com was restricted.\n\nFrom now on: 550 5.1.8.\n"),
        )
        .unwrap();
    assert!(outcome.accepted(), "{}", outcome.transcript);
    let messages = postfix.wait_for_mailbox(1, WAIT).unwrap();
    assert_eq!(
        messages.len(),
        1,
        "only the alerts.test recipient is delivered"
    );
    let message = &messages[0];
    assert_eq!(
        message.header("Subject").as_deref(),
        Some("User restricted from sending email")
    );
    assert_eq!(
        message.header("Delivered-To").as_deref(),
        Some("admin@alerts.test")
    );
    assert!(
        message
            .body()
            .contains("blocked@contoso.com was restricted."),
        "{}",
        message.raw
    );
    // A body line starting with "From " after a blank line is quoted by the agent (">From"),
    // so the mailbox still holds one message.
    assert!(
        message.body().contains("From now on: 550 5.1.8."),
        "{}",
        message.raw
    );
}

#[test]
fn a_second_loopback_source_address_reaches_the_policy_as_client_address() {
    let policy = TinyPolicy::start(block_one_sender);
    let postfix = start(PostfixOptions::with_policy(policy.addr));
    let outcome = postfix
        .swaks(&Mail::new("connector@contoso.com", &["x@example.net"]).local_interface("127.0.0.2"))
        .unwrap();
    // A 5.7.Y detail survives sender restrictions too (only X.1.Y is rewritten).
    assert_eq!(
        outcome.rcpt[0].reply.line(),
        "550 5.7.711 <connector@contoso.com>: Sender address rejected: Access denied, bad \
         inbound connector",
        "{}",
        outcome.transcript
    );
    let requests = policy.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0]["client_address"], "127.0.0.2");
    // From 127.0.0.1 the same sender passes.
    let outcome = postfix
        .swaks(&Mail::new("connector@contoso.com", &["x@example.net"]))
        .unwrap();
    assert!(outcome.accepted(), "{}", outcome.transcript);
}

#[test]
fn an_xclient_login_reaches_the_policy_as_sasl_username() {
    let policy = TinyPolicy::start(block_one_sender);
    let postfix = start(PostfixOptions {
        xclient: true,
        ..PostfixOptions::with_policy(policy.addr)
    });
    let outcome = postfix
        .swaks(&Mail::new("shared@contoso.com", &["x@example.net"]).xclient_login("alice"))
        .unwrap();
    assert!(outcome.accepted(), "{}", outcome.transcript);
    let requests = policy.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0]["sasl_username"], "alice");
    assert_eq!(requests[0]["sender"], "shared@contoso.com");
}

/// A port on 127.0.0.1 where nothing listens.
fn dead_policy_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[test]
fn policy_down_answers_the_default_action_451_4_3_5() {
    let postfix = start(PostfixOptions::with_policy(dead_policy_addr()));
    let outcome = postfix
        .swaks(&Mail::new("ok@contoso.com", &["a@example.net"]))
        .unwrap();
    assert_eq!(
        outcome.rcpt[0].reply.line(),
        "451 4.3.5 <ok@contoso.com>: Sender address rejected: Server configuration problem",
        "{}",
        outcome.transcript
    );
    postfix
        .wait_for_log("problem talking to server", WAIT)
        .unwrap();
}

#[test]
fn policy_down_with_default_action_dunno_fails_open() {
    let postfix = start(PostfixOptions {
        default_action: Some("DUNNO".into()),
        ..PostfixOptions::with_policy(dead_policy_addr())
    });
    let outcome = postfix
        .swaks(&Mail::new("ok@contoso.com", &["a@example.net"]))
        .unwrap();
    assert!(outcome.accepted(), "{}", outcome.transcript);
}

#[test]
/// A per-message hook cannot give users 5.1.8: Postfix rewrites the detail to 5.0.0.
fn end_of_data_hook_asks_once_per_message_and_loses_5_1_8() {
    let policy = TinyPolicy::start(block_one_sender);
    let postfix = start(PostfixOptions {
        hook: PolicyHook::EndOfData,
        ..PostfixOptions::with_policy(policy.addr)
    });
    let outcome = postfix
        .swaks(&Mail::new(BLOCKED, &["a@example.net", "b@example.org"]))
        .unwrap();
    assert_eq!(outcome.rcpt.len(), 2);
    assert!(outcome.rcpt.iter().all(|r| r.reply.code == 250));
    let reply = outcome.end_of_data.as_ref().expect("a reply to the data");
    assert_eq!(
        reply.line(),
        "550 5.0.0 <END-OF-MESSAGE>: End-of-data rejected: Access denied, bad outbound sender",
        "{}",
        outcome.transcript
    );
    let requests = policy.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0]["protocol_state"], "END-OF-MESSAGE");
    assert_eq!(requests[0]["recipient_count"], "2");
}

#[test]
fn transcript_parsing_keeps_content_out_of_the_replies() {
    let transcript = [
        "<-  220 quench-test.localdomain ESMTP Postfix",
        " -> EHLO vm",
        "<-  250-quench-test.localdomain",
        "<-  250 CHUNKING",
        " -> MAIL FROM:<ok@contoso.com>",
        "<-  250 2.1.0 Ok",
        " -> RCPT TO:<a@example.net>",
        "<** 550 5.1.8 <ok@contoso.com>: Sender address rejected: no",
        " -> RCPT TO:<b@example.net>",
        "<-  250 2.1.5 Ok",
        " -> DATA",
        "<-  354 End data with <CR><LF>.<CR><LF>",
        " -> RCPT TO:<content@example.net>",
        " -> ",
        " -> .",
        "<-  250 2.0.0 Ok: queued as F32249C2024",
        " -> QUIT",
        "<-  221 2.0.0 Bye",
    ]
    .join("\n");
    let outcome = postfix::parse_transcript(&transcript);
    assert_eq!(outcome.mail_from.as_ref().unwrap().code, 250);
    assert_eq!(outcome.rcpt.len(), 2);
    assert_eq!(outcome.rcpt[0].recipient, "a@example.net");
    assert_eq!(outcome.rcpt[0].reply.enhanced.as_deref(), Some("5.1.8"));
    assert_eq!(
        outcome.rcpt[0].reply.text,
        "<ok@contoso.com>: Sender address rejected: no"
    );
    assert_eq!(outcome.data.as_ref().unwrap().code, 354);
    assert_eq!(outcome.queue_id().as_deref(), Some("F32249C2024"));
}

#[test]
fn a_configuration_postfix_refuses_fails_start_with_its_own_words() {
    let error =
        PrivatePostfix::start(PostfixOptions::default().main_cf("default_process_limit", "lots"))
            .expect_err("Postfix refuses a non-numeric process limit");
    let message = format!("{error:#}");
    assert!(
        message.contains("bad numerical configuration: default_process_limit = lots"),
        "{message}"
    );
}
