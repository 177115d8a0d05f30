//! Platforms (`os/architecture[/variant]`) with containerd's normalization and matching rules, and
//! the host's own platform. This is the one platform type of the crate: the planner's platform
//! args, base image selection, image configs and index entries all use it.

use serde::{Deserialize, Serialize};

use super::oci::Extra;

/// An image platform (`os/architecture[/variant]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture in Go's names (`amd64`, `arm64`, ...).
    pub architecture: String,
    /// Operating system (`linux`).
    pub os: String,
    /// OS version (Windows).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// OS features (Windows).
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    /// CPU variant (`v7`, `v8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl std::hash::Hash for Platform {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.to_string().hash(state);
    }
}

impl PartialOrd for Platform {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Platform {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Unknown fields are left out (JSON values have no order); kiln's platforms have none.
        (
            &self.os,
            &self.architecture,
            &self.variant,
            &self.os_version,
            &self.os_features,
        )
            .cmp(&(
                &other.os,
                &other.architecture,
                &other.variant,
                &other.os_version,
                &other.os_features,
            ))
    }
}

impl Platform {
    /// The platform of this machine, normalized (`linux/amd64`, `linux/arm64`, `linux/arm/v7`...):
    /// what a build targets and runs natively unless told otherwise.
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "powerpc64" => "ppc64",
            "mips64" if cfg!(target_endian = "little") => "mips64le",
            "mips" if cfg!(target_endian = "little") => "mipsle",
            "loongarch64" => "loong64",
            other => other,
        };
        Self::new(std::env::consts::OS, arch, None).normalized()
    }

    /// A platform from its parts, as given (see [`Platform::normalized`]).
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Self {
            architecture: architecture.to_string(),
            os: os.to_string(),
            os_version: None,
            os_features: None,
            variant: variant.map(str::to_string),
            extra: Extra::new(),
        }
    }

    /// Parses `os/arch[/variant]`, normalized as containerd does (`x86_64` is `amd64`, `aarch64`
    /// and `arm64/v8` are `arm64`, `arm` is `arm/v7`, `armhf` is `arm/v7`).
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.trim().split('/');
        let os = parts.next().filter(|p| !p.is_empty())?;
        let arch = parts.next().filter(|p| !p.is_empty())?;
        let variant = parts.next();
        if parts.next().is_some() || variant.is_some_and(str::is_empty) {
            return None;
        }
        let ok = |p: &str| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        };
        if !ok(os) || !ok(arch) || !variant.is_none_or(ok) {
            return None;
        }
        Some(
            Self::new(
                &os.to_ascii_lowercase(),
                &arch.to_ascii_lowercase(),
                variant.map(str::to_ascii_lowercase).as_deref(),
            )
            .normalized(),
        )
    }

    /// Parses a comma-separated list (`linux/amd64,linux/arm64`), dropping repeats.
    pub fn parse_list(s: &str) -> Result<Vec<Self>, String> {
        let mut out: Vec<Platform> = Vec::new();
        for part in s.split(',') {
            let p = Self::parse(part).ok_or_else(|| {
                format!(
                    "invalid platform {:?}: expected OS/ARCH[/VARIANT]",
                    part.trim()
                )
            })?;
            if !out.contains(&p) {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// The canonical spelling: the form BuildKit reports in `TARGETPLATFORM` and writes into
    /// image configs. Only os, architecture and variant are kept.
    pub fn normalized(&self) -> Self {
        let os = self.os.to_ascii_lowercase();
        let (arch, variant) = normalize_arch(&self.architecture, self.variant.as_deref());
        let variant = match (arch, variant) {
            // containerd's default variants are implied, not spelled out.
            ("arm64", Some("v8")) => None,
            (_, v) => v,
        };
        Self::new(&os, arch, variant)
    }

    /// Whether an image built for `self` is for exactly `want` (same OS and architecture, and the
    /// same variant once defaults are made explicit: `arm64` is `v8`, `arm` is `v7`, `amd64` is
    /// `v1`).
    pub fn matches(&self, want: &Platform) -> bool {
        let (a, av) = normalize_arch(&self.architecture, self.variant.as_deref());
        let (b, bv) = normalize_arch(&want.architecture, want.variant.as_deref());
        self.os.eq_ignore_ascii_case(&want.os) && a == b && av == bv
    }

    /// The platforms whose images run on `self`, best first, as containerd orders them for one
    /// architecture: `self`, then older variants (`arm/v7`, `arm/v6`, `arm/v5`; `amd64/v3`,
    /// `amd64/v2`, `amd64`). Other architectures (`386` on `amd64`) are not offered: an image
    /// of another architecture is a different image, not a fallback.
    pub fn compatible(&self) -> Vec<Platform> {
        let own = self.normalized();
        let mut out = vec![own.clone()];
        let version = own
            .variant
            .as_deref()
            .and_then(|v| v.strip_prefix('v'))
            .and_then(|v| v.parse::<u32>().ok());
        let lowest = match own.architecture.as_str() {
            "arm" => 5,
            "amd64" => 1,
            _ => return out,
        };
        if let Some(v) = version {
            for older in (lowest..v).rev() {
                let variant = format!("v{older}");
                let p = Self::new(&own.os, &own.architecture, Some(&variant)).normalized();
                out.push(p);
            }
        }
        out
    }

    /// Whether this machine runs binaries of `self` without an emulator.
    pub fn is_native(&self) -> bool {
        let host = Self::host();
        host.compatible().iter().any(|p| p.matches(self))
            || (host.architecture == "amd64" && self.architecture == "386")
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

/// Normalizes an architecture and variant the way containerd's platform matcher does, making the
/// default variant explicit (`None` for architectures without variants).
fn normalize_arch<'a>(arch: &'a str, variant: Option<&'a str>) -> (&'a str, Option<&'a str>) {
    let variant = variant.filter(|v| !v.is_empty());
    match arch {
        "x86_64" | "x86-64" | "amd64" => ("amd64", variant.filter(|v| *v != "v1")),
        "aarch64" | "arm64" => (
            "arm64",
            Some(match variant {
                None | Some("8" | "v8" | "v8.0") => "v8",
                Some(v) => v,
            }),
        ),
        "armhf" => ("arm", Some("v7")),
        "armel" => ("arm", Some("v6")),
        "arm" => (
            "arm",
            Some(match variant {
                None | Some("7") => "v7",
                Some("5") => "v5",
                Some("6") => "v6",
                Some("8") => "v8",
                Some(v) => v,
            }),
        ),
        "i386" | "386" => ("386", variant),
        other => (other, variant),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalizes_like_containerd() {
        let p = |s: &str| Platform::parse(s).map(|p| p.to_string());
        assert_eq!(p("linux/arm64").as_deref(), Some("linux/arm64"));
        assert_eq!(p("linux/arm64/v8").as_deref(), Some("linux/arm64"));
        assert_eq!(p("linux/aarch64").as_deref(), Some("linux/arm64"));
        assert_eq!(p("linux/arm").as_deref(), Some("linux/arm/v7"));
        assert_eq!(p("linux/armhf").as_deref(), Some("linux/arm/v7"));
        assert_eq!(p("Linux/x86_64").as_deref(), Some("linux/amd64"));
        assert_eq!(p("linux/amd64/v1").as_deref(), Some("linux/amd64"));
        assert_eq!(p("linux/amd64/v3").as_deref(), Some("linux/amd64/v3"));
        for bad in [
            "linux",
            "linux/",
            "/arm64",
            "linux/arm/v7/x",
            "linux/arm/",
            "a b/c",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }

    #[test]
    fn lists_keep_order_and_drop_repeats() {
        let l = Platform::parse_list("linux/amd64, linux/arm64,linux/aarch64").unwrap();
        let names: Vec<String> = l.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["linux/amd64", "linux/arm64"]);
        assert!(Platform::parse_list("linux/amd64,").is_err());
    }

    #[test]
    fn older_variants_are_compatible() {
        let names = |s: &str| {
            Platform::parse(s)
                .unwrap()
                .compatible()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names("linux/arm/v7"),
            ["linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]
        );
        assert_eq!(
            names("linux/amd64/v3"),
            ["linux/amd64/v3", "linux/amd64/v2", "linux/amd64"]
        );
        assert_eq!(names("linux/arm64"), ["linux/arm64"]);
    }

    #[test]
    fn host_is_the_machine_running_the_tests() {
        let host = Platform::host();
        let expected = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        assert_eq!(host.architecture, expected);
        assert_eq!(host.os, "linux");
        assert!(host.is_native());
        let foreign = if expected == "arm64" {
            "linux/amd64"
        } else {
            "linux/arm64"
        };
        assert!(!Platform::parse(foreign).unwrap().is_native());
    }
}
