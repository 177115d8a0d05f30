//! The cache key of each filesystem op. `docs/cache-keys.md` documents the fields; keep the two in
//! step, and bump `KEY_VERSION` when a field changes meaning.

use std::collections::BTreeMap;

use crate::cache::{CacheKey, KeyBuilder, KeyManifest};
use crate::graph::{Network, Op, RunMount, SourceRef};

use super::FsState;

fn source_field(
    b: &mut KeyBuilder,
    name: &str,
    source: &SourceRef,
    sources: &BTreeMap<SourceRef, FsState>,
) {
    match source {
        SourceRef::Context => {
            b.str(name, "context");
        }
        // The worker's input digest covers the files read; the name says which directory.
        SourceRef::Dir(key) => {
            b.str(name, &format!("context {key}"));
        }
        SourceRef::Stage(_) | SourceRef::Image(_) => match sources.get(source) {
            // The state key of the stage or image covers everything it contains.
            Some(state) => {
                b.key(name, &state.key);
            }
            None => {
                b.str(name, "missing");
            }
        },
    }
}

/// The key of a filesystem op running on `parent`. `input` is the worker's digest of the inputs
/// outside the graph (COPY sources, context bind mounts); `sources` the states of the stages and
/// images the op reads.
pub fn step_key(
    op: &Op,
    parent: &CacheKey,
    input: Option<&str>,
    sources: &BTreeMap<SourceRef, FsState>,
) -> CacheKey {
    match op {
        Op::Run(run) => {
            let mut b = KeyBuilder::new("run", Some(parent));
            b.list("argv", &run.argv);
            let env: Vec<String> = run
                .env
                .iter()
                .filter(|(k, _)| !run.env_not_cached.contains(k))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            b.list("env", &env);
            b.str("user", &run.user).str("cwd", &run.cwd);
            b.str(
                "network",
                match run.network {
                    Network::None => "none",
                    Network::Host => "host",
                    Network::Default => "default",
                },
            );
            b.str("insecure", if run.insecure { "1" } else { "0" });
            // Only when set, so the keys of steps without them stay as they were.
            if !run.settings.is_default() {
                let settings = serde_json::to_string(&run.settings).unwrap_or_default();
                b.str("settings", &settings);
            }
            b.field(b"mounts")
                .field(&(run.mounts.len() as u64).to_le_bytes());
            for m in &run.mounts {
                match m {
                    RunMount::Bind {
                        from,
                        source,
                        target,
                        readonly,
                    } => {
                        b.str("bind", target);
                        source_field(&mut b, "from", from, sources);
                        b.str("source", source)
                            .str("ro", if *readonly { "1" } else { "0" });
                    }
                    RunMount::Cache {
                        id,
                        target,
                        sharing,
                        readonly,
                        uid,
                        gid,
                        mode,
                    } => {
                        b.str("cache", target).str("id", id).str("sharing", sharing);
                        b.str("ro", if *readonly { "1" } else { "0" });
                        b.str("owner", &format!("{uid}:{gid}:{mode:o}"));
                    }
                    RunMount::Tmpfs { target, size } => {
                        b.str("tmpfs", target)
                            .str("size", &size.map(|s| s.to_string()).unwrap_or_default());
                    }
                    // A secret's value never reaches the key: only which secret, and where.
                    RunMount::Secret {
                        id,
                        target,
                        env,
                        required,
                        mode,
                        uid,
                        gid,
                    } => {
                        b.str("secret", id)
                            .opt("target", target.as_deref())
                            .opt("env", env.as_deref());
                        b.str("attrs", &format!("{required}:{uid}:{gid}:{mode:o}"));
                    }
                    RunMount::Ssh {
                        id,
                        target,
                        required,
                        mode,
                        uid,
                        gid,
                    } => {
                        b.str("ssh", id)
                            .str("target", target)
                            .str("attrs", &format!("{required}:{uid}:{gid}:{mode:o}"));
                    }
                }
            }
            b.field(b"inline")
                .field(&(run.inline.len() as u64).to_le_bytes());
            for f in &run.inline {
                b.str(&f.name, &f.content);
            }
            b.opt("input", input);
            b.finish()
        }
        Op::Copy(c) => {
            let mut b = KeyBuilder::new(if c.add { "add" } else { "copy" }, Some(parent));
            source_field(&mut b, "from", &c.from, sources);
            b.list("sources", &c.sources);
            b.field(b"inline")
                .field(&(c.inline.len() as u64).to_le_bytes());
            for f in &c.inline {
                b.str(&f.name, &f.content);
            }
            b.str("dest", &c.dest);
            b.opt("chown", c.chown.as_deref())
                .opt("chmod", c.chmod.as_deref());
            b.list("exclude", &c.exclude);
            b.str(
                "flags",
                &format!(
                    "parents={} link={} keep_git_dir={}",
                    c.parents, c.link, c.keep_git_dir
                ),
            );
            b.opt("checksum", c.checksum.as_deref());
            b.opt("unpack", c.unpack.map(|u| if u { "1" } else { "0" }));
            b.opt("input", input);
            b.finish()
        }
        Op::Workdir { path, user } => {
            let mut b = KeyBuilder::new("workdir", Some(parent));
            b.str("path", path).str("user", user);
            b.finish()
        }
        Op::Config => KeyBuilder::new("config", Some(parent)).finish(),
    }
}

