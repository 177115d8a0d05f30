//! Tests of `client`.

use super::*;

#[test]
fn challenges_parse() {
    match parse_challenge(
        r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
    ) {
        Some(Challenge::Bearer { realm, service }) => {
            assert_eq!(realm, "https://auth.docker.io/token");
            assert_eq!(service.as_deref(), Some("registry.docker.io"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse_challenge(r#"Basic realm="kiln-test""#),
        Some(Challenge::Basic)
    ));
    assert!(parse_challenge("Bearer service=x").is_none());
    assert!(parse_challenge("Negotiate").is_none());
}

#[test]
fn loopback_hosts() {
    for h in [
        "localhost:5000",
        "127.0.0.1:1",
        "[::1]:5000",
        "127.0.0.2",
        "localhost",
    ] {
        assert!(is_loopback(h), "{h}");
    }
    for h in ["example.com:5000", "10.0.0.1:5000", "[fe80::1]:1"] {
        assert!(!is_loopback(h), "{h}");
    }
}

#[test]
fn error_bodies_are_summarised() {
    let b = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
    assert_eq!(registry_error_text(b), "MANIFEST_UNKNOWN: manifest unknown");
}
