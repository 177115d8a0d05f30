//! `--annotation` in BuildKit's syntax: `[TYPE[,TYPE...][\[PLATFORM,...\]]:]KEY=VALUE`, where a
//! TYPE is `manifest` (the default), `index`, `manifest-descriptor` or `index-descriptor`, and
//! the platforms limit a `manifest` or `manifest-descriptor` annotation to those platforms'
//! images of a multi-platform build.

use std::collections::BTreeMap;

use super::Platform;

/// Annotations by where they go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    /// On the image manifest (of every platform).
    pub manifest: BTreeMap<String, String>,
    /// On the image index (a single platform's image has one only with attestations: see
    /// [`Annotations::check_index`]).
    pub index: BTreeMap<String, String>,
    /// On the manifest's descriptor in the index (of every platform).
    pub manifest_descriptor: BTreeMap<String, String>,
    /// On the index's descriptor (in an OCI layout's `index.json`).
    pub index_descriptor: BTreeMap<String, String>,
    /// `manifest` and `manifest-descriptor` annotations for some platforms only.
    pub per_platform: Vec<PlatformAnnotation>,
}

/// An annotation of some platforms' images (`manifest[linux/arm64]:KEY=VALUE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformAnnotation {
    /// The platforms it is for.
    pub platforms: Vec<Platform>,
    /// On the manifest's descriptor in the index rather than on the manifest.
    pub descriptor: bool,
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

/// An `--annotation` that does not parse, or names a platform the build does not make.
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
    /// A platform that does not parse, or one on an index annotation.
    #[error("--annotation {spec:?}: {reason}")]
    Platform {
        /// The value.
        spec: String,
        /// What is wrong.
        reason: String,
    },
    /// An `index` or `index-descriptor` annotation on an image that has no index (one platform,
    /// no attestations), which BuildKit refuses too.
    #[error(
        "--annotation {kind}:{key}=...: a single platform's image without attestations is a plain manifest, not an index; build several --platform values, attach --provenance or --sbom, or annotate the manifest (`manifest:{key}=...`)"
    )]
    NoIndex {
        /// `index` or `index-descriptor`.
        kind: &'static str,
        /// The key.
        key: String,
    },
    /// A platform the build does not make.
    #[error("--annotation for {platform}: the build makes {built} only")]
    NotBuilt {
        /// The platform.
        platform: String,
        /// The platforms built.
        built: String,
    },
}

