//! A private, throw-away Postfix for integration tests, and `swaks` to talk to it.
//!
//! Include it from a test with `#[path = "support/postfix.rs"] mod postfix;`. It needs only std
//! and `anyhow`.
//!
//! [`PrivatePostfix::start`] builds a Postfix instance that shares nothing with the system one:
//! its own `main.cf`/`master.cf`, queue and data directories and log file, all in one temporary
//! directory that `Drop` stops and removes. Its smtpd listens on a free port of 127.0.0.1 only,
//! trusts 127.0.0.0/8 (`mynetworks`), and hands every message to the `discard` transport, so
//! nothing leaves the machine. Optionally one domain ([`PostfixOptions::deliver_domain`]) is
//! delivered by the `virtual` agent into one mbox file the test reads
//! ([`PrivatePostfix::wait_for_mailbox`]). The policy service goes where
//! [`PostfixOptions::policy`] says, hooked in [`PostfixOptions::hook`].
//!
//! What a client sees (Postfix 3.7, recorded by `tests/postfix_harness.rs`): a policy answer of
//! `action=550 5.1.8 Access denied, bad outbound sender`
//! - in `smtpd_sender_restrictions` (evaluated at RCPT under `smtpd_delay_reject = yes`):
//!   `550 5.1.8 <sender>: Sender address rejected: Access denied, bad outbound sender`;
//! - in `smtpd_recipient_restrictions`: Postfix rewrites the X.1.Y detail to fit the class,
//!   `550 5.1.2 <recipient>: Recipient address rejected: Access denied, bad outbound sender`
//!   (a `5.7.711` keeps its code in both: only X.1.Y details are rewritten);
//! - in `smtpd_end_of_data_restrictions` (once per message): `550 5.0.0 <END-OF-MESSAGE>:
//!   End-of-data rejected: Access denied, bad outbound sender`.
//!
//! When the policy service cannot be reached (connection refused, tried
//! `smtpd_policy_service_try_limit` = 2 times, 1 s apart) smtpd answers its default action:
//! `451 4.3.5 <sender>: Sender address rejected: Server configuration problem`, or whatever
//! [`PostfixOptions::default_action`] says (`DUNNO` accepts).
//!
//! [`swaks`] runs the real `swaks` and parses its transcript into the server's replies.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};

/// What to tell someone whose machine lacks Postfix or swaks.
pub const INSTALL_HINT: &str = "run `scripts/test` (it installs them) or \
     `apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postfix swaks`";

/// Where the policy check is hooked into smtpd.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PolicyHook {
    /// `smtpd_sender_restrictions`: evaluated at RCPT (with `smtpd_delay_reject = yes`), once
    /// per recipient, and a rejection keeps its enhanced code (`5.1.8 ... Sender address
    /// rejected`). quench's default.
    #[default]
    SenderRestrictions,
    /// `smtpd_recipient_restrictions`: also per recipient, but Postfix rewrites an X.1.Y code to
    /// X.1.2 (`5.1.2 ... Recipient address rejected`).
    RecipientRestrictions,
    /// `smtpd_end_of_data_restrictions`: once per message, after the content.
    EndOfData,
}

impl PolicyHook {
    fn parameter(self) -> &'static str {
        match self {
            PolicyHook::SenderRestrictions => "smtpd_sender_restrictions",
            PolicyHook::RecipientRestrictions => "smtpd_recipient_restrictions",
            PolicyHook::EndOfData => "smtpd_end_of_data_restrictions",
        }
    }
}

/// How to build a [`PrivatePostfix`]. `PostfixOptions::default()` is a plain relay that
/// discards everything and asks no policy service.
#[derive(Clone, Debug)]
pub struct PostfixOptions {
    /// The policy service smtpd asks (`check_policy_service inet:ADDR`); `None` asks none.
    pub policy: Option<SocketAddr>,
    /// Which restriction list the policy check goes in.
    pub hook: PolicyHook,
    /// `smtpd_policy_service_default_action`: what smtpd answers when the policy service cannot
    /// be reached (after `smtpd_policy_service_try_limit` tries). `None` keeps Postfix's
    /// default, `451 4.3.5 Server configuration problem`; `Some("DUNNO")` fails open.
    pub default_action: Option<String>,
    /// A recipient domain delivered locally: every recipient in it lands, in arrival order, in
    /// one mbox file ([`PrivatePostfix::mailbox_path`]). Everything else is discarded.
    pub deliver_domain: Option<String>,
    /// Let 127.0.0.0/8 send XCLIENT, so a client can present a SASL login
    /// ([`Mail::xclient_login`]) that smtpd passes to the policy as `sasl_username`, without a
    /// SASL stack.
    pub xclient: bool,
    /// Extra `main.cf` parameters. Each overrides the harness's value for the same name (the
    /// file holds every name once, so Postfix logs no "overriding earlier entry").
    pub main_cf: Vec<(String, String)>,
    /// How long `start` waits for the smtpd to greet before giving up with the log.
    pub start_timeout: Duration,
}

