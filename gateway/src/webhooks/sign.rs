//! Signatures per Standard Webhooks (standardwebhooks.com): the receiver checks
//! `webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>` with the
//! shared secret, and rejects old `webhook-timestamp`s, so a captured delivery cannot be
//! replayed later.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The HMAC key of a configured secret: `whsec_<base64>` as the spec writes secrets, or the
/// secret's bytes as they are.
pub fn key_of(secret: &[u8]) -> Vec<u8> {
    secret
        .strip_prefix(b"whsec_")
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .unwrap_or_else(|| secret.to_vec())
}

/// The `webhook-signature` header value for one delivery.
pub fn signature(secret: &[u8], id: &str, timestamp_s: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(&key_of(secret)).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_example() {
        // The specification's own example (secret, id, timestamp, body → signature).
        let sig = signature(
            b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn any_change_changes_the_signature() {
        let base = signature(b"0123456789abcdef", "id", 1, b"{}");
        assert_ne!(base, signature(b"0123456789abcdeX", "id", 1, b"{}"));
        assert_ne!(base, signature(b"0123456789abcdef", "id2", 1, b"{}"));
        assert_ne!(base, signature(b"0123456789abcdef", "id", 2, b"{}"));
        assert_ne!(base, signature(b"0123456789abcdef", "id", 1, b"{ }"));
    }
}
