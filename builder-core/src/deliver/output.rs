//! Docker's `--output` syntax (`type=oci,dest=app.tar`), parsed into an [`Output`], and the
//! [`Exporter`] each output writes with.

use std::path::PathBuf;

use crate::export::{
    DockerArchiveExporter, Exporter, LocalExporter, OciArchiveExporter, OciLayoutExporter,
    TarExporter,
};

/// `KEY=VALUE` with a non-empty key; `what` names the flag in the error.
pub fn parse_kv(s: &str, what: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("invalid {what} {s:?}: expected KEY=VALUE")),
    }
}

/// A boolean option value, as Go's `strconv.ParseBool` (what BuildKit uses) reads it.
pub fn parse_bool(flag: &str, key: &str, v: &str) -> Result<bool, String> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!(
            "{flag} {key}={v:?} is not a boolean (expected true or false)"
        )),
    }
}

/// `NAME[:TAG]`: a valid image reference without a digest (a digest is not a tag).
pub fn check_tag(s: &str) -> Result<(), String> {
    let r = crate::registry::Reference::parse(s).map_err(|e| crate::report::chain(&e))?;
    if r.digest().is_some() {
        return Err(format!(
            "{s:?} has a digest; a tag is NAME[:TAG] (a digest names content, it cannot be set)"
        ));
    }
    Ok(())
}

/// One `--output`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// `type=oci,dest=FILE`: an OCI archive tar, as BuildKit writes it.
    OciArchive(PathBuf),
    /// `type=oci,dest=DIR,tar=false`: an OCI image layout directory.
    OciDir(PathBuf),
    /// `type=docker,dest=FILE`: a docker-archive tar for `docker load`.
    Docker(PathBuf),
    /// `type=local,dest=DIR`: the image's root filesystem.
    Local(PathBuf),
    /// `type=tar,dest=FILE`: the image's root filesystem as one tar.
    Tar(PathBuf),
    /// `type=image[,name=NAME]`: the image in the store, with these extra names.
    Image(Vec<String>),
    /// `type=registry[,name=NAME]` (or `type=image,push=true`): tagged with these extra names
    /// and pushed to the registry of every name, as `--push`.
    Registry(Vec<String>),
}

impl Output {
    /// Whether it writes to standard output (`dest=-`).
    pub fn is_stdout(&self) -> bool {
        match self {
            Output::OciArchive(p) | Output::Docker(p) | Output::Tar(p) => p.as_os_str() == "-",
            _ => false,
        }
    }

    /// The output as the flag names it (`-o type=docker`).
    pub fn kind(&self) -> &'static str {
        match self {
            Output::OciArchive(_) | Output::OciDir(_) => "-o type=oci",
            Output::Docker(_) => "-o type=docker",
            Output::Local(_) => "-o type=local",
            Output::Tar(_) => "-o type=tar",
            Output::Image(_) => "-o type=image",
            Output::Registry(_) => "-o type=registry",
        }
    }
}

/// Parses `type=...,dest=...[,tar=false]` (`-o`): an unknown field, a field given twice or a bad
/// boolean is an error naming the value.
pub fn parse_output(spec: &str) -> Result<Output, String> {
    let mut kind = None;
    let mut dest = None;
    let mut tar = None;
    let mut push = None;
    let mut names = Vec::new();
    for part in spec.split(',') {
        let (k, v) = parse_kv(part, "--output field")?;
        let twice = || format!("--output {spec:?} gives {k}= twice");
        match k.as_str() {
            "type" if kind.is_some() => return Err(twice()),
            "type" => kind = Some(v),
            "dest" if dest.is_some() => return Err(twice()),
            "dest" if v.is_empty() => return Err(format!("--output {spec:?}: dest= is empty")),
            "dest" => dest = Some(PathBuf::from(v)),
            "tar" if tar.is_some() => return Err(twice()),
            "tar" => tar = Some(parse_bool("--output", &k, &v)?),
            "name" => names.push(v),
            "push" if push.is_some() => return Err(twice()),
            "push" => push = Some(parse_bool("--output", &k, &v)?),
            other => {
                return Err(format!(
                    "unknown --output field {other:?} in {spec:?} (expected type, dest, tar, name or push)"
                ));
            }
        }
    }
    if tar.is_some() && kind.as_deref() != Some("oci") {
        return Err(format!("--output {spec:?}: tar= is only for type=oci"));
    }
    if push.is_some() && kind.as_deref() != Some("image") && kind.as_deref() != Some("registry") {
        return Err(format!("--output {spec:?}: push= is only for type=image"));
    }
    for n in &names {
        check_tag(n).map_err(|e| format!("--output {spec:?}: name {n:?}: {e}"))?;
    }
    if matches!(kind.as_deref(), Some("image" | "registry")) {
        if dest.is_some() {
            return Err(format!(
                "--output {spec:?}: type=image and type=registry take name=, not dest="
            ));
        }
        return Ok(match (kind.as_deref(), push) {
            (Some("registry"), Some(false)) => Output::Image(names),
            (Some("registry"), _) | (_, Some(true)) => Output::Registry(names),
            _ => Output::Image(names),
        });
    }
    if !names.is_empty() {
        return Err("--output name= is only for type=image and type=registry".into());
    }
    let dest = dest.ok_or_else(|| format!("--output {spec:?} needs dest="))?;
    let out = match kind.as_deref() {
        Some("oci") if tar.unwrap_or(true) => Output::OciArchive(dest),
        Some("oci") => Output::OciDir(dest),
        Some("docker") => Output::Docker(dest),
        Some("local") => Output::Local(dest),
        Some("tar") => Output::Tar(dest),
        Some(other) => {
            return Err(format!(
                "--output type={other} is not supported (oci, docker, local, tar, image, registry)"
            ));
        }
        None => return Err(format!("--output {spec:?} needs type=")),
    };
    if matches!(&out, Output::OciDir(p) | Output::Local(p) if p.as_os_str() == "-") {
        return Err(format!(
            "--output {spec:?}: a directory cannot go to standard output"
        ));
    }
    Ok(out)
}

