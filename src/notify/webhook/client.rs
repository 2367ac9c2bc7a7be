//! The async shell around [`body()`](super::body()) and
//! [`signature`](super::signature()): [`WebhookSender`] builds the headers,
//! POSTs with a pooled `reqwest` client within the hook's timeout, and sorts
//! the answer into delivered, [`DeliveryError::Transient`] or
//! [`DeliveryError::Permanent`]. Retrying is the `deliver` worker's job.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::body::body;
use super::sign::{signature, SIGNATURE_HEADER};
use crate::notify::settings::{CaFile, Webhook};
use crate::notify::{DeliveryError, Notification};

/// Header carrying the notification id (the conventional name, understood by
/// receivers that deduplicate generically).
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// Header carrying the notification id (kpiwatch's own name for it).
pub const NOTIFICATION_ID_HEADER: &str = "X-Kpiwatch-Notification-Id";

/// How much of a refusing receiver's answer goes into the error text.
const ERROR_BODY_PREFIX_CHARS: usize = 200;

/// Posts notifications to webhooks. Holds one HTTP client for the whole
/// process: connections (and TLS sessions) are pooled and reused across
/// receivers and retries.
#[derive(Debug, Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
    /// A client per CA file of hooks that have one, built on first use
    /// (the file was read and checked with the configuration).
    with_ca: std::sync::Arc<std::sync::Mutex<HashMap<PathBuf, reqwest::Client>>>,
}

/// The HTTP client for hooks trusting `ca` (besides the web roots): rustls,
/// no redirects followed (a 3xx is a misconfigured URL, reported as
/// permanent, not silently turned into a GET). Configuration validation
/// builds it too, so a CA file rustls refuses never reaches the service.
pub(crate) fn client(ca: Option<&CaFile>) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("kpiwatch/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(ca) = ca {
        for certificate in reqwest::Certificate::from_pem_bundle(&ca.pem)? {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build()
}

impl Default for WebhookSender {
    fn default() -> Self {
        Self::new()
    }
}

impl WebhookSender {
    /// A sender with a rustls client that does not follow redirects (a 3xx
    /// is a misconfigured URL, reported as permanent, not silently turned
    /// into a GET).
    ///
    /// # Panics
    ///
    /// If the TLS backend cannot initialise, as `reqwest::Client::new` does.
    pub fn new() -> Self {
        Self {
            client: client(None).expect("the HTTP client (rustls) initialises"),
            with_ca: Default::default(),
        }
    }

    /// The client for `hook`: the shared one, or the one trusting its CA.
    fn client_for(&self, hook: &Webhook) -> Result<reqwest::Client, DeliveryError> {
        let Some(ca) = &hook.ca else {
            return Ok(self.client.clone());
        };
        let mut clients = self
            .with_ca
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = clients.get(&ca.path) {
            return Ok(c.clone());
        }
        let c = client(Some(ca)).map_err(|e| {
            DeliveryError::Permanent(format!("ca_file {} cannot be used: {e}", ca.path.display()))
        })?;
        clients.insert(ca.path.clone(), c.clone());
        Ok(c)
    }

    /// POSTs `n` to `hook` in its format, signed when the hook's secret
    /// variable is set and non-empty (`now_secs` is the signature's
    /// timestamp), within `hook.timeout`.
    ///
    /// 2xx is `Ok`. A connection error, a timeout, 408, 425, 429 and 5xx are
    /// [`DeliveryError::Transient`]; any other status (3xx, 4xx) and a
    /// request that cannot be built (bad URL or header) are
    /// [`DeliveryError::Permanent`]. The error text names the receiver's
    /// origin (never its path or query), the status and the start of the
    /// answer's body; never the secret or header values.
    pub async fn send(
        &self,
        hook: &Webhook,
        n: &Notification,
        external_url: Option<&str>,
        now_secs: i64,
    ) -> Result<(), DeliveryError> {
        let target = origin(&hook.url);
        let body = body(n, hook.format, external_url);
        let headers = headers(hook, n, &body, now_secs)?;
        let request = self
            .client_for(hook)?
            .post(&hook.url)
            .headers(headers)
            .timeout(hook.timeout)
            .body(body);
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Err(request_error(&target, hook.timeout, e)),
        };
        let status = response.status();
        if status.is_success() {
            // Accepted. The answer's body is not read: a receiver that then
            // stalls must not turn a delivered notification into a retry.
            return Ok(());
        }
        let answer = body_prefix(response).await;
        let text = if answer.is_empty() {
            format!("webhook {target} answered {status}")
        } else {
            format!("webhook {target} answered {status}: {answer}")
        };
        match status.as_u16() {
            408 | 425 | 429 | 500..=599 => Err(DeliveryError::Transient(text)),
            _ => Err(DeliveryError::Permanent(text)),
        }
    }
}

