//! The webhook sink: one HTTP POST of a JSON object per notification.
//!
//! ```json
//! {
//!   "source": "quench",
//!   "kind": "user_restricted",
//!   "name": "User restricted from sending email",
//!   "severity": "High",
//!   "entity": { "kind": "User", "id": "alice@contoso.com" },
//!   "summary": "User alice@contoso.com was restricted from sending email: ...",
//!   "at": 1795000000,
//!   "time": "2026-11-18T09:46:40Z"
//! }
//! ```
//!
//! With `secret_file` set, every call is signed: `X-Quench-Timestamp` is the Unix time of
//! sending, and `X-Quench-Signature` is `v1=` and the hex HMAC-SHA256, keyed with the secret,
//! of the timestamp, a `.` and the exact body bytes. A receiver recomputes it, compares in
//! constant time, and refuses a timestamp older than a few minutes (a replayed call). Retries
//! are signed afresh.

use super::config::WebhookConfig;
use super::sink::{Failure, Notification, Sink, error_chain, severity_name};
use crate::bindings::Entity;
use anyhow::{Context, Result, anyhow};
use reqwest::StatusCode;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// The JSON body of a webhook call.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookPayload<'a> {
    /// Always `quench`, so a shared receiver can tell the sender.
    pub source: &'static str,
    /// The alert kind id (`user_restricted`), or the alert name when no rule names it.
    pub kind: &'a str,
    /// The alert name.
    pub name: &'a str,
    /// `Informational`, `Low`, `Medium` or `High`.
    pub severity: &'static str,
    /// Who the alert is about: `{"kind": "User" | "Connector", "id": ...}`, as the admin API
    /// spells entities.
    pub entity: &'a Entity,
    /// The policy's one-paragraph explanation.
    pub summary: &'a str,
    /// When, in seconds since the Unix epoch.
    pub at: i64,
    /// When, as RFC 3339 in UTC.
    pub time: String,
}

impl<'a> WebhookPayload<'a> {
    /// The body for `notification`.
    pub fn new(notification: &'a Notification) -> Self {
        let alert = &notification.alert;
        WebhookPayload {
            source: "quench",
            kind: &notification.kind,
            name: &alert.name,
            severity: severity_name(alert.severity),
            entity: &alert.entity,
            summary: &alert.summary,
            at: alert.at,
            time: crate::time::format(alert.at),
        }
    }
}

/// POSTs to the configured URL.
pub(crate) struct WebhookSink {
    client: reqwest::Client,
    url: reqwest::Url,
    /// The signing secret, when the config names one.
    secret: Option<Vec<u8>>,
}

/// The `X-Quench-Signature` value for `body` sent at `timestamp`: `v1=` and the hex
/// HMAC-SHA256 of `"<timestamp>.<body>"` keyed with `secret`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Read the signing secret from `file`: trailing newlines ignored, empty refused.
fn read_secret(file: &std::path::Path) -> Result<Vec<u8>> {
    let text = std::fs::read(file)
        .with_context(|| format!("alerts.webhook.secret_file: reading {}", file.display()))?;
    let end = text
        .iter()
        .rposition(|&b| b != b'\n' && b != b'\r')
        .map_or(0, |i| i + 1);
    if end == 0 {
        anyhow::bail!("alerts.webhook.secret_file: {} is empty", file.display());
    }
    Ok(text[..end].to_vec())
}

impl WebhookSink {
    pub fn new(config: &WebhookConfig) -> Result<Self> {
        let url = reqwest::Url::parse(&config.url).context("alerts.webhook.url")?;
        let timeout = Duration::from_secs(config.timeout_secs);
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config(url.scheme() == "https")?)
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect of a POST is a misconfigured URL, better reported than followed.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("quench/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the webhook's HTTP client")?;
        let secret = config.secret_file.as_deref().map(read_secret).transpose()?;
        Ok(WebhookSink {
            client,
            url,
            secret,
        })
    }
}

/// rustls with the ring provider (the same crypto lettre uses; reqwest is built without a
/// provider of its own) and, for an https URL, the platform's trust store. An http URL never
/// uses TLS (redirects are not followed), so it trusts nothing and needs no CA certificates
/// on the machine.
fn tls_config(https: bool) -> Result<rustls::ClientConfig> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = if https {
        builder.with_platform_verifier().context(
            "alerts.webhook.url: loading the system's CA certificates for HTTPS (install the \
             ca-certificates package)",
        )?
    } else {
        builder.with_root_certificates(rustls::RootCertStore::empty())
    };
    Ok(builder.with_no_client_auth())
}

impl Sink for WebhookSink {
    const NAME: &'static str = "webhook";

    fn wants(_: &Notification) -> bool {
        true
    }

    async fn deliver(&self, notification: &Notification) -> Result<(), Failure> {
        let body = serde_json::to_vec(&WebhookPayload::new(notification))
            .map_err(|e| Failure::Permanent(anyhow!("encoding the alert as JSON: {e}")))?;
        let mut request = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(secret) = &self.secret {
            let timestamp = crate::time::now();
            request = request
                .header("X-Quench-Timestamp", timestamp.to_string())
                .header("X-Quench-Signature", signature(secret, timestamp, &body));
        }
        let response =
            request.body(body).send().await.map_err(|e| {
                Failure::Transient(anyhow!("POST {}: {}", self.url, error_chain(&e)))
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let error = anyhow!("POST {} answered {status}", self.url);
        Err(
            if status.is_server_error()
                || status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::REQUEST_TIMEOUT
            {
                Failure::Transient(error)
            } else {
                Failure::Permanent(error)
            },
        )
    }
}
