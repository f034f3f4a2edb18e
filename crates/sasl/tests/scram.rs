//! SCRAM through the public API only, the way the stream layer and the
//! benchmark client drive it: full client <-> server exchanges for all four
//! mechanisms, then every hostile or broken input the server must refuse,
//! each asserting its RFC 6120 condition.

#![allow(clippy::unwrap_used)]

use chorus_sasl::{
    ChannelBindingData, ChannelBindingType, Condition, Mechanism, SaslError, ScramClient,
    ScramCredentials, ScramHash, ScramOutcome, ScramServer,
};

/// Few iterations keep the suite fast; the RFC vectors cover 4096.
const ITERATIONS: u32 = 16;

const EXPORTER: [u8; 32] = [0x42; 32];
const END_POINT: [u8; 32] = [0x17; 32];

fn tls() -> ChannelBindingData {
    ChannelBindingData {
        tls_exporter: Some(EXPORTER.to_vec()),
        tls_server_end_point: Some(END_POINT.to_vec()),
    }
}

fn creds(password: &str, hash: ScramHash) -> ScramCredentials {
    ScramCredentials::derive(password, hash, ITERATIONS).unwrap()
}

/// Runs a whole exchange; the client also checks the server signature.
fn exchange(
    mut client: ScramClient,
    mut server: ScramServer,
    stored: Option<&ScramCredentials>,
) -> Result<ScramOutcome, SaslError> {
    server.handle_client_first(&client.client_first())?;
    let server_first = server.server_first(stored)?;
    let client_final = client.handle_server_first(&server_first)?;
    let (server_final, outcome) = server.handle_client_final(&client_final)?;
    client.handle_server_final(&server_final)?;
    Ok(outcome)
}

fn login(
    mechanism: Mechanism,
    username: &str,
    password: &str,
    stored_password: &str,
    client_cb: Option<(ChannelBindingType, Vec<u8>)>,
) -> Result<ScramOutcome, SaslError> {
    let hash = mechanism.hash().unwrap();
    let client = ScramClient::new(mechanism, username, password, client_cb).unwrap();
    let server = ScramServer::new(mechanism, tls(), true);
    exchange(client, server, Some(&creds(stored_password, hash)))
}

#[test]
fn every_scram_mechanism_round_trips_without_channel_binding() {
    for mechanism in [Mechanism::ScramSha1, Mechanism::ScramSha256] {
        let client = ScramClient::new(mechanism, "juliet", "r0m30", None).unwrap();
        // No -PLUS offered (plaintext stream or no binding data).
        let server = ScramServer::new(mechanism, ChannelBindingData::none(), false);
        let stored = creds("r0m30", mechanism.hash().unwrap());
        let outcome = exchange(client, server, Some(&stored)).unwrap();
        assert_eq!(outcome.username, "juliet");
        assert_eq!(outcome.authzid, None);
        assert_eq!(outcome.channel_binding, None);
    }
}

#[test]
fn every_plus_mechanism_round_trips_with_each_binding_type() {
    for mechanism in [Mechanism::ScramSha1Plus, Mechanism::ScramSha256Plus] {
        for (ty, data) in [
            (ChannelBindingType::TlsExporter, EXPORTER),
            (ChannelBindingType::TlsServerEndPoint, END_POINT),
        ] {
            let outcome = login(
                mechanism,
                "juliet",
                "r0m30",
                "r0m30",
                Some((ty, data.to_vec())),
            )
            .unwrap();
            assert_eq!(outcome.channel_binding, Some(ty), "{mechanism} {ty}");
        }
    }
}

#[test]
fn client_sending_y_succeeds_when_no_plus_was_offered() {
    let client = ScramClient::new(
        Mechanism::ScramSha256,
        "juliet",
        "pw",
        Some((ChannelBindingType::TlsExporter, EXPORTER.to_vec())),
    )
    .unwrap();
    assert!(client.client_first().starts_with(b"y,,"));
    let server = ScramServer::new(Mechanism::ScramSha256, tls(), false);
    exchange(client, server, Some(&creds("pw", ScramHash::Sha256))).unwrap();
}

#[test]
fn client_sending_y_when_plus_was_offered_is_a_downgrade() {
    let err = login(
        Mechanism::ScramSha256,
        "juliet",
        "pw",
        "pw",
        Some((ChannelBindingType::TlsExporter, EXPORTER.to_vec())),
    )
    .unwrap_err();
    assert_eq!(err, SaslError::ChannelBindingDowngrade);
    assert_eq!(err.condition(), Condition::NotAuthorized);
}

