//! The server side of one SCRAM exchange: the proxy authenticating a client against a
//! stored verifier.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use super::*;

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
