//! Parsers for `kiln build`'s structured flags, run by clap as value parsers so that a malformed
//! value is a usage error (exit code 2) that names the flag and the value, before anything runs.
//! Only syntax is checked here; files, sockets and environment variables are read later.

use std::path::PathBuf;

/// `KEY=VALUE` with a non-empty key.
pub(crate) fn parse_kv(s: &str, what: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("invalid {what} {s:?}: expected KEY=VALUE")),
    }
}

/// A boolean option value, as Go's `strconv.ParseBool` (what BuildKit uses) reads it.
pub(crate) fn parse_bool(flag: &str, key: &str, v: &str) -> Result<bool, String> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!(
            "{flag} {key}={v:?} is not a boolean (expected true or false)"
        )),
    }
}

/// One `--build-arg`. Its `Debug` redacts the userinfo of URLs (proxy args carry credentials).
#[derive(Clone, PartialEq, Eq)]
pub struct BuildArg {
    /// The name.
    pub name: String,
    /// The value; `None` for a bare `NAME`, which takes its value from the environment.
    pub value: Option<String>,
}

impl std::fmt::Debug for BuildArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildArg")
            .field("name", &self.name)
            .field(
                "value",
                &self
                    .value
                    .as_deref()
                    .map(kiln_builder_core::secret::redact_userinfo),
            )
            .finish()
    }
}

/// `--build-arg NAME=VALUE` or `--build-arg NAME`. Docker refuses an empty name; kiln also
/// refuses whitespace and control characters in it, which no `ARG` could ever declare.
pub fn build_arg(s: &str) -> Result<BuildArg, String> {
    let (name, value) = match s.split_once('=') {
        Some((n, v)) => (n, Some(v.to_string())),
        None => (s, None),
    };
    if name.is_empty() {
        return Err(format!("build-arg name is empty in {s:?}"));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "build-arg name {name:?} contains whitespace or control characters"
        ));
    }
    Ok(BuildArg {
        name: name.to_string(),
        value,
    })
}

/// `--label KEY=VALUE`.
/// `--platform OS/ARCH[/VARIANT]`.
pub fn platform(s: &str) -> Result<kiln_builder_core::image::Platform, String> {
    kiln_builder_core::image::Platform::parse(s)
        .ok_or_else(|| format!("invalid platform {s:?}: expected OS/ARCH[/VARIANT]"))
}

pub fn label(s: &str) -> Result<(String, String), String> {
    parse_kv(s, "label")
}

/// `-t NAME[:TAG]`: a valid image reference without a digest (a digest is not a tag).
pub fn tag(s: &str) -> Result<String, String> {
    let r = kiln_builder_core::registry::Reference::parse(s).map_err(|e| e.to_string())?;
    if r.digest().is_some() {
        return Err(format!(
            "{s:?} has a digest; a tag is NAME[:TAG] (a digest names content, it cannot be set)"
        ));
    }
    Ok(s.to_string())
}

/// Where a `--secret` value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

/// One `--secret`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFlag {
    /// The id `RUN --mount=type=secret,id=...` names.
    pub id: String,
    /// Where the value comes from.
    pub source: SecretSource,
}

/// `--secret id=ID[,type=file|env][,src=PATH|env=VAR]`. Without a source the value comes from
/// the environment variable named like the id, as Docker does.
pub fn secret(spec: &str) -> Result<SecretFlag, String> {
    let mut id = None;
    let mut src = None;
    let mut env = None;
    let mut kind = None;
    for part in spec.split(',') {
        let (k, v) = parse_kv(part, "--secret field")?;
        match k.as_str() {
            "id" => id = Some(v),
            "src" | "source" => src = Some(v),
            "env" => env = Some(v),
            "type" if v == "file" || v == "env" => kind = Some(v),
            "type" => return Err(format!("--secret type={v:?} is not file or env")),
            other => {
                return Err(format!(
                    "unknown --secret field {other:?} (expected id, type, src or env)"
                ));
            }
        }
    }
    let id = id
        .filter(|i| !i.is_empty())
        .ok_or_else(|| format!("--secret {spec:?} needs id="))?;
    let source = match (kind.as_deref(), src, env) {
        (_, Some(_), Some(_)) => {
            return Err(format!("--secret {spec:?} has both src= and env="));
        }
        (Some("env"), Some(var), None) | (_, None, Some(var)) => SecretSource::Env(var),
        (_, Some(path), None) => SecretSource::File(PathBuf::from(path)),
        (_, None, None) => SecretSource::Env(id.clone()),
    };
    Ok(SecretFlag { id, source })
}

