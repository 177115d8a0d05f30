//! Host-side preparation shared by both executors: checking the spec, writing the generated
//! `/etc/hosts` and `/etc/resolv.conf`, and creating the mount points the run needs.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::stubs::{Kind, Stubs};
use super::{ExecError, Mount, NetworkMode, RunSpec};
use crate::fsroot::Root;

/// What a run needs on the host; dropping it removes the stubs and the temporary directory.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// The standard file mounts followed by the spec's mounts.
    pub mounts: Vec<Mount>,
    /// The command's environment as `KEY=value`: the spec's, plus `HOME` when it has none.
    pub env: Vec<String>,
    // Declared before `dir` so the stubs go first; both after the run.
    pub stubs: Stubs,
    /// Per-run temporary directory (generated files, a runc bundle).
    pub dir: crate::scratch::ScratchDir,
}

/// Standard mount points every run needs.
const STANDARD_DIRS: &[&str] = &["/proc", "/dev", "/sys"];

pub(crate) fn prepare(spec: &RunSpec, state_dir: &Path) -> Result<Prepared, ExecError> {
    let command = spec.command_line();
    check(spec).map_err(|reason| ExecError::InvalidSpec {
        command: command.clone(),
        reason,
    })?;
    let prep_err = |what: &'static str, path: &Path| {
        let command = command.clone();
        let path = path.to_path_buf();
        move |source: io::Error| ExecError::Prepare {
            command,
            what,
            path,
            source,
        }
    };
    std::fs::create_dir_all(state_dir).map_err(prep_err("create state directory", state_dir))?;
    // Locked while the run lives, so the next build can sweep it if this process is killed.
    let dir = crate::scratch::ScratchDir::new_in(state_dir, "run-")
        .map_err(prep_err("create run directory in", state_dir))?;

    let hosts = dir.path().join("hosts");
    let hosts_text = hosts_file(&spec.hostname) + &spec.settings.hosts_lines();
    write_file(&hosts, hosts_text.as_bytes()).map_err(prep_err("write", &hosts))?;
    let resolv = dir.path().join("resolv.conf");
    write_file(&resolv, &resolv_conf(spec.network)).map_err(prep_err("write", &resolv))?;

    let mut mounts = vec![
        Mount::Bind {
            source: hosts,
            target: "/etc/hosts".into(),
            readonly: true,
        },
        Mount::Bind {
            source: resolv,
            target: "/etc/resolv.conf".into(),
            readonly: true,
        },
    ];
    mounts.extend(spec.mounts.iter().cloned());

    let mut targets: Vec<(PathBuf, Kind)> = STANDARD_DIRS
        .iter()
        .map(|d| (PathBuf::from(d), Kind::Dir))
        .collect();
    for m in &mounts {
        let kind = match m {
            Mount::Tmpfs { .. } => Kind::Dir,
            Mount::Secret { .. } => Kind::File,
            Mount::Bind { source, .. } => {
                let meta =
                    std::fs::metadata(source).map_err(prep_err("stat bind source", source))?;
                if meta.is_dir() { Kind::Dir } else { Kind::File }
            }
        };
        targets.push((m.target().to_path_buf(), kind));
    }
    let stubs = Stubs::create(&spec.rootfs, &targets).map_err(|e| ExecError::Prepare {
        command: command.clone(),
        what: "create mount point",
        path: e.path.clone(),
        source: e.source,
    })?;

    let root = Root::open(&spec.rootfs).map_err(|e| ExecError::Prepare {
        command: command.clone(),
        what: "open rootfs",
        path: spec.rootfs.clone(),
        source: e.source,
    })?;
    match root.stat(&spec.cwd) {
        Ok(st) if rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() => {}
        _ => {
            return Err(ExecError::InvalidSpec {
                command,
                reason: format!(
                    "working directory {} does not exist in the rootfs",
                    spec.cwd.display()
                ),
            });
        }
    }
    let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if !spec.env.iter().any(|(k, _)| k == "HOME") {
        env.push(format!("HOME={}", home_of(&root, spec.user.uid)));
    }
    Ok(Prepared {
        mounts,
        env,
        stubs,
        dir,
    })
}

/// The user's home directory from the rootfs's `/etc/passwd`, `/` when it has none (what runc and
/// so Docker set when the environment has no `HOME`).
fn home_of(root: &Root, uid: u32) -> String {
    use std::io::Read;
    let mut text = String::new();
    let found = root
        .open_file(Path::new("etc/passwd"))
        .ok()
        .and_then(|f| f.take(1 << 20).read_to_string(&mut text).ok())
        .and_then(|_| {
            text.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid) && !f[5].is_empty())
                    .then(|| f[5].to_owned())
            })
        });
    found.unwrap_or_else(|| "/".to_owned())
}