#[test]
fn client_sending_n_is_fine_even_when_plus_was_offered() {
    // `n` means "I cannot bind at all": nothing was stripped from its view.
    login(Mechanism::ScramSha256, "juliet", "pw", "pw", None).unwrap();
}

fn first_error(mechanism: Mechanism, cb: ChannelBindingData, client_first: &[u8]) -> SaslError {
    let mut server = ScramServer::new(mechanism, cb, true);
    server.handle_client_first(client_first).unwrap_err()
}

#[test]
fn p_flag_with_a_non_plus_mechanism_is_malformed() {
    let err = first_error(
        Mechanism::ScramSha256,
        tls(),
        b"p=tls-exporter,,n=juliet,r=abc",
    );
    assert_eq!(err, SaslError::ChannelBindingNotExpected);
    assert_eq!(err.condition(), Condition::MalformedRequest);
}

#[test]
fn plus_mechanism_without_p_flag_is_malformed() {
    for message in [&b"n,,n=juliet,r=abc"[..], b"y,,n=juliet,r=abc"] {
        let err = first_error(Mechanism::ScramSha1Plus, tls(), message);
        assert_eq!(err, SaslError::ChannelBindingRequired);
        assert_eq!(err.condition(), Condition::MalformedRequest);
    }
}

#[test]
fn unsupported_channel_binding_type_is_malformed() {
    let err = first_error(
        Mechanism::ScramSha256Plus,
        tls(),
        b"p=tls-unique,,n=juliet,r=abc",
    );
    assert_eq!(
        err,
        SaslError::UnsupportedChannelBindingType("tls-unique".into())
    );
    assert_eq!(err.condition(), Condition::MalformedRequest);
}

#[test]
fn binding_type_without_data_from_tls_is_refused() {
    let exporter_only = ChannelBindingData {
        tls_exporter: Some(EXPORTER.to_vec()),
        tls_server_end_point: None,
    };
    let err = first_error(
        Mechanism::ScramSha256Plus,
        exporter_only,
        b"p=tls-server-end-point,,n=juliet,r=abc",
    );
    assert_eq!(
        err,
        SaslError::ChannelBindingUnavailable(ChannelBindingType::TlsServerEndPoint)
    );
    assert_eq!(err.condition(), Condition::MalformedRequest);
}

#[test]
fn different_binding_data_on_each_side_means_a_man_in_the_middle() {
    let err = login(
        Mechanism::ScramSha256Plus,
        "juliet",
        "pw",
        "pw",
        Some((ChannelBindingType::TlsExporter, vec![0x66; 32])),
    )
    .unwrap_err();
    assert_eq!(err, SaslError::ChannelBindingMismatch);
    assert_eq!(err.condition(), Condition::NotAuthorized);
}

/// Drives a real client to its client-final, then lets `tamper` rewrite it.
fn tampered_final(mechanism: Mechanism, tamper: impl FnOnce(String) -> String) -> SaslError {
    let mut client = ScramClient::new(mechanism, "juliet", "pw", None).unwrap();
    let mut server = ScramServer::new(mechanism, ChannelBindingData::none(), false);
    server.handle_client_first(&client.client_first()).unwrap();
    let stored = creds("pw", mechanism.hash().unwrap());
    let server_first = server.server_first(Some(&stored)).unwrap();
    let client_final = client.handle_server_first(&server_first).unwrap();
    let client_final = tamper(String::from_utf8(client_final).unwrap());
    server
        .handle_client_final(client_final.as_bytes())
        .unwrap_err()
}

#[test]
fn c_attribute_must_repeat_the_gs2_header() {
    // The client said `n,,` but c= claims `y,,`: a rewritten header.
    let err = tampered_final(Mechanism::ScramSha256, |m| m.replace("c=biws,", "c=eSws,"));
    assert_eq!(err, SaslError::ChannelBindingMismatch);
    assert_eq!(err.condition(), Condition::NotAuthorized);
}

#[test]
fn combined_nonce_must_be_the_one_the_server_sent() {
    let err = tampered_final(Mechanism::ScramSha256, |m| m.replacen(",r=", ",r=X", 1));
    assert_eq!(err, SaslError::NonceMismatch);
    assert_eq!(err.condition(), Condition::NotAuthorized);
}

