//! The email sink: one plain-text message per notification, to its kind's recipients, through
//! an SMTP relay (lettre's async tokio transport; one connection per message, since alerts
//! are rare).

use super::config::{EmailConfig, SmtpTls};
use super::sink::{Failure, Notification, Sink, entity_kind_name, error_chain, severity_name};
use crate::bindings::{Alert, EntityKind};
use anyhow::{Context, Result, anyhow};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::time::Duration;

/// Sends through the configured relay.
pub(crate) struct EmailSink {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    relay: String,
}

impl EmailSink {
    pub fn new(config: &EmailConfig) -> Result<Self> {
        let from: Mailbox = config
            .from
            .parse()
            .with_context(|| format!("alerts.email.from: `{}`", config.from))?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.relay)
            .port(config.port)
            .timeout(Some(Duration::from_secs(config.timeout_secs)));
        if config.tls != SmtpTls::None {
            let parameters = TlsParameters::new(config.relay.clone())
                .with_context(|| format!("alerts.email.tls: TLS for `{}`", config.relay))?;
            builder = builder.tls(match config.tls {
                SmtpTls::Starttls => Tls::Required(parameters),
                _ => Tls::Wrapper(parameters),
            });
        }
        if let (Some(user), Some(file)) = (&config.username, &config.password_file) {
            let password = std::fs::read_to_string(file).with_context(|| {
                format!("alerts.email.password_file: reading {}", file.display())
            })?;
            let password = password.trim_end_matches(['\r', '\n']).to_string();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(EmailSink {
            transport: builder.build(),
            from,
            relay: format!("{}:{}", config.relay, config.port),
        })
    }
}

impl Sink for EmailSink {
    const NAME: &'static str = "email";

    fn wants(notification: &Notification) -> bool {
        !notification.recipients.is_empty()
    }

    async fn deliver(&self, notification: &Notification) -> Result<(), Failure> {
        let message = compose(notification, &self.from).map_err(Failure::Permanent)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(error) => {
                let failure = anyhow!("SMTP relay {}: {}", self.relay, error_chain(&error));
                Err(if error.is_permanent() {
                    Failure::Permanent(failure)
                } else {
                    Failure::Transient(failure)
                })
            }
        }
    }
}

/// The message for `notification`, from `from` to its recipients.
pub fn compose(notification: &Notification, from: &Mailbox) -> Result<Message> {
    let alert = &notification.alert;
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(subject(alert))
        // Generated here (from the host name) so the message has one whatever the relay does.
        .message_id(None)
        // RFC 3834: an automatic message; auto-responders must not answer it.
        .raw_header(header("Auto-Submitted", "auto-generated"))
        .raw_header(header("X-Quench-Alert", &one_line(&notification.kind)))
        .raw_header(header("X-Quench-Severity", severity_name(alert.severity)))
        .header(ContentType::TEXT_PLAIN);
    for recipient in &notification.recipients {
        let to: Mailbox = recipient
            .parse()
            .with_context(|| format!("recipient `{recipient}`"))?;
        builder = builder.to(to);
    }
    builder
        .body(body(alert))
        .context("building the alert message")
}

fn header(name: &'static str, value: &str) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value.to_string())
}

/// `[quench] High: User restricted from sending email: alice@contoso.com`
pub fn subject(alert: &Alert) -> String {
    one_line(&format!(
        "[quench] {}: {}: {}",
        severity_name(alert.severity),
        alert.name,
        alert.entity.id
    ))
}

/// The plain-text body: the summary, the entity, the time, and what to do next.
pub fn body(alert: &Alert) -> String {
    let id = &alert.entity.id;
    let mut text = format!(
        "{name} (severity {severity})\n\n{summary}\n\n\
         Entity: {kind} {id}\n\
         Time:   {time}\n\n\
         What to do next\n\n",
        name = alert.name,
        severity = severity_name(alert.severity),
        summary = alert.summary,
        kind = entity_kind_name(alert.entity.kind),
        time = crate::time::format(alert.at),
    );
    let steps = match alert.entity.kind {
        _ if super::operational::is_operational(alert) => {
            "1. Read quench's log for the store error.\n\
             2. Free the disk (or bring Redis back); nothing else is needed: quench retries the\n\
             \x20  store and writes back what it kept in memory. quench_store_unavailable\n\
             \x20  returns to 0 when it has.\n\
             3. Avoid restarting quench until then: what is held in memory would be lost.\n"
                .to_string()
        }
        EntityKind::User => format!(
            "1. See whether and why it is restricted, and when that lifts:\n\
             \x20      quench blocked-sender get {id}\n\
             2. Treat the account as possibly compromised: reset its password, require\n\
             \x20  multi-factor authentication, and check its forwarding rules and delegates\n\
             \x20  for anything the user did not set up.\n\
             3. Once the account is secure, unblock it (counts against the unblock limit):\n\
             \x20      quench blocked-sender remove {id} --reason TEXT\n"
        ),
        EntityKind::Connector => format!(
            "1. See whether and why the connector is restricted:\n\
             \x20      quench blocked-connector get {id}\n\
             2. Check the relaying host for a compromised account, an open relay or a\n\
             \x20  misbehaving application before letting it send again.\n\
             3. Once it is fixed, unblock it (counts against the unblock limit):\n\
             \x20      quench blocked-connector remove {id} --reason TEXT\n"
        ),
        EntityKind::Relay => format!(
            "1. See whether and why the relayed sender is restricted:\n\
             \x20      quench blocked-relay get {id}\n\
             2. An unauthenticated client on a trusted network sent it: find the host (the\n\
             \x20  log names the client address) and check it for a compromised web\n\
             \x20  application, script or device before letting it send again.\n\
             3. Once it is fixed, unblock it (counts against the unblock limit):\n\
             \x20      quench blocked-relay remove {id} --reason TEXT\n"
        ),
    };
    text.push_str(&steps);
    text.push_str("\n-- \nSent by quench. Every alert is also in quench's log.\n");
    text
}

/// Header-safe: control characters (CR, LF, ...) become spaces.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::{Entity, Severity};

    fn alert(id: &str) -> Alert {
        Alert {
            name: "User restricted from sending email".into(),
            severity: Severity::High,
            entity: Entity {
                kind: EntityKind::User,
                id: id.into(),
            },
            summary: "User was restricted.".into(),
            at: 1_795_000_000,
        }
    }

    #[test]
    fn subject_names_severity_alert_and_entity_on_one_line() {
        assert_eq!(
            subject(&alert("alice@contoso.com")),
            "[quench] High: User restricted from sending email: alice@contoso.com"
        );
        assert!(!subject(&alert("a\r\nBcc: x@y")).contains('\n'));
    }

    #[test]
    fn body_tells_what_to_do_next() {
        let text = body(&alert("alice@contoso.com"));
        assert!(text.contains("User was restricted."));
        assert!(text.contains("Entity: user alice@contoso.com"));
        assert!(text.contains(&crate::time::format(1_795_000_000)));
        assert!(text.contains("quench blocked-sender get alice@contoso.com"));
        assert!(text.contains("quench blocked-sender remove alice@contoso.com --reason TEXT"));
    }
}
