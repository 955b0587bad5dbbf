//! Outgoing mail. Requests hand a message to the queue and go on: a background task
//! delivers it over SMTP, retrying a temporary failure with growing pauses, so no page
//! ever waits for a mail server. Bodies carry single-use links: they are never logged.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::{mpsc, Semaphore};

/// How to reach the mail relay, from the `smtp_url` and `mail_from` settings.
#[derive(Clone)]
pub struct MailSettings {
    /// `smtp://host:port` (plain on a loopback host, STARTTLS required elsewhere) or
    /// `smtps://host:port` (TLS from the first byte); credentials may be in the URL.
    pub smtp_url: String,
    /// The From address, e.g. `Gatehouse <no-reply@example.com>`.
    pub from: String,
    /// Credentials given apart from the URL (they win over the URL's).
    pub username: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for MailSettings {
    // The URL and password may hold the relay's credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailSettings").field("from", &self.from).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("smtp_url is not a URL: {0}")]
    Url(url::ParseError),
    #[error("smtp_url must start with smtp:// or smtps://")]
    Scheme,
    #[error("smtp_url has no host")]
    NoHost,
    #[error("mail_from is not an email address ({0}); set it, e.g. mail_from = \"Gatehouse <no-reply@example.com>\"")]
    From(String),
    #[error("smtp_url: {0}")]
    Relay(String),
}

/// A message ready to go: its recipient, subject and both parts.
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// What it is, for the log (never the body).
    pub kind: &'static str,
}

/// Pauses between attempts at a message the relay refused for now or could not take.
const RETRY_PAUSES: [u64; 6] = [1, 2, 5, 15, 60, 300];
/// Messages waiting at most; more are dropped (and logged) rather than held in memory.
const QUEUE: usize = 1000;
/// Messages delivered at once.
const PARALLEL: usize = 4;

/// The queue's sending end; cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    queue: mpsc::Sender<Mail>,
}

impl Mailer {
    /// Checks the settings without sending anything, for start-up.
    pub fn check(settings: &MailSettings) -> Result<(), MailError> {
        transport(settings)?;
        settings.from.parse::<Mailbox>().map_err(|_| MailError::From(settings.from.clone()))?;
        Ok(())
    }

    /// Checks the settings and starts the delivery task (on the current runtime).
    pub fn start(settings: &MailSettings) -> Result<Mailer, MailError> {
        let transport = transport(settings)?;
        let from: Mailbox = settings.from.parse().map_err(|_| MailError::From(settings.from.clone()))?;
        let (queue, mut waiting) = mpsc::channel::<Mail>(QUEUE);
        let slots = Arc::new(Semaphore::new(PARALLEL));
        tokio::spawn(async move {
            while let Some(mail) = waiting.recv().await {
                let Ok(slot) = slots.clone().acquire_owned().await else { return };
                let (transport, from) = (transport.clone(), from.clone());
                tokio::spawn(async move {
                    deliver(&transport, from, mail).await;
                    drop(slot);
                });
            }
        });
        Ok(Mailer { queue })
    }

    /// Queues a message; never waits.
    pub fn send(&self, mail: Mail) {
        let kind = mail.kind;
        if let Err(e) = self.queue.try_send(mail) {
            tracing::warn!(kind, reason = %e, "mail dropped: the queue is full or closed");
        }
    }
}

fn transport(s: &MailSettings) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
    let url = url::Url::parse(&s.smtp_url).map_err(MailError::Url)?;
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or(MailError::NoHost)?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    let relay = |e: lettre::transport::smtp::Error| MailError::Relay(e.to_string());
    let builder = match url.scheme() {
        "smtps" => AsyncSmtpTransport::<Tokio1Executor>::relay(&host).map_err(relay)?.port(url.port().unwrap_or(465)),
        // Plain SMTP only where nothing is on the wire: the loopback interface.
        "smtp" if is_loopback(&host) => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host).port(url.port().unwrap_or(25)),
        "smtp" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host).map_err(relay)?.port(url.port().unwrap_or(587)),
        _ => return Err(MailError::Scheme),
    };
    let decode = |v: &str| percent_decode(v);
    let user = s.username.clone().or_else(|| Some(decode(url.username())).filter(|u| !u.is_empty()));
    let pass = s.password.clone().or_else(|| url.password().map(decode));
    let builder = builder.timeout(Some(Duration::from_secs(20)));
    let builder = match (user, pass) {
        (Some(u), Some(p)) => builder.credentials(Credentials::new(u, p)),
        _ => builder,
    };
    Ok(builder.build())
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

async fn deliver(transport: &AsyncSmtpTransport<Tokio1Executor>, from: Mailbox, mail: Mail) {
    let kind = mail.kind;
    let Ok(to) = mail.to.parse::<Mailbox>() else {
        tracing::warn!(kind, "mail not sent: the recipient address cannot be used");
        return;
    };
    let message = match Message::builder()
        .from(from)
        .to(to)
        .subject(mail.subject)
        .multipart(MultiPart::alternative_plain_html(mail.text, mail.html))
    {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(kind, error = %e, "mail not sent: it could not be built");
            return;
        }
    };
    for (attempt, pause) in std::iter::once(0).chain(RETRY_PAUSES).enumerate() {
        tokio::time::sleep(Duration::from_secs(pause)).await;
        match transport.send(message.clone()).await {
            Ok(_) => {
                tracing::info!(kind, attempt = attempt + 1, "mail sent");
                return;
            }
            // A 5xx answer will not change: no retry.
            Err(e) if e.is_permanent() => {
                tracing::warn!(kind, error = %e, "mail refused by the relay");
                return;
            }
            Err(e) => tracing::warn!(kind, attempt = attempt + 1, error = %e, "mail not sent yet; will retry"),
        }
    }
    tracing::error!(kind, "mail given up after repeated temporary failures");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> MailSettings {
        MailSettings { smtp_url: url.into(), from: "Gatehouse <no-reply@example.com>".into(), username: None, password: None }
    }

    #[tokio::test]
    async fn settings_are_checked_at_start() {
        assert!(Mailer::start(&settings("smtp://127.0.0.1:2525")).is_ok());
        assert!(Mailer::start(&settings("smtps://user:p%40ss@mail.example.com")).is_ok());
        assert!(Mailer::start(&settings("smtp://mail.example.com:587")).is_ok());
        assert!(matches!(Mailer::start(&settings("http://mail.example.com")), Err(MailError::Scheme)));
        assert!(matches!(Mailer::start(&settings("not a url")), Err(MailError::Url(_))));
        let bad_from = MailSettings { from: "nobody".into(), ..settings("smtp://127.0.0.1:25") };
        assert!(matches!(Mailer::start(&bad_from), Err(MailError::From(_))));
    }

    #[test]
    fn plain_smtp_only_on_loopback() {
        assert!(is_loopback("127.0.0.1") && is_loopback("::1") && is_loopback("localhost"));
        assert!(!is_loopback("mail.example.com") && !is_loopback("10.0.0.1"));
        assert_eq!(percent_decode("p%40ss+word"), "p@ss+word");
    }

    #[test]
    fn settings_never_print_credentials() {
        let s = MailSettings { password: Some("hunter2".into()), ..settings("smtps://u:secret@mail.example.com") };
        let shown = format!("{s:?}");
        assert!(!shown.contains("secret") && !shown.contains("hunter2"), "{shown}");
    }
}
