//! `--cache-to` and `--cache-from` values in BuildKit's syntax: comma-separated `key=value`
//! fields with a `type`, or (for `--cache-from`) a bare image reference.

use std::path::PathBuf;

use crate::registry::Reference;

/// Which records an export carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// Only the final stage's steps (BuildKit's default).
    #[default]
    Min,
    /// Every step of every stage the build looked up or ran.
    Max,
}

impl CacheMode {
    /// `min` or `max`.
    pub fn name(self) -> &'static str {
        match self {
            CacheMode::Min => "min",
            CacheMode::Max => "max",
        }
    }
}

/// Where a cache is imported from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheSource {
    /// A cache manifest in a registry, or an image with an inline cache.
    Registry(Reference),
    /// An OCI layout directory, by tag in its `index.json`.
    Local {
        /// The directory.
        dir: PathBuf,
        /// The tag (default `latest`).
        tag: String,
    },
}

/// Where a cache is exported to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheDestination {
    /// A cache manifest pushed to a registry.
    Registry(Reference),
    /// An OCI layout directory, tagged in its `index.json`.
    Local {
        /// The directory (created if missing).
        dir: PathBuf,
        /// The tag (default `latest`).
        tag: String,
    },
    /// Into the image's own config; the image's layers are the cache's.
    Inline,
}

/// One `--cache-to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheExport {
    /// Where.
    pub destination: CacheDestination,
    /// Which records.
    pub mode: CacheMode,
    /// A failed export is a warning instead of a failed build.
    pub ignore_error: bool,
}

/// A `--cache-to` or `--cache-from` value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheSpecError {
    /// A field is not `key=value`.
    #[error("{flag} field {field:?} is not KEY=VALUE")]
    NotKeyValue {
        /// The flag.
        flag: &'static str,
        /// The field.
        field: String,
    },
    /// A field is unknown for the type.
    #[error("unknown {flag} field {key:?} for type={kind} (expected {expected})")]
    UnknownField {
        /// The flag.
        flag: &'static str,
        /// The type.
        kind: String,
        /// The field.
        key: String,
        /// The fields the type takes.
        expected: &'static str,
    },
    /// A field has a bad value.
    #[error("{flag} {key}={value:?}: {reason}")]
    BadValue {
        /// The flag.
        flag: &'static str,
        /// The field.
        key: String,
        /// The value.
        value: String,
        /// What is expected.
        reason: &'static str,
    },
    /// A required field is missing.
    #[error("{flag} type={kind} needs {key}=")]
    Missing {
        /// The flag.
        flag: &'static str,
        /// The type.
        kind: String,
        /// The field.
        key: &'static str,
    },
    /// The type is not supported.
    #[error("{flag} type={kind:?} is not supported (expected {expected})")]
    UnsupportedType {
        /// The flag.
        flag: &'static str,
        /// The type.
        kind: String,
        /// The types that are.
        expected: &'static str,
    },
    /// The reference is invalid.
    #[error("{flag} ref")]
    Reference {
        /// The flag.
        flag: &'static str,
        /// Why.
        #[source]
        source: crate::registry::InvalidReference,
    },
}

type Fields = Vec<(String, String)>;

/// The value of the `type` field (empty when missing).
fn kind_of(fields: &Fields) -> String {
    fields
        .iter()
        .find(|(k, _)| k == "type")
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn fields(spec: &str, flag: &'static str) -> Result<Fields, CacheSpecError> {
    spec.split(',')
        .map(|part| match part.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(CacheSpecError::NotKeyValue {
                flag,
                field: part.to_string(),
            }),
        })
        .collect()
}

fn parse_bool(flag: &'static str, key: &str, v: &str) -> Result<bool, CacheSpecError> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(CacheSpecError::BadValue {
            flag,
            key: key.to_string(),
            value: v.to_string(),
            reason: "not a boolean (expected true or false)",
        }),
    }
}

fn reference(flag: &'static str, r: &str) -> Result<Reference, CacheSpecError> {
    Reference::parse(r).map_err(|source| CacheSpecError::Reference { flag, source })
}

fn non_empty(
    flag: &'static str,
    kind: &str,
    key: &'static str,
    v: Option<String>,
) -> Result<String, CacheSpecError> {
    v.filter(|v| !v.is_empty())
        .ok_or_else(|| CacheSpecError::Missing {
            flag,
            kind: kind.to_string(),
            key,
        })
}

