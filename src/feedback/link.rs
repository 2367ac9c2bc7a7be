//! The "useful" / "not useful" links of emails.
//!
//! A link is `<notify.external_url>/feedback/<token>`, the token being
//! `<alert_id>.<verdict>.<expiry>.<mac>`: the MAC is HMAC-SHA256, keyed
//! with the secret of the environment variable `notify.feedback_key_env`
//! names, over a version tag, the alert id, the verdict and the expiry
//! (epoch seconds). So the token alone authorises one verdict on one
//! alert until it expires; changing any part of it breaks the MAC, and
//! the MAC is compared in constant time (the `hmac` crate's `verify`).
//!
//! The expiry counts from the notification's creation, not from the
//! send, so a retried email carries the same links.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{is_alert_id, Verdict};

/// Fewest characters the key may have: a short key can be guessed
/// offline from one link.
pub const MIN_KEY_CHARS: usize = 32;

/// Default life of a link: two weeks, long enough for a holiday.
pub const DEFAULT_TTL_SECS: i64 = 14 * 86_400;

/// Mixed into every MAC, so a MAC made for something else with the same
/// key never passes here.
const TAG: &[u8] = b"kpiwatch-feedback-link-v1";

/// `[notify]` settings of the links: the variable of the key and the
/// links' life. The key itself is read when the email sender starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSettings {
    /// `feedback_key_env`: the environment variable holding the key.
    pub key_env: String,
    /// `feedback_link_ttl`: how long a link works, in seconds.
    pub ttl_secs: i64,
}

/// Why a link was refused: each has its own page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not a token kpiwatch makes (cut short by a mail client?).
    #[error("this feedback link is incomplete or not one kpiwatch made; copy the whole link from the email")]
    Malformed,
    /// The MAC does not match: changed, or made with another key.
    #[error("this feedback link was altered, or made with a key this kpiwatch no longer has; use the API or ask the kpiwatch team")]
    Altered,
    /// Past its expiry.
    #[error("this feedback link expired on {0}; give feedback through the API, or ask the kpiwatch team")]
    Expired(String),
}

/// A verified link: which alert, which verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The alert.
    pub alert_id: String,
    /// The verdict the link gives.
    pub verdict: Verdict,
    /// When it stops working.
    pub expires: i64,
}

/// Makes and checks links with one key.
#[derive(Clone)]
pub struct LinkSigner {
    key: Vec<u8>,
    /// `notify.external_url`, without a trailing `/`.
    base_url: String,
    ttl_secs: i64,
}

