//! Why a step missed the cache.
//!
//! A cache key is a one-way hash, so on its own it cannot say what changed. Next to each record the
//! solver keeps a [`KeyManifest`]: the key's named inputs (instruction, parent, environment
//! variables, fields, `--from` sources, context files), each reduced to a digest so that no value,
//! let alone a secret's, is stored. A per-Dockerfile history ([`ExplainStore::previous_keys`])
//! remembers which key each step position had last time; on a miss the solver diffs the previous
//! key's manifest against the current one and reports [`MissReason`]s. The explanations of the last
//! [`KEEP_BUILDS`] builds are kept so `kiln cache explain` can answer after the fact.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{CacheKey, FileDigests};

/// How many builds' explanations are kept.
pub const KEEP_BUILDS: usize = 20;

/// At most this many changed files are named per step; the rest are counted.
pub const MAX_FILES_NAMED: usize = 20;

/// `sha256:` + hex of `bytes`: how values appear in manifests and explanations.
pub fn value_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The image a stage starts from, when a step runs directly on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseImage {
    /// The reference as written after expansion.
    pub reference: String,
    /// The manifest digest it resolved to.
    pub digest: String,
}

/// The named inputs of one step's cache key, each as a digest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyManifest {
    /// The instruction as written.
    pub instruction: String,
    /// The parent key (hex).
    pub parent: String,
    /// What produced the parent state, in words (the previous step, the base image or stage).
    pub parent_from: String,
    /// The base image, when the step runs directly on an image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseImage>,
    /// Environment variables (ENV and build args) in the key: name → digest of the value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Other key fields (argv, user, cwd, mounts, destination, ...): name → digest.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
    /// `--from` stages and images and bind-mount sources: name → state key (hex).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sources: BTreeMap<String, String>,
    /// Context files the step reads: path → digest of everything the key takes from the file.
    #[serde(default, skip_serializing_if = "FileDigests::is_empty")]
    pub files: FileDigests,
    /// The worker's input digest (covers `files`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
}

/// How a context file differs from the previous build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileChange {
    /// New since the previous build.
    Added,
    /// Gone since the previous build.
    Removed,
    /// Content or metadata changed.
    Modified,
}

/// One reason a step missed the cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum MissReason {
    /// The build asked for no cache.
    NoCache,
    /// No previous build of this Dockerfile ran this step.
    FirstBuild,
    /// The key is the same as last time, but its record was pruned, or its layer was missing or
    /// failed verification.
    RecordUnusable,
    /// The instruction's text changed.
    InstructionChanged {
        /// Previous text.
        old: String,
        /// Current text.
        new: String,
    },
    /// A key field changed although the text did not (USER, WORKDIR, SHELL in effect, ...).
    FieldChanged {
        /// The field's name.
        field: String,
    },
    /// A build arg or ENV variable changed; values only as digests.
    EnvChanged {
        /// The variable.
        name: String,
        /// Digest of the previous value (`None`: it was unset).
        old: Option<String>,
        /// Digest of the current value (`None`: it is unset now).
        new: Option<String>,
    },
    /// A context file the step reads changed.
    FileChanged {
        /// Path in the context.
        path: String,
        /// How.
        change: FileChange,
    },
    /// More files changed than are named.
    MoreFilesChanged {
        /// How many more.
        count: usize,
    },
    /// A `--from` stage or image (or a bind-mount source) has a different state.
    SourceChanged {
        /// The source.
        source: String,
    },
    /// The base image reference resolved to a different digest.
    BaseImageChanged {
        /// The reference.
        reference: String,
        /// Previous manifest digest.
        old: String,
        /// Current manifest digest.
        new: String,
    },
    /// The state the step runs on changed (an earlier step re-ran with a different result).
    ParentChanged {
        /// What produced the parent state.
        from: String,
    },
    /// The step's inputs outside the Dockerfile changed (no finer detail recorded).
    InputsChanged,
}

impl std::fmt::Display for MissReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let opt = |d: &Option<String>| d.clone().unwrap_or_else(|| "unset".to_string());
        match self {
            MissReason::NoCache => f.write_str("the cache was disabled (--no-cache)"),
            MissReason::FirstBuild => f.write_str("first build: no previous record of this step"),
            MissReason::RecordUnusable => f.write_str(
                "same inputs as last time, but the cached result was pruned, or its layer was missing or failed verification",
            ),
            MissReason::InstructionChanged { old, new } => {
                write!(f, "instruction changed: `{old}` → `{new}`")
            }
            MissReason::FieldChanged { field } => {
                write!(f, "{field} in effect changed")
            }
            MissReason::EnvChanged { name, old, new } => write!(
                f,
                "build arg or ENV {name} changed: {} → {}",
                opt(old),
                opt(new)
            ),
            MissReason::FileChanged { path, change } => {
                let how = match change {
                    FileChange::Added => "added",
                    FileChange::Removed => "removed",
                    FileChange::Modified => "changed",
                };
                write!(f, "file {how}: {path}")
            }
            MissReason::MoreFilesChanged { count } => write!(f, "and {count} more files changed"),
            MissReason::SourceChanged { source } => write!(f, "source {source} changed"),
            MissReason::BaseImageChanged {
                reference,
                old,
                new,
            } => write!(f, "base image {reference} re-resolved: {old} → {new}"),
            MissReason::ParentChanged { from } => write!(f, "parent changed: {from}"),
            MissReason::InputsChanged => f.write_str("inputs outside the Dockerfile changed"),
        }
    }
}