impl Default for PostfixOptions {
    fn default() -> Self {
        PostfixOptions {
            policy: None,
            hook: PolicyHook::default(),
            default_action: None,
            deliver_domain: None,
            xclient: false,
            main_cf: Vec::new(),
            start_timeout: Duration::from_secs(60),
        }
    }
}

impl PostfixOptions {
    /// Options with the policy service at `addr`, hooked in `smtpd_sender_restrictions`.
    pub fn with_policy(addr: SocketAddr) -> Self {
        PostfixOptions {
            policy: Some(addr),
            ..Self::default()
        }
    }

    /// Adds (or overrides) one `main.cf` parameter.
    pub fn main_cf(mut self, name: &str, value: &str) -> Self {
        self.main_cf.push((name.to_string(), value.to_string()));
        self
    }
}

/// A running private Postfix. Dropping it stops every process of the instance and removes its
/// directory (set `QUENCH_KEEP_POSTFIX=1` to keep the directory for a post-mortem).
pub struct PrivatePostfix {
    root: PathBuf,
    port: u16,
    deliver_domain: Option<String>,
    /// Set once main.cf is written: there is something to stop.
    configured: bool,
}

/// The `postfix` user's ids (queue and data directories must belong to it).
#[derive(Clone, Copy, Debug)]
struct PostfixUser {
    uid: u32,
    gid: u32,
}

static INSTANCES: AtomicU32 = AtomicU32::new(0);

