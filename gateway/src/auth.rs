//! Optional per-user tokens: `v1.<expiry unix s>.<signature>.<user id>`, the signature an
//! HMAC-SHA256 of `v1.<expiry>.<user id>` with the gateway's secret (base64url). The operator's
//! login system mints them (or `agentic-gateway token`); the gateway only verifies.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], expiry: u64, user: &str) -> HmacSha256 {
    // HMAC accepts keys of any length.
    let mut m = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    m.update(format!("v1.{expiry}.{user}").as_bytes());
    m
}

pub fn mint(secret: &[u8], user: &str, expiry_unix_s: u64) -> String {
    let sig = URL_SAFE_NO_PAD.encode(mac(secret, expiry_unix_s, user).finalize().into_bytes());
    format!("v1.{expiry_unix_s}.{sig}.{user}")
}

/// Checks that `token` was minted with `secret` for `user` and has not expired.
pub fn verify(secret: &[u8], token: &str, user: &str, now_unix_s: u64) -> Result<(), &'static str> {
    let mut parts = token.splitn(4, '.');
    let (Some("v1"), Some(expiry), Some(sig), Some(token_user)) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err("malformed token");
    };
    let expiry: u64 = expiry.parse().map_err(|_| "malformed token")?;
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| "malformed token")?;
    // Verify the signature before comparing users, in constant time.
    mac(secret, expiry, token_user).verify_slice(&sig).map_err(|_| "invalid token")?;
    if token_user != user {
        return Err("token is for another user");
    }
    if expiry < now_unix_s {
        return Err("token expired");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_bind_user_secret_and_time() {
        let t = mint(b"s3cret", "alice.x", 1000);
        assert_eq!(verify(b"s3cret", &t, "alice.x", 999), Ok(()));
        assert_eq!(verify(b"s3cret", &t, "bob", 999), Err("token is for another user"));
        assert_eq!(verify(b"other", &t, "alice.x", 999), Err("invalid token"));
        assert_eq!(verify(b"s3cret", &t, "alice.x", 1001), Err("token expired"));
        let forged = t.replace(".alice.x", ".bob");
        assert_eq!(verify(b"s3cret", &forged, "bob", 999), Err("invalid token"));
        assert_eq!(verify(b"s3cret", "garbage", "alice", 0), Err("malformed token"));
    }
}
