//! Real headless Chromium for the portal tests: Debian's `chromedriver` started on a free
//! loopback port (stopped when dropped), and a fantoccini WebDriver session against it.

use fantoccini::{Client, ClientBuilder, Locator};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running chromedriver.
pub struct Driver {
    child: Child,
    port: u16,
    /// Each session's Chromium profile, removed when the driver stops.
    profiles: std::sync::Mutex<Vec<tempfile::TempDir>>,
}

impl Driver {
    /// Start chromedriver on a free port on 127.0.0.1.
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (scripts/test installs chromium-driver)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            port,
            profiles: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// A new headless Chromium session, `width` x `height`.
    pub async fn session(&self, width: u32, height: u32) -> Client {
        self.session_with(width, height, false).await
    }

    /// [`session`](Self::session) that accepts the test's self-signed TLS certificate.
    pub async fn session_insecure(&self, width: u32, height: u32) -> Client {
        self.session_with(width, height, true).await
    }

    async fn session_with(&self, width: u32, height: u32, insecure: bool) -> Client {
        let profile = tempfile::tempdir().unwrap();
        let profile_path = profile.path().to_path_buf();
        self.profiles.lock().unwrap().push(profile);
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--disable-extensions",
                    "--hide-scrollbars",
                    "--force-device-scale-factor=1",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile_path.display()),
                ]
            }),
        );
        if insecure {
            capabilities.insert("acceptInsecureCerts".into(), serde_json::json!(true));
        }
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a Chromium session starts");
        client.set_window_size(width, height).await.unwrap();
        client
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of the element with id `id`.
pub async fn text_of(client: &Client, id: &str) -> String {
    find(client, id)
        .await
        .unwrap_or_else(|e| panic!("#{id} is on the page: {e}"))
        .text()
        .await
        .unwrap()
}

/// Whether an element with id `id` is on the page.
pub async fn has(client: &Client, id: &str) -> bool {
    client.find(Locator::Id(id)).await.is_ok()
}

/// Click the element with id `id` and wait for the next page.
pub async fn click(client: &Client, id: &str) {
    find(client, id)
        .await
        .unwrap_or_else(|e| panic!("#{id} is on the page: {e}"))
        .click()
        .await
        .unwrap();
}

/// Save a PNG screenshot named `name`: under docs/screenshots/ when
/// `QUENCH_UPDATE_SCREENSHOTS` is set (to refresh the README's pictures), else in the test's
/// temporary directory.
pub async fn screenshot(client: &Client, name: &str) -> PathBuf {
    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let dir = if std::env::var_os("QUENCH_UPDATE_SCREENSHOTS").is_some() {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots")
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
    };
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap();
    path
}

/// How long an element the test expects may take to appear: a click on a link or a submit
/// button returns before the next page has loaded, so the test waits for what it looks for
/// instead of racing the navigation.
const APPEAR_WITHIN: std::time::Duration = std::time::Duration::from_secs(15);

/// The element with id `id`, waiting up to [`APPEAR_WITHIN`] for it to appear.
async fn find(
    client: &Client,
    id: &str,
) -> Result<fantoccini::elements::Element, fantoccini::error::CmdError> {
    client
        .wait()
        .at_most(APPEAR_WITHIN)
        .for_element(Locator::Id(id))
        .await
}
