//! Webhook signatures: Stripe-style HMAC-SHA256 over `"{timestamp}.{body}"`.
//! [`signature`] makes the [`SIGNATURE_HEADER`] value the sender attaches;
//! [`verify`] is the receiver's check, public so receivers written in Rust
//! (and kpiwatch's own tests) need not reimplement it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header carrying `t=<unix seconds>,v1=<hex HMAC-SHA256>` when the webhook
/// has a secret.
pub const SIGNATURE_HEADER: &str = "X-Kpiwatch-Signature";

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The [`SIGNATURE_HEADER`] value for `body` sent at `timestamp` (unix
/// seconds): `t=<timestamp>,v1=<lowercase hex HMAC-SHA256 of "{t}.{body}">`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(tag))
}

/// Whether `header` (a [`SIGNATURE_HEADER`] value) signs `body` with
/// `secret`, at a timestamp within `tolerance_secs` of `now` (either way:
/// an old signature is a replay, a future one a skewed or forged clock).
/// Several `v1=` entries are allowed (any one matching passes), so a sender
/// can sign with an old and a new secret while they rotate. The comparison is
/// constant-time.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> bool {
    let mut timestamp = None;
    let mut tags = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", tag)) => tags.push(tag),
            _ => {}
        }
    }
    let Some(t) = timestamp else {
        return false;
    };
    if now.abs_diff(t) > tolerance_secs.max(0).unsigned_abs() {
        return false;
    }
    let expected = mac(secret, t, body);
    tags.iter()
        .any(|tag| hex::decode(tag).is_ok_and(|tag| expected.clone().verify_slice(&tag).is_ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_an_independently_computed_hmac() {
        // printf '%s' '1700000000.{"hello":"world"}' | openssl dgst -sha256 -hmac whsec_test
        assert_eq!(
            signature(b"whsec_test", 1_700_000_000, br#"{"hello":"world"}"#),
            "t=1700000000,v1=f592bbf3951cfc94e560eecfb5d9dd4da6b0fff2e626235f8ab4b54860925d0b"
        );
    }

    #[test]
    fn verify_accepts_a_fresh_signature_and_refuses_tampering_replays_and_wrong_secrets() {
        let body = br#"{"id":"n-1"}"#;
        let now = 1_700_000_000;
        let header = signature(b"s3cret", now, body);
        assert!(verify(b"s3cret", &header, body, now + 10, 300));
        assert!(!verify(b"s3cret", &header, br#"{"id":"n-2"}"#, now, 300));
        assert!(!verify(b"other", &header, body, now, 300));
        assert!(
            !verify(b"s3cret", &header, body, now + 301, 300),
            "replayed"
        );
        assert!(
            !verify(b"s3cret", &header, body, now - 301, 300),
            "from the future"
        );
        // Moving the timestamp invalidates the tag.
        let moved = header.replace("t=1700000000", "t=1700000290");
        assert!(!verify(b"s3cret", &moved, body, now + 300, 300));
        assert!(!verify(b"s3cret", "v1=00", body, now, 300), "no timestamp");
        assert!(!verify(b"s3cret", "garbage", body, now, 300));
        // Rotation: any matching v1 passes.
        let old = signature(b"old", now, body);
        let both = format!("{header},{}", old.split_once(',').unwrap().1);
        assert!(verify(b"old", &both, body, now, 300));
        assert!(verify(b"s3cret", &both, body, now, 300));
    }
}