impl Prepared {
    /// Removes the stubs and the temporary directory once the run is over.
    pub(crate) fn finish(self) {
        self.stubs.cleanup();
        drop(self.dir);
    }
}

fn write_file(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(data)
}

fn check(spec: &RunSpec) -> Result<(), String> {
    if spec.argv.is_empty() || spec.argv[0].is_empty() {
        return Err("empty command".into());
    }
    if !spec.cwd.is_absolute() {
        return Err(format!(
            "working directory {} is not absolute",
            spec.cwd.display()
        ));
    }
    if spec.hostname.is_empty()
        || spec.hostname.len() > 64
        || spec
            .hostname
            .bytes()
            .any(|b| b == 0 || b.is_ascii_whitespace())
    {
        return Err(format!("invalid host name {:?}", spec.hostname));
    }
    for (k, _) in &spec.env {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return Err(format!("invalid environment variable name {k:?}"));
        }
    }
    match std::fs::metadata(&spec.rootfs) {
        Ok(m) if m.is_dir() => {}
        _ => {
            return Err(format!(
                "rootfs {} is not a directory",
                spec.rootfs.display()
            ));
        }
    }
    for m in &spec.mounts {
        let t = m.target();
        if !t.is_absolute() || crate::fsroot::clean(t).as_os_str().is_empty() {
            return Err(format!(
                "mount target {} must be an absolute path below /",
                t.display()
            ));
        }
    }
    Ok(())
}

/// `/etc/hosts` as BuildKit writes it.
pub(crate) fn hosts_file(hostname: &str) -> String {
    format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n")
}

/// The resolver configuration: the host's as it is with the host's network (and without network,
/// where it does not matter but tools that parse it expect a file); in a namespace of its own the
/// host's loopback resolvers are reached through the user-mode network's forwarder.
fn resolv_conf(network: NetworkMode) -> Vec<u8> {
    let host = std::fs::read("/etc/resolv.conf").unwrap_or_default();
    match network {
        NetworkMode::Private => {
            super::network::resolv_conf(&String::from_utf8_lossy(&host)).into_bytes()
        }
        NetworkMode::None | NetworkMode::Host => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_comes_from_the_rootfs_passwd() {
        let rootfs = tempfile::tempdir().unwrap();
        let root = Root::open(rootfs.path()).unwrap();
        assert_eq!(home_of(&root, 0), "/");
        std::fs::create_dir(rootfs.path().join("etc")).unwrap();
        std::fs::write(
            rootfs.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nbad\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        assert_eq!(home_of(&root, 0), "/root");
        assert_eq!(home_of(&root, 1000), "/home/app");
        assert_eq!(home_of(&root, 7), "/");
    }

    #[test]
    fn hosts_names_the_host() {
        assert!(hosts_file("box").starts_with("127.0.0.1\tlocalhost box\n"));
    }

    #[test]
    fn invalid_specs_are_rejected_before_anything_is_created() {
        let rootfs = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let mut spec = RunSpec::new(rootfs.path(), vec![]);
        let e = prepare(&spec, state.path()).unwrap_err();
        assert!(e.to_string().contains("empty command"), "{e}");
        spec.argv = vec!["true".into()];
        spec.cwd = "/missing".into();
        let e = prepare(&spec, state.path()).unwrap_err();
        assert!(e.to_string().contains("working directory /missing"), "{e}");
        // The failed preparation left nothing behind in the rootfs.
        assert_eq!(std::fs::read_dir(rootfs.path()).unwrap().count(), 0);
        spec.cwd = "/".into();
        spec.mounts.push(Mount::Tmpfs {
            target: "relative".into(),
            size: None,
        });
        assert!(prepare(&spec, state.path()).is_err());
    }

    #[test]
    fn prepares_standard_mounts() {
        let rootfs = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let spec = RunSpec::new(rootfs.path(), vec!["true".into()]);
        let p = prepare(&spec, state.path()).unwrap();
        assert!(rootfs.path().join("etc/hosts").is_file());
        assert!(rootfs.path().join("proc").is_dir());
        assert_eq!(p.mounts.len(), 2);
        drop(p);
        assert_eq!(std::fs::read_dir(rootfs.path()).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(state.path()).unwrap().count(), 0);
    }
}