impl Annotations {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.manifest.is_empty()
            && self.index.is_empty()
            && self.manifest_descriptor.is_empty()
            && self.index_descriptor.is_empty()
            && self.per_platform.is_empty()
    }

    /// Adds one `--annotation` value.
    pub fn add(&mut self, spec: &str) -> Result<(), AnnotationError> {
        let syntax = || AnnotationError::Syntax(spec.to_string());
        let (lhs, value) = spec.split_once('=').ok_or_else(syntax)?;
        // A platform (`linux/amd64`) has no `:`, so the last one ends the types.
        let (types, key) = match lhs.rsplit_once(':') {
            Some((t, k)) => (t, k),
            None => ("manifest", lhs),
        };
        if key.is_empty() || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(syntax());
        }
        let (types, platforms) = match types.split_once('[') {
            Some((t, rest)) => {
                let list = rest.strip_suffix(']').ok_or_else(syntax)?;
                let platforms =
                    Platform::parse_list(list).map_err(|reason| AnnotationError::Platform {
                        spec: spec.to_string(),
                        reason,
                    })?;
                (t, Some(platforms))
            }
            None => (types, None),
        };
        for kind in types.split(',') {
            let descriptor = match kind {
                "" | "manifest" => false,
                "manifest-descriptor" => true,
                "index" | "index-descriptor" if platforms.is_some() => {
                    return Err(AnnotationError::Platform {
                        spec: spec.to_string(),
                        reason: format!("an {kind} annotation is not for one platform"),
                    });
                }
                "index" => {
                    self.index.insert(key.to_string(), value.to_string());
                    continue;
                }
                "index-descriptor" => {
                    self.index_descriptor
                        .insert(key.to_string(), value.to_string());
                    continue;
                }
                other => {
                    return Err(AnnotationError::Type {
                        spec: spec.to_string(),
                        kind: other.to_string(),
                    });
                }
            };
            match &platforms {
                Some(p) => self.per_platform.push(PlatformAnnotation {
                    platforms: p.clone(),
                    descriptor,
                    key: key.to_string(),
                    value: value.to_string(),
                }),
                None if descriptor => {
                    self.manifest_descriptor
                        .insert(key.to_string(), value.to_string());
                }
                None => {
                    self.manifest.insert(key.to_string(), value.to_string());
                }
            }
        }
        Ok(())
    }

    /// Checks that each platform an annotation names is one of `built`.
    pub fn check_platforms(&self, built: &[Platform]) -> Result<(), AnnotationError> {
        for a in &self.per_platform {
            if let Some(p) = a
                .platforms
                .iter()
                .find(|p| !built.iter().any(|b| b.matches(p)))
            {
                return Err(AnnotationError::NotBuilt {
                    platform: p.to_string(),
                    built: built
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        Ok(())
    }

    /// Checks that `index` and `index-descriptor` annotations have an index to go on: a build of
    /// `platforms` platforms makes one when there are several, or when attestations
    /// (`--provenance`, `--sbom`) are attached. As BuildKit, which fails such an export with
    /// "index annotations not supported for single platform export".
    pub fn check_index(&self, platforms: usize, attestations: bool) -> Result<(), AnnotationError> {
        if platforms > 1 || attestations {
            return Ok(());
        }
        let first = |kind, map: &BTreeMap<String, String>| {
            map.keys().next().map(|key| AnnotationError::NoIndex {
                kind,
                key: key.clone(),
            })
        };
        match first("index", &self.index)
            .or_else(|| first("index-descriptor", &self.index_descriptor))
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The annotations of `platform`'s image: the platform-specific ones that name it join
    /// (and override) the others.
    pub fn for_platform(&self, platform: &Platform) -> Annotations {
        let mut out = self.clone();
        out.per_platform.clear();
        for a in &self.per_platform {
            if a.platforms.iter().any(|p| platform.matches(p)) {
                let map = if a.descriptor {
                    &mut out.manifest_descriptor
                } else {
                    &mut out.manifest
                };
                map.insert(a.key.clone(), a.value.clone());
            }
        }
        out
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
        a.add("manifest[linux/arm64]:p=1").unwrap();
        a.add("manifest-descriptor[linux/amd64,linux/arm64]:d=2")
            .unwrap();
        assert_eq!(
            a.manifest["org.opencontainers.image.url"],
            "https://x.example/a:b"
        );
        assert_eq!(a.manifest["k"], "v");
        assert_eq!(a.manifest_descriptor["k"], "v");
        assert_eq!(a.index["org.opencontainers.image.title"], "t");
        let arm = a.for_platform(&Platform::new("linux", "arm64", None));
        assert_eq!(arm.manifest["p"], "1");
        assert_eq!(arm.manifest_descriptor["d"], "2");
        let amd = a.for_platform(&Platform::new("linux", "amd64", None));
        assert!(!amd.manifest.contains_key("p"));
        assert_eq!(amd.manifest_descriptor["d"], "2");
        assert!(
            a.check_platforms(&[Platform::new("linux", "arm64", Some("v8"))])
                .is_err()
        );
        assert!(
            a.check_platforms(&[
                Platform::new("linux", "amd64", None),
                Platform::new("linux", "arm64", None)
            ])
            .is_ok()
        );
        // Index annotations need an index: several platforms, or attestations.
        let err = a.check_index(1, false).unwrap_err().to_string();
        assert!(
            err.contains("--annotation index:org.opencontainers.image.title"),
            "{err}"
        );
        assert!(a.check_index(2, false).is_ok());
        assert!(a.check_index(1, true).is_ok());
        let mut d = Annotations::default();
        d.add("index-descriptor:k=v").unwrap();
        assert!(d.check_index(1, false).is_err());
        let mut m = Annotations::default();
        m.add("manifest,manifest-descriptor:k=v").unwrap();
        assert!(m.check_index(1, false).is_ok());
        for bad in [
            "novalue",
            "=v",
            "bogus:k=v",
            "manifest[linux/bogus/x/y]:k=v",
            "index[linux/amd64]:k=v",
            "manifest[x:k=v",
        ] {
            assert!(Annotations::default().add(bad).is_err(), "{bad}");
        }
    }
}