impl CacheSource {
    /// Parses a `--cache-from` value: `type=registry,ref=REF`, `type=local,src=DIR[,tag=T]`,
    /// or a bare `REF` (a cache manifest or an image with an inline cache).
    pub fn parse(spec: &str) -> Result<Self, CacheSpecError> {
        const FLAG: &str = "--cache-from";
        if !spec.contains('=') {
            return Ok(CacheSource::Registry(reference(FLAG, spec)?));
        }
        let fields = fields(spec, FLAG)?;
        let kind = kind_of(&fields);
        let (mut r, mut src, mut tag) = (None, None, None);
        for (k, v) in fields {
            let expected = match kind.as_str() {
                "registry" => "type, ref",
                "local" => "type, src, tag, digest",
                _ => "",
            };
            match (kind.as_str(), k.as_str()) {
                (_, "type") => {}
                // Imports are always best effort; the field is accepted as BuildKit does.
                (_, "ignore-error") => {
                    parse_bool(FLAG, &k, &v)?;
                }
                ("registry", "ref") => r = Some(v),
                ("local", "src") => src = Some(v),
                ("local", "tag") => tag = Some(v),
                ("registry" | "local", _) => {
                    return Err(CacheSpecError::UnknownField {
                        flag: FLAG,
                        kind: kind.clone(),
                        key: k,
                        expected,
                    });
                }
                _ => {}
            }
        }
        match kind.as_str() {
            "registry" => Ok(CacheSource::Registry(reference(
                FLAG,
                &non_empty(FLAG, &kind, "ref", r)?,
            )?)),
            "local" => Ok(CacheSource::Local {
                dir: PathBuf::from(non_empty(FLAG, &kind, "src", src)?),
                tag: tag.unwrap_or_else(|| "latest".into()),
            }),
            _ => Err(CacheSpecError::UnsupportedType {
                flag: FLAG,
                kind,
                expected: "registry or local",
            }),
        }
    }
}

impl std::fmt::Display for CacheSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheSource::Registry(r) => write!(f, "{r}"),
            CacheSource::Local { dir, tag } => write!(f, "{}:{tag}", dir.display()),
        }
    }
}

impl CacheExport {
    /// Parses a `--cache-to` value: `type=registry,ref=REF`, `type=local,dest=DIR[,tag=T]` or
    /// `type=inline`, each with `mode=min|max` (default `min`; inline is always `min`) and
    /// `ignore-error=true|false`.
    pub fn parse(spec: &str) -> Result<Self, CacheSpecError> {
        const FLAG: &str = "--cache-to";
        let fields = fields(spec, FLAG)?;
        let kind = kind_of(&fields);
        let expected = match kind.as_str() {
            "registry" => "type, ref, mode, ignore-error",
            "local" => "type, dest, tag, mode, ignore-error",
            "inline" => "type, mode, ignore-error",
            _ => {
                return Err(CacheSpecError::UnsupportedType {
                    flag: FLAG,
                    kind,
                    expected: "registry, local or inline",
                });
            }
        };
        let (mut r, mut dest, mut tag, mut mode, mut ignore_error) =
            (None, None, None, CacheMode::Min, false);
        for (k, v) in fields {
            match (kind.as_str(), k.as_str()) {
                (_, "type") => {}
                (_, "mode") => {
                    mode = match v.as_str() {
                        "min" => CacheMode::Min,
                        "max" if kind != "inline" => CacheMode::Max,
                        "max" => {
                            return Err(CacheSpecError::BadValue {
                                flag: FLAG,
                                key: k,
                                value: v,
                                reason: "an inline cache holds the final stage only (mode=min)",
                            });
                        }
                        _ => {
                            return Err(CacheSpecError::BadValue {
                                flag: FLAG,
                                key: k,
                                value: v,
                                reason: "not min or max",
                            });
                        }
                    }
                }
                (_, "ignore-error") => ignore_error = parse_bool(FLAG, &k, &v)?,
                ("registry", "ref") => r = Some(v),
                ("local", "dest") => dest = Some(v),
                ("local", "tag") => tag = Some(v),
                _ => {
                    return Err(CacheSpecError::UnknownField {
                        flag: FLAG,
                        kind: kind.clone(),
                        key: k,
                        expected,
                    });
                }
            }
        }
        let destination = match kind.as_str() {
            "registry" => {
                CacheDestination::Registry(reference(FLAG, &non_empty(FLAG, &kind, "ref", r)?)?)
            }
            "local" => CacheDestination::Local {
                dir: PathBuf::from(non_empty(FLAG, &kind, "dest", dest)?),
                tag: tag.unwrap_or_else(|| "latest".into()),
            },
            _ => CacheDestination::Inline,
        };
        Ok(CacheExport {
            destination,
            mode,
            ignore_error,
        })
    }
}

impl std::fmt::Display for CacheExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.destination {
            CacheDestination::Registry(r) => write!(f, "type=registry,ref={r}")?,
            CacheDestination::Local { dir, tag } => {
                write!(f, "type=local,dest={},tag={tag}", dir.display())?
            }
            CacheDestination::Inline => write!(f, "type=inline")?,
        }
        write!(f, ",mode={}", self.mode.name())
    }
}
