//! `--annotation` in BuildKit's syntax: `[TYPE[,TYPE...][\[PLATFORM\]]:]KEY=VALUE`, where a
//! TYPE is `manifest` (the default), `index`, `manifest-descriptor` or `index-descriptor`.

use std::collections::BTreeMap;

use super::Platform;

/// Annotations by where they go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    /// On the image manifest.
    pub manifest: BTreeMap<String, String>,
    /// On the image index (one is made when any is given).
    pub index: BTreeMap<String, String>,
    /// On the manifest's descriptor in the index.
    pub manifest_descriptor: BTreeMap<String, String>,
    /// On the index's descriptor (in an OCI layout's `index.json`).
    pub index_descriptor: BTreeMap<String, String>,
}

/// An `--annotation` that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    /// No `=`, or an empty key.
    #[error("--annotation {0:?}: expected [TYPE:]KEY=VALUE")]
    Syntax(String),
    /// An unknown type.
    #[error(
        "--annotation {spec:?}: unknown type {kind:?} (expected manifest, index, manifest-descriptor or index-descriptor)"
    )]
    Type {
        /// The value.
        spec: String,
        /// The type.
        kind: String,
    },
    /// A platform that is not built.
    #[error("--annotation {spec:?}: platform {platform:?} is not built (kiln builds linux/amd64)")]
    Platform {
        /// The value.
        spec: String,
        /// The platform.
        platform: String,
    },
}

impl Annotations {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.manifest.is_empty()
            && self.index.is_empty()
            && self.manifest_descriptor.is_empty()
            && self.index_descriptor.is_empty()
    }

    /// Whether an index must be made for them.
    pub fn need_index(&self) -> bool {
        !self.index.is_empty() || !self.index_descriptor.is_empty()
    }

    /// Adds one `--annotation` value.
    pub fn add(&mut self, spec: &str) -> Result<(), AnnotationError> {
        let syntax = || AnnotationError::Syntax(spec.to_string());
        let (lhs, value) = spec.split_once('=').ok_or_else(syntax)?;
        let (types, key) = match lhs.rsplit_once(':') {
            Some((t, k)) => (Some(t), k),
            None => (None, lhs),
        };
        if key.is_empty() || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(syntax());
        }
        let types = match types {
            None => "manifest".to_string(),
            Some(t) => match t.split_once('[') {
                Some((t, rest)) => {
                    let platform = rest.strip_suffix(']').ok_or_else(syntax)?;
                    let built = Platform::linux_amd64();
                    if !platform
                        .split(',')
                        .all(|p| Platform::parse(p).is_some_and(|p| p.matches(&built)))
                    {
                        return Err(AnnotationError::Platform {
                            spec: spec.to_string(),
                            platform: platform.to_string(),
                        });
                    }
                    t.to_string()
                }
                None => t.to_string(),
            },
        };
        for kind in types.split(',') {
            let map = match kind {
                "" | "manifest" => &mut self.manifest,
                "index" => &mut self.index,
                "manifest-descriptor" => &mut self.manifest_descriptor,
                "index-descriptor" => &mut self.index_descriptor,
                other => {
                    return Err(AnnotationError::Type {
                        spec: spec.to_string(),
                        kind: other.to_string(),
                    });
                }
            };
            map.insert(key.to_string(), value.to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn buildkit_syntax_parses() {
        let mut a = Annotations::default();
        a.add("org.opencontainers.image.url=https://x.example/a:b")
            .unwrap();
        a.add("index:org.opencontainers.image.title=t").unwrap();
        a.add("manifest,manifest-descriptor:k=v").unwrap();
        a.add("manifest[linux/amd64]:p=1").unwrap();
        assert_eq!(
            a.manifest["org.opencontainers.image.url"],
            "https://x.example/a:b"
        );
        assert_eq!(a.manifest["k"], "v");
        assert_eq!(a.manifest["p"], "1");
        assert_eq!(a.manifest_descriptor["k"], "v");
        assert_eq!(a.index["org.opencontainers.image.title"], "t");
        assert!(a.need_index());
        for bad in [
            "novalue",
            "=v",
            "bogus:k=v",
            "manifest[linux/arm64]:k=v",
            "manifest[x:k=v",
        ] {
            assert!(Annotations::default().add(bad).is_err(), "{bad}");
        }
    }
}