impl PrivatePostfix {
    /// Configures and starts a private instance, and waits until its smtpd greets.
    pub fn start(options: PostfixOptions) -> Result<PrivatePostfix> {
        let postfix = find_program("postfix").ok_or_else(|| {
            anyhow!("`postfix` is not installed (looked in PATH and /usr/sbin): {INSTALL_HINT}")
        })?;
        if find_program("swaks").is_none() {
            bail!("`swaks` is not installed: {INSTALL_HINT}");
        }
        if !running_as_root() {
            bail!(
                "a private Postfix must be started by root (`postfix start` runs the master as \
                 root); run the tests as root, as CI and `scripts/test` do"
            );
        }
        let user = postfix_user()?;
        let compatibility = compatibility_level()?;

        // The port is picked by binding port 0 and letting go: another process can take it in
        // between, so an "Address already in use" from master is retried on a new port.
        let mut last_error = None;
        for _ in 0..3 {
            let port = free_port()?;
            let mut instance = PrivatePostfix {
                root: make_temp_dir()?,
                port,
                deliver_domain: options.deliver_domain.clone(),
                configured: false,
            };
            match instance.configure_and_start(&postfix, &options, user, &compatibility) {
                Ok(()) => return Ok(instance),
                Err(error) => {
                    let busy = instance.log().contains("Address already in use");
                    drop(instance);
                    if !busy {
                        return Err(error);
                    }
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.expect("three tries"))
    }

    fn configure_and_start(
        &mut self,
        postfix: &Path,
        options: &PostfixOptions,
        user: PostfixUser,
        compatibility: &str,
    ) -> Result<()> {
        let etc = self.config_dir();
        let data = self.root.join("data");
        fs::create_dir(&etc)?;
        fs::create_dir(self.root.join("queue"))?;
        fs::create_dir(&data)?;
        // master.lock and the caches live here; master runs as root but opens it as postfix.
        std::os::unix::fs::chown(&data, Some(user.uid), Some(user.gid))?;
        if options.deliver_domain.is_some() {
            let mail = self.root.join("mail");
            fs::create_dir(&mail)?;
            // The virtual agent writes as virtual_uid_maps (postfix): it creates the mbox here.
            std::os::unix::fs::chown(&mail, Some(user.uid), Some(user.gid))?;
        }
        let main_cf = self.main_cf(options, user, compatibility);
        fs::write(etc.join("main.cf"), main_cf)?;
        fs::write(etc.join("master.cf"), self.master_cf())?;
        self.configured = true;

        // `postfix start` checks the configuration, creates the queue directories with the
        // right owners and starts master (-w: waits for it). Its output goes to a file: master
        // daemonizes and could otherwise hold a pipe open.
        let out = fs::File::create(self.root.join("postfix-start.out"))?;
        let mut child = postfix_command(postfix, &etc)
            .arg("start")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("running {}", postfix.display()))?;
        let status = wait_with_deadline(&mut child, options.start_timeout)
            .context("`postfix start` did not finish")?;
        if !status.success() {
            bail!(
                "`postfix -c {} start` failed ({status}):\n{}\n--- maillog ---\n{}\n--- \
                 `postfix check` on a terminal ---\n{}",
                etc.display(),
                fs::read_to_string(self.root.join("postfix-start.out")).unwrap_or_default(),
                self.log(),
                self.diagnose(postfix)
            );
        }
        self.wait_for_greeting(options.start_timeout)
    }

    /// Postfix commands print their errors only to a terminal (else to syslog, which a test
    /// machine may not have, and `maillog_file` is not read yet when main.cf itself is wrong):
    /// `postfix check` under `script` gives them one.
    fn diagnose(&self, postfix: &Path) -> String {
        let Some(script) = find_program("script") else {
            return "(no `script` command to give Postfix a terminal)".into();
        };
        let Ok(out) = fs::File::create(self.root.join("postfix-check.out")) else {
            return String::new();
        };
        let command = format!(
            "{} -c {} check",
            postfix.display(),
            self.config_dir().display()
        );
        let spawned = Command::new(script)
            .env_remove("MAIL_CONFIG")
            .args(["-qec", &command, "/dev/null"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("a file handle"))
            .stderr(out)
            .spawn();
        if let Ok(mut child) = spawned {
            let _ = wait_with_deadline(&mut child, Duration::from_secs(30));
        }
        fs::read_to_string(self.root.join("postfix-check.out"))
            .unwrap_or_default()
            .replace('\r', "")
    }

    fn main_cf(&self, options: &PostfixOptions, user: PostfixUser, compatibility: &str) -> String {
        let root = self.root.display();
        let mut params: Vec<(String, String)> = Vec::new();
        let mut set = |name: &str, value: String| {
            if let Some(entry) = params.iter_mut().find(|(n, _)| n == name) {
                entry.1 = value;
            } else {
                params.push((name.to_string(), value));
            }
        };
        set("compatibility_level", compatibility.to_string());
        set("queue_directory", format!("{root}/queue"));
        set("data_directory", format!("{root}/data"));
        set("maillog_file", format!("{root}/maillog"));
        set("maillog_file_prefixes", format!("{root}"));
        set("syslog_name", "postfix".into());
        set("inet_interfaces", "127.0.0.1".into());
        set("inet_protocols", "ipv4".into());
        set("myhostname", "quench-test.localdomain".into());
        set("mydomain", "localdomain".into());
        set("myorigin", "$myhostname".into());
        set("mydestination", String::new());
        set("mynetworks", "127.0.0.0/8".into());
        set("relayhost", String::new());
        set("relay_domains", String::new());
        set("alias_maps", String::new());
        set("alias_database", String::new());
        set("local_recipient_maps", String::new());
        // Nothing leaves the machine: no smtp/relay/local service exists in master.cf, and
        // every transport that could be chosen is discard.
        set("default_transport", "discard:".into());
        set("relay_transport", "discard:".into());
        set("local_transport", "discard:".into());
        set("biff", "no".into());
        set("append_dot_mydomain", "no".into());
        set("smtpd_banner", "$myhostname ESMTP Postfix".into());
        set("smtpd_peername_lookup", "no".into());
        set("smtpd_delay_reject", "yes".into());
        set(
            "smtpd_relay_restrictions",
            "permit_mynetworks, reject_unauth_destination".into(),
        );
        // Tests send many refused recipients in one session: no tarpit, no disconnect.
        set("smtpd_error_sleep_time", "0s".into());
        set("smtpd_soft_error_limit", "1000".into());
        set("smtpd_hard_error_limit", "1000".into());
        if let Some(policy) = options.policy {
            set(
                options.hook.parameter(),
                format!("check_policy_service inet:{policy}"),
            );
        }
        if let Some(action) = &options.default_action {
            set("smtpd_policy_service_default_action", action.clone());
        }
        if options.xclient {
            set("smtpd_authorized_xclient_hosts", "127.0.0.0/8".into());
        }
        if let Some(domain) = &options.deliver_domain {
            set("virtual_mailbox_domains", domain.clone());
            set("virtual_mailbox_base", format!("{root}/mail"));
            set("virtual_mailbox_maps", "static:mailbox".into());
            set("virtual_uid_maps", format!("static:{}", user.uid));
            set("virtual_gid_maps", format!("static:{}", user.gid));
            set("virtual_minimum_uid", "1".into());
        }
        for (name, value) in &options.main_cf {
            set(name, value.clone());
        }
        let mut text =
            String::from("# A private Postfix for quench's tests (tests/support/postfix.rs)\n");
        for (name, value) in params {
            text.push_str(&format!("{name} = {value}\n"));
        }
        text
    }

    fn master_cf(&self) -> String {
        // No chroot anywhere (a chroot would be the private queue directory, without the
        // files a chroot needs), no smtp client at all.
        let services = [
            format!("127.0.0.1:{} inet n - n - - smtpd", self.port),
            "pickup unix n - n 60 1 pickup".into(),
            "cleanup unix n - n - 0 cleanup".into(),
            "qmgr unix n - n 300 1 qmgr".into(),
            "rewrite unix - - n - - trivial-rewrite".into(),
            "bounce unix - - n - 0 bounce".into(),
            "defer unix - - n - 0 bounce".into(),
            "trace unix - - n - 0 bounce".into(),
            "verify unix - - n - 1 verify".into(),
            "flush unix n - n 1000? 0 flush".into(),
            "proxymap unix - - n - - proxymap".into(),
            "proxywrite unix - - n - 1 proxymap".into(),
            "showq unix n - n - - showq".into(),
            "error unix - - n - - error".into(),
            "retry unix - - n - - error".into(),
            "discard unix - - n - - discard".into(),
            "virtual unix - n n - - virtual".into(),
            "anvil unix - - n - 1 anvil".into(),
            "scache unix - - n - 1 scache".into(),
            "postlog unix-dgram n - n - 1 postlogd".into(),
        ];
        let mut text = String::from("# A private Postfix for quench's tests\n");
        for line in services {
            text.push_str(&line);
            text.push('\n');
        }
        text
    }

    fn wait_for_greeting(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let addr = self.addr();
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            match greet(addr) {
                Ok(()) => return Ok(()),
                Err(error) => last = format!("{error:#}"),
            }
            thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "the private Postfix's smtpd on {addr} did not greet within {timeout:?} (last: \
             {last})\n--- maillog ---\n{}",
            self.log()
        )
    }

    /// The smtpd's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The smtpd's address, `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The instance's temporary directory (config in `etc/`, queue, data, log, mail).
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// The directory holding this instance's main.cf and master.cf (`postfix -c` takes it).
    pub fn config_dir(&self) -> PathBuf {
        self.root.join("etc")
    }

    /// The whole Postfix log so far (`maillog_file`).
    pub fn log(&self) -> String {
        fs::read_to_string(self.root.join("maillog")).unwrap_or_default()
    }

    /// Waits until a log line contains `needle` and returns that line.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log().lines().find(|line| line.contains(needle)) {
                return Ok(line.to_string());
            }
            if Instant::now() >= deadline {
                bail!(
                    "no Postfix log line contains {needle:?} after {timeout:?}\n--- maillog \
                     ---\n{}",
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until Postfix is done with message `queue_id` (delivered, discarded or bounced:
    /// the `removed` line) and returns its log lines (one `to=<...>, status=...` per recipient).
    pub fn wait_for_message_done(&self, queue_id: &str, timeout: Duration) -> Result<Vec<String>> {
        self.wait_for_log(&format!("{queue_id}: removed"), timeout)?;
        let prefix = format!(" {queue_id}: ");
        Ok(self
            .log()
            .lines()
            .filter(|line| line.contains(&prefix))
            .map(str::to_string)
            .collect())
    }

    /// The mbox file that [`PostfixOptions::deliver_domain`] delivers to.
    pub fn mailbox_path(&self) -> PathBuf {
        self.root.join("mail").join("mailbox")
    }

    /// The messages delivered to the local domain so far, oldest first.
    pub fn mailbox(&self) -> Vec<MailboxMessage> {
        match fs::read_to_string(self.mailbox_path()) {
            Ok(text) => parse_mbox(&text),
            Err(_) => Vec::new(),
        }
    }

    /// Waits until at least `count` messages have been delivered to the local domain (the
    /// virtual agent logged them as sent) and returns every message in the mailbox.
    pub fn wait_for_mailbox(&self, count: usize, timeout: Duration) -> Result<Vec<MailboxMessage>> {
        if self.deliver_domain.is_none() {
            bail!("this instance has no deliver_domain: nothing is delivered to a mailbox");
        }
        let deadline = Instant::now() + timeout;
        loop {
            let delivered = self
                .log()
                .lines()
                .filter(|line| line.contains("relay=virtual") && line.contains("status=sent"))
                .count();
            let messages = self.mailbox();
            if delivered >= count && messages.len() >= count {
                return Ok(messages);
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} message(s) in {} after {timeout:?}, expected {count}\n--- maillog \
                     ---\n{}",
                    messages.len(),
                    self.mailbox_path().display(),
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `mail` to this instance with swaks.
    pub fn swaks(&self, mail: &Mail) -> Result<SwaksOutcome> {
        swaks(self.addr(), mail)
    }

    /// Every process of this instance: those whose environment names its config directory
    /// (master passes `MAIL_CONFIG` to every child), and the master from its pid file.
    fn processes(&self) -> Vec<u32> {
        let needle = format!("MAIL_CONFIG={}", self.config_dir().display());
        let mut pids: Vec<u32> = fs::read_dir("/proc")
            .map(|entries| {
                entries
                    .filter_map(|entry| entry.ok())
                    .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
                    .filter(|pid| {
                        fs::read(format!("/proc/{pid}/environ"))
                            .map(|env| env.split(|b| *b == 0).any(|var| var == needle.as_bytes()))
                            .unwrap_or(false)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let master = fs::read_to_string(self.root.join("queue/pid/master.pid"))
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok());
        if let Some(pid) = master {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains("master") && !pids.contains(&pid) {
                pids.push(pid);
            }
        }
        pids
    }

    fn wait_for_no_processes(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.processes().is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&self) {
        if !self.configured {
            return;
        }
        let Some(postfix) = find_program("postfix") else {
            return;
        };
        let etc = self.config_dir();
        // A graceful stop; then abort (no waiting for children); then SIGKILL what is left.
        for (command, patience) in [("stop", 15), ("abort", 5)] {
            if self.processes().is_empty() {
                break;
            }
            if let Ok(mut child) = postfix_command(&postfix, &etc)
                .arg(command)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            {
                let _ = wait_with_deadline(&mut child, Duration::from_secs(patience));
            }
            if self.wait_for_no_processes(Duration::from_secs(patience)) {
                return;
            }
        }
        for pid in self.processes() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        self.wait_for_no_processes(Duration::from_secs(5));
    }
}

impl Drop for PrivatePostfix {
    fn drop(&mut self) {
        self.stop();
        if std::env::var_os("QUENCH_KEEP_POSTFIX").is_some() {
            eprintln!("QUENCH_KEEP_POSTFIX: kept {}", self.root.display());
        } else {
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}

impl fmt::Debug for PrivatePostfix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivatePostfix")
            .field("dir", &self.root)
            .field("port", &self.port)
            .finish()
    }
}

/// One message from the local mailbox.
#[derive(Clone, Debug)]
pub struct MailboxMessage {
    /// The message as stored, without the mbox `From ` separator line.
    pub raw: String,
}

impl MailboxMessage {
    /// The headers, unfolded, in order.
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in self.raw.lines() {
            if line.is_empty() {
                break;
            }
            if line.starts_with([' ', '\t']) {
                if let Some(last) = headers.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.to_string(), value.trim().to_string()));
            }
        }
        headers
    }

    /// The first header called `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers()
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }

    /// Everything after the blank line that ends the headers.
    pub fn body(&self) -> &str {
        self.raw
            .split_once("\n\n")
            .map(|(_, body)| body)
            .unwrap_or("")
    }
}

fn parse_mbox(text: &str) -> Vec<MailboxMessage> {
    let mut messages = Vec::new();
    let mut current: Option<String> = None;
    let mut previous_blank = true;
    for line in text.lines() {
        if line.starts_with("From ") && previous_blank {
            if let Some(raw) = current.take() {
                messages.push(MailboxMessage { raw });
            }
            current = Some(String::new());
        } else if let Some(raw) = current.as_mut() {
            raw.push_str(line);
            raw.push('\n');
        }
        previous_blank = line.is_empty();
    }
    if let Some(raw) = current {
        messages.push(MailboxMessage { raw });
    }
    for message in &mut messages {
        // The agent ends each message with one blank line of its own.
        if message.raw.ends_with("\n\n") {
            message.raw.pop();
        }
    }
    messages
}

/// One message to send with swaks.
#[derive(Clone, Debug)]
pub struct Mail {
    /// The envelope sender (`MAIL FROM`).
    pub from: String,
    /// The envelope recipients, one `RCPT TO` each, in order.
    pub to: Vec<String>,
    /// The source address to connect from, e.g. 127.0.0.2 for a second "connector".
    pub local_interface: Option<IpAddr>,
    /// The EHLO name (swaks's default is the machine's host name).
    pub helo: Option<String>,
    /// Headers added to swaks's default ones (or replacing those of the same name).
    pub headers: Vec<(String, String)>,
    /// The body; swaks's default is "This is a test mailing".
    pub body: Option<String>,
    /// `XCLIENT LOGIN=...` before the mail: smtpd treats the session as SASL-authenticated as
    /// this user (needs [`PostfixOptions::xclient`]).
    pub xclient_login: Option<String>,
    /// `XCLIENT ADDR=...` before the mail: smtpd treats the session as coming from this
    /// client address (an internet client, say), and passes it to the policy as
    /// `client_address` (needs [`PostfixOptions::xclient`]).
    pub xclient_addr: Option<String>,
    /// Bounds the whole swaks run.
    pub timeout: Duration,
}

impl Mail {
    /// A message from `from` to `to`.
    pub fn new(from: &str, to: &[&str]) -> Mail {
        Mail {
            from: from.to_string(),
            to: to.iter().map(|s| s.to_string()).collect(),
            local_interface: None,
            helo: None,
            headers: Vec::new(),
            body: None,
            xclient_login: None,
            xclient_addr: None,
            timeout: Duration::from_secs(60),
        }
    }

    /// Connects from `addr` (a loopback address such as 127.0.0.2).
    pub fn local_interface(mut self, addr: &str) -> Mail {
        self.local_interface = Some(addr.parse().expect("an IP address"));
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Mail {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: &str) -> Mail {
        self.body = Some(body.to_string());
        self
    }

    /// Presents a SASL login with XCLIENT.
    pub fn xclient_login(mut self, login: &str) -> Mail {
        self.xclient_login = Some(login.to_string());
        self
    }

    /// Presents another client address with XCLIENT.
    pub fn xclient_addr(mut self, addr: &str) -> Mail {
        self.xclient_addr = Some(addr.to_string());
        self
    }
}

/// One SMTP reply, possibly multi-line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpReply {
    /// The three-digit code.
    pub code: u16,
    /// The enhanced status code (RFC 3463) of the first line, e.g. `5.1.8`, when there is one.
    pub enhanced: Option<String>,
    /// The text after the code and enhanced code; lines joined with `\n`.
    pub text: String,
    /// The raw reply lines as received (`550 5.1.8 <a@b>: Sender address rejected: ...`).
    pub lines: Vec<String>,
}

impl SmtpReply {
    /// 2xx.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// The whole first line as the client saw it.
    pub fn line(&self) -> &str {
        self.lines.first().map(String::as_str).unwrap_or("")
    }

    fn parse(lines: Vec<String>) -> Option<SmtpReply> {
        let code = lines.first()?.get(..3)?.parse().ok()?;
        let mut enhanced = None;
        let mut texts = Vec::new();
        for (index, line) in lines.iter().enumerate() {
            let rest = line.get(4..).unwrap_or("");
            let (status, text) = match rest.split_once(' ') {
                Some((first, text)) if is_enhanced_status(first) => (Some(first), text),
                _ if is_enhanced_status(rest) => (Some(rest), ""),
                _ => (None, rest),
            };
            if index == 0 {
                enhanced = status.map(str::to_string);
            }
            texts.push(text.to_string());
        }
        Some(SmtpReply {
            code,
            enhanced,
            text: texts.join("\n"),
            lines,
        })
    }
}

impl fmt::Display for SmtpReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines.join("\n"))
    }
}

fn is_enhanced_status(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The server's reply to one `RCPT TO`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RcptReply {
    /// The address as sent in `RCPT TO:<...>`.
    pub recipient: String,
    pub reply: SmtpReply,
}

/// What one swaks run saw. A refused recipient or message is data here, not an error.
#[derive(Clone, Debug)]
pub struct SwaksOutcome {
    /// swaks's exit status: 0 all well, 23 MAIL refused, 24 no recipient accepted, 25 DATA
    /// refused, 26 message refused after the data (see `swaks --help`, EXIT CODES).
    pub status: ExitStatus,
    /// Everything swaks printed (stdout, then stderr).
    pub transcript: String,
    /// The reply to `MAIL FROM`.
    pub mail_from: Option<SmtpReply>,
    /// The reply to each `RCPT TO`, in order.
    pub rcpt: Vec<RcptReply>,
    /// The reply to `DATA` (354 when the server takes the content); `None` when swaks did not
    /// get that far (no recipient accepted).
    pub data: Option<SmtpReply>,
    /// The reply after the content's final dot: 250 when the message was queued.
    pub end_of_data: Option<SmtpReply>,
}

impl SwaksOutcome {
    /// The reply to `RCPT TO:<recipient>` (exact address as sent).
    pub fn rcpt_reply(&self, recipient: &str) -> Option<&SmtpReply> {
        self.rcpt
            .iter()
            .find(|r| r.recipient == recipient)
            .map(|r| &r.reply)
    }