impl Output {
    /// The exporter that writes this output; `None` for `type=image` and `type=registry`,
    /// which the build's tags (and the push) already are.
    pub fn exporter(&self) -> Option<Box<dyn Exporter>> {
        Some(match self {
            Output::OciArchive(p) => Box::new(OciArchiveExporter::new(p)),
            Output::OciDir(p) => Box::new(OciLayoutExporter::new(p)),
            Output::Docker(p) => Box::new(DockerArchiveExporter::new(p)),
            Output::Local(p) => Box::new(LocalExporter::new(p)),
            Output::Tar(p) => Box::new(TarExporter::new(p)),
            Output::Image(_) | Output::Registry(_) => return None,
        })
    }

    /// Whether it can hold an image index of several platforms (`type=local` and `type=tar`
    /// write one directory per platform).
    pub fn takes_several_platforms(&self) -> bool {
        matches!(
            self,
            Output::OciArchive(_)
                | Output::OciDir(_)
                | Output::Image(_)
                | Output::Registry(_)
                | Output::Local(_)
                | Output::Tar(_)
        )
    }
}

impl std::str::FromStr for Output {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        parse_output(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_parse_like_docker() {
        assert_eq!(
            parse_output("type=oci,dest=a.tar").unwrap(),
            Output::OciArchive("a.tar".into())
        );
        assert_eq!(
            parse_output("type=oci,dest=d,tar=false").unwrap(),
            Output::OciDir("d".into())
        );
        assert_eq!(
            parse_output("type=docker,dest=x").unwrap(),
            Output::Docker("x".into())
        );
        assert_eq!(
            parse_output("type=tar,dest=-").unwrap(),
            Output::Tar("-".into())
        );
        assert!(parse_output("type=tar,dest=-").unwrap().is_stdout());
        assert_eq!(
            parse_output("type=image,name=a:1").unwrap(),
            Output::Image(vec!["a:1".into()])
        );
        assert!(parse_output("type=local,dest=-").is_err());
        assert!(parse_output("type=registry,dest=x").is_err());
        assert_eq!(
            parse_output("type=registry,name=r.example/a:1").unwrap(),
            Output::Registry(vec!["r.example/a:1".into()])
        );
        assert_eq!(
            parse_output("type=image,name=a:1,push=true").unwrap(),
            Output::Registry(vec!["a:1".into()])
        );
        assert_eq!(
            parse_output("type=registry").unwrap(),
            Output::Registry(vec![])
        );
        assert!(parse_output("type=oci,dest=x,push=true").is_err());
        assert!(parse_output("type=registry,name=Bad Name").is_err());
        assert!(parse_output("type=oci").is_err());
        assert_eq!(
            parse_output("type=oci,dest=d,tar=0").unwrap(),
            Output::OciDir("d".into())
        );
        for bad in [
            "type=oci,dest=x,tar=maybe",
            "type=oci,dest=x,bogus=1",
            "type=docker,dest=x,tar=false",
            "type=oci,dest=x,dest=y",
            "type=oci,dest=",
            "dest=x",
        ] {
            assert!(parse_output(bad).is_err(), "{bad:?}");
        }
    }
}
