//! Image references with Docker's normalisation rules: `busybox` is
//! `docker.io/library/busybox:latest`, `me/app` is `docker.io/me/app:latest`, a first component
//! with a `.` or `:` (or `localhost`) names the registry, `@sha256:` pins a digest.

use std::fmt;
use std::str::FromStr;

use crate::content::Digest;

/// Docker Hub's canonical registry name.
pub const DOCKER_HUB: &str = "docker.io";
/// The host Docker Hub's API answers on.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// The tag a reference without tag or digest means.
pub const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A fully qualified image reference: registry, repository, and a tag, a digest or both.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {input:?}: {reason}")]
pub struct InvalidReference {
    /// The string as given.
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

fn invalid(input: &str, reason: impl Into<String>) -> InvalidReference {
    InvalidReference {
        input: input.to_string(),
        reason: reason.into(),
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`: one component of a repository path.
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `host[:port]`: a DNS name, an IPv4 address or a bracketed IPv6 address, and a numeric port.
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip6, after)) => {
                if ip6.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                match after {
                    "" => return true,
                    p => match p.strip_prefix(':') {
                        Some(p) => ("x", Some(p)),
                        None => return false,
                    },
                }
            }
            None => return false,
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_TAG_LEN
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

impl Reference {
    /// Parses and normalises a reference the way `docker pull` does.
    pub fn parse(input: &str) -> Result<Self, InvalidReference> {
        if input.is_empty() {
            return Err(invalid(input, "it is empty"));
        }
        if input
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(invalid(input, "it contains whitespace"));
        }
        let (name_tag, digest) = match input.split_once('@') {
            Some((n, d)) => {
                let digest = match d.split_once(':') {
                    Some(("sha256", _)) => Digest::from_str(d).map_err(|_| {
                        invalid(
                            input,
                            "the digest must be sha256: and 64 lowercase hex digits",
                        )
                    })?,
                    Some((algo, _)) => {
                        return Err(invalid(
                            input,
                            format!("digest algorithm {algo:?} is not supported (only sha256)"),
                        ));
                    }
                    None => return Err(invalid(input, "the digest must look like sha256:<hex>")),
                };
                (n, Some(digest))
            }
            None => (input, None),
        };
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => (
                &name_tag[..last_slash + i],
                Some(&name_tag[last_slash + i + 1..]),
            ),
            None => (name_tag, None),
        };
        if let Some(t) = tag
            && !valid_tag(t)
        {
            return Err(invalid(
                input,
                format!("tag {t:?} must be 1-128 of [A-Za-z0-9_.-], not starting with . or -"),
            ));
        }
        if name.is_empty() {
            return Err(invalid(input, "the repository name is empty"));
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                (first, rest)
            }
            _ => (DOCKER_HUB, name),
        };
        if !valid_domain(domain) {
            return Err(invalid(
                input,
                format!("{domain:?} is not a valid registry host"),
            ));
        }
        let registry = if domain == "index.docker.io" || domain == DOCKER_HUB_API {
            DOCKER_HUB.to_string()
        } else {
            domain.to_string()
        };
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        if repository.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(invalid(input, "repository names must be lowercase"));
        }
        if let Some(bad) = repository.split('/').find(|c| !valid_path_component(c)) {
            return Err(invalid(
                input,
                format!(
                    "path component {bad:?} must be lowercase letters and digits separated by ., _, __ or -"
                ),
            ));
        }
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(invalid(
                input,
                format!("the name is longer than {MAX_NAME_LEN} characters"),
            ));
        }
        let tag = match (tag, digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_TAG.to_string()),
        };
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The registry as named in references (`docker.io`, `127.0.0.1:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host (and port) the registry's API is reached on (`registry-1.docker.io` for Docker
    /// Hub).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// The repository path (`library/busybox`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The pinned digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What the registry's manifest endpoint is asked for: the digest if pinned, else the tag.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Self, InvalidReference> {
        if !valid_tag(tag) {
            return Err(invalid(tag, "not a valid tag"));
        }
        Ok(Self {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }

    /// The same repository pinned to `digest` (tag dropped).
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The reference without its digest (the tag alone; `latest` if there was none).
    pub fn without_digest(&self) -> Self {
        Self {
            tag: Some(self.tag.clone().unwrap_or_else(|| DEFAULT_TAG.to_string())),
            digest: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

impl FromStr for Reference {
    type Err = InvalidReference;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Docker's normalisation of a reference as a string (`busybox` →
/// `docker.io/library/busybox:latest`). Strings that are not valid references are returned as
/// they are, so callers that only use the result as a name never fail; use [`Reference::parse`]
/// to reject them.
pub fn normalize_reference(reference: &str) -> String {
    Reference::parse(reference).map_or_else(|_| reference.to_string(), |r| r.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("app:1"), "docker.io/library/app:1");
        assert_eq!(norm("me/app"), "docker.io/me/app:latest");
        assert_eq!(norm("localhost:5000/a/b:t"), "localhost:5000/a/b:t");
        assert_eq!(norm("localhost/a"), "localhost/a:latest");
        assert_eq!(norm("host:5000/a/b:tag"), "host:5000/a/b:tag");
        assert_eq!(norm("ghcr.io/x/y"), "ghcr.io/x/y:latest");
        assert_eq!(
            norm("index.docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            norm("docker.io/busybox:1.36"),
            "docker.io/library/busybox:1.36"
        );
        assert_eq!(norm("[::1]:5000/a:b"), "[::1]:5000/a:b");
        assert_eq!(
            norm("a__b/c-d.e/f---g:T_1.x-y"),
            "docker.io/a__b/c-d.e/f---g:T_1.x-y"
        );
        let hex = "a".repeat(64);
        let r = Reference::parse(&format!("alpine@sha256:{hex}")).unwrap();
        assert_eq!(
            r.to_string(),
            format!("docker.io/library/alpine@sha256:{hex}")
        );
        assert_eq!(r.tag(), None);
        assert_eq!(r.manifest_ref(), format!("sha256:{hex}"));
        let r = Reference::parse(&format!("127.0.0.1:5000/x/y:1@sha256:{hex}")).unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "x/y");
        assert_eq!(r.tag(), Some("1"));
        assert_eq!(r.manifest_ref(), format!("sha256:{hex}"));
        assert_eq!(r.api_host(), "127.0.0.1:5000");
        assert_eq!(
            Reference::parse("busybox").unwrap().api_host(),
            DOCKER_HUB_API
        );
    }

    #[test]
    fn rejects_invalid_references() {
        for bad in [
            "",
            "Busybox",
            "docker.io/Me/app",
            "a b",
            "app:",
            "app:-x",
            "app:.x",
            &format!("app:{}", "x".repeat(129)),
            "app@sha256:abc",
            &format!("app@md5:{}", "a".repeat(32)),
            &format!("app@sha256:{}", "A".repeat(64)),
            "-app",
            "app-",
            "a..b",
            "a/",
            "/a",
            "a//b",
            "host:port/a",
            "[::1/a",
            "ex-.com/a",
            ":tag",
            "@sha256:",
        ] {
            let e = Reference::parse(bad).expect_err(bad);
            assert!(e.to_string().contains("invalid image reference"), "{e}");
        }
        let e = Reference::parse("docker.io/Me/app").unwrap_err();
        assert!(e.to_string().contains("lowercase"), "{e}");
    }

    #[test]
    fn string_normalization_keeps_invalid_input() {
        assert_eq!(
            normalize_reference("busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(normalize_reference("Not Valid"), "Not Valid");
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics_and_round_trips(input in "[a-zA-Z0-9:/@._\\-\\[\\]]{0,80}") {
            if let Ok(r) = Reference::parse(&input) {
                let again = Reference::parse(&r.to_string()).unwrap();
                proptest::prop_assert_eq!(again, r);
            }
        }

        #[test]
        fn short_names_normalise_and_round_trip(
            input in "([a-z0-9]{1,6}\\.[a-z]{2,3}(:[0-9]{2,5})?/)?[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2}(:[a-z0-9]{1,5})?"
        ) {
            let r = Reference::parse(&input).unwrap();
            proptest::prop_assert!(r.tag().is_some());
            let again = Reference::parse(&r.to_string()).unwrap();
            proptest::prop_assert_eq!(again, r);
        }
    }
}
