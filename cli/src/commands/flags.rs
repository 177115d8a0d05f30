//! Parsers for `kiln build`'s structured flags, run by clap as value parsers so that a malformed
//! value is a usage error (exit code 2) that names the flag and the value, before anything runs.
//! Only syntax is checked here; files, sockets and environment variables are read later.

use std::path::PathBuf;

pub(crate) use kiln_builder_core::deliver::{parse_bool, parse_kv};

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
    kiln_builder_core::deliver::check_tag(s)?;
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
    /// An agent socket, or private key files.
    pub paths: Vec<PathBuf>,
}

/// `--ssh default`, `--ssh ID`, `--ssh ID=SOCKET`, `--ssh ID=KEYFILE[,KEYFILE...]`.
pub fn ssh(spec: &str) -> Result<SshFlag, String> {
    let (id, paths) = match spec.split_once('=') {
        Some((id, paths)) => (id, paths.split(',').collect::<Vec<_>>()),
        None => (spec, Vec::new()),
    };
    if id.is_empty() || id.contains(',') || paths.iter().any(|p| p.is_empty()) {
        return Err(format!(
            "--ssh {spec:?}: expected `default`, `ID`, `ID=SOCKET` or `ID=KEYFILE[,KEYFILE...]`"
        ));
    }
    Ok(SshFlag {
        id: id.to_string(),
        paths: paths.into_iter().map(PathBuf::from).collect(),
    })
}

/// `--cache-from`: `type=registry,ref=REF`, `type=local,src=DIR[,tag=T]` or a bare `REF`.
pub fn cache_from(spec: &str) -> Result<kiln_builder_core::builder::CacheSource, String> {
    kiln_builder_core::builder::CacheSource::parse(spec)
        .map_err(|e| kiln_builder_core::error::chain(&e))
}

/// `--cache-to`: `type=registry,ref=REF`, `type=local,dest=DIR[,tag=T]` or `type=inline`, with
/// `mode=min|max` and `ignore-error=true|false`.
pub fn cache_to(spec: &str) -> Result<kiln_builder_core::builder::CacheExport, String> {
    kiln_builder_core::builder::CacheExport::parse(spec)
        .map_err(|e| kiln_builder_core::error::chain(&e))
}

/// `--annotation [TYPE:]KEY=VALUE`.
pub fn annotation(s: &str) -> Result<String, String> {
    kiln_builder_core::image::Annotations::default()
        .add(s)
        .map_err(|e| kiln_builder_core::error::chain(&e))?;
    Ok(s.to_string())
}

/// `--provenance`: `true`/`false`, `min`/`max` or `mode=min|max` (BuildKit's forms; bare
/// `--provenance` is `mode=min`).
pub fn provenance(s: &str) -> Result<Provenance, String> {
    use kiln_builder_core::builder::ProvenanceMode;
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
pub struct Provenance(pub Option<kiln_builder_core::builder::ProvenanceMode>);

/// `-o`/`--output`.
pub fn output(spec: &str) -> Result<kiln_builder_core::deliver::Output, String> {
    kiln_builder_core::deliver::parse_output(spec)
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
mod tests;
