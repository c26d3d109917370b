//! PostgreSQL `md5` password authentication: the stored hash form and the salted challenge response.

// Leading `::` because this module is itself named `md5` and the parent module
// would otherwise see two things called `md5`.
use ::md5::{Digest, Md5};

const PREFIX: &str = "md5";

/// "md5" + hex(md5(password + user)) — the stored form.
pub fn md5_stored(user: &str, password: &str) -> String {
    let mut hasher = Md5::new();
    hasher.update(password.as_bytes());
    hasher.update(user.as_bytes());
    format!("{PREFIX}{}", hex_lower(&hasher.finalize()))
}

/// The response a client sends for `salt`: "md5" + hex(md5(hex(md5(password+user)) + salt)).
///
/// Works from the stored form (`md5…`; a bare 32-hex-digit hash without the prefix is
/// accepted too), so the proxy can answer an upstream md5 challenge knowing only the hash.
/// The input is not validated here; `md5_verify` rejects stored strings that are not md5 hashes.
pub fn md5_response_from_stored(stored: &str, salt: [u8; 4]) -> String {
    let hash = stored.strip_prefix(PREFIX).unwrap_or(stored);
    // Clients hash the lowercase hex digest; normalise in case the stored form was uppercased.
    let hash = hash.to_ascii_lowercase();
    let mut hasher = Md5::new();
    hasher.update(hash.as_bytes());
    hasher.update(salt);
    format!("{PREFIX}{}", hex_lower(&hasher.finalize()))
}

/// Constant-time comparison of what the client sent against the expected response.
///
/// `client_response` is the PasswordMessage payload; one trailing NUL (the C-string
/// terminator) is tolerated. Returns false if `stored` is not an md5 stored form, so a
/// SCRAM verifier or plaintext mistakenly passed here can never be matched.
pub fn md5_verify(stored: &str, salt: [u8; 4], client_response: &[u8]) -> bool {
    if !is_md5_stored(stored) {
        return false;
    }
    let response = client_response
        .strip_suffix(&[0u8][..])
        .unwrap_or(client_response);
    let expected = md5_response_from_stored(stored, salt);
    constant_time_eq(expected.as_bytes(), response)
}

/// True for `md5` followed by exactly 32 hex digits.
fn is_md5_stored(stored: &str) -> bool {
    match stored.strip_prefix(PREFIX) {
        Some(hash) => hash.len() == 32 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        None => false,
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Compares without an early exit so the time taken does not reveal how many leading
/// bytes of a guessed response were right. Lengths are public (always 35 when valid).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    // From PostgreSQL 15: SELECT 'md5' || md5('secret' || 'postgres');
    const PG_SECRET_POSTGRES: &str = "md553f48b7c4b76a86ce72276c5755f217d";

    #[test]
    fn stored_matches_postgresql() {
        assert_eq!(md5_stored("postgres", "secret"), PG_SECRET_POSTGRES);
    }

    #[test]
    fn stored_matches_postgres_protocol() {
        let theirs = postgres_protocol::password::md5(b"secret", "postgres");
        assert_eq!(md5_stored("postgres", "secret"), theirs);
    }

    #[test]
    fn response_matches_postgres_protocol_client() {
        let salt = [0x01, 0x02, 0xfe, 0xff];
        let client = postgres_protocol::authentication::md5_hash(b"postgres", b"secret", salt);
        assert_eq!(md5_response_from_stored(PG_SECRET_POSTGRES, salt), client);
        // Without the prefix and uppercased, the hash still yields the same response.
        let bare = PG_SECRET_POSTGRES[3..].to_ascii_uppercase();
        assert_eq!(md5_response_from_stored(&bare, salt), client);
    }

    #[test]
    fn verify_round_trip() {
        let salt = [9, 8, 7, 6];
        let stored = md5_stored("alice", "hunter2");
        let response = md5_response_from_stored(&stored, salt);
        assert!(md5_verify(&stored, salt, response.as_bytes()));
        let mut with_nul = response.clone().into_bytes();
        with_nul.push(0);
        assert!(md5_verify(&stored, salt, &with_nul));
    }

    #[test]
    fn wrong_password_or_salt_fails() {
        let salt = [1, 2, 3, 4];
        let stored = md5_stored("alice", "hunter2");
        let wrong = md5_response_from_stored(&md5_stored("alice", "hunter3"), salt);
        assert!(!md5_verify(&stored, salt, wrong.as_bytes()));
        let other_salt = md5_response_from_stored(&stored, [4, 3, 2, 1]);
        assert!(!md5_verify(&stored, salt, other_salt.as_bytes()));
        // A different user with the same password has a different hash.
        let other_user = md5_response_from_stored(&md5_stored("bob", "hunter2"), salt);
        assert!(!md5_verify(&stored, salt, other_user.as_bytes()));
    }

    #[test]
    fn malformed_inputs_fail() {
        let salt = [1, 2, 3, 4];
        let stored = md5_stored("alice", "hunter2");
        let good = md5_response_from_stored(&stored, salt);
        for len in 0..good.len() {
            assert!(!md5_verify(&stored, salt, &good.as_bytes()[..len]));
        }
        assert!(!md5_verify(&stored, salt, b"\xff\xfe garbage"));
        // Stored strings that are not md5 hashes never verify, even against themselves.
        for bad in ["", "md5", "plaintext", "SCRAM-SHA-256$4096:abc$def:ghi"] {
            let resp = md5_response_from_stored(bad, salt);
            assert!(!md5_verify(bad, salt, resp.as_bytes()));
        }
    }
}
