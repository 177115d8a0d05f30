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

use crate::image::Platform;

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

/// The platform args as BuildKit defines them: `TARGETPLATFORM`, `TARGETOS`, `TARGETARCH`,
/// `TARGETVARIANT` for the platform built for, `BUILDPLATFORM`, `BUILDOS`, `BUILDARCH`,
/// `BUILDVARIANT` for the machine building (normalized: `linux/arm64` has no variant,
/// `linux/arm/v7` has `v7`).
pub fn platform_args(target: &Platform, build: &Platform) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (prefix, p) in [("TARGET", target), ("BUILD", build)] {
        let p = p.normalized();
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
