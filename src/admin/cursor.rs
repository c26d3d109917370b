//! Page cursors: where a listing stopped, signed so a client cannot forge one.
//!
//! A cursor holds a digest of the `scope` it belongs to (the endpoint with its sort,
//! window and filters, never `limit`), the position of the last row of its page (sort value, then
//! database, user, fingerprint) and, for query listings, the frozen result it pages
//! through ([`super::pages`]). It travels as `base64url(json) "." base64url(hmac)`,
//! HMAC-SHA256 under a key drawn at start-up, so cursors die with the process. A cursor
//! that does not decode, whose signature does not match, or that is used with other
//! parameters is a 400 starting `invalid cursor:`.

use std::cmp::Ordering;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::ApiError;

/// Longest cursor accepted, so a huge parameter costs nothing to reject.
const MAX_CURSOR_LEN: usize = 4096;

/// The last row of a page, in listing order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The sort value; listings run from high to low.
    #[serde(rename = "v")]
    pub value: u64,
    #[serde(rename = "d")]
    pub database: String,
    #[serde(rename = "u")]
    pub user: String,
    #[serde(rename = "f")]
    pub fingerprint: u64,
}

impl Position {
    /// Listing order: sort value descending, then database, user, fingerprint ascending.
    pub fn listing_cmp(&self, other: &Position) -> Ordering {
        other
            .value
            .cmp(&self.value)
            .then_with(|| self.database.cmp(&other.database))
            .then_with(|| self.user.cmp(&other.user))
            .then_with(|| self.fingerprint.cmp(&other.fingerprint))
    }
}

/// What a cursor means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub scope: String,
    /// The frozen result being paged through, if one was kept.
    pub snapshot: Option<u64>,
    pub after: Position,
}

/// What a cursor carries: the scope only as a digest.
#[derive(Serialize, Deserialize)]
struct Wire {
    #[serde(rename = "s")]
    scope: String,
    #[serde(rename = "n")]
    snapshot: Option<u64>,
    #[serde(rename = "p")]
    after: Position,
}

/// 16 bytes of SHA-256, hex.
fn digest(scope: &str) -> String {
    let hash = Sha256::digest(scope.as_bytes());
    hash[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Signs and checks cursors with this process's key.
pub struct CursorSigner {
    key: [u8; 32],
}

impl Default for CursorSigner {
    fn default() -> Self {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        CursorSigner { key }
    }
}

impl CursorSigner {
    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length")
    }

    pub fn seal(&self, cursor: &Cursor) -> String {
        let wire = Wire {
            scope: digest(&cursor.scope),
            snapshot: cursor.snapshot,
            after: cursor.after.clone(),
        };
        let json = serde_json::to_vec(&wire).expect("a cursor always serializes");
        let mut mac = self.mac();
        mac.update(&json);
        let tag = mac.finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&json),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The cursor in `token`, if this process signed it for `scope`.
    pub fn open(&self, token: &str, scope: &str) -> Result<Cursor, ApiError> {
        let invalid = |why: &str| ApiError::bad_request(format!("invalid cursor: {why}"));
        if token.len() > MAX_CURSOR_LEN {
            return Err(invalid("too long"));
        }
        let (body, tag) = token
            .split_once('.')
            .ok_or_else(|| invalid("not a cursor this server issued"))?;
        let body = URL_SAFE_NO_PAD.decode(body);
        let tag = URL_SAFE_NO_PAD.decode(tag);
        let (Ok(body), Ok(tag)) = (body, tag) else {
            return Err(invalid("not a cursor this server issued (bad encoding)"));
        };
        let mut mac = self.mac();
        mac.update(&body);
        if mac.verify_slice(&tag).is_err() {
            return Err(invalid(
                "signature does not match (the cursor was modified, or issued before a restart)",
            ));
        }
        let wire: Wire = serde_json::from_slice(&body)
            .map_err(|_| invalid("not a cursor this server issued"))?;
        if wire.scope != digest(scope) {
            return Err(invalid(
                "it belongs to a listing with other parameters (sort, window or filters); \
                 repeat the request without a cursor to start over",
            ));
        }
        Ok(Cursor {
            scope: scope.to_string(),
            snapshot: wire.snapshot,
            after: wire.after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor() -> Cursor {
        Cursor {
            scope: "queries?sort=calls".into(),
            snapshot: Some(3),
            after: Position {
                value: 42,
                database: "app".into(),
                user: "u".into(),
                fingerprint: 7,
            },
        }
    }

    #[test]
    fn round_trips_and_rejects_tampering() {
        let signer = CursorSigner::default();
        let token = signer.seal(&cursor());
        assert_eq!(signer.open(&token, "queries?sort=calls"), Ok(cursor()));
        let scope = signer.open(&token, "queries?sort=p99").unwrap_err();
        assert!(
            scope.message.contains("other parameters"),
            "{}",
            scope.message
        );
        let mut bytes = token.into_bytes();
        bytes[5] = if bytes[5] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).expect("ascii");
        let err = signer.open(&tampered, "queries?sort=calls").unwrap_err();
        assert!(
            err.message.starts_with("invalid cursor:"),
            "{}",
            err.message
        );
        for junk in ["", "abc", "a.b", "!!!.???"] {
            assert!(signer.open(junk, "queries?sort=calls").is_err(), "{junk}");
        }
        let other = CursorSigner::default().seal(&cursor());
        assert!(signer.open(&other, "queries?sort=calls").is_err());
    }

    #[test]
    fn listing_order_is_value_desc_then_key() {
        let a = cursor().after;
        let mut b = a.clone();
        b.value = 41;
        assert_eq!(a.listing_cmp(&b), Ordering::Less);
        b.value = 42;
        b.fingerprint = 8;
        assert_eq!(a.listing_cmp(&b), Ordering::Less);
        assert_eq!(a.listing_cmp(&a), Ordering::Equal);
    }
}