#[test]
fn mandatory_extensions_are_refused() {
    let err = first_error(Mechanism::ScramSha256, tls(), b"n,,m=future,n=juliet,r=abc");
    assert_eq!(err, SaslError::UnsupportedExtension);
    assert_eq!(err.condition(), Condition::MalformedRequest);
    let err = tampered_final(Mechanism::ScramSha256, |m| m.replace(",p=", ",m=x,p="));
    assert_eq!(err, SaslError::UnsupportedExtension);
}

#[test]
fn unknown_optional_extensions_are_ignored() {
    let mut client = ScramClient::new(Mechanism::ScramSha1, "juliet", "pw", None).unwrap();
    let mut server = ScramServer::new(Mechanism::ScramSha1, ChannelBindingData::none(), false);
    let mut first = client.client_first();
    first.extend_from_slice(b",x=ignored");
    server.handle_client_first(&first).unwrap();
    let stored = creds("pw", ScramHash::Sha1);
    let server_first = server.server_first(Some(&stored)).unwrap();
    let client_final = client.handle_server_first(&server_first).unwrap();
    // AuthMessage covers the extension, so the client's proof, computed
    // without it, must not verify: extensions are signed, not stripped.
    assert_eq!(
        server.handle_client_final(&client_final).unwrap_err(),
        SaslError::NotAuthorized
    );
}

#[test]
fn attributes_out_of_order_are_malformed() {
    for message in [
        &b"n,,r=abc,n=juliet"[..],
        b"n,,n=juliet",
        b"n,,n=juliet,r=abc,n=again",
        b"n,n=juliet,r=abc",
        b"n=juliet,r=abc",
    ] {
        let err = first_error(Mechanism::ScramSha256, tls(), message);
        assert_eq!(err.condition(), Condition::MalformedRequest, "{message:?}");
    }
    let err = tampered_final(Mechanism::ScramSha256, |m| {
        let (c, rest) = m.split_once(',').unwrap();
        let (r, p) = rest.split_once(',').unwrap();
        format!("{r},{c},{p}")
    });
    assert!(matches!(err, SaslError::Malformed(_)), "{err:?}");
}

#[test]
fn bad_base64_and_bad_utf8_are_malformed() {
    let err = first_error(Mechanism::ScramSha256, tls(), b"n,,n=jul\xffiet,r=abc");
    assert_eq!(err.condition(), Condition::MalformedRequest);
    let err = tampered_final(Mechanism::ScramSha256, |m| m.replace("c=biws", "c=bi*s"));
    assert!(matches!(err, SaslError::Malformed(_)), "{err:?}");
    let err = tampered_final(Mechanism::ScramSha256, |m| format!("{m}!"));
    assert!(matches!(err, SaslError::Malformed(_)), "{err:?}");
}

#[test]
fn a_proof_of_the_wrong_length_is_malformed() {
    let err = tampered_final(Mechanism::ScramSha256, |m| {
        let (head, _) = m.rsplit_once(",p=").unwrap();
        format!("{head},p=AAAA")
    });
    assert_eq!(err, SaslError::Malformed("proof has the wrong length"));
}

#[test]
fn wrong_password_is_not_authorized() {
    for mechanism in [
        Mechanism::ScramSha1,
        Mechanism::ScramSha256,
        Mechanism::ScramSha1Plus,
        Mechanism::ScramSha256Plus,
    ] {
        let cb = mechanism
            .is_plus()
            .then(|| (ChannelBindingType::TlsExporter, EXPORTER.to_vec()));
        let err = login(mechanism, "juliet", "wrong", "right", cb).unwrap_err();
        assert_eq!(err, SaslError::NotAuthorized, "{mechanism}");
        assert_eq!(err.condition(), Condition::NotAuthorized);
    }
}

#[test]
fn a_tampered_proof_is_not_authorized() {
    let err = tampered_final(Mechanism::ScramSha1, |m| {
        let (head, proof) = m.rsplit_once(",p=").unwrap();
        let flipped = if proof.starts_with('A') { "B" } else { "A" };
        format!("{head},p={flipped}{}", &proof[1..])
    });
    assert_eq!(err, SaslError::NotAuthorized);
}

