//! A real `quench serve` process for tests: its own data directory, every listener on a free
//! loopback port (read back from its stdout), stopped (SIGKILL) when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `quench serve`.
pub struct QuenchServer {
    child: Option<Child>,
    /// The data directory (kept across restarts).
    pub data_dir: PathBuf,
    config_path: PathBuf,
    /// `--data-dir`: `data_dir/data` unless the test put it elsewhere (a small tmpfs).
    store_dir: PathBuf,
    /// The policy service address.
    pub policy: SocketAddr,
    /// The metrics address.
    pub metrics: SocketAddr,
    /// The admin API address, when it announced one.
    pub admin: Option<SocketAddr>,
}

impl QuenchServer {
    /// Start with `config` (TOML text) in a fresh data directory named after `name`.
    pub fn start(name: &str, config: &str) -> Self {
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let serial = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let data_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("servers")
            .join(format!("{name}-{}-{serial}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        std::fs::create_dir_all(&data_dir).unwrap();
        let config_path = data_dir.join("quench.toml");
        std::fs::write(&config_path, config).unwrap();
        let store_dir = data_dir.join("data");
        Self::launch(data_dir, config_path, store_dir, &[], "127.0.0.1:0")
    }

    /// [`start`](Self::start) with the policy service on `listen` (for a Postfix that was
    /// given the address before quench started, e.g. because quench's config names it).
    pub fn start_on(name: &str, config: &str, listen: SocketAddr) -> Self {
        let data_dir = Self::fresh_dir(name);
        let config_path = data_dir.join("quench.toml");
        std::fs::write(&config_path, config).unwrap();
        let store_dir = data_dir.join("data");
        let listen = listen.to_string();
        Self::launch(data_dir, config_path, store_dir, &[], &listen)
    }

    /// [`start`](Self::start) with `--data-dir store_dir` (e.g. on a filesystem the test
    /// fills); the config and the log stay in the usual place.
    pub fn start_with_data_dir(name: &str, config: &str, store_dir: &Path) -> Self {
        let data_dir = Self::fresh_dir(name);
        let config_path = data_dir.join("quench.toml");
        std::fs::write(&config_path, config).unwrap();
        Self::launch(
            data_dir,
            config_path,
            store_dir.to_path_buf(),
            &[],
            "127.0.0.1:0",
        )
    }

    /// [`start`](Self::start) under a wrapper command, e.g. `["prlimit", "--nofile=1024:1024"]`.
    pub fn start_under(name: &str, config: &str, wrapper: &[&str]) -> Self {
        let data_dir = Self::fresh_dir(name);
        let config_path = data_dir.join("quench.toml");
        std::fs::write(&config_path, config).unwrap();
        let store_dir = data_dir.join("data");
        Self::launch(data_dir, config_path, store_dir, wrapper, "127.0.0.1:0")
    }

    /// A fresh, empty data directory named after `name`.
    pub fn fresh_dir(name: &str) -> PathBuf {
        static SERIAL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let serial = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let data_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("servers")
            .join(format!("{name}-{}-w{serial}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        std::fs::create_dir_all(&data_dir).unwrap();
        data_dir
    }

    fn launch(
        data_dir: PathBuf,
        config_path: PathBuf,
        store_dir: PathBuf,
        wrapper: &[&str],
        listen: &str,
    ) -> Self {
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(env!("CARGO_BIN_EXE_quench"));
                command
            }
            None => Command::new(env!("CARGO_BIN_EXE_quench")),
        };
        let mut child = command
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .arg("--data-dir")
            .arg(&store_dir)
            .args(["--listen", listen, "--metrics-listen", "127.0.0.1:0"])
            .args(["--admin-listen", "127.0.0.1:0"])
            .env("QUENCH_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(data_dir.join("stderr.log"))
                    .unwrap(),
            ))
            .spawn()
            .expect("quench serve starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut policy, mut metrics, mut admin) = (None, None, None);
        while policy.is_none() || metrics.is_none() || admin.is_none() {
            let Some(Ok(line)) = lines.next() else {
                let log = std::fs::read_to_string(data_dir.join("stderr.log")).unwrap_or_default();
                panic!("quench serve exited before announcing its listeners:\n{log}");
            };
            let addr = || {
                line.rsplit(' ')
                    .next()
                    .unwrap()
                    .parse::<SocketAddr>()
                    .unwrap()
            };
            if line.contains("policy service listening on") {
                policy = Some(addr());
            } else if line.contains("metrics listening on") {
                metrics = Some(addr());
            } else if line.contains("admin API listening on") {
                admin = Some(addr());
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        QuenchServer {
            child: Some(child),
            data_dir,
            config_path,
            store_dir,
            policy: policy.unwrap(),
            metrics: metrics.unwrap(),
            admin,
        }
    }

    /// SIGKILL the server and start it again on the same data directory.
    pub fn kill9_and_restart(mut self) -> Self {
        self.kill9();
        let data_dir = self.data_dir.clone();
        let config_path = self.config_path.clone();
        let store_dir = self.store_dir.clone();
        std::mem::forget(self);
        Self::launch(data_dir, config_path, store_dir, &[], "127.0.0.1:0")
    }

    /// SIGKILL, no cleanup: what a crash looks like.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for the exit status (graceful shutdown).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        child.wait().unwrap()
    }

    /// Replace the config file (for reload tests).
    pub fn rewrite_config(&self, config: &str) {
        std::fs::write(&self.config_path, config).unwrap();
    }

    /// Send SIGHUP (reload).
    pub fn sighup(&self) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("stderr.log")).unwrap_or_default()
    }

    /// A new policy-protocol connection.
    pub fn connect(&self) -> PolicyClient {
        PolicyClient::connect(self.policy)
    }

    /// GET the metrics text.
    pub fn metrics_text(&self) -> String {
        http_get(self.metrics, "/metrics")
    }

    /// The value of one metric series, e.g. `quench_store_errors_total` or
    /// `quench_decisions_total{kind="accept"}`; `None` when it is not exported (yet).
    pub fn metric(&self, series: &str) -> Option<f64> {
        self.metrics_text().lines().find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            Some(value.trim().parse().expect("a metric value is a number"))
        })
    }
}

