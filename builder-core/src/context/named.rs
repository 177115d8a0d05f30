//! Named build contexts (`kiln build --build-context NAME=VALUE`, BuildKit's named contexts).
//!
//! A Dockerfile never names a host path: local directories and OCI layouts reach a build only
//! when the person running it grants them here, and the Dockerfile refers to them by name
//! (`FROM NAME`, `COPY --from=NAME`, `RUN --mount=from=NAME`). A named context overrides a stage
//! or an image of the same name, as in BuildKit.
//!
//! ```
//! use kiln_builder_core::builder::{BuildContexts, NamedContext};
//! let mut contexts = BuildContexts::new();
//! let (name, ctx) = BuildContexts::parse_spec("base=docker-image://alpine:3.20").unwrap();
//! contexts.insert(&name, ctx).unwrap();
//! assert!(matches!(contexts.get("base"), Some(NamedContext::DockerImage(_))));
//! // Names compare as image references do: `docker.io/library/base:latest` is `base`.
//! assert!(contexts.get("docker.io/library/base").is_some());
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

use crate::content::Digest;
use crate::registry::Reference;

/// The scheme of an OCI image layout value: `oci-layout://DIR[:TAG|@sha256:DIGEST]`.
pub const OCI_LAYOUT_SCHEME: &str = "oci-layout://";
/// The scheme of an image reference value: `docker-image://REF`.
pub const DOCKER_IMAGE_SCHEME: &str = "docker-image://";

pub use crate::import::LayoutSelector;

/// What a named context is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedContext {
    /// A local directory, read like the main context (its own `.dockerignore` applies).
    Dir(PathBuf),
    /// An image from a local OCI image layout; without a selector the layout's only image.
    OciLayout {
        /// The layout directory.
        dir: PathBuf,
        /// Which image.
        select: Option<LayoutSelector>,
    },
    /// An image reference that replaces the name (`docker-image://alpine:3`).
    DockerImage(Reference),
}

/// Why a `--build-context` value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamedContextError {
    /// Not `NAME=VALUE`.
    #[error(
        "invalid build context {spec:?}: expected NAME=DIR, NAME=oci-layout://DIR[:TAG] or NAME=docker-image://REF"
    )]
    Syntax {
        /// The value as given.
        spec: String,
    },
    /// The name is not a valid image name (BuildKit's rule).
    #[error("invalid build context name {name:?}: {reason}")]
    Name {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The same name was given twice.
    #[error("build context {name:?} is given twice")]
    Duplicate {
        /// The name.
        name: String,
    },
    /// A scheme kiln does not read.
    #[error(
        "build context {name:?}: unsupported source {value:?} (use a directory, oci-layout://DIR[:TAG] or docker-image://REF)"
    )]
    Scheme {
        /// The name.
        name: String,
        /// The value.
        value: String,
    },
    /// A `docker-image://` reference or an `oci-layout://` selector is invalid.
    #[error("build context {name:?}: {reason}")]
    Value {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
}

/// The named contexts of a build, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildContexts {
    /// Keyed by the normalised name ([`BuildContexts::key`]), with the name as given.
    contexts: BTreeMap<String, (String, NamedContext)>,
}

impl BuildContexts {
    /// No named contexts.
    pub fn new() -> Self {
        Self::default()
    }

    /// The key a name is compared by: the name as a normalised image reference, so `alpine`,
    /// `alpine:latest` and `docker.io/library/alpine` are one name, as BuildKit compares them.
    /// `None` for a name that is not a valid image name.
    pub fn key(name: &str) -> Option<String> {
        Reference::parse(name).ok().map(|r| r.to_string())
    }

    /// Adds a context.
    pub fn insert(&mut self, name: &str, context: NamedContext) -> Result<(), NamedContextError> {
        let key = Reference::parse(name)
            .map_err(|e| NamedContextError::Name {
                name: name.to_string(),
                reason: e.reason,
            })?
            .to_string();
        if self.contexts.contains_key(&key) {
            return Err(NamedContextError::Duplicate {
                name: name.to_string(),
            });
        }
        self.contexts.insert(key, (name.to_string(), context));
        Ok(())
    }

    /// The context a Dockerfile name refers to, if any.
    pub fn get(&self, name: &str) -> Option<&NamedContext> {
        self.lookup(name).map(|(_, c)| c)
    }

    /// The context a Dockerfile name refers to, with its key.
    pub fn lookup(&self, name: &str) -> Option<(&str, &NamedContext)> {
        let key = Self::key(name)?;
        self.contexts
            .get_key_value(&key)
            .map(|(k, (_, c))| (k.as_str(), c))
    }