    /// The message was queued (250 after the data).
    pub fn accepted(&self) -> bool {
        self.end_of_data
            .as_ref()
            .is_some_and(SmtpReply::is_positive)
    }

    /// The queue id from `250 2.0.0 Ok: queued as ID`.
    pub fn queue_id(&self) -> Option<String> {
        let reply = self.end_of_data.as_ref()?;
        let (_, id) = reply.text.split_once("queued as ")?;
        Some(id.split_whitespace().next()?.to_string())
    }
}

/// Runs swaks against `server` and parses what the server replied. Errors only when swaks
/// cannot be run or does not finish within `mail.timeout`.
pub fn swaks(server: SocketAddr, mail: &Mail) -> Result<SwaksOutcome> {
    let program =
        find_program("swaks").ok_or_else(|| anyhow!("`swaks` is not installed: {INSTALL_HINT}"))?;
    let mut command = Command::new(&program);
    command
        .arg("--server")
        .arg(server.ip().to_string())
        .arg("--port")
        .arg(server.port().to_string())
        .arg("--from")
        .arg(&mail.from)
        // Several --to options: swaks keeps only the last. One comma-separated list it is.
        .arg("--to")
        .arg(mail.to.join(","))
        .arg("--timeout")
        .arg(format!("{}s", mail.timeout.as_secs().max(1)));
    if let Some(addr) = mail.local_interface {
        command.arg("--local-interface").arg(addr.to_string());
    }
    if let Some(helo) = &mail.helo {
        command.arg("--ehlo").arg(helo);
    }
    for (name, value) in &mail.headers {
        command.arg("--header").arg(format!("{name}: {value}"));
    }
    if let Some(login) = &mail.xclient_login {
        command.arg("--xclient-login").arg(login);
    }
    if let Some(addr) = &mail.xclient_addr {
        command.arg("--xclient-addr").arg(addr);
    }
    // The body goes through stdin: swaks would read a body argument that names a file.
    if mail.body.is_some() {
        command.arg("--body").arg("-");
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .with_context(|| format!("running {}", program.display()))?;
    let mut stdin = child.stdin.take().expect("piped");
    let body = mail.body.clone().unwrap_or_default();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(body.as_bytes());
    });
    let stdout = drain(child.stdout.take().expect("piped"));
    let stderr = drain(child.stderr.take().expect("piped"));
    let status = wait_with_deadline(&mut child, mail.timeout + Duration::from_secs(5))
        .context("swaks did not finish")?;
    let _ = writer.join();
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let mut outcome = parse_transcript(&stdout);
    outcome.status = status;
    outcome.transcript = if stderr.is_empty() {
        stdout
    } else {
        format!("{stdout}{stderr}")
    };
    Ok(outcome)
}