/// Why a step at the same position missed, given the previous build's key and manifest there.
pub fn explain(
    previous: Option<(&CacheKey, Option<&KeyManifest>)>,
    key: &CacheKey,
    current: &KeyManifest,
    no_cache: bool,
) -> Vec<MissReason> {
    if no_cache {
        return vec![MissReason::NoCache];
    }
    let Some((prev_key, prev)) = previous else {
        return vec![MissReason::FirstBuild];
    };
    if prev_key == key {
        return vec![MissReason::RecordUnusable];
    }
    let Some(prev) = prev else {
        // The previous record (and its manifest) was pruned: only the fact of a change is known.
        return vec![MissReason::InputsChanged];
    };
    let mut out = Vec::new();
    if prev.instruction != current.instruction {
        out.push(MissReason::InstructionChanged {
            old: prev.instruction.clone(),
            new: current.instruction.clone(),
        });
    } else {
        for (field, digest) in &current.fields {
            if prev.fields.get(field) != Some(digest) {
                out.push(MissReason::FieldChanged {
                    field: field.clone(),
                });
            }
        }
        for field in prev.fields.keys() {
            if !current.fields.contains_key(field) {
                out.push(MissReason::FieldChanged {
                    field: field.clone(),
                });
            }
        }
    }
    for (name, new) in &current.env {
        if prev.env.get(name) != Some(new) {
            out.push(MissReason::EnvChanged {
                name: name.clone(),
                old: prev.env.get(name).cloned(),
                new: Some(new.clone()),
            });
        }
    }
    for (name, old) in &prev.env {
        if !current.env.contains_key(name) {
            out.push(MissReason::EnvChanged {
                name: name.clone(),
                old: Some(old.clone()),
                new: None,
            });
        }
    }
    for (source, state) in &current.sources {
        if prev.sources.get(source) != Some(state) {
            out.push(MissReason::SourceChanged {
                source: source.clone(),
            });
        }
    }
    let before = out.len();
    let mut files = Vec::new();
    for (path, digest) in current.files.iter() {
        match prev.files.get(path) {
            None => files.push((path, FileChange::Added)),
            Some(d) if d != digest => files.push((path, FileChange::Modified)),
            Some(_) => {}
        }
    }
    for (path, _) in prev.files.iter() {
        if !current.files.contains_key(path) {
            files.push((path, FileChange::Removed));
        }
    }
    files.sort_by(|a, b| a.0.cmp(b.0));
    let total = files.len();
    for (path, change) in files.into_iter().take(MAX_FILES_NAMED) {
        out.push(MissReason::FileChanged {
            path: path.to_owned(),
            change,
        });
    }
    if total > MAX_FILES_NAMED {
        out.push(MissReason::MoreFilesChanged {
            count: total - MAX_FILES_NAMED,
        });
    }
    if out.len() == before && prev.input != current.input {
        out.push(MissReason::InputsChanged);
    }
    if prev.parent != current.parent {
        match (&prev.base, &current.base) {
            (Some(a), Some(b)) if a.reference == b.reference && a.digest != b.digest => {
                out.push(MissReason::BaseImageChanged {
                    reference: b.reference.clone(),
                    old: a.digest.clone(),
                    new: b.digest.clone(),
                });
            }
            _ => out.push(MissReason::ParentChanged {
                from: current.parent_from.clone(),
            }),
        }
    }
    if out.is_empty() {
        out.push(MissReason::InputsChanged);
    }
    out
}

/// One step of a build, as `kiln cache explain` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepExplanation {
    /// Stage index in the Dockerfile.
    pub stage: usize,
    /// Step index within the stage.
    pub index: usize,
    /// Where the step sits (`stage#n`, n counting filesystem steps), the history's key.
    pub position: String,
    /// The step's title (`[stage k/n] INSTRUCTION`).
    pub name: String,
    /// Its cache key (hex).
    pub key: String,
    /// Whether it came from the cache.
    pub cached: bool,
    /// Why it missed (empty for a hit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<MissReason>,
}

/// A build's explanations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildExplanation {
    /// The build's id (sortable by time).
    pub id: String,
    /// When it ran (seconds since the epoch).
    pub time: i64,
    /// The Dockerfile, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// Every filesystem step that ran or was looked up, in order.
    pub steps: Vec<StepExplanation>,
}

