//! A stored SCRAM-SHA-256 secret (`pg_authid.rolpassword`): parsing, making one from a
//! password, and the mock verifier that hides whether a user exists.

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use super::*;

/// A stored SCRAM-SHA-256 secret, as in `pg_authid.rolpassword`.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

// Hand-written so the keys never end up in logs: StoredKey + ServerKey are enough to
// impersonate the server, and a leaked StoredKey enables offline guessing.
impl fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramVerifier")
            .field("iterations", &self.iterations)
            .field("salt", &B64.encode(&self.salt))
            .field("stored_key", &"<redacted>")
            .field("server_key", &"<redacted>")
            .finish()
    }
}

impl ScramVerifier {
    /// Parses PostgreSQL's stored form `SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>`.
    pub fn parse(s: &str) -> Option<ScramVerifier> {
        let rest = s.trim().strip_prefix(VERIFIER_PREFIX)?;
        let (iter_salt, keys) = rest.split_once('$')?;
        let (iterations, salt) = iter_salt.split_once(':')?;
        let (stored_key, server_key) = keys.split_once(':')?;
        let iterations = parse_iterations(iterations.as_bytes())?;
        let salt = B64.decode(salt).ok().filter(|s| !s.is_empty())?;
        Some(ScramVerifier {
            iterations,
            salt,
            stored_key: decode_key(stored_key.as_bytes())?,
            server_key: decode_key(server_key.as_bytes())?,
        })
    }

    /// Derives a verifier from a plaintext password with a random 16-byte salt and 4096
    /// iterations (PostgreSQL's default).
    pub fn from_password(password: &str) -> ScramVerifier {
        let mut salt = [0u8; SALT_LEN];
        rand::thread_rng().fill_bytes(&mut salt);
        Self::from_password_with_salt(password, &salt, DEFAULT_ITERATIONS)
    }

    /// Derives a verifier with the given salt and iteration count (0 is treated as 1,
    /// since Hi() is undefined for zero rounds).
    ///
    /// SASLprep: PostgreSQL normalises the password with SASLprep and falls back to the raw
    /// bytes when SASLprep rejects it. We have no SASLprep implementation, so we always use
    /// the raw UTF-8 bytes. That is identical for printable-ASCII passwords (SASLprep leaves
    /// them unchanged) and for passwords SASLprep rejects (e.g. with control characters), but
    /// a non-ASCII password that SASLprep would change (non-NFKC text, non-ASCII spaces,
    /// soft hyphens, ...) yields a verifier that PostgreSQL-compatible clients will not match.
    pub fn from_password_with_salt(password: &str, salt: &[u8], iterations: u32) -> ScramVerifier {
        let iterations = iterations.max(1);
        let salted = hi(password.as_bytes(), salt, iterations);
        let client_key = hmac_sha256(&salted, &[b"Client Key"]);
        ScramVerifier {
            iterations,
            salt: salt.to_vec(),
            stored_key: sha256(&client_key),
            server_key: hmac_sha256(&salted, &[b"Server Key"]),
        }
    }

    /// Derives the verifier and the ClientKey for `password` with the salt and iteration
    /// count a server announced: what pass-through needs to log in again without keeping
    /// the password.
    pub fn keys_from_password(
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> (ScramVerifier, [u8; 32]) {
        let iterations = iterations.max(1);
        let salted = hi(password.as_bytes(), salt, iterations);
        let client_key = hmac_sha256(&salted, &[b"Client Key"]);
        let verifier = ScramVerifier {
            iterations,
            salt: salt.to_vec(),
            stored_key: sha256(&client_key),
            server_key: hmac_sha256(&salted, &[b"Server Key"]),
        };
        (verifier, client_key)
    }

    /// True when `password` derives this verifier's StoredKey (compared in constant time).
    pub fn matches_password(&self, password: &str) -> bool {
        let (derived, _) = Self::keys_from_password(password, &self.salt, self.iterations);
        constant_time_eq(&derived.stored_key, &self.stored_key)
    }

    /// Renders the stored form (inverse of parse).
    pub fn to_stored(&self) -> String {
        format!(
            "{VERIFIER_PREFIX}{}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }

    /// A deterministic fake verifier for an unknown user, so an unknown user goes through the
    /// same exchange and fails the same way as a wrong password (PostgreSQL's "mock
    /// authentication"). Deterministic per process so a prober asking twice sees the same
    /// salt, as it would for a real user.
    pub fn mock(user: &str, secret: &[u8; 32]) -> ScramVerifier {
        // Domain-separated HMACs of the user name; the keys are random-looking values whose
        // SHA-256 preimage nobody knows, so no proof can ever pass.
        let salt = hmac_sha256(secret, &[b"pgsidecar mock salt\0", user.as_bytes()]);
        ScramVerifier {
            iterations: DEFAULT_ITERATIONS,
            salt: salt[..SALT_LEN].to_vec(),
            stored_key: hmac_sha256(secret, &[b"pgsidecar mock stored\0", user.as_bytes()]),
            server_key: hmac_sha256(secret, &[b"pgsidecar mock server\0", user.as_bytes()]),
        }
    }
}
