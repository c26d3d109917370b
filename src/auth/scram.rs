//! SCRAM-SHA-256 (RFC 5802/7677 as PostgreSQL uses it, no channel binding): verifiers, the server side that authenticates clients, and a key-only client side for upstream pass-through.

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

const VERIFIER_PREFIX: &str = "SCRAM-SHA-256$";
/// PostgreSQL's default `scram_iterations`.
const DEFAULT_ITERATIONS: u32 = 4096;
const SALT_LEN: usize = 16;
/// Same raw nonce length as libpq and the PostgreSQL backend.
const NONCE_RAW_LEN: usize = 18;
/// The GS2 header `ScramKeyClient` sends without TLS: no channel binding.
const GS2_NO_BINDING: &[u8] = b"n,,";

/// Channel binding for `ScramKeyClient`. The ClientKey does not depend on it (only the
/// signed AuthMessage does), so pass-through can bind to the proxy's own TLS connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyBinding {
    /// Not TLS: `n,,`.
    Unsupported,
    /// TLS, but the server did not offer -PLUS: `y,,`.
    Unrequested,
    /// SCRAM-SHA-256-PLUS with this `tls-server-end-point` hash.
    EndPoint(Vec<u8>),
}

impl KeyBinding {
    fn gs2_header(&self) -> &'static [u8] {
        match self {
            KeyBinding::Unsupported => GS2_NO_BINDING,
            KeyBinding::Unrequested => b"y,,",
            KeyBinding::EndPoint(_) => b"p=tls-server-end-point,,",
        }
    }

    /// The `c=` attribute's input: the GS2 header, then the binding data if any.
    fn cbind_input(&self) -> Vec<u8> {
        let mut input = self.gs2_header().to_vec();
        if let KeyBinding::EndPoint(hash) = self {
            input.extend_from_slice(hash);
        }
        input
    }
}

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

#[derive(Debug, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("unsupported SCRAM feature: {0}")]
    Unsupported(&'static str),
    #[error("client requested SCRAM channel binding, which is not supported")]
    ChannelBindingUnsupported,
    #[error("SCRAM channel-binding attribute does not match the GS2 header")]
    ChannelBindingMismatch,
    #[error("SCRAM nonce mismatch")]
    NonceMismatch,
    /// The client's proof is wrong: wrong password (or unknown user via the mock verifier).
    #[error("password authentication failed")]
    BadProof,
    #[error("SCRAM server signature mismatch")]
    ServerSignatureMismatch,
    #[error("server's SCRAM salt or iteration count differs from the stored verifier")]
    SaltMismatch,
    #[error("server reported SCRAM error: {0}")]
    ServerError(String),
    #[error("SCRAM message out of order")]
    OutOfOrder,
}

/// Server side of one exchange (proxy authenticating a client).
pub struct ScramServer {
    verifier: ScramVerifier,
    state: ServerState,
}

enum ServerState {
    Initial,
    SentFirst {
        gs2_header: Vec<u8>,
        client_first_bare: Vec<u8>,
        server_first: Vec<u8>,
        nonce: Vec<u8>,
    },
    Finished,
}

impl ScramServer {
    pub fn new(verifier: ScramVerifier) -> ScramServer {
        ScramServer {
            verifier,
            state: ServerState::Initial,
        }
    }

    /// Takes the client-first-message (the data of SASLInitialResponse), returns the
    /// server-first-message bytes (`r=<client nonce + server nonce>,s=<salt b64>,i=<iter>`).
    pub fn handle_client_first(&mut self, data: &[u8]) -> Result<Vec<u8>, ScramError> {
        // Any failure leaves the exchange finished: a SCRAM exchange cannot be resumed.
        if !matches!(
            std::mem::replace(&mut self.state, ServerState::Finished),
            ServerState::Initial
        ) {
            return Err(ScramError::OutOfOrder);
        }
        let first = parse_client_first(data)?;
        let mut nonce = first.nonce.to_vec();
        nonce.extend_from_slice(random_nonce().as_bytes());

        let mut server_first = b"r=".to_vec();
        server_first.extend_from_slice(&nonce);
        server_first.extend_from_slice(b",s=");
        server_first.extend_from_slice(B64.encode(&self.verifier.salt).as_bytes());
        server_first.extend_from_slice(format!(",i={}", self.verifier.iterations).as_bytes());

        self.state = ServerState::SentFirst {
            gs2_header: first.gs2_header.to_vec(),
            client_first_bare: first.bare.to_vec(),
            server_first: server_first.clone(),
            nonce,
        };
        Ok(server_first)
    }