    /// The context stored under a key returned by [`BuildContexts::lookup`].
    pub fn by_key(&self, key: &str) -> Option<&NamedContext> {
        self.contexts.get(key).map(|(_, c)| c)
    }

    /// The contexts as (name as given, context).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &NamedContext)> {
        self.contexts.values().map(|(n, c)| (n.as_str(), c))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.contexts.is_empty()
    }

    /// Parses `NAME=VALUE` as `--build-context` takes it.
    pub fn parse_spec(spec: &str) -> Result<(String, NamedContext), NamedContextError> {
        let Some((name, value)) = spec.split_once('=') else {
            return Err(NamedContextError::Syntax {
                spec: spec.to_string(),
            });
        };
        if name.is_empty() || value.is_empty() {
            return Err(NamedContextError::Syntax {
                spec: spec.to_string(),
            });
        }
        Ok((name.to_string(), NamedContext::parse(name, value)?))
    }
}

impl NamedContext {
    /// Parses the value of `--build-context NAME=VALUE`: `docker-image://REF`,
    /// `oci-layout://DIR[:TAG|@sha256:DIGEST]`, or a directory.
    pub fn parse(name: &str, value: &str) -> Result<Self, NamedContextError> {
        let bad = |reason: String| NamedContextError::Value {
            name: name.to_string(),
            reason,
        };
        if let Some(r) = value.strip_prefix(DOCKER_IMAGE_SCHEME) {
            let reference = Reference::parse(r).map_err(|e| bad(crate::report::chain(&e)))?;
            return Ok(NamedContext::DockerImage(reference));
        }
        if let Some(rest) = value.strip_prefix(OCI_LAYOUT_SCHEME) {
            let (dir, select) = split_layout(rest).map_err(bad)?;
            if dir.is_empty() {
                return Err(bad("oci-layout:// needs a directory".into()));
            }
            return Ok(NamedContext::OciLayout {
                dir: PathBuf::from(dir),
                select,
            });
        }
        // Any other `scheme://` (git, http, ...) is not a directory.
        if value.contains("://") {
            return Err(NamedContextError::Scheme {
                name: name.to_string(),
                value: value.to_string(),
            });
        }
        Ok(NamedContext::Dir(PathBuf::from(value)))
    }
}

/// `DIR[:TAG]` or `DIR@sha256:HEX`; the tag is after the last `/`.
fn split_layout(rest: &str) -> Result<(&str, Option<LayoutSelector>), String> {
    if let Some((dir, digest)) = rest.rsplit_once('@')
        && digest.starts_with("sha256:")
    {
        let d = Digest::from_str(digest).map_err(|_| {
            format!("invalid digest {digest:?} (expected sha256: and 64 hex digits)")
        })?;
        return Ok((dir, Some(LayoutSelector::Digest(d))));
    }
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[last_slash..].rfind(':') {
        Some(i) => {
            let tag = &rest[last_slash + i + 1..];
            if tag.is_empty() {
                return Err("empty tag after `:`".into());
            }
            Ok((
                &rest[..last_slash + i],
                Some(LayoutSelector::Tag(tag.to_string())),
            ))
        }
        None => Ok((rest, None)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_by_scheme() {
        let (n, c) = BuildContexts::parse_spec("src=./dir").unwrap();
        assert_eq!(n, "src");
        assert_eq!(c, NamedContext::Dir(PathBuf::from("./dir")));
        let (_, c) = BuildContexts::parse_spec("b=oci-layout:///x/y:1").unwrap();
        assert_eq!(
            c,
            NamedContext::OciLayout {
                dir: PathBuf::from("/x/y"),
                select: Some(LayoutSelector::Tag("1".into()))
            }
        );
        let hex = "a".repeat(64);
        let (_, c) = BuildContexts::parse_spec(&format!("b=oci-layout:///x@sha256:{hex}")).unwrap();
        assert!(matches!(
            c,
            NamedContext::OciLayout {
                select: Some(LayoutSelector::Digest(_)),
                ..
            }
        ));
        assert!(BuildContexts::parse_spec("b=git://host/repo").is_err());
        assert!(BuildContexts::parse_spec("b=docker-image://Not Valid").is_err());
        assert!(BuildContexts::parse_spec("noequals").is_err());
    }

    #[test]
    fn names_follow_image_name_rules_and_normalise() {
        let mut c = BuildContexts::new();
        assert!(c.insert("Upper", NamedContext::Dir("d".into())).is_err());
        c.insert("alpine", NamedContext::Dir("d".into())).unwrap();
        assert!(c.get("docker.io/library/alpine:latest").is_some());
        assert!(c.get("alpine:3").is_none());
        assert!(matches!(
            c.insert("alpine:latest", NamedContext::Dir("e".into())),
            Err(NamedContextError::Duplicate { .. })
        ));
    }
}