fn drain(mut reader: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = reader.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Parses swaks's transcript: ` -> ` lines are sent, `<-  ` (positive) and `<** ` (negative)
/// lines are received. Between the 354 to DATA and the next reply, sent lines are content.
pub fn parse_transcript(transcript: &str) -> SwaksOutcome {
    #[derive(PartialEq)]
    enum Pending {
        None,
        MailFrom,
        Rcpt(String),
        Data,
        EndOfData,
        Other,
    }
    let mut outcome = SwaksOutcome {
        status: ExitStatus::default(),
        transcript: String::new(),
        mail_from: None,
        rcpt: Vec::new(),
        data: None,
        end_of_data: None,
    };
    let mut pending = Pending::None;
    let mut in_content = false;
    let mut reply_lines: Vec<String> = Vec::new();
    for line in transcript.lines() {
        if let Some(sent) = line.strip_prefix(" -> ") {
            if in_content {
                continue;
            }
            let upper = sent.to_ascii_uppercase();
            pending = if upper.starts_with("MAIL FROM:") {
                Pending::MailFrom
            } else if upper.starts_with("RCPT TO:") {
                let address = sent[8..]
                    .trim()
                    .trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap_or("")
                    .to_string();
                Pending::Rcpt(address)
            } else if upper == "DATA" {
                Pending::Data
            } else {
                Pending::Other
            };
            continue;
        }
        let Some(received) = line
            .strip_prefix("<-  ")
            .or_else(|| line.strip_prefix("<** "))
        else {
            continue;
        };
        reply_lines.push(received.to_string());
        let last = received.len() <= 3 || received.as_bytes()[3] == b' ';
        if !last {
            continue;
        }
        let Some(reply) = SmtpReply::parse(std::mem::take(&mut reply_lines)) else {
            continue;
        };
        match std::mem::replace(&mut pending, Pending::None) {
            Pending::MailFrom => outcome.mail_from = Some(reply),
            Pending::Rcpt(recipient) => outcome.rcpt.push(RcptReply { recipient, reply }),
            Pending::Data => {
                if reply.code / 100 == 3 {
                    in_content = true;
                    pending = Pending::EndOfData;
                }
                outcome.data = Some(reply);
            }
            Pending::EndOfData => {
                in_content = false;
                outcome.end_of_data = Some(reply);
            }
            Pending::None | Pending::Other => {}
        }
    }
    outcome
}

// ---- helpers ----------------------------------------------------------------------------

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn postfix_command(postfix: &Path, config_dir: &Path) -> Command {
    let mut command = Command::new(postfix);
    command.env_remove("MAIL_CONFIG").arg("-c").arg(config_dir);
    command
}

fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?.to_string();
            Some(line.split_whitespace().nth(2)? == "0") // effective uid
        })
        .unwrap_or(false)
}