/// The request headers (besides User-Agent, set on the client). The hook's
/// extra headers go first so kpiwatch's own cannot be overridden by config.
fn headers(
    hook: &Webhook,
    n: &Notification,
    body: &[u8],
    now_secs: i64,
) -> Result<HeaderMap, DeliveryError> {
    let mut map = HeaderMap::new();
    for (name, value) in &hook.headers {
        // Values may be credentials (Authorization): only names in errors.
        let name_h = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            DeliveryError::Permanent(format!("webhook header name {name:?} is not valid"))
        })?;
        let value = HeaderValue::from_str(value).map_err(|_| {
            DeliveryError::Permanent(format!("webhook header {name:?} has an invalid value"))
        })?;
        map.insert(name_h, value);
    }
    let id = HeaderValue::from_str(&n.id).map_err(|_| {
        DeliveryError::Permanent(format!(
            "notification id {:?} cannot be a header value",
            n.id
        ))
    })?;
    map.insert(
        reqwest::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    map.insert(IDEMPOTENCY_KEY_HEADER, id.clone());
    map.insert(NOTIFICATION_ID_HEADER, id);
    if let Some(secret) = hook.secret_env.as_deref().and_then(read_secret) {
        let sig = signature(&secret, now_secs, body);
        // Only `t=`, digits and hex: always a valid header value.
        let sig = HeaderValue::from_str(&sig).expect("signatures are ASCII");
        map.insert(SIGNATURE_HEADER, sig);
    }
    Ok(map)
}

/// The secret in the environment variable `name`; `None` when unset or
/// empty (the request then goes unsigned, which is logged by name only).
fn read_secret(name: &str) -> Option<Vec<u8>> {
    match std::env::var_os(name) {
        Some(v) if !v.is_empty() => Some(v.into_encoded_bytes()),
        _ => {
            tracing::warn!(
                env = name,
                "webhook secret variable is unset or empty; sending unsigned"
            );
            None
        }
    }
}

/// `scheme://host[:port]` of a URL, for errors and logs: the path and query
/// of a webhook URL often are the credential (Slack, Teams).
fn origin(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => u.origin().ascii_serialization(),
        Err(_) => "(invalid URL)".to_string(),
    }
}

fn request_error(target: &str, timeout: Duration, e: reqwest::Error) -> DeliveryError {
    if e.is_builder() {
        return DeliveryError::Permanent(format!(
            "webhook {target}: cannot build the request: {}",
            chain(e)
        ));
    }
    if e.is_timeout() {
        return DeliveryError::Transient(format!(
            "webhook {target} did not answer within {}",
            humantime::format_duration(timeout)
        ));
    }
    let what = if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    DeliveryError::Transient(format!("webhook {target}: {what}: {}", chain(e)))
}

/// An error and its causes on one line, without the URL reqwest would
/// otherwise print (it may hold a credential).
fn chain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// The first characters of an error answer, on one line. Reads at most a
/// few chunks: a receiver's error page may be large.
async fn body_prefix(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < ERROR_BODY_PREFIX_CHARS * 4 {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            // The status already decided the outcome; a body that fails or
            // times out only shortens the message.
            Ok(None) | Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let one_line: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    truncate_chars(&one_line, ERROR_BODY_PREFIX_CHARS)
}

fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_texts_name_the_origin_not_the_secret_path() {
        assert_eq!(
            origin("https://hooks.slack.com/services/T0/B0/XXXXSECRET?token=1"),
            "https://hooks.slack.com"
        );
        assert_eq!(
            origin("http://127.0.0.1:8080/hook"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(origin("not a url"), "(invalid URL)");
    }
}