    /// Takes the client-final-message, checks channel binding, nonce and proof. On success
    /// returns the server-final-message (`v=<server signature>`) and the ClientKey recovered
    /// from the proof. Wrong proof => `ScramError::BadProof`.
    pub fn handle_client_final(&mut self, data: &[u8]) -> Result<(Vec<u8>, [u8; 32]), ScramError> {
        let ServerState::SentFirst {
            gs2_header,
            client_first_bare,
            server_first,
            nonce,
        } = std::mem::replace(&mut self.state, ServerState::Finished)
        else {
            return Err(ScramError::OutOfOrder);
        };
        let fin = parse_client_final(data)?;
        // c= must repeat the GS2 header verbatim, otherwise a downgrade of the binding flag
        // between the two messages would go unnoticed.
        if fin.channel_binding != gs2_header {
            return Err(ScramError::ChannelBindingMismatch);
        }
        if fin.nonce != nonce.as_slice() {
            return Err(ScramError::NonceMismatch);
        }
        let auth_message: [&[u8]; 5] = [
            &client_first_bare,
            b",",
            &server_first,
            b",",
            fin.without_proof,
        ];
        let client_signature = hmac_sha256(&self.verifier.stored_key, &auth_message);
        let client_key = xor32(&fin.proof, &client_signature);
        if !constant_time_eq(&sha256(&client_key), &self.verifier.stored_key) {
            return Err(ScramError::BadProof);
        }
        let server_signature = hmac_sha256(&self.verifier.server_key, &auth_message);
        let mut server_final = b"v=".to_vec();
        server_final.extend_from_slice(B64.encode(server_signature).as_bytes());
        Ok((server_final, client_key))
    }
}

/// Client side for when the proxy knows only keys, not the password: authenticates to the
/// upstream server with a ClientKey recovered from a client's proof (SCRAM pass-through, as
/// PgBouncer does). Works only when the server's salt and iteration count equal the
/// verifier's.
pub struct ScramKeyClient {
    client_key: [u8; 32],
    salt: Vec<u8>,
    iterations: u32,
    stored_key: [u8; 32],
    server_key: [u8; 32],
    binding: KeyBinding,
    state: ClientState,
}

enum ClientState {
    Initial,
    SentFirst {
        client_nonce: String,
        client_first_bare: Vec<u8>,
    },
    SentFinal {
        server_signature: [u8; 32],
    },
    Finished,
}

impl ScramKeyClient {
    pub fn new(client_key: [u8; 32], verifier: &ScramVerifier) -> ScramKeyClient {
        ScramKeyClient {
            client_key,
            salt: verifier.salt.clone(),
            iterations: verifier.iterations,
            stored_key: verifier.stored_key,
            server_key: verifier.server_key,
            binding: KeyBinding::Unsupported,
            state: ClientState::Initial,
        }
    }

    /// Uses `binding` for the exchange (the default is none).
    pub fn with_binding(mut self, binding: KeyBinding) -> ScramKeyClient {
        self.binding = binding;
        self
    }

    /// client-first-message bytes: `n,,n=,r=<nonce>`. The user name is sent empty like libpq
    /// does, since PostgreSQL takes it from the startup packet. Calling this again restarts.
    pub fn client_first(&mut self) -> Vec<u8> {
        let client_nonce = random_nonce();
        let client_first_bare = format!("n=,r={client_nonce}").into_bytes();
        let mut message = self.binding.gs2_header().to_vec();
        message.extend_from_slice(&client_first_bare);
        self.state = ClientState::SentFirst {
            client_nonce,
            client_first_bare,
        };
        message
    }

