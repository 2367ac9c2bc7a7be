//! Sending an email: over SMTP through lettre's pooled async transport, or
//! without a relay as `{id}.eml` files; and which failures are worth a
//! retry.

use std::path::{Path, PathBuf};

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::message::{message_with_links, safe_id};
use crate::feedback::link::LinkSigner;
use crate::notify::settings::{CaFile, NotifySettings, SmtpSecurity};
use crate::notify::{DeliveryError, Notification};

/// Why an [`EmailSender`] could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// `notify.from` is not an email address.
    #[error("notify.from {from:?} is not a valid email address: {reason}")]
    From {
        /// The configured value.
        from: String,
        /// What the parser said.
        reason: String,
    },
    /// The SMTP transport could not be built (the host is not a valid TLS
    /// server name).
    #[error("SMTP relay {host:?} cannot be used: {reason}")]
    Smtp {
        /// The configured host.
        host: String,
        /// What lettre said.
        reason: String,
    },
    /// A user name is in the environment but no password.
    #[error(
        "SMTP user name is set in ${username_env} but ${password_env} is unset or empty; \
         set both, or neither for a relay without authentication"
    )]
    Credentials {
        /// The variable holding the user name.
        username_env: String,
        /// The variable that should hold the password.
        password_env: String,
    },
    /// The mail directory (no SMTP relay) could not be created.
    #[error("cannot create the mail directory {}: {source}", path.display())]
    MailDir {
        /// `notify.mail_dir`.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Sends notifications as email: over SMTP (a pool of at most
/// `smtp.pool_size` reused connections) or, without a relay, as `.eml`
/// files. Shared by reference (or `Arc`) between concurrent senders.
pub struct EmailSender {
    transport: Transport,
    /// `notify.from`, checked at construction.
    from: String,
    /// Signs the feedback links, when they are on (`notify.external_url`
    /// and a key in `notify.feedback_key_env`).
    links: Option<LinkSigner>,
}

enum Transport {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        /// One permit per pooled connection. lettre's `max_size` only bounds
        /// the *idle* connections it keeps: under load it opens one
        /// connection per concurrent send and closes the surplus afterwards.
        /// Relays limit connections per client (and answer 421 beyond), so
        /// sends beyond `pool_size` wait here for a connection instead.
        connections: tokio::sync::Semaphore,
        /// For error messages.
        host: String,
    },
    /// `{id}.eml` files, named by the notification id so that a retried
    /// notification overwrites its own file instead of adding a second.
    Files(PathBuf),
}

impl EmailSender {
    /// A sender for `settings`: SMTP when `settings.smtp` is set (credentials
    /// from the environment variables it names, only when set and
    /// non-empty), else files in `settings.mail_dir` (created here).
    pub fn new(settings: &NotifySettings) -> Result<Self, EmailError> {
        settings
            .from
            .parse::<Mailbox>()
            .map_err(|e| EmailError::From {
                from: settings.from.clone(),
                reason: e.to_string(),
            })?;
        let transport = match &settings.smtp {
            Some(smtp) => {
                let smtp_error = |e: lettre::transport::smtp::Error| EmailError::Smtp {
                    host: smtp.host.clone(),
                    reason: e.to_string(),
                };
                // `builder_dangerous` only means "no TLS unless asked for";
                // STARTTLS is then required (no plain-text fallback) and
                // the certificate checked against the web roots plus the
                // configured CAs.
                let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host);
                let builder = match smtp.security {
                    SmtpSecurity::StartTls => builder.tls(Tls::Required(
                        tls_parameters(&smtp.host, smtp.ca.as_ref()).map_err(smtp_error)?,
                    )),
                    SmtpSecurity::Tls => builder.tls(Tls::Wrapper(
                        tls_parameters(&smtp.host, smtp.ca.as_ref()).map_err(smtp_error)?,
                    )),
                    SmtpSecurity::None => builder,
                };
                let mut builder = builder
                    .port(smtp.port)
                    .timeout(Some(smtp.timeout))
                    .pool_config(PoolConfig::new().max_size(smtp.pool_size.max(1)));
                if let Some(credentials) = credentials(&smtp.username_env, &smtp.password_env)? {
                    builder = builder.credentials(credentials);
                }
                Transport::Smtp {
                    transport: builder.build(),
                    connections: tokio::sync::Semaphore::new(smtp.pool_size.max(1) as usize),
                    host: smtp.host.clone(),
                }
            }
            None => {
                std::fs::create_dir_all(&settings.mail_dir).map_err(|source| {
                    EmailError::MailDir {
                        path: settings.mail_dir.clone(),
                        source,
                    }
                })?;
                Transport::Files(settings.mail_dir.clone())
            }
        };
        let links = LinkSigner::from_env(
            settings.external_url.as_deref(),
            settings.feedback_links.as_ref(),
            |name| std::env::var(name).ok(),
        );
        if let Some(why) = crate::feedback::link::why_no_links(
            settings.external_url.as_deref(),
            settings.feedback_links.as_ref(),
            |name| std::env::var(name).ok(),
        ) {
            tracing::debug!("{why}");
        }
        Ok(Self {
            transport,
            from: settings.from.clone(),
            links,
        })
    }

    /// The same sender with these feedback links (tests, which must not
    /// set the process's environment).
    pub fn with_links(mut self, links: Option<LinkSigner>) -> Self {
        self.links = links;
        self
    }

    /// Sends `n` to `to`. Connection failures, timeouts and SMTP 4xx replies
    /// are [`DeliveryError::Transient`]; SMTP 5xx replies and bad addresses
    /// are [`DeliveryError::Permanent`].
    pub async fn send(
        &self,
        n: &Notification,
        to: &[String],
        external_url: Option<&str>,
    ) -> Result<(), DeliveryError> {
        // Rendering charts and encoding the body is CPU work of a few
        // milliseconds per alert: off the async workers.
        let email = {
            let (n, from, to) = (n.clone(), self.from.clone(), to.to_vec());
            let url = external_url.map(str::to_owned);
            let links = self.links.clone();
            tokio::task::spawn_blocking(move || {
                message_with_links(&n, &from, &to, url.as_deref(), links.as_ref())
            })
            .await
            .map_err(|e| DeliveryError::Transient(format!("building the email failed: {e}")))??
        };
        match &self.transport {
            Transport::Smtp {
                transport,
                connections,
                host,
            } => {
                let _permit = connections.acquire().await.map_err(|_| {
                    DeliveryError::Transient("the email sender is shutting down".to_string())
                })?;
                transport
                    .send(email)
                    .await
                    .map(drop)
                    .map_err(|e| classify(&e, host))
            }
            Transport::Files(dir) => {
                let path = dir.join(format!("{}.eml", safe_id(&n.id)));
                let bytes = email.formatted();
                tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
                    .await
                    .map_err(|e| {
                        DeliveryError::Transient(format!("writing the email failed: {e}"))
                    })?
            }
        }
    }
}