/// Splits server-first into (nonce length, salt, iterations).
fn shape(server_first: &[u8]) -> (usize, String, String) {
    let text = std::str::from_utf8(server_first).unwrap();
    let parts: Vec<&str> = text.split(',').collect();
    assert_eq!(parts.len(), 3, "{text}");
    assert!(parts[0].starts_with("r=") && parts[1].starts_with("s=") && parts[2].starts_with("i="));
    (
        parts[0].len(),
        parts[1][2..].to_owned(),
        parts[2][2..].to_owned(),
    )
}

fn server_first_for(username: &str, stored: Option<&ScramCredentials>) -> Vec<u8> {
    let mut server = ScramServer::new(Mechanism::ScramSha256, ChannelBindingData::none(), false)
        .with_unknown_user_iterations(ITERATIONS);
    server
        .handle_client_first(format!("n,,n={username},r=clientnonce").as_bytes())
        .unwrap();
    server.server_first(stored).unwrap()
}

#[test]
fn unknown_user_is_indistinguishable_from_a_wrong_password() {
    let stored = creds("pw", ScramHash::Sha256);
    let (known_nonce_len, known_salt, known_iterations) =
        shape(&server_first_for("juliet", Some(&stored)));
    let (ghost_nonce_len, ghost_salt, ghost_iterations) = shape(&server_first_for("ghost", None));
    assert_eq!(known_nonce_len, ghost_nonce_len);
    assert_eq!(known_salt.len(), ghost_salt.len());
    assert_eq!(known_iterations, ghost_iterations);

    // A real user's salt never changes between attempts; neither may a fake.
    let (_, ghost_salt_again, _) = shape(&server_first_for("ghost", None));
    assert_eq!(ghost_salt, ghost_salt_again);
    let (_, other_ghost_salt, _) = shape(&server_first_for("phantom", None));
    assert_ne!(ghost_salt, other_ghost_salt);

    // And the exchange fails exactly where and how a wrong password does.
    let client = ScramClient::new(Mechanism::ScramSha256, "ghost", "pw", None).unwrap();
    let server = ScramServer::new(Mechanism::ScramSha256, ChannelBindingData::none(), false);
    let err = exchange(client, server, None).unwrap_err();
    assert_eq!(err, SaslError::NotAuthorized);
}

#[test]
fn unknown_users_get_the_default_iteration_count_unless_told_otherwise() {
    let mut server = ScramServer::new(Mechanism::ScramSha1, ChannelBindingData::none(), false);
    server.handle_client_first(b"n,,n=ghost,r=abc").unwrap();
    let (_, _, iterations) = shape(&server.server_first(None).unwrap());
    assert_eq!(iterations, chorus_sasl::DEFAULT_ITERATIONS.to_string());
}

#[test]
fn usernames_with_commas_and_equals_signs_survive_the_escape() {
    for username in ["a,b", "x=y", "=2C", ",=,"] {
        let outcome = login(Mechanism::ScramSha256, username, "pw", "pw", None).unwrap();
        assert_eq!(outcome.username, username);
    }
    let mut server = ScramServer::new(Mechanism::ScramSha256, tls(), false);
    let first = server
        .handle_client_first(b"n,a=x=3Dy=2Cz,n=a=2Cb=3Dc,r=abc")
        .unwrap();
    assert_eq!(first.username, "a,b=c");
    assert_eq!(first.authzid.as_deref(), Some("x=y,z"));
}

#[test]
fn a_bad_escape_in_the_username_is_malformed() {
    let err = first_error(Mechanism::ScramSha256, tls(), b"n,,n=a=2cb,r=abc");
    assert_eq!(err.condition(), Condition::MalformedRequest);
}

#[test]
fn a_username_saslprep_rejects_is_malformed() {
    let err = first_error(
        Mechanism::ScramSha256,
        tls(),
        "n,,n=a\u{0007}b,r=abc".as_bytes(),
    );
    assert_eq!(err, SaslError::InvalidUsername);
    assert_eq!(err.condition(), Condition::MalformedRequest);
}

#[test]
fn non_ascii_passwords_are_normalized_by_saslprep() {
    // Stored from the composed form, typed in the decomposed one; stored
    // with a soft hyphen, typed without; NO-BREAK SPACE typed as a space.
    for (stored, typed) in [
        ("caf\u{00E9}", "cafe\u{0301}"),
        ("pass\u{00AD}word", "password"),
        ("two\u{00A0}words", "two words"),
        ("\u{2168}", "IX"),
    ] {
        for mechanism in [Mechanism::ScramSha1, Mechanism::ScramSha256] {
            login(mechanism, "juliet", typed, stored, None).unwrap();
        }
    }
}