fn postfix_user() -> Result<PostfixUser> {
    let passwd = fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    for line in passwd.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() >= 4 && fields[0] == "postfix" {
            return Ok(PostfixUser {
                uid: fields[2].parse()?,
                gid: fields[3].parse()?,
            });
        }
    }
    bail!(
        "there is no `postfix` user in /etc/passwd (the postfix package makes it): {INSTALL_HINT}"
    )
}

/// `compatibility_level` for the installed Postfix: its own major.minor from 3.6 on (the form
/// 3.6 introduced), else 2.
fn compatibility_level() -> Result<String> {
    let postconf = find_program("postconf")
        .ok_or_else(|| anyhow!("`postconf` is not installed: {INSTALL_HINT}"))?;
    let output = Command::new(postconf)
        .args(["-d", "-h", "mail_version"])
        .env_remove("MAIL_CONFIG")
        .stdin(Stdio::null())
        .output()
        .context("running postconf")?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    Ok(if (major, minor) >= (3, 6) {
        format!("{major}.{minor}")
    } else {
        "2".into()
    })
}

fn make_temp_dir() -> Result<PathBuf> {
    // Short paths: Postfix's UNIX sockets live under the queue directory (108-byte limit).
    let base = std::env::temp_dir();
    let base = if base.as_os_str().len() > 40 {
        PathBuf::from("/tmp")
    } else {
        base
    };
    for _ in 0..100 {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = base.join(format!(
            "quench-postfix-{}-{}-{:08x}",
            std::process::id(),
            INSTANCES.fetch_add(1, Ordering::Relaxed),
            nanos
        ));
        match fs::create_dir(&dir) {
            Ok(()) => {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
                return Ok(dir);
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(error).context(format!("creating {}", dir.display())),
        }
    }
    bail!(
        "could not create a temporary directory under {}",
        base.display()
    )
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn wait_with_deadline(child: &mut Child, timeout: Duration) -> Result<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("killed after {timeout:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Connects, reads a complete `220 ` greeting and says QUIT.
fn greet(addr: SocketAddr) -> Result<()> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            bail!("connection closed before the greeting");
        }
        if line.starts_with("220 ") {
            break;
        }
        if !line.starts_with("220-") {
            bail!("unexpected greeting {line:?}");
        }
    }
    let _ = stream.write_all(b"QUIT\r\n");
    let mut rest = String::new();
    let _ = reader.read_line(&mut rest);
    Ok(())
}

/// Reads a Postfix policy request (`name=value` lines up to an empty line). `None` at a clean
/// end of stream. Shared by tests that play the policy server themselves.
pub fn read_policy_request(
    reader: &mut impl BufRead,
) -> std::io::Result<Option<BTreeMap<String, String>>> {
    let mut attributes = BTreeMap::new();
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end_matches(['\n', '\r']);
        if line.is_empty() {
            return Ok(Some(attributes));
        }
        if let Some((name, value)) = line.split_once('=') {
            attributes.insert(name.to_string(), value.to_string());
        }
    }
}
