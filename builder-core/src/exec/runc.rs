//! An [`Executor`] that hands the run to an OCI runtime (`runc`): the spec becomes an OCI bundle
//! whose `config.json` is built with `oci-spec`, and `runc run` executes it in the foreground with
//! the output passed through.
//!
//! It maps the same isolation as the built-in sandbox (namespaces, standard mounts, masked and
//! read-only paths, Docker's capabilities). No rlimits are set, so nothing can exceed the host's
//! hard limits; the command inherits the runtime's.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use oci_spec::runtime::{
    Capabilities, Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxNamespaceBuilder,
    LinuxNamespaceType, Mount as OciMount, MountBuilder, ProcessBuilder, RootBuilder, Spec,
    SpecBuilder, UserBuilder,
};
use tokio::io::AsyncWriteExt;

use super::plan::{MASKED_PATHS, READONLY_PATHS};
use super::prepare::prepare;
use super::{
    ExecError, ExecFuture, Executor, ExitStatus, Mount, NetworkMode, OutputSink, RunResult,
    RunSpec, Security, Stdin, caps, seccomp,
};

/// Where the runtime is and where its state goes.
#[derive(Debug, Clone)]
pub struct RuncConfig {
    /// The runtime binary; a bare name is looked up in `PATH`. Default `runc`.
    pub runtime: PathBuf,
    /// kiln's state directory for runs: bundles go in temporary directories here and the runtime's
    /// own state under `runc/` (its `--root`).
    pub state_dir: PathBuf,
}

impl RuncConfig {
    /// `runc` from `PATH`, with state under `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            runtime: PathBuf::from("runc"),
            state_dir: state_dir.into(),
        }
    }
}

/// Runs commands with an OCI runtime.
#[derive(Debug, Clone)]
pub struct RuncExecutor {
    config: RuncConfig,
}

impl RuncExecutor {
    /// An executor with this configuration.
    pub fn new(config: RuncConfig) -> Self {
        Self { config }
    }
}

impl Executor for RuncExecutor {
    fn name(&self) -> &'static str {
        "runc"
    }

    fn run(&self, spec: RunSpec, out: OutputSink) -> ExecFuture<'_> {
        Box::pin(self.run_spec(spec, out))
    }
}