impl Drop for QuenchServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One plain HTTP/1.0 GET, returning the body (the tests' only HTTP needs are tiny).
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    http_get_inner(addr, path, None)
}

/// [`http_get`] with a bearer token.
pub fn http_get_with_token(addr: SocketAddr, path: &str, token: &str) -> String {
    http_get_inner(addr, path, Some(token))
}

fn http_get_inner(addr: SocketAddr, path: &str, token: Option<&str>) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or(response)
}

/// A Postfix-policy-protocol client.
pub struct PolicyClient {
    stream: BufReader<TcpStream>,
}

impl PolicyClient {
    /// Connect to `addr`.
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect to the policy service");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        PolicyClient {
            stream: BufReader::new(stream),
        }
    }

    /// Send raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.get_mut().write_all(bytes)
    }

    /// Read one answer (`action=...` then a blank line); `None` if the server closed.
    pub fn read_answer(&mut self) -> Option<String> {
        let mut action = String::new();
        if self.stream.read_line(&mut action).ok()? == 0 {
            return None;
        }
        let mut blank = String::new();
        self.stream.read_line(&mut blank).ok()?;
        assert_eq!(blank, "\n", "an answer ends with a blank line");
        Some(action.trim_end().to_string())
    }

    /// Send one request of `attributes` and read its answer.
    pub fn ask(&mut self, attributes: &[(&str, &str)]) -> Option<String> {
        let mut request = String::from("request=smtpd_access_policy\n");
        for (name, value) in attributes {
            request.push_str(&format!("{name}={value}\n"));
        }
        request.push('\n');
        self.send_raw(request.as_bytes()).ok()?;
        self.read_answer()
    }

    /// An RCPT-stage request of the SASL user `sender` (authenticated, from outside the
    /// trusted networks, envelope sender = login) to `recipient` in message `instance`.
    pub fn rcpt(&mut self, sender: &str, recipient: &str, instance: &str) -> Option<String> {
        self.ask(&[
            ("protocol_state", "RCPT"),
            ("protocol_name", "ESMTP"),
            ("client_address", "192.0.2.10"),
            ("sasl_method", "PLAIN"),
            ("sasl_username", sender),
            ("sender", sender),
            ("recipient", recipient),
            ("instance", instance),
        ])
    }

    /// An RCPT-stage request of an unauthenticated client at `client_address` with envelope
    /// sender `sender`.
    pub fn rcpt_unauthenticated(
        &mut self,
        client_address: &str,
        sender: &str,
        recipient: &str,
        instance: &str,
    ) -> Option<String> {
        self.ask(&[
            ("protocol_state", "RCPT"),
            ("protocol_name", "ESMTP"),
            ("client_address", client_address),
            ("sender", sender),
            ("recipient", recipient),
            ("instance", instance),
        ])
    }
}

/// One admin API call over HTTP/1.0: (status, JSON body; `Null` when the body is not JSON).
pub fn admin_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let json = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| serde_json::from_str(b).unwrap_or(serde_json::Value::Null))
        .unwrap_or(serde_json::Value::Null);
    (status, json)
}