    /// Takes the server-first-message, checks nonce prefix, salt and iterations, returns the
    /// client-final-message.
    pub fn handle_server_first(&mut self, data: &[u8]) -> Result<Vec<u8>, ScramError> {
        let ClientState::SentFirst {
            client_nonce,
            client_first_bare,
        } = std::mem::replace(&mut self.state, ClientState::Finished)
        else {
            return Err(ScramError::OutOfOrder);
        };
        let first = parse_server_first(data)?;
        // The server must extend our nonce, not replace it: that is what ties its answer to
        // this exchange.
        if first.nonce.len() <= client_nonce.len()
            || !first.nonce.starts_with(client_nonce.as_bytes())
        {
            return Err(ScramError::NonceMismatch);
        }
        if first.salt != self.salt || first.iterations != self.iterations {
            return Err(ScramError::SaltMismatch);
        }
        let mut without_proof = b"c=".to_vec();
        without_proof.extend_from_slice(B64.encode(self.binding.cbind_input()).as_bytes());
        without_proof.extend_from_slice(b",r=");
        without_proof.extend_from_slice(first.nonce);

        let auth_message: [&[u8]; 5] = [&client_first_bare, b",", data, b",", &without_proof];
        let client_signature = hmac_sha256(&self.stored_key, &auth_message);
        let proof = xor32(&self.client_key, &client_signature);
        self.state = ClientState::SentFinal {
            server_signature: hmac_sha256(&self.server_key, &auth_message),
        };

        let mut message = without_proof;
        message.extend_from_slice(b",p=");
        message.extend_from_slice(B64.encode(proof).as_bytes());
        Ok(message)
    }

    /// Verifies the server-final-message's signature `v=` with ServerKey.
    pub fn handle_server_final(&mut self, data: &[u8]) -> Result<(), ScramError> {
        let ClientState::SentFinal { server_signature } =
            std::mem::replace(&mut self.state, ClientState::Finished)
        else {
            return Err(ScramError::OutOfOrder);
        };
        // Extensions after the verifier are allowed by RFC 5802 and ignored.
        let field = data.split(|&b| b == b',').next().unwrap_or_default();
        if let Some(err) = attr_value(field, b'e') {
            return Err(ScramError::ServerError(
                String::from_utf8_lossy(err).into_owned(),
            ));
        }
        let signature = attr_value(field, b'v')
            .ok_or(ScramError::Malformed("server-final-message lacks v="))?;
        let signature =
            decode_key(signature).ok_or(ScramError::Malformed("bad server signature encoding"))?;
        if !constant_time_eq(&signature, &server_signature) {
            return Err(ScramError::ServerSignatureMismatch);
        }
        Ok(())
    }
}

struct ClientFirst<'a> {
    gs2_header: &'a [u8],
    bare: &'a [u8],
    nonce: &'a [u8],
}

/// `gs2-cbind-flag "," [authzid] "," [reserved-mext ","] username "," nonce ["," extensions]`
fn parse_client_first(data: &[u8]) -> Result<ClientFirst<'_>, ScramError> {
    let mut parts = data.splitn(3, |&b| b == b',');
    let (Some(flag), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ScramError::Malformed("incomplete GS2 header"));
    };
    match flag {
        // "y": the client could bind but believes we cannot. True, since we only ever
        // advertise SCRAM-SHA-256 (not -PLUS), so this is no downgrade.
        b"n" | b"y" => {}
        _ if flag.starts_with(b"p=") => return Err(ScramError::ChannelBindingUnsupported),
        _ => return Err(ScramError::Malformed("invalid channel-binding flag")),
    }
    if !authzid.is_empty() {
        // PostgreSQL rejects authorization identities too.
        return Err(ScramError::Unsupported("authorization identity"));
    }
    let gs2_header = &data[..flag.len() + authzid.len() + 2];

    let mut fields = bare.split(|&b| b == b',');
    let user = fields.next().unwrap_or_default();
    if user.starts_with(b"m=") {
        return Err(ScramError::Unsupported("mandatory extension"));
    }
    // The user name is ignored, as in PostgreSQL: the role comes from the startup packet.
    attr_value(user, b'n').ok_or(ScramError::Malformed("expected n= attribute"))?;
    let nonce = fields
        .next()
        .and_then(|f| attr_value(f, b'r'))
        .ok_or(ScramError::Malformed("expected r= attribute"))?;
    if !is_valid_nonce(nonce) {
        return Err(ScramError::Malformed("invalid client nonce"));
    }
    check_extensions(fields)?;
    Ok(ClientFirst {
        gs2_header,
        bare,
        nonce,
    })
}

struct ClientFinal<'a> {
    channel_binding: Vec<u8>,
    nonce: &'a [u8],
    proof: [u8; 32],
    without_proof: &'a [u8],
}