#[test]
fn non_ascii_usernames_are_normalized_by_saslprep() {
    let outcome = login(Mechanism::ScramSha256, "cafe\u{0301}", "pw", "pw", None).unwrap();
    assert_eq!(outcome.username, "caf\u{00E9}");
}

#[test]
fn authzid_is_returned_for_the_caller_to_check() {
    let client = ScramClient::new(Mechanism::ScramSha256, "juliet", "pw", None)
        .unwrap()
        .with_authzid("juliet@example.org");
    let server = ScramServer::new(Mechanism::ScramSha256, ChannelBindingData::none(), false);
    let outcome = exchange(client, server, Some(&creds("pw", ScramHash::Sha256))).unwrap();
    assert_eq!(outcome.authzid.as_deref(), Some("juliet@example.org"));
    // What the caller answers when the authzid is someone else.
    assert_eq!(
        SaslError::InvalidAuthzid.condition(),
        Condition::InvalidAuthzid
    );
}

#[test]
fn credentials_for_the_wrong_hash_are_a_server_error() {
    let mut server = ScramServer::new(Mechanism::ScramSha256, ChannelBindingData::none(), false);
    server.handle_client_first(b"n,,n=juliet,r=abc").unwrap();
    let err = server
        .server_first(Some(&creds("pw", ScramHash::Sha1)))
        .unwrap_err();
    assert_eq!(err.condition(), Condition::TemporaryAuthFailure);
}

#[test]
fn a_second_response_after_success_is_out_of_order() {
    let mut client = ScramClient::new(Mechanism::ScramSha1, "juliet", "pw", None).unwrap();
    let mut server = ScramServer::new(Mechanism::ScramSha1, ChannelBindingData::none(), false);
    server.handle_client_first(&client.client_first()).unwrap();
    let server_first = server
        .server_first(Some(&creds("pw", ScramHash::Sha1)))
        .unwrap();
    let client_final = client.handle_server_first(&server_first).unwrap();
    server.handle_client_final(&client_final).unwrap();
    let err = server.handle_client_final(&client_final).unwrap_err();
    assert_eq!(err, SaslError::OutOfOrder);
    assert_eq!(err.condition(), Condition::MalformedRequest);
}

#[test]
fn a_benchmark_client_can_reuse_the_salted_password() {
    let stored = creds("pw", ScramHash::Sha256);
    let mut first = ScramClient::new(Mechanism::ScramSha256, "juliet", "pw", None).unwrap();
    let mut server = ScramServer::new(Mechanism::ScramSha256, ChannelBindingData::none(), false);
    server.handle_client_first(&first.client_first()).unwrap();
    let server_first = server.server_first(Some(&stored)).unwrap();
    first.handle_server_first(&server_first).unwrap();
    let cached = first.salted_password().unwrap().clone();

    let again = ScramClient::new(Mechanism::ScramSha256, "juliet", "pw", None)
        .unwrap()
        .with_salted_password(cached);
    let server = ScramServer::new(Mechanism::ScramSha256, ChannelBindingData::none(), false);
    exchange(again, server, Some(&stored)).unwrap();
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_printable_username_and_password_log_in(
            username in "[a-zA-Z0-9,=@._+-]{1,24}",
            password in "[ -~]{1,24}",
        ) {
            let client = ScramClient::new(Mechanism::ScramSha256, &username, &password, None).unwrap();
            let server = ScramServer::new(Mechanism::ScramSha256, ChannelBindingData::none(), false);
            let stored = ScramCredentials::derive(&password, ScramHash::Sha256, 1).unwrap();
            let outcome = exchange(client, server, Some(&stored)).unwrap();
            prop_assert_eq!(outcome.username, username);
        }

        #[test]
        fn arbitrary_client_first_never_panics_the_server(
            first in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut server = ScramServer::new(Mechanism::ScramSha256Plus, tls(), true);
            let _ = server.handle_client_first(&first);
        }

        #[test]
        fn arbitrary_client_final_never_panics_or_succeeds(last in "[ -~]{0,120}") {
            let mut server = ScramServer::new(Mechanism::ScramSha256, tls(), false);
            server.handle_client_first(b"n,,n=juliet,r=abc").unwrap();
            server.server_first(Some(&creds("pw", ScramHash::Sha256))).unwrap();
            prop_assert!(server.handle_client_final(last.as_bytes()).is_err());
        }
    }
}
