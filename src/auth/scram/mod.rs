//! SCRAM-SHA-256 (RFC 5802/7677 as PostgreSQL uses it): stored verifiers
//! ([`verifier`]), the server side that authenticates clients ([`server`]), and a
//! key-only client side for upstream pass-through ([`client`]). This file holds what
//! they share: the error, the message parsers and the primitives.

mod client;
mod server;
#[cfg(test)]
mod tests;
mod verifier;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

pub use client::{KeyBinding, ScramKeyClient};
pub use server::ScramServer;
pub use verifier::ScramVerifier;

type HmacSha256 = Hmac<Sha256>;

pub(super) const VERIFIER_PREFIX: &str = "SCRAM-SHA-256$";
/// PostgreSQL's default `scram_iterations`.
pub(super) const DEFAULT_ITERATIONS: u32 = 4096;
pub(super) const SALT_LEN: usize = 16;
/// Same raw nonce length as libpq and the PostgreSQL backend.
pub(super) const NONCE_RAW_LEN: usize = 18;
/// The GS2 header `ScramKeyClient` sends without TLS: no channel binding.
pub(super) const GS2_NO_BINDING: &[u8] = b"n,,";

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

pub(super) struct ClientFirst<'a> {
    gs2_header: &'a [u8],
    bare: &'a [u8],
    nonce: &'a [u8],
}

/// `gs2-cbind-flag "," [authzid] "," [reserved-mext ","] username "," nonce ["," extensions]`
pub(super) fn parse_client_first(data: &[u8]) -> Result<ClientFirst<'_>, ScramError> {
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

pub(super) struct ClientFinal<'a> {
    channel_binding: Vec<u8>,
    nonce: &'a [u8],
    proof: [u8; 32],
    without_proof: &'a [u8],
}

/// `"c=" cbind-input "," "r=" nonce ["," extensions] "," "p=" proof`
pub(super) fn parse_client_final(data: &[u8]) -> Result<ClientFinal<'_>, ScramError> {
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

pub(super) struct ServerFirst<'a> {
    nonce: &'a [u8],
    salt: Vec<u8>,
    iterations: u32,
}

/// `[reserved-mext ","] "r=" nonce "," "s=" salt "," "i=" iteration-count ["," extensions]`
pub(super) fn parse_server_first(data: &[u8]) -> Result<ServerFirst<'_>, ScramError> {
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
pub(super) fn attr_value(field: &[u8], name: u8) -> Option<&[u8]> {
    field.strip_prefix(&[name, b'='][..])
}

/// Optional trailing extensions: ignored like PostgreSQL does, but they must still be
/// well-formed `name=value` attributes.
pub(super) fn check_extensions<'a>(
    mut fields: impl Iterator<Item = &'a [u8]>,
) -> Result<(), ScramError> {
    let is_attribute = |f: &[u8]| matches!(f, [name, b'=', ..] if name.is_ascii_alphabetic());
    if fields.all(is_attribute) {
        Ok(())
    } else {
        Err(ScramError::Malformed("invalid extension attribute"))
    }
}

/// RFC 5802: printable ASCII except ','; empty nonces are useless, so rejected.
pub(super) fn is_valid_nonce(nonce: &[u8]) -> bool {
    !nonce.is_empty()
        && nonce
            .iter()
            .all(|&b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// A positive decimal iteration count; digits only so that to_stored round-trips exactly.
pub(super) fn parse_iterations(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok().filter(|&i| i > 0)
}

pub(super) fn decode_key(b64: &[u8]) -> Option<[u8; 32]> {
    B64.decode(b64).ok()?.try_into().ok()
}

pub(super) fn random_nonce() -> String {
    let mut raw = [0u8; NONCE_RAW_LEN];
    rand::thread_rng().fill_bytes(&mut raw);
    B64.encode(raw)
}

pub(super) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = new_hmac(key);
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

pub(super) fn new_hmac(key: &[u8]) -> HmacSha256 {
    // HMAC is defined for keys of every length (long ones are hashed), so this cannot fail.
    HmacSha256::new_from_slice(key).expect("HMAC-SHA-256 accepts keys of any length")
}

pub(super) fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// RFC 5802 Hi(): PBKDF2 with HMAC-SHA-256 and a single output block.
pub(super) fn hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
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

pub(super) fn xor32(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

/// No early exit, so timing does not reveal how much of a forged value was right.
pub(super) fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}