/// Names a `--from` source or mount source for explanations.
fn source_name(source: &SourceRef) -> String {
    match source {
        SourceRef::Context => "context".to_string(),
        SourceRef::Stage(i) => format!("stage {i}"),
        SourceRef::Image(r) => format!("image {r}"),
        SourceRef::Dir(key) => format!("build context {key}"),
    }
}

fn digest_of<T: std::fmt::Debug>(value: &T) -> String {
    crate::cache::value_digest(format!("{value:?}").as_bytes())
}

/// The named inputs of [`step_key`] for cache-miss explanations, each reduced to a digest. It must
/// name everything `step_key` hashes (except the instruction's own text, which the caller sets),
/// so that any key change shows up as a difference here.
pub fn step_manifest(
    op: &Op,
    parent: &CacheKey,
    input: Option<&str>,
    sources: &BTreeMap<SourceRef, FsState>,
) -> KeyManifest {
    let mut m = KeyManifest {
        parent: parent.to_hex(),
        input: input.map(str::to_string),
        ..KeyManifest::default()
    };
    let source = |m: &mut KeyManifest, s: &SourceRef| {
        if let Some(state) = sources.get(s) {
            m.sources.insert(source_name(s), state.key.to_hex());
        }
    };
    match op {
        Op::Run(run) => {
            for (k, v) in &run.env {
                if !run.env_not_cached.contains(k) {
                    m.env
                        .insert(k.clone(), crate::cache::value_digest(v.as_bytes()));
                }
            }
            m.fields
                .insert("command (SHELL)".into(), digest_of(&run.argv));
            m.fields.insert("USER".into(), digest_of(&run.user));
            m.fields.insert("WORKDIR".into(), digest_of(&run.cwd));
            m.fields
                .insert("network".into(), digest_of(&(run.network, run.insecure)));
            m.fields.insert("mounts".into(), digest_of(&run.mounts));
            m.fields
                .insert("heredoc files".into(), digest_of(&run.inline));
            if !run.settings.is_default() {
                m.fields.insert(
                    "--add-host/--shm-size/--ulimit".into(),
                    digest_of(&run.settings),
                );
            }
            for mount in &run.mounts {
                if let RunMount::Bind { from, .. } = mount {
                    source(&mut m, from);
                }
            }
        }
        Op::Copy(c) => {
            source(&mut m, &c.from);
            m.fields.insert("sources".into(), digest_of(&c.sources));
            m.fields
                .insert("heredoc files".into(), digest_of(&c.inline));
            m.fields
                .insert("destination (WORKDIR)".into(), digest_of(&c.dest));
            m.fields.insert("--chown".into(), digest_of(&c.chown));
            m.fields.insert("--chmod".into(), digest_of(&c.chmod));
            m.fields.insert(
                "flags".into(),
                digest_of(&(
                    &c.exclude,
                    c.parents,
                    c.link,
                    c.keep_git_dir,
                    &c.checksum,
                    c.unpack,
                )),
            );
        }
        Op::Workdir { path, user } => {
            m.fields.insert("path".into(), digest_of(path));
            m.fields.insert("USER".into(), digest_of(user));
        }
        Op::Config => {}
    }
    m
}