impl std::fmt::Debug for LinkSigner {
    // Never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSigner")
            .field("base_url", &self.base_url)
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

/// Why there are no links, as `kpiwatch check` and the start log say it.
pub fn why_no_links(
    external_url: Option<&str>,
    settings: Option<&LinkSettings>,
    lookup: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let Some(settings) = settings else {
        return Some("emails carry no feedback links: set notify.feedback_key_env = \"KPIWATCH_FEEDBACK_KEY\" (and notify.external_url) to add \"useful\" / \"not useful\" links".to_string());
    };
    if external_url.is_none() {
        return Some("emails carry no feedback links: notify.external_url is not set, so there is no address for them to point at".to_string());
    }
    match lookup(&settings.key_env) {
        None => Some(format!(
            "emails carry no feedback links: {} is not set here; `kpiwatch run` adds them once it holds a key of at least {MIN_KEY_CHARS} characters",
            settings.key_env
        )),
        Some(k) if k.chars().count() < MIN_KEY_CHARS => Some(format!(
            "emails carry no feedback links: {} holds fewer than {MIN_KEY_CHARS} characters; use a long random key, e.g. `openssl rand -hex 32`",
            settings.key_env
        )),
        Some(_) => None,
    }
}

impl LinkSigner {
    /// A signer, when links are configured and the key is set and long
    /// enough (see [`why_no_links`] for why not).
    pub fn from_env(
        external_url: Option<&str>,
        settings: Option<&LinkSettings>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Option<Self> {
        let (url, settings) = (external_url?, settings?);
        let key = lookup(&settings.key_env).filter(|k| k.chars().count() >= MIN_KEY_CHARS)?;
        Some(Self::new(key.as_bytes(), url, settings.ttl_secs))
    }

    /// A signer with `key` for links under `base_url`, working `ttl_secs`.
    pub fn new(key: &[u8], base_url: &str, ttl_secs: i64) -> Self {
        Self {
            key: key.to_vec(),
            base_url: base_url.trim_end_matches('/').to_string(),
            ttl_secs,
        }
    }

    fn mac(&self, alert_id: &str, verdict: Verdict, expires: i64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        for part in [
            TAG,
            alert_id.as_bytes(),
            verdict.name().as_bytes(),
            expires.to_string().as_bytes(),
        ] {
            mac.update(part);
            mac.update(&[0]);
        }
        mac
    }

    /// The token for `verdict` on `alert_id`, valid until `expires`.
    pub fn token(&self, alert_id: &str, verdict: Verdict, expires: i64) -> String {
        let mac = self.mac(alert_id, verdict, expires).finalize().into_bytes();
        format!(
            "{alert_id}.{}.{expires}.{}",
            verdict.name(),
            hex::encode(mac)
        )
    }

    /// The link for `verdict` on `alert_id` in a notification made at
    /// `created` (epoch seconds).
    pub fn url(&self, alert_id: &str, verdict: Verdict, created: i64) -> String {
        let expires = created.saturating_add(self.ttl_secs);
        format!(
            "{}/feedback/{}",
            self.base_url,
            self.token(alert_id, verdict, expires)
        )
    }

    /// What `token` authorises at `now`, or why it does not.
    pub fn verify(&self, token: &str, now: i64) -> Result<Signed, LinkError> {
        let mut parts = token.split('.');
        let (Some(id), Some(verdict), Some(expires), Some(mac), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(LinkError::Malformed);
        };
        let verdict = Verdict::parse(verdict).ok_or(LinkError::Malformed)?;
        let expires: i64 = expires.parse().map_err(|_| LinkError::Malformed)?;
        let mac = hex::decode(mac).map_err(|_| LinkError::Malformed)?;
        if !is_alert_id(id) || mac.len() != 32 {
            return Err(LinkError::Malformed);
        }
        self.mac(id, verdict, expires)
            .verify_slice(&mac)
            .map_err(|_| LinkError::Altered)?;
        if now >= expires {
            return Err(LinkError::Expired(crate::timefmt::human_utc(expires)));
        }
        Ok(Signed {
            alert_id: id.to_string(),
            verdict,
            expires,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const ID: &str = "00000000000000aa";

    #[test]
    fn a_token_verifies_until_it_expires() {
        let s = LinkSigner::new(KEY, "https://k.example/", 100);
        let url = s.url(ID, Verdict::False, 1000);
        assert!(url.starts_with("https://k.example/feedback/00000000000000aa.false.1100."));
        let token = url.rsplit('/').next().unwrap();
        let signed = s.verify(token, 1099).unwrap();
        assert_eq!(
            (signed.alert_id.as_str(), signed.verdict),
            (ID, Verdict::False)
        );
        assert!(matches!(s.verify(token, 1100), Err(LinkError::Expired(_))));
    }

    #[test]
    fn any_change_to_a_token_is_refused() {
        let s = LinkSigner::new(KEY, "https://k.example", 100);
        let token = s.token(ID, Verdict::False, 5000);
        let other_verdict = token.replacen(".false.", ".true.", 1);
        let later = token.replacen(".5000.", ".9000.", 1);
        let other_alert = token.replacen(ID, "00000000000000ab", 1);
        for t in [other_verdict, later, other_alert] {
            assert_eq!(s.verify(&t, 0), Err(LinkError::Altered), "{t}");
        }
        let other_key = LinkSigner::new(b"another key of thirty-two characters!", "x", 1);
        assert_eq!(other_key.verify(&token, 0), Err(LinkError::Altered));
        for t in ["", "a.b.c", &token[..token.len() - 2], "../x.true.1.00"] {
            assert_eq!(s.verify(t, 0), Err(LinkError::Malformed), "{t}");
        }
    }

    #[test]
    fn no_links_without_url_key_or_a_long_enough_key() {
        let settings = LinkSettings {
            key_env: "K".into(),
            ttl_secs: 10,
        };
        let key = |v: &'static str| move |_: &str| Some(v.to_string());
        assert!(why_no_links(None, Some(&settings), key("x"))
            .unwrap()
            .contains("external_url"));
        assert!(why_no_links(Some("https://k"), Some(&settings), |_| None)
            .unwrap()
            .contains("K is not set"));
        assert!(
            why_no_links(Some("https://k"), Some(&settings), key("short"))
                .unwrap()
                .contains("fewer than")
        );
        assert!(why_no_links(Some("https://k"), None, key("x")).is_some());
        let long = "0123456789abcdef0123456789abcdef";
        assert!(why_no_links(Some("https://k"), Some(&settings), key(long)).is_none());
        assert!(LinkSigner::from_env(Some("https://k"), Some(&settings), key(long)).is_some());
    }
}
