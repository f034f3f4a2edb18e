//! PLAIN through the public API: good and bad passwords against stored SCRAM
//! credentials, unknown users, SASLprep, and the parse -> lookup -> verify
//! split the stream layer uses with its asynchronous store.

#![allow(clippy::unwrap_used)]

use chorus_sasl::{
    plain_message, verify_plain, Condition, PlainRequest, SaslError, ScramCredentials, ScramHash,
};

const ITERATIONS: u32 = 16;

fn store(password: &str, hash: ScramHash) -> impl Fn(&str) -> Option<ScramCredentials> {
    let creds = ScramCredentials::derive(password, hash, ITERATIONS).unwrap();
    move |user| (user == "juliet").then(|| creds.clone())
}

#[test]
fn good_password_authenticates_against_either_hash() {
    for hash in ScramHash::ALL {
        let outcome = verify_plain(
            &plain_message(None, "juliet", "r0m30"),
            store("r0m30", hash),
        )
        .unwrap();
        assert_eq!(outcome.username, "juliet");
        assert_eq!(outcome.authzid, None);
    }
}

#[test]
fn bad_password_is_not_authorized() {
    let err = verify_plain(
        &plain_message(None, "juliet", "tybalt"),
        store("r0m30", ScramHash::Sha256),
    )
    .unwrap_err();
    assert_eq!(err, SaslError::NotAuthorized);
    assert_eq!(err.condition(), Condition::NotAuthorized);
}

#[test]
fn unknown_user_is_not_authorized_like_a_bad_password() {
    let err = verify_plain(
        &plain_message(None, "nobody", "r0m30"),
        store("r0m30", ScramHash::Sha256),
    )
    .unwrap_err();
    assert_eq!(err, SaslError::NotAuthorized);
}

#[test]
fn parse_lookup_verify_split_returns_the_authzid() {
    let message = plain_message(Some("juliet@capulet.example"), "juliet", "r0m30");
    let request = PlainRequest::parse(&message).unwrap();
    assert_eq!(request.username(), "juliet");
    // The lookup happens here, in the caller, possibly awaiting storage.
    let creds = store("r0m30", ScramHash::Sha1)(request.username());
    let outcome = request.verify(creds.as_ref()).unwrap();
    assert_eq!(outcome.authzid.as_deref(), Some("juliet@capulet.example"));
}

#[test]
fn non_ascii_passwords_are_normalized_by_saslprep() {
    for (stored, typed) in [
        ("caf\u{00E9}", "cafe\u{0301}"),
        ("pass\u{00AD}word", "password"),
        ("two\u{00A0}words", "two words"),
    ] {
        verify_plain(
            &plain_message(None, "juliet", typed),
            store(stored, ScramHash::Sha256),
        )
        .unwrap();
    }
}

#[test]
fn usernames_with_commas_and_equals_signs_are_taken_verbatim() {
    let creds = ScramCredentials::derive("pw", ScramHash::Sha256, ITERATIONS).unwrap();
    let outcome = verify_plain(&plain_message(None, "a,b=c", "pw"), |user| {
        (user == "a,b=c").then(|| creds.clone())
    })
    .unwrap();
    assert_eq!(outcome.username, "a,b=c");
}

#[test]
fn corrupt_stored_credentials_are_a_temporary_failure() {
    let mut creds = ScramCredentials::derive("pw", ScramHash::Sha256, ITERATIONS).unwrap();
    creds.stored_key.truncate(3);
    let err = verify_plain(&plain_message(None, "juliet", "pw"), |_| {
        Some(creds.clone())
    })
    .unwrap_err();
    assert_eq!(err.condition(), Condition::TemporaryAuthFailure);
}

#[test]
fn missing_fields_are_malformed() {
    for message in [&b"juliet\0pw"[..], b"\0\0pw", b"\0juliet\0", b"a\0b\0c\0d"] {
        let err = verify_plain(message, |_| None).unwrap_err();
        assert_eq!(err.condition(), Condition::MalformedRequest, "{message:?}");
    }
}