/// Where a file-transport email for notification `id` is written.
pub fn eml_path(mail_dir: &Path, id: &str) -> PathBuf {
    mail_dir.join(format!("{}.eml", safe_id(id)))
}

/// Credentials from the environment: none when the user-name variable is
/// unset or empty.
fn credentials(username_env: &str, password_env: &str) -> Result<Option<Credentials>, EmailError> {
    let read = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (read(username_env), read(password_env)) {
        (Some(user), Some(password)) => Ok(Some(Credentials::new(user, password))),
        (Some(_), None) => Err(EmailError::Credentials {
            username_env: username_env.to_string(),
            password_env: password_env.to_string(),
        }),
        (None, Some(_)) => {
            tracing::warn!(
                "${password_env} is set but ${username_env} is not: connecting without credentials"
            );
            Ok(None)
        }
        (None, None) => Ok(None),
    }
}

/// TLS for the relay: its host name is the name checked in its
/// certificate, issued by a web root or one of the configured CAs.
/// Configuration validation builds it too, so a CA file rustls cannot
/// use is refused before the service starts.
pub(crate) fn tls_parameters(
    host: &str,
    ca: Option<&CaFile>,
) -> Result<TlsParameters, lettre::transport::smtp::Error> {
    let mut builder = TlsParameters::builder(host.to_string());
    if let Some(ca) = ca {
        builder = builder.add_root_certificate(Certificate::from_pem(&ca.pem)?);
    }
    builder.build()
}

/// SMTP 5xx replies are final; everything else (4xx, refused connection,
/// timeout, TLS, a dropped connection) may work later. TLS and
/// authentication set-up errors are retried too: an operator can fix the
/// relay while the outbox holds the message.
fn classify(e: &lettre::transport::smtp::Error, host: &str) -> DeliveryError {
    if e.is_permanent() {
        DeliveryError::Permanent(format!("SMTP relay {host} refused the email: {e}"))
    } else if e.is_timeout() {
        DeliveryError::Transient(format!("SMTP relay {host} timed out: {e}"))
    } else {
        DeliveryError::Transient(format!("sending to SMTP relay {host} failed: {e}"))
    }
}

/// Writes via a temporary file and a rename, so a reader of `mail_dir`
/// never sees half an email.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), DeliveryError> {
    crate::durable::write_atomic(path, bytes)
        .map_err(|e| DeliveryError::Transient(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    #[test]
    fn credentials_come_only_from_non_empty_environment_variables() {
        // Names no one else sets; each case uses its own, so parallel tests
        // do not race on them.
        let unset = "KPIWATCH_EMAIL_TEST_UNSET";
        assert!(credentials(unset, unset).expect("no credentials").is_none());

        std::env::set_var("KPIWATCH_EMAIL_TEST_USER_ONLY", "kpiwatch");
        std::env::set_var("KPIWATCH_EMAIL_TEST_EMPTY_PASSWORD", "");
        assert!(matches!(
            credentials(
                "KPIWATCH_EMAIL_TEST_USER_ONLY",
                "KPIWATCH_EMAIL_TEST_EMPTY_PASSWORD"
            ),
            Err(EmailError::Credentials { .. })
        ));

        std::env::set_var("KPIWATCH_EMAIL_TEST_USER", "kpiwatch");
        std::env::set_var("KPIWATCH_EMAIL_TEST_PASSWORD", "s3cret");
        assert!(
            credentials("KPIWATCH_EMAIL_TEST_USER", "KPIWATCH_EMAIL_TEST_PASSWORD")
                .expect("credentials")
                .is_some()
        );
    }

    #[test]
    fn a_sender_refuses_a_bad_from_address() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut settings = NotifySettings::none(dir.path());
        settings.from = "kpiwatch at localhost".to_string();
        assert!(matches!(
            EmailSender::new(&settings),
            Err(EmailError::From { .. })
        ));
    }

    #[test]
    fn ids_are_made_safe_for_headers_and_file_names() {
        assert_eq!(safe_id("abc-123_x.y"), "abc-123_x.y");
        assert_eq!(safe_id("a/b c<d>"), "a_b_c_d_");
        assert_eq!(safe_id(""), "n");
        assert_eq!(safe_id("..x"), "n..x");
        assert_eq!(
            eml_path(Path::new("/m"), "a/b"),
            PathBuf::from("/m/a_b.eml")
        );
    }
}