/// Errors of the explanation store.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// Writing a file failed.
    #[error(transparent)]
    Write(Box<crate::content::ContentError>),
    /// Creating a directory failed.
    #[error("cannot create directory {path}")]
    Mkdir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Reading the kept builds failed.
    #[error("cannot read {path}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No kept build has that id.
    #[error("no build {0} is kept (see `kiln cache explain --list`)")]
    UnknownBuild(String),
}

/// Per-Dockerfile key history and the last builds' explanations, under `<store>/kiln/explain/`.
#[derive(Debug, Clone)]
pub struct ExplainStore {
    dir: PathBuf,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ScopeHistory {
    positions: BTreeMap<String, String>,
}

impl ExplainStore {
    /// The store under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ExplainStore { dir: dir.into() }
    }

    fn scope_path(&self, scope: &str) -> PathBuf {
        self.dir.join("scopes").join(format!(
            "{}.json",
            hex::encode(Sha256::digest(scope.as_bytes()))
        ))
    }

    fn mkdir(dir: &Path) -> Result<(), ExplainError> {
        std::fs::create_dir_all(dir).map_err(|source| ExplainError::Mkdir {
            path: dir.to_path_buf(),
            source,
        })
    }

    /// The key each step position had in the last build of `scope` (empty if none or unreadable).
    pub fn previous_keys(&self, scope: &str) -> BTreeMap<String, CacheKey> {
        let Ok(bytes) = std::fs::read(self.scope_path(scope)) else {
            return BTreeMap::new();
        };
        let Ok(h) = serde_json::from_slice::<ScopeHistory>(&bytes) else {
            return BTreeMap::new();
        };
        h.positions
            .into_iter()
            .filter_map(|(p, k)| Some((p, CacheKey::from_hex(&k)?)))
            .collect()
    }

    /// Records the keys of `build`'s steps as the latest for `scope`, and keeps `build` among the
    /// last `KEEP_BUILDS`. Positions the build did not reach keep their old keys.
    pub fn record(&self, scope: &str, build: &BuildExplanation) -> Result<(), ExplainError> {
        let path = self.scope_path(scope);
        let mut history: ScopeHistory = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let mut changed = false;
        for s in &build.steps {
            if history.positions.get(&s.position) != Some(&s.key) {
                history.positions.insert(s.position.clone(), s.key.clone());
                changed = true;
            }
        }
        if changed {
            if let Some(dir) = path.parent() {
                Self::mkdir(dir)?;
            }
            let bytes = serde_json::to_vec(&history).unwrap_or_default();
            crate::content::write_atomic(&path, &bytes)
                .map_err(|e| ExplainError::Write(Box::new(e)))?;
        }
        let builds = self.dir.join("builds");
        Self::mkdir(&builds)?;
        let bytes = serde_json::to_vec_pretty(build).unwrap_or_default();
        crate::content::write_atomic(&builds.join(format!("{}.json", build.id)), &bytes)
            .map_err(|e| ExplainError::Write(Box::new(e)))?;
        let ids = self.build_ids()?;
        for old in ids.iter().take(ids.len().saturating_sub(KEEP_BUILDS)) {
            let _ = std::fs::remove_file(builds.join(format!("{old}.json")));
        }
        Ok(())
    }

    /// Ids of the kept builds, oldest first.
    pub fn build_ids(&self) -> Result<Vec<String>, ExplainError> {
        let dir = self.dir.join("builds");
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(ExplainError::Read { path: dir, source }),
        };
        let mut ids: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".json"))
                    .map(str::to_string)
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// A kept build: `id` may be a unique prefix; `None` means the latest.
    pub fn build(&self, id: Option<&str>) -> Result<BuildExplanation, ExplainError> {
        let ids = self.build_ids()?;
        let found = match id {
            None => ids.last(),
            Some(p) => {
                let matches: Vec<&String> = ids.iter().filter(|i| i.starts_with(p)).collect();
                if matches.len() == 1 {
                    matches.first().copied()
                } else {
                    None
                }
            }
        };
        let Some(found) = found else {
            return Err(ExplainError::UnknownBuild(
                id.unwrap_or("(latest)").to_string(),
            ));
        };
        let path = self.dir.join("builds").join(format!("{found}.json"));
        let bytes = std::fs::read(&path).map_err(|source| ExplainError::Read {
            path: path.clone(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|e| ExplainError::Read {
            path,
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })
    }
}

/// The id of a build that started at `start`: seconds and nanoseconds since the epoch, then a
/// random-enough suffix, so ids sort by start time.
pub fn new_build_id(start: std::time::SystemTime) -> String {
    let since = start
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut h = Sha256::new();
    h.update(since.as_nanos().to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    format!(
        "{:011}.{:09}-{}",
        since.as_secs(),
        since.subsec_nanos(),
        &hex::encode(h.finalize())[..6]
    )
}

#[cfg(test)]
#[path = "explain_tests.rs"]
mod tests;
