//! The client side for when the proxy knows only keys, not the password: SCRAM towards
//! the upstream server with a ClientKey recovered from a client's proof.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use super::*;

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