/// `"c=" cbind-input "," "r=" nonce ["," extensions] "," "p=" proof`
fn parse_client_final(data: &[u8]) -> Result<ClientFinal<'_>, ScramError> {
    // Base64 never contains ',', so the last comma separates the proof from the rest,
    // which is exactly the client-final-message-without-proof that is signed.
    let comma = data
        .iter()
        .rposition(|&b| b == b',')
        .ok_or(ScramError::Malformed("client-final-message lacks proof"))?;
    let (without_proof, proof) = (&data[..comma], &data[comma + 1..]);
    let proof = attr_value(proof, b'p').ok_or(ScramError::Malformed("expected p= last"))?;
    let proof = decode_key(proof).ok_or(ScramError::Malformed("bad proof encoding"))?;

    let mut fields = without_proof.split(|&b| b == b',');
    let channel_binding = fields
        .next()
        .and_then(|f| attr_value(f, b'c'))
        .ok_or(ScramError::Malformed("expected c= attribute"))?;
    let channel_binding = B64
        .decode(channel_binding)
        .map_err(|_| ScramError::Malformed("bad channel-binding encoding"))?;
    let nonce = fields
        .next()
        .and_then(|f| attr_value(f, b'r'))
        .ok_or(ScramError::Malformed("expected r= attribute"))?;
    check_extensions(fields)?;
    Ok(ClientFinal {
        channel_binding,
        nonce,
        proof,
        without_proof,
    })
}

struct ServerFirst<'a> {
    nonce: &'a [u8],
    salt: Vec<u8>,
    iterations: u32,
}

/// `[reserved-mext ","] "r=" nonce "," "s=" salt "," "i=" iteration-count ["," extensions]`
fn parse_server_first(data: &[u8]) -> Result<ServerFirst<'_>, ScramError> {
    let mut fields = data.split(|&b| b == b',');
    let first = fields.next().unwrap_or_default();
    if first.starts_with(b"m=") {
        return Err(ScramError::Unsupported("mandatory extension"));
    }
    let nonce = attr_value(first, b'r').ok_or(ScramError::Malformed("expected r= attribute"))?;
    if !is_valid_nonce(nonce) {
        return Err(ScramError::Malformed("invalid server nonce"));
    }
    let salt = fields
        .next()
        .and_then(|f| attr_value(f, b's'))
        .ok_or(ScramError::Malformed("expected s= attribute"))?;
    let salt = B64
        .decode(salt)
        .map_err(|_| ScramError::Malformed("bad salt encoding"))?;
    let iterations = fields
        .next()
        .and_then(|f| attr_value(f, b'i'))
        .and_then(parse_iterations)
        .ok_or(ScramError::Malformed("expected valid i= attribute"))?;
    check_extensions(fields)?;
    Ok(ServerFirst {
        nonce,
        salt,
        iterations,
    })
}

/// The salt and iteration count of a server-first-message, `None` when it is malformed.
pub fn server_first_salt(data: &[u8]) -> Option<(Vec<u8>, u32)> {
    parse_server_first(data)
        .ok()
        .map(|first| (first.salt, first.iterations))
}

/// The value of `field` if it is the attribute `name=value`.
fn attr_value(field: &[u8], name: u8) -> Option<&[u8]> {
    field.strip_prefix(&[name, b'='][..])
}

/// Optional trailing extensions: ignored like PostgreSQL does, but they must still be
/// well-formed `name=value` attributes.
fn check_extensions<'a>(mut fields: impl Iterator<Item = &'a [u8]>) -> Result<(), ScramError> {
    let is_attribute = |f: &[u8]| matches!(f, [name, b'=', ..] if name.is_ascii_alphabetic());
    if fields.all(is_attribute) {
        Ok(())
    } else {
        Err(ScramError::Malformed("invalid extension attribute"))
    }
}

