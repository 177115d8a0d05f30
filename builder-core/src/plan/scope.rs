//! Build-arg and environment scoping with Docker's precedence rules.
//!
//! - Global ARGs (before the first FROM) are visible only to FROM lines, and to a stage that
//!   re-declares them with `ARG NAME`.
//! - `--build-arg` overrides an ARG's default; an ARG nobody declared has no effect (and is
//!   reported as unused), except the predefined proxy args, which reach RUN without declaration
//!   but never reach cache keys or history.
//! - Inside a stage, ENV always wins over an ARG of the same name.
//! - The platform args (`TARGETPLATFORM`, `BUILDOS`, ...) are global args that exist without being
//!   declared.

use std::collections::{BTreeMap, BTreeSet};

/// Build args that reach RUN steps without being declared, and never reach cache keys or history.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The platform args for a build on and for `linux/amd64`.
pub fn platform_args(target: &Platform, build: &Platform) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (prefix, p) in [("TARGET", target), ("BUILD", build)] {
        out.push((format!("{prefix}PLATFORM"), p.to_string()));
        out.push((format!("{prefix}OS"), p.os.clone()));
        out.push((format!("{prefix}ARCH"), p.architecture.clone()));
        out.push((
            format!("{prefix}VARIANT"),
            p.variant.clone().unwrap_or_default(),
        ));
    }
    out
}

/// An OS/architecture pair with an optional variant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    /// `linux`
    pub os: String,
    /// `amd64`
    pub architecture: String,
    /// `v8`, ...
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of this machine as kiln supports it: `linux/amd64`.
    pub fn linux_amd64() -> Self {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('/');
        let os = parts.next().filter(|p| !p.is_empty())?.to_ascii_lowercase();
        let architecture = parts.next().filter(|p| !p.is_empty())?.to_ascii_lowercase();
        let variant = parts.next().map(|v| v.to_ascii_lowercase());
        if parts.next().is_some() {
            return None;
        }
        Some(Platform {
            os,
            architecture,
            variant,
        })
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The values that `$VAR` can see at one point of a stage.
#[derive(Debug, Clone, Default)]
pub struct StageScope {
    /// ARGs declared in the stage so far, with their values (`None`: declared without value).
    pub args: Vec<(String, Option<String>)>,
}

impl StageScope {
    /// Declares `name` with a value (or none), replacing an earlier declaration.
    pub fn declare(&mut self, name: &str, value: Option<String>) {
        self.args.retain(|(n, _)| n != name);
        self.args.push((name.to_string(), value));
    }

    /// The value of an ARG declared in this stage.
    pub fn arg(&self, name: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// Tracks which `--build-arg`s were consumed, for the "unused build arg" warning.
#[derive(Debug, Default)]
pub struct ArgUsage {
    /// Names declared by some ARG the build ran through.
    pub declared: BTreeSet<String>,
}

impl ArgUsage {
    /// Build args that no ARG declared (proxy args excepted), sorted.
    pub fn unused<'a>(&self, build_args: &'a BTreeMap<String, String>) -> Vec<&'a str> {
        build_args
            .keys()
            .filter(|k| !self.declared.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
            .filter(|k| k.as_str() != super::frontend::SYNTAX_ARG)
            .map(String::as_str)
            .collect()
    }
}
