use super::*;

#[test]
fn secrets_are_redacted() {
    let c = Credentials::new("me", "hunter2");
    let dbg = format!("{c:?}");
    assert!(dbg.contains("me") && !dbg.contains("hunter2"), "{dbg}");
}

#[test]
fn auths_entries_are_found_by_host() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::json!({
            "auths": {
                "https://index.docker.io/v1/": {"auth": BASE64.encode("hub:pw1")},
                "https://127.0.0.1:5000/v2/": {"auth": BASE64.encode("u:p:with:colons")},
                "ghcr.io": {"username": "g", "password": "pw3"},
                "acr.example": {"auth": "", "identitytoken": "refresh-me"}
            },
            "other": 1
        })
        .to_string(),
    )
    .unwrap();
    let cfg = DockerConfig::load(dir.path()).unwrap();
    let hub = cfg.credentials("docker.io").unwrap().unwrap();
    assert_eq!(
        (hub.username.as_str(), hub.password.expose()),
        ("hub", "pw1")
    );
    let local = cfg.credentials("127.0.0.1:5000").unwrap().unwrap();
    assert_eq!(local.password.expose(), "p:with:colons");
    assert_eq!(cfg.credentials("ghcr.io").unwrap().unwrap().username, "g");
    let acr = cfg.credentials("acr.example").unwrap().unwrap();
    assert!(acr.is_identity_token());
    assert_eq!(acr.password.expose(), "refresh-me");
    assert!(cfg.credentials("quay.io").unwrap().is_none());
    let opts = super::super::RegistryOptions {
        credentials: Some(local),
        ..Default::default()
    };
    let dbg = format!("{cfg:?} {opts:?}");
    for secret in [
        "pw1",
        &BASE64.encode("hub:pw1"),
        "pw3",
        "refresh-me",
        "with:colons",
    ] {
        assert!(!dbg.contains(secret), "{secret} in {dbg}");
    }
}

#[test]
fn store_and_erase_keep_other_fields() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), r#"{"psFormat":"x"}"#).unwrap();
    let mut cfg = DockerConfig::load(dir.path()).unwrap();
    cfg.store("127.0.0.1:1", &Credentials::new("a", "b"))
        .unwrap();
    let mode = std::fs::metadata(dir.path().join("config.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let cfg2 = DockerConfig::load(dir.path()).unwrap();
    assert_eq!(
        cfg2.credentials("127.0.0.1:1").unwrap(),
        Some(Credentials::new("a", "b"))
    );
    let mut cfg3 = cfg2.clone();
    assert!(cfg3.erase("127.0.0.1:1").unwrap());
    let text = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    assert!(
        text.contains("psFormat") && !text.contains("127.0.0.1:1"),
        "{text}"
    );
}

#[test]
fn helpers_are_run_for_their_registries() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let helper = bin.join("docker-credential-kilntest");
    std::fs::write(
        &helper,
        "#!/bin/sh\nread server\nif [ \"$1\" = get ] && [ \"$server\" = reg.example:5000 ]; then\n  echo '{\"ServerURL\":\"reg.example:5000\",\"Username\":\"hu\",\"Secret\":\"hs\"}'\nelse\n  echo 'credentials not found in native keychain'; exit 1\nfi\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"credHelpers":{"reg.example:5000":"kilntest"}}"#,
    )
    .unwrap();
    let cfg = DockerConfig::load(dir.path())
        .unwrap()
        .with_helper_path(format!("{}:/usr/bin:/bin", bin.display()));
    let c = cfg.credentials("reg.example:5000").unwrap().unwrap();
    assert_eq!((c.username.as_str(), c.password.expose()), ("hu", "hs"));
    assert!(cfg.credentials("other.example").unwrap().is_none());
}