/// One `--ssh`: an id and its agent socket (`None`: `$SSH_AUTH_SOCK`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshFlag {
    /// The id `RUN --mount=type=ssh` names.
    pub id: String,
    /// The agent socket.
    pub socket: Option<PathBuf>,
}

/// `--ssh default`, `--ssh ID`, `--ssh ID=SOCKET`.
pub fn ssh(spec: &str) -> Result<SshFlag, String> {
    let (id, socket) = match spec.split_once('=') {
        Some((id, path)) => (id, Some(path)),
        None => (spec, None),
    };
    if id.is_empty() || id.contains(',') || socket.is_some_and(|p| p.is_empty() || p.contains(','))
    {
        return Err(format!(
            "--ssh {spec:?}: expected `default`, `ID` or `ID=SOCKET` (one agent socket)"
        ));
    }
    Ok(SshFlag {
        id: id.to_string(),
        socket: socket.map(PathBuf::from),
    })
}

/// `--cache-from`: `type=registry,ref=REF`, `type=local,src=DIR[,tag=T]` or a bare `REF`.
pub fn cache_from(spec: &str) -> Result<kiln_builder_core::cache_transfer::CacheSource, String> {
    kiln_builder_core::cache_transfer::CacheSource::parse(spec).map_err(|e| e.to_string())
}

/// `--cache-to`: `type=registry,ref=REF`, `type=local,dest=DIR[,tag=T]` or `type=inline`, with
/// `mode=min|max` and `ignore-error=true|false`.
pub fn cache_to(spec: &str) -> Result<kiln_builder_core::cache_transfer::CacheExport, String> {
    kiln_builder_core::cache_transfer::CacheExport::parse(spec).map_err(|e| e.to_string())
}

/// `--annotation [TYPE:]KEY=VALUE`.
pub fn annotation(s: &str) -> Result<String, String> {
    kiln_builder_core::image::Annotations::default()
        .add(s)
        .map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

/// `--provenance`: `true`/`false`, `min`/`max` or `mode=min|max` (BuildKit's forms; bare
/// `--provenance` is `mode=min`).
pub fn provenance(s: &str) -> Result<Provenance, String> {
    use kiln_builder_core::attest::provenance::ProvenanceMode;
    let mut out = Some(ProvenanceMode::Min);
    for part in s.split(',') {
        out = match part {
            "mode=min" | "min" => Some(ProvenanceMode::Min),
            "mode=max" | "max" => Some(ProvenanceMode::Max),
            v => match parse_bool("--provenance", "value", v) {
                Ok(true) => out,
                Ok(false) => None,
                Err(_) => {
                    return Err(format!(
                        "--provenance {s:?}: expected true, false, mode=min or mode=max"
                    ));
                }
            },
        };
    }
    Ok(Provenance(out))
}

/// A parsed `--provenance`: the mode, or `None` for `false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provenance(pub Option<kiln_builder_core::attest::provenance::ProvenanceMode>);

/// `-o`/`--output`.
pub fn output(spec: &str) -> Result<super::export::Output, String> {
    super::export::parse_output(spec)
}

/// `--add-host NAME:IP`, checked.
pub(crate) fn add_host(s: &str) -> Result<String, String> {
    kiln_builder_core::exec::StepSettings::default().add_host(s)?;
    Ok(s.to_owned())
}

/// `--shm-size SIZE`, checked.
pub(crate) fn shm_size(s: &str) -> Result<String, String> {
    kiln_builder_core::exec::StepSettings::default().set_shm_size(s)?;
    Ok(s.to_owned())
}

/// `--ulimit NAME=SOFT[:HARD]`, checked.
pub(crate) fn ulimit(s: &str) -> Result<String, String> {
    kiln_builder_core::exec::Ulimit::parse(s)?;
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
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
        assert_eq!(ssh("default").unwrap().socket, None);
        assert_eq!(ssh("a=/s").unwrap().socket, Some("/s".into()));
        for bad in ["", "=/s", "a=", "a=/s,/t"] {
            assert!(ssh(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cache_specs_parse() {
        use kiln_builder_core::cache_transfer::{CacheDestination, CacheMode, CacheSource};
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
}
