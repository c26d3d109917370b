//! How the server login picks its SCRAM mechanism and channel binding.

use super::*;

fn first_message(offered: &[u8], binding: Option<Vec<u8>>) -> (bool, String) {
    let mut login = Login {
        state: None,
        binding,
        bound: false,
        method: LoginMethod::Trust,
    };
    let mut out = BytesMut::new();
    let auth = ServerAuth::Password("pw".into());
    start_scram(offered, "u", &auth, &mut login, &mut out).unwrap();
    (login.bound, String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn scram_plus_is_chosen_over_tls_when_offered() {
    let both = b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0";
    let (bound, out) = first_message(both, Some(vec![7; 32]));
    assert!(bound);
    assert!(out.contains("SCRAM-SHA-256-PLUS\0"), "{out:?}");
    assert!(out.contains("p=tls-server-end-point,,"), "{out:?}");

    // Over TLS without -PLUS on offer: plain SCRAM, flagged as able to bind.
    let (bound, out) = first_message(b"SCRAM-SHA-256\0\0", Some(vec![7; 32]));
    assert!(!bound);
    assert!(out.contains("y,,n=") && !out.contains("PLUS"), "{out:?}");

    // Without TLS -PLUS is never chosen, even if offered.
    let (bound, out) = first_message(both, None);
    assert!(!bound);
    assert!(
        out.contains("SCRAM-SHA-256\0") && out.contains("n,,n="),
        "{out:?}"
    );
}

#[test]
fn pass_through_binds_too() {
    let verifier = ScramVerifier::from_password("pw");
    let auth = ServerAuth::ScramKeys {
        client_key: [1; 32],
        verifier,
    };
    let mut login = Login {
        state: None,
        binding: Some(vec![7; 32]),
        bound: false,
        method: LoginMethod::Trust,
    };
    let mut out = BytesMut::new();
    let offered = b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0";
    start_scram(offered, "u", &auth, &mut login, &mut out).unwrap();
    assert!(login.bound);
    let out = String::from_utf8_lossy(&out).into_owned();
    assert!(out.contains("p=tls-server-end-point,,n=,r="), "{out:?}");
}