/// RFC 5802: printable ASCII except ','; empty nonces are useless, so rejected.
fn is_valid_nonce(nonce: &[u8]) -> bool {
    !nonce.is_empty()
        && nonce
            .iter()
            .all(|&b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// A positive decimal iteration count; digits only so that to_stored round-trips exactly.
fn parse_iterations(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok().filter(|&i| i > 0)
}

fn decode_key(b64: &[u8]) -> Option<[u8; 32]> {
    B64.decode(b64).ok()?.try_into().ok()
}

fn random_nonce() -> String {
    let mut raw = [0u8; NONCE_RAW_LEN];
    rand::thread_rng().fill_bytes(&mut raw);
    B64.encode(raw)
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = new_hmac(key);
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn new_hmac(key: &[u8]) -> HmacSha256 {
    // HMAC is defined for keys of every length (long ones are hashed), so this cannot fail.
    HmacSha256::new_from_slice(key).expect("HMAC-SHA-256 accepts keys of any length")
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// RFC 5802 Hi(): PBKDF2 with HMAC-SHA-256 and a single output block.
fn hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    // Keyed once and cloned per round: re-keying each round would double the work.
    let prf = new_hmac(password);
    let mut round = prf.clone();
    round.update(salt);
    round.update(&1u32.to_be_bytes());
    let mut u: [u8; 32] = round.finalize().into_bytes().into();
    let mut result = u;
    for _ in 1..iterations {
        let mut round = prf.clone();
        round.update(&u);
        u = round.finalize().into_bytes().into();
        result = xor32(&result, &u);
    }
    result
}

fn xor32(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

/// No early exit, so timing does not reveal how much of a forged value was right.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
    use std::sync::OnceLock;

    // Generated by PostgreSQL 15 for `CREATE ROLE ... PASSWORD 'secret'` with
    // password_encryption = 'scram-sha-256'.
    const PG_VERIFIER: &str = "SCRAM-SHA-256$4096:Jt7j1qsaLRiS/GfgqqIysQ==$GKaPd1BQWliON8uxeqd63xxuEljWFhYvwJFS1g1RQNw=:g9B+2B5LJWOZKE+FoZQKHKUG27rs55Z5ZfyKqfRtCeE=";
    const PG_PASSWORD: &str = "secret";

    fn pg_verifier() -> ScramVerifier {
        ScramVerifier::parse(PG_VERIFIER).expect("valid verifier")
    }

    /// ClientKey for PG_PASSWORD, computed once: Hi() is slow in debug builds.
    fn pg_client_key() -> [u8; 32] {
        static KEY: OnceLock<[u8; 32]> = OnceLock::new();
        *KEY.get_or_init(|| {
            let v = pg_verifier();
            let salted = hi(PG_PASSWORD.as_bytes(), &v.salt, v.iterations);
            hmac_sha256(&salted, &[b"Client Key"])
        })
    }

    /// Runs postgres-protocol's client against our server; returns the ClientKey.
    fn exchange(
        password: &str,
        verifier: ScramVerifier,
        binding: ChannelBinding,
    ) -> Result<[u8; 32], ScramError> {
        let mut client = ScramSha256::new(password.as_bytes(), binding);
        let mut server = ScramServer::new(verifier);
        let server_first = server.handle_client_first(client.message())?;
        client
            .update(&server_first)
            .expect("client accepts server-first");
        let (server_final, client_key) = server.handle_client_final(client.message())?;
        client
            .finish(&server_final)
            .expect("client verifies server signature");
        Ok(client_key)
    }

    /// A valid client-first and client-final pair for `server` (PG_VERIFIER's password).
    fn valid_messages(server: &mut ScramServer) -> (Vec<u8>, Vec<u8>) {
        let mut client = ScramKeyClient::new(pg_client_key(), &pg_verifier());
        let first = client.client_first();
        let server_first = server.handle_client_first(&first).expect("server-first");
        let fin = client.handle_server_first(&server_first).expect("final");
        (first, fin)
    }

    /// A key client that has sent its first message, and its nonce.
    fn started_key_client() -> (ScramKeyClient, String) {
        let mut client = ScramKeyClient::new(pg_client_key(), &pg_verifier());
        let first = client.client_first();
        let nonce = first.strip_prefix(b"n,,n=,r=").expect("client-first shape");
        let nonce = String::from_utf8(nonce.to_vec()).expect("ascii nonce");
        (client, nonce)
    }

    fn pg_salt_b64() -> String {
        B64.encode(pg_verifier().salt)
    }

    #[test]
    fn parse_round_trips_postgres_verifier() {
        let v = pg_verifier();
        assert_eq!(v.iterations, 4096);
        assert_eq!(v.salt.len(), 16);
        assert_eq!(v.to_stored(), PG_VERIFIER);
        assert_eq!(ScramVerifier::parse(&v.to_stored()), Some(v));
    }

    #[test]
    fn from_password_reproduces_postgres_keys() {
        let v = pg_verifier();
        let derived = ScramVerifier::from_password_with_salt(PG_PASSWORD, &v.salt, v.iterations);
        assert_eq!(derived.stored_key, v.stored_key);
        assert_eq!(derived.server_key, v.server_key);
        assert_eq!(derived.to_stored(), PG_VERIFIER);
        assert_eq!(sha256(&pg_client_key()), v.stored_key);
    }

    #[test]
    fn from_password_is_random_and_usable() {
        let a = ScramVerifier::from_password("pw");
        let b = ScramVerifier::from_password("pw");
        assert_eq!(a.iterations, 4096);
        assert_eq!(a.salt.len(), 16);
        assert_ne!(a.salt, b.salt);
        assert_eq!(ScramVerifier::parse(&a.to_stored()).as_ref(), Some(&a));
        assert!(exchange("pw", a, ChannelBinding::unsupported()).is_ok());
        let zero = ScramVerifier::from_password_with_salt("pw", b"salt", 0);
        assert_eq!(zero.iterations, 1);
    }

    #[test]
    fn debug_redacts_keys() {
        let shown = format!("{:?}", pg_verifier());
        assert!(shown.contains("redacted"));
        assert!(!shown.contains("GKaPd1BQ"));
    }

    #[test]
    fn parse_rejects_bad_verifiers() {
        let (_, keys) = PG_VERIFIER.rsplit_once('$').expect("keys");
        let bad = [
            String::new(),
            "md553f48b7c4b76a86ce72276c5755f217d".to_owned(),
            format!("SCRAM-SHA-256$0:Jt7j1qsaLRiS/GfgqqIysQ==${keys}"),
            format!("SCRAM-SHA-256$+4096:Jt7j1qsaLRiS/GfgqqIysQ==${keys}"),
            format!("SCRAM-SHA-256$99999999999:Jt7j1qsaLRiS/GfgqqIysQ==${keys}"),
            format!("SCRAM-SHA-256$4096:!!!${keys}"),
            format!("SCRAM-SHA-256$4096:${keys}"),
            // A 31-byte StoredKey.
            PG_VERIFIER.replace("g1RQNw=", "g1RQ"),
            PG_VERIFIER.replace('$', "#"),
        ];
        for s in &bad {
            assert_eq!(ScramVerifier::parse(s), None, "{s}");
        }
        for len in 0..PG_VERIFIER.len() {
            assert_eq!(ScramVerifier::parse(&PG_VERIFIER[..len]), None);
        }
    }

    #[test]
    fn exchange_with_right_password_recovers_client_key() {
        for binding in [ChannelBinding::unsupported(), ChannelBinding::unrequested()] {
            let client_key = exchange(PG_PASSWORD, pg_verifier(), binding).expect("auth succeeds");
            assert_eq!(sha256(&client_key), pg_verifier().stored_key);
            assert_eq!(client_key, pg_client_key());
        }
    }

    #[test]
    fn wrong_password_is_bad_proof() {
        let err = exchange("wrong", pg_verifier(), ChannelBinding::unsupported()).unwrap_err();
        assert!(matches!(err, ScramError::BadProof), "{err:?}");
    }

    #[test]
    fn mock_user_is_bad_proof_and_deterministic() {
        let secret = [7u8; 32];
        let mock = ScramVerifier::mock("nobody", &secret);
        assert_eq!(mock, ScramVerifier::mock("nobody", &secret));
        assert_ne!(mock.salt, ScramVerifier::mock("somebody", &secret).salt);
        assert_ne!(mock.salt, ScramVerifier::mock("nobody", &[8u8; 32]).salt);
        assert_eq!((mock.salt.len(), mock.iterations), (16, 4096));
        for password in ["", "secret"] {
            let err = exchange(password, mock.clone(), ChannelBinding::unsupported()).unwrap_err();
            assert!(matches!(err, ScramError::BadProof), "{err:?}");
        }
    }

    #[test]
    fn server_first_message_shape() {
        let mut server = ScramServer::new(pg_verifier());
        let reply = server.handle_client_first(b"n,,n=,r=abc").expect("ok");
        let reply = String::from_utf8(reply).expect("ascii");
        let rest = reply.strip_prefix("r=abc").expect("nonce prefix");
        let (server_nonce, tail) = rest.split_once(',').expect("fields");
        assert_eq!(server_nonce.len(), 24); // 18 random bytes in base64
        assert_eq!(tail, "s=Jt7j1qsaLRiS/GfgqqIysQ==,i=4096");
        // A user name and well-formed extensions are accepted (and ignored).
        let mut server = ScramServer::new(pg_verifier());
        assert!(server.handle_client_first(b"y,,n=bob,r=abc,x=1").is_ok());
    }

    #[test]
    fn key_client_passes_through_to_server() {
        let verifier = pg_verifier();
        let client_key = exchange(PG_PASSWORD, verifier.clone(), ChannelBinding::unsupported())
            .expect("client auth");

        let mut upstream = ScramServer::new(verifier.clone());
        let mut proxy = ScramKeyClient::new(client_key, &verifier);
        let first = proxy.client_first();
        assert!(first.starts_with(b"n,,n=,r="));
        let server_first = upstream.handle_client_first(&first).expect("server-first");
        let client_final = proxy
            .handle_server_first(&server_first)
            .expect("client-final");
        let (server_final, upstream_key) = upstream
            .handle_client_final(&client_final)
            .expect("upstream accepts recovered key");
        assert_eq!(upstream_key, client_key);
        proxy
            .handle_server_final(&server_final)
            .expect("server signature");
    }

    #[test]
    fn key_client_rejects_wrong_salt_or_iterations() {
        let salt = pg_salt_b64();
        for (server_salt, iterations) in [("b3RoZXI=", 4096), (salt.as_str(), 4097)] {
            let (mut proxy, nonce) = started_key_client();
            let msg = format!("r={nonce}x,s={server_salt},i={iterations}");
            let err = proxy.handle_server_first(msg.as_bytes()).unwrap_err();
            assert!(matches!(err, ScramError::SaltMismatch), "{err:?}");
        }
    }

    #[test]
    fn key_client_rejects_forged_or_failed_server_final() {
        let salt = pg_salt_b64();
        let forged = format!("v={}", B64.encode([0u8; 32]));
        let bad: [&[u8]; 7] = [
            b"",
            b"garbage",
            b"v=",
            b"v=!!!",
            b"v=AAAA",
            b"m=x,v=AAAA",
            forged.as_bytes(),
        ];
        for input in bad {
            let (mut c, nonce) = started_key_client();
            let server_first = format!("r={nonce}xyz,s={salt},i=4096");
            c.handle_server_first(server_first.as_bytes())
                .expect("valid");
            assert!(c.handle_server_final(input).is_err(), "{input:?}");
        }
        let (mut c, nonce) = started_key_client();
        let server_first = format!("r={nonce}xyz,s={salt},i=4096");
        c.handle_server_first(server_first.as_bytes())
            .expect("valid");
        let err = c.handle_server_final(b"e=invalid-proof").unwrap_err();
        assert!(matches!(err, ScramError::ServerError(ref e) if e == "invalid-proof"));
        assert!(matches!(
            c.handle_server_final(forged.as_bytes()),
            Err(ScramError::OutOfOrder)
        ));
    }

    #[test]
    fn key_client_rejects_bad_server_first() {
        let salt = pg_salt_b64();
        let (_, nonce) = started_key_client();
        let valid = format!("r={nonce}xyz,s={salt},i=4096");
        // Truncations: must never panic; only the complete message may succeed.
        for len in 0..valid.len() {
            let (mut c, own) = started_key_client();
            let msg = valid.replace(&nonce, &own);
            assert!(c.handle_server_first(&msg.as_bytes()[..len]).is_err());
        }
        let bad = [
            format!("r=other{nonce},s={salt},i=4096"),
            format!("r={nonce},s={salt},i=4096"),
            format!("m=ext,r={nonce}x,s={salt},i=4096"),
            format!("r={nonce}\u{7f},s={salt},i=4096"),
            format!("r={nonce}x,s=!!,i=4096"),
            format!("r={nonce}x,s={salt},i=-1"),
            format!("r={nonce}x,s={salt},i=4096,junk"),
            format!("s={salt},r={nonce}x,i=4096"),
        ];
        for msg in bad {
            let (mut c, own) = started_key_client();
            let msg = msg.replace(&nonce, &own);
            assert!(c.handle_server_first(msg.as_bytes()).is_err(), "{msg}");
        }
    }

    #[test]
    fn client_first_rejects_malformed_input() {
        let malformed: [&[u8]; 11] = [
            b"",
            b"garbage",
            b"n,",
            b"n,,",
            b"n,,n=",
            b"n,,n=,r=",
            b"n,,n=,r=a,b",
            b"x,,n=,r=abc",
            b"n,,r=abc",
            b"n,,n=,r=ab\xffc",
            b"n,,n=,r=ab c",
        ];
        for input in malformed {
            let mut server = ScramServer::new(pg_verifier());
            let err = server.handle_client_first(input).unwrap_err();
            assert!(
                matches!(err, ScramError::Malformed(_)),
                "{input:?}: {err:?}"
            );
        }
        let unsupported: [&[u8]; 2] = [b"n,a=bob,n=,r=abc", b"n,,m=ext,n=,r=abc"];
        for input in unsupported {
            let mut server = ScramServer::new(pg_verifier());
            let err = server.handle_client_first(input).unwrap_err();
            assert!(matches!(err, ScramError::Unsupported(_)), "{err:?}");
        }
        let mut server = ScramServer::new(pg_verifier());
        let err = server
            .handle_client_first(b"p=tls-server-end-point,,n=,r=abc")
            .unwrap_err();
        assert!(matches!(err, ScramError::ChannelBindingUnsupported));
    }

    #[test]
    fn client_final_rejects_malformed_input() {
        let mut probe = ScramServer::new(pg_verifier());
        let (_, valid_final) = valid_messages(&mut probe);
        // Every strict prefix of a valid client-final must fail, and never panic.
        for len in 0..valid_final.len() {
            let mut server = ScramServer::new(pg_verifier());
            let _ = valid_messages(&mut server);
            assert!(server.handle_client_final(&valid_final[..len]).is_err());
        }
        let zero = B64.encode([0u8; 32]);
        let cases = [
            ("c=biws,r={n}", "no proof"),
            ("c=biws,r={n},p=!!!", "bad base64"),
            ("c=biws,r={n},p=AAAA", "short proof"),
            ("c=eSws,r={n},p={z}", "cbind y,, after n,,"),
            ("c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws,r={n},p={z}", "cbind p="),
            ("c=biws,r={n}x,p={z}", "nonce"),
            ("c=biws,r={n},p={z}", "zero proof"),
            ("r={n},c=biws,p={z}", "order"),
            ("c=biws,r={n},,p={z}", "empty extension"),
        ];
        for (template, what) in cases {
            let mut server = ScramServer::new(pg_verifier());
            let (_, fin) = valid_messages(&mut server);
            let fin = String::from_utf8(fin).expect("ascii");
            let nonce = fin.split(',').nth(1).and_then(|f| f.strip_prefix("r="));
            let input = template
                .replace("{n}", nonce.expect("nonce"))
                .replace("{z}", &zero);
            assert!(
                server.handle_client_final(input.as_bytes()).is_err(),
                "{what}"
            );
        }
    }

    #[test]
    fn mutated_messages_never_panic() {
        let mut probe = ScramServer::new(pg_verifier());
        let (first, _) = valid_messages(&mut probe);
        for len in 0..first.len() {
            let mut server = ScramServer::new(pg_verifier());
            let _ = server.handle_client_first(&first[..len]);
        }
        for byte in [0u8, b',', b'=', b'p', 0xff] {
            for pos in 0..first.len() {
                let mut f = first.clone();
                f[pos] = byte;
                let _ = ScramServer::new(pg_verifier()).handle_client_first(&f);
            }
            let mut server = ScramServer::new(pg_verifier());
            let (_, fin) = valid_messages(&mut server);
            for pos in 0..fin.len() {
                let mut m = fin.clone();
                m[pos] = byte;
                // Changing any byte of the client-final must break authentication; each
                // attempt needs its own server because a failure ends the exchange.
                if m != fin {
                    let mut fresh = ScramServer::new(pg_verifier());
                    let _ = fresh.handle_client_first(&first);
                    assert!(fresh.handle_client_final(&m).is_err(), "{byte} {pos}");
                }
            }
        }
    }

    #[test]
    fn messages_out_of_order_are_rejected() {
        let mut server = ScramServer::new(pg_verifier());
        let err = server
            .handle_client_final(b"c=biws,r=a,p=AAAA")
            .unwrap_err();
        assert!(matches!(err, ScramError::OutOfOrder));
        let mut server = ScramServer::new(pg_verifier());
        let (first, fin) = valid_messages(&mut server);
        let err = server.handle_client_first(&first).unwrap_err();
        assert!(matches!(err, ScramError::OutOfOrder));
        let err = server.handle_client_final(&fin).unwrap_err();
        assert!(matches!(err, ScramError::OutOfOrder));
        let mut client = ScramKeyClient::new([0u8; 32], &pg_verifier());
        let err = client.handle_server_first(b"r=a,s=AAAA,i=1").unwrap_err();
        assert!(matches!(err, ScramError::OutOfOrder));
        let err = client.handle_server_final(b"v=AAAA").unwrap_err();
        assert!(matches!(err, ScramError::OutOfOrder));
    }
}
