//! The flag parsers against Docker's forms.

use super::*;

#[test]
fn build_args_follow_docker() {
    assert_eq!(
        build_arg("A=1").unwrap(),
        BuildArg {
            name: "A".into(),
            value: Some("1".into())
        }
    );
    assert_eq!(build_arg("A=").unwrap().value, Some(String::new()));
    assert_eq!(build_arg("A").unwrap().value, None);
    assert_eq!(build_arg("A=b=c").unwrap().value, Some("b=c".into()));
    for bad in ["=x", "", "A B=1", " A=1", "A\t=1", "A\n"] {
        assert!(build_arg(bad).is_err(), "{bad:?}");
    }
    let proxy = build_arg("HTTP_PROXY=http://u:pw@proxy:3128").unwrap();
    assert!(!format!("{proxy:?}").contains("pw@"));
}

#[test]
fn tags_have_no_digest() {
    assert!(tag("app:1").is_ok());
    assert!(tag("localhost:5000/a/b").is_ok());
    let d = format!("app@sha256:{}", "a".repeat(64));
    assert!(tag(&d).unwrap_err().contains("digest"));
    assert!(tag("App:1").is_err());
    assert!(tag("app:-x").is_err());
    assert!(tag("").is_err());
}

#[test]
fn secrets_and_ssh_parse() {
    assert_eq!(
        secret("id=a,src=/f").unwrap().source,
        SecretSource::File("/f".into())
    );
    assert_eq!(
        secret("id=a,env=V").unwrap().source,
        SecretSource::Env("V".into())
    );
    assert_eq!(
        secret("id=a,type=env,src=V").unwrap().source,
        SecretSource::Env("V".into())
    );
    assert_eq!(
        secret("id=a").unwrap().source,
        SecretSource::Env("a".into())
    );
    for bad in [
        "src=/f",
        "id=a,bogus=1",
        "id=a,type=x",
        "id=",
        "id=a,src=x,env=y",
        "id",
    ] {
        assert!(secret(bad).is_err(), "{bad:?}");
    }
    assert!(ssh("default").unwrap().paths.is_empty());
    assert_eq!(ssh("a=/s").unwrap().paths, [std::path::PathBuf::from("/s")]);
    assert_eq!(ssh("a=/k1,/k2").unwrap().paths.len(), 2);
    for bad in ["", "=/s", "a=", "a=/s,", "a=,/t"] {
        assert!(ssh(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn cache_specs_parse() {
    use kiln_builder_core::builder::{CacheDestination, CacheMode, CacheSource};
    assert!(matches!(
        cache_from("type=registry,ref=r/c").unwrap(),
        CacheSource::Registry(_)
    ));
    assert!(matches!(
        cache_from("r/c:1").unwrap(),
        CacheSource::Registry(_)
    ));
    assert_eq!(
        cache_from("type=local,src=/c").unwrap(),
        CacheSource::Local {
            dir: "/c".into(),
            tag: "latest".into()
        }
    );
    let to = cache_to("type=registry,ref=r,mode=max").unwrap();
    assert_eq!(to.mode, CacheMode::Max);
    let to = cache_to("type=local,dest=/c,ignore-error=true").unwrap();
    assert_eq!(to.mode, CacheMode::Min);
    assert!(to.ignore_error);
    assert!(matches!(to.destination, CacheDestination::Local { .. }));
    assert_eq!(
        cache_to("type=inline").unwrap().destination,
        CacheDestination::Inline
    );
    for bad in [
        "type=registry,ref=r,mode=all",
        "type=registry,ref=r,bogus=1",
        "type=local,src=x",
        "type=local",
        "type=inline,mode=max",
        "type=gha",
        "type=registry",
        "type=registry,ref=r,ignore-error=maybe",
    ] {
        assert!(cache_to(bad).is_err(), "{bad:?}");
    }
    for bad in [
        "type=local,dest=x",
        "type=local",
        "type=s3,bucket=b",
        "Bad Ref",
    ] {
        assert!(cache_from(bad).is_err(), "{bad:?}");
    }
}