/// Deletes the container if the run did not finish (cancelled, timed out), so nothing outlives
/// it. Blocking, but only on that path.
struct Container {
    runtime: PathBuf,
    root: PathBuf,
    id: String,
    done: bool,
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let _ = std::process::Command::new(&self.runtime)
            .arg("--root")
            .arg(&self.root)
            .args(["delete", "--force", &self.id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl RuncExecutor {
    async fn run_spec(&self, spec: RunSpec, mut out: OutputSink) -> Result<RunResult, ExecError> {
        let start = Instant::now();
        let command = spec.command_line();
        let prepared = prepare(&spec, &self.config.state_dir)?;
        let bundle = prepared.dir.path().to_path_buf();
        // Kept until runc is done: the step's network namespace and its slirp4netns.
        let mut netns =
            match spec.network {
                NetworkMode::Private => {
                    Some(super::network::acquire().await.map_err(|source| {
                        ExecError::Supervise {
                            command: command.clone(),
                            what: "set up the step's network",
                            source,
                        }
                    })?)
                }
                NetworkMode::None | NetworkMode::Host => None,
            };
        if let Some(lease) = &mut netns
            && spec.security == Security::Insecure
        {
            lease.discard();
        }
        let netns_path = netns.as_ref().and_then(|l| l.fd()).map(|fd| {
            use std::os::fd::AsRawFd;
            PathBuf::from(format!(
                "/proc/{}/fd/{}",
                std::process::id(),
                fd.as_raw_fd()
            ))
        });
        let oci =
            oci_config(&spec, &prepared.env, &prepared.mounts, netns_path).map_err(|reason| {
                ExecError::InvalidSpec {
                    command: command.clone(),
                    reason,
                }
            })?;
        let config_path = bundle.join("config.json");
        let json = serde_json::to_vec_pretty(&oci).map_err(|e| ExecError::Prepare {
            command: command.clone(),
            what: "encode",
            path: config_path.clone(),
            source: io::Error::other(e),
        })?;
        std::fs::write(&config_path, json).map_err(|source| ExecError::Prepare {
            command: command.clone(),
            what: "write",
            path: config_path.clone(),
            source,
        })?;
        let state_root = self.config.state_dir.join("runc");
        let id = bundle
            .file_name()
            .map(|n| format!("kiln-{}", n.to_string_lossy()))
            .unwrap_or_else(|| "kiln-run".to_owned());
        let log = bundle.join("runc.log");

        let mut cmd = tokio::process::Command::new(&self.config.runtime);
        cmd.arg("--root")
            .arg(&state_root)
            .arg("--log")
            .arg(&log)
            .args(["--log-format", "json", "run", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdin(match spec.stdin {
                Stdin::Null => Stdio::null(),
                Stdin::Bytes(_) => Stdio::piped(),
                Stdin::Inherit => Stdio::inherit(),
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| ExecError::Spawn {
            command: command.clone(),
            program: self.config.runtime.clone(),
            source,
        })?;
        let mut container = Container {
            runtime: self.config.runtime.clone(),
            root: state_root,
            id,
            done: false,
        };
        if let (Stdin::Bytes(bytes), Some(mut stdin)) = (spec.stdin.clone(), child.stdin.take()) {
            tokio::spawn(async move {
                let _ = stdin.write_all(&bytes).await;
            });
        }
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let pump = super::sandbox::pump_output(&mut stdout, &mut stderr, &mut out);
        let finished = match spec.timeout {
            Some(t) => tokio::time::timeout(t, pump).await.is_ok(),
            None => {
                pump.await;
                true
            }
        };
        if !finished {
            drop(container);
            let _ = child.kill().await;
            return Err(ExecError::Timeout {
                command,
                after: spec.timeout.unwrap_or_default(),
            });
        }
        let status = child.wait().await.map_err(|source| ExecError::Supervise {
            command: command.clone(),
            what: "wait for runc",
            source,
        })?;
        container.done = true;
        if let Some(reason) = runtime_error(&log) {
            return Err(ExecError::Runtime {
                command,
                runtime: self.config.runtime.clone(),
                reason,
            });
        }
        let status = match (
            status.code(),
            std::os::unix::process::ExitStatusExt::signal(&status),
        ) {
            (Some(c), _) => ExitStatus::Code(c),
            (None, Some(s)) => ExitStatus::Signal(s),
            (None, None) => ExitStatus::Code(255),
        };
        prepared.finish();
        Ok(RunResult {
            status,
            duration: start.elapsed(),
        })
    }
}

/// The first error runc logged, if any: it failed itself rather than the command.
fn runtime_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v.get("level").and_then(|l| l.as_str()) == Some("error"))
        .and_then(|v| v.get("msg").and_then(|m| m.as_str()).map(str::to_owned))
}

fn caps_of(names: &[String]) -> Result<Capabilities, String> {
    names
        .iter()
        .map(|n| {
            serde_json::from_value::<Capability>(serde_json::Value::String(n.clone()))
                .map_err(|e| format!("capability {n}: {e}", e = crate::report::chain(&e)))
        })
        .collect()
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<OciMount, String> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
        .build()
        .map_err(|e| crate::report::chain(&e))
}

/// The OCI runtime configuration for a run.
/// `netns` is the path of the network namespace to join for [`NetworkMode::Private`].
pub(crate) fn oci_config(
    spec: &RunSpec,
    env: &[String],
    mounts: &[Mount],
    netns: Option<PathBuf>,
) -> Result<Spec, String> {
    let e = |e: oci_spec::OciSpecError| crate::report::chain(&e);
    let insecure = spec.security == Security::Insecure;
    let all = caps_of(&if insecure {
        caps::all_names()
    } else {
        caps::default_names()
    })?;
    let none = Capabilities::new();
    let privileged = spec.user.uid == 0;
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(all.clone())
        .effective(if privileged {
            all.clone()
        } else {
            none.clone()
        })
        .permitted(if privileged { all } else { none.clone() })
        .inheritable(none.clone())
        .ambient(none)
        .build()
        .map_err(e)?;
    let user = UserBuilder::default()
        .uid(spec.user.uid)
        .gid(spec.user.gid)
        .additional_gids(spec.user.additional_gids.clone())
        .build()
        .map_err(e)?;
    // runc reads JSON, which cannot carry bytes that are not UTF-8: they reach the command as
    // U+FFFD, as under BuildKit (the built-in sandbox keeps them).
    let text = |s: &String| kiln_dockerfile_parser::bytes::to_json_text(s).into_owned();
    let cwd = kiln_dockerfile_parser::bytes::from_os_str(spec.cwd.as_os_str());
    let mut process = ProcessBuilder::default()
        .terminal(false)
        .user(user)
        .args(spec.argv.iter().map(text).collect::<Vec<_>>())
        .env(env.iter().map(text).collect::<Vec<_>>())
        .cwd(PathBuf::from(text(&cwd.into_owned())))
        .capabilities(capabilities)
        .no_new_privileges(false)
        .build()
        .map_err(e)?;
    // The builder starts from `Process::default()`, which sets NOFILE to 1024; inherit instead,
    // unless `--ulimit` says otherwise.
    if spec.settings.ulimits.is_empty() {
        process.set_rlimits(None);
    } else {
        let rlimits = spec
            .settings
            .ulimits
            .iter()
            .map(|u| {
                let typ: oci_spec::runtime::PosixRlimitType = serde_json::from_value(
                    serde_json::Value::String(u.oci_name()),
                )
                .map_err(|e| format!("ulimit {}: {e}", u.name, e = crate::report::chain(&e)))?;
                oci_spec::runtime::PosixRlimitBuilder::default()
                    .typ(typ)
                    .soft(u.soft)
                    .hard(u.hard)
                    .build()
                    .map_err(|e| crate::report::chain(&e))
            })
            .collect::<Result<Vec<_>, String>>()?;
        process.set_rlimits(Some(rlimits));
    }

    let mut oci_mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &[
                "nosuid",
                "noexec",
                "nodev",
                "mode=1777",
                &format!("size={}", spec.settings.shm_size.unwrap_or(64 << 20)),
            ],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
    ];
    for m in mounts {
        oci_mounts.push(match m {
            Mount::Bind {
                source,
                target,
                readonly,
            } => mount(
                &target.to_string_lossy(),
                "bind",
                &source.to_string_lossy(),
                &["rbind", "nodev", if *readonly { "ro" } else { "rw" }],
            )?,
            Mount::Secret { source, target } => mount(
                &target.to_string_lossy(),
                "bind",
                &source.to_string_lossy(),
                &["bind", "ro", "nosuid", "nodev", "noexec"],
            )?,
            Mount::Tmpfs { target, size } => {
                let size = size.map(|s| format!("size={s}"));
                let mut opts = vec!["nosuid", "nodev", "mode=1777"];
                if let Some(s) = &size {
                    opts.push(s);
                }
                mount(&target.to_string_lossy(), "tmpfs", "tmpfs", &opts)?
            }
        });
    }

    let mut namespaces = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ];
    if spec.network == NetworkMode::None {
        namespaces.push(LinuxNamespaceType::Network);
    }
    let mut namespaces = namespaces
        .into_iter()
        .map(|t| LinuxNamespaceBuilder::default().typ(t).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(e)?;
    if let Some(path) = netns {
        namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .path(path)
                .build()
                .map_err(e)?,
        );
    }
    let mut linux = LinuxBuilder::default();
    if !insecure {
        linux = linux.seccomp(seccomp::oci_profile(caps::default_set()).map_err(e)?);
    }
    let linux = linux
        .namespaces(namespaces)
        .masked_paths(
            MASKED_PATHS
                .iter()
                .map(|p| format!("/{p}"))
                .collect::<Vec<_>>(),
        )
        .readonly_paths(
            READONLY_PATHS
                .iter()
                .map(|p| format!("/{p}"))
                .collect::<Vec<_>>(),
        )
        .build()
        .map_err(e)?;
    let root = RootBuilder::default()
        .path(spec.rootfs.clone())
        .readonly(false)
        .build()
        .map_err(e)?;
    SpecBuilder::default()
        .version("1.0.2")
        .root(root)
        .hostname(spec.hostname.clone())
        .process(process)
        .mounts(oci_mounts)
        .linux(linux)
        .build()
        .map_err(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_maps_the_spec() {
        let mut spec = RunSpec::new("/rootfs", vec!["id".into(), "-u".into()]);
        spec.user.uid = 1000;
        spec.user.gid = 1000;
        spec.mounts.push(Mount::Tmpfs {
            target: "/cache".into(),
            size: Some(4096),
        });
        let env = vec![format!("PATH={}", super::super::DEFAULT_PATH)];
        let cfg = oci_config(&spec, &env, &spec.mounts, None).unwrap();
        let v = serde_json::to_value(&cfg).unwrap();
        assert_eq!(v["process"]["user"]["uid"], 1000);
        assert_eq!(v["process"]["args"][1], "-u");
        assert_eq!(
            v["process"]["env"][0],
            format!("PATH={}", super::super::DEFAULT_PATH)
        );
        assert!(v["process"].get("rlimits").is_none());
        assert_eq!(
            v["process"]["capabilities"]["effective"],
            serde_json::json!([])
        );
        assert_eq!(
            v["process"]["capabilities"]["bounding"]
                .as_array()
                .unwrap()
                .len(),
            14
        );
        let ns: Vec<_> = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap().to_owned())
            .collect();
        assert!(ns.contains(&"network".to_owned()), "{ns:?}");
        let last = v["mounts"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["destination"], "/cache");
        assert!(
            last["options"]
                .as_array()
                .unwrap()
                .contains(&"size=4096".into())
        );
        assert_eq!(v["root"]["path"], "/rootfs");
        assert_eq!(v["hostname"], "kiln");
    }

    #[test]
    fn host_network_keeps_the_host_namespace() {
        let mut spec = RunSpec::new("/rootfs", vec!["true".into()]);
        spec.network = NetworkMode::Host;
        let v = serde_json::to_value(oci_config(&spec, &[], &[], None).unwrap()).unwrap();
        assert!(!v["linux"]["namespaces"].to_string().contains("network"));
    }
}
