//! `--load`: stream an image as a docker-archive into `docker load` (when a Docker daemon
//! answers) or `podman load`, as `docker buildx build --load` does.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::content::ContentStore;
use crate::export::{ExportOptions, export_docker_archive};
use crate::image::Descriptor;

/// Why an image could not be loaded.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum LoadError {
    /// Neither a usable docker nor podman is installed.
    #[error(
        "--load needs docker (with a running daemon) or podman on $PATH, and neither is installed"
    )]
    #[diagnostic(
        code(kiln::load::no_loader),
        help("use -o type=docker,dest=FILE and load the file yourself")
    )]
    NoLoader,
    /// docker is installed but reaches no daemon, and podman is not installed.
    #[error(
        "--load: {} does not reach a Docker daemon and podman is not installed",
        docker.display()
    )]
    #[diagnostic(
        code(kiln::load::no_daemon),
        help("use -o type=docker,dest=FILE (or -o type=oci) and load the file yourself")
    )]
    NoDaemon {
        /// The docker client found.
        docker: PathBuf,
    },
    /// The loader could not be started or waited for.
    #[error("--load: cannot run {} load", program.display())]
    #[diagnostic(code(kiln::load::spawn))]
    Spawn {
        /// The loader.
        program: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The loader failed.
    #[error("--load: {} load failed ({status}): {stderr}", program.display())]
    #[diagnostic(code(kiln::load::failed))]
    Failed {
        /// The loader.
        program: PathBuf,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it said.
        stderr: String,
    },
    /// The archive could not be written to the loader.
    #[error("--load: cannot write the archive to {}: {reason}", program.display())]
    #[diagnostic(code(kiln::load::write))]
    Write {
        /// The loader.
        program: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The program that loads the archive: `docker` or `podman`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loader {
    program: PathBuf,
}

/// Whether `docker` reaches a daemon (a client alone cannot load anything).
fn daemon_answers(docker: &Path) -> bool {
    Command::new(docker)
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Loader {
    /// Finds `docker` with a daemon, else `podman`. Check it before a build, so that a build is
    /// not wasted.
    pub fn find() -> Result<Loader, LoadError> {
        let docker = crate::programs::on_path("docker");
        if let Some(d) = &docker
            && daemon_answers(d)
        {
            return Ok(Loader { program: d.clone() });
        }
        if let Some(p) = crate::programs::on_path("podman") {
            return Ok(Loader { program: p });
        }
        Err(match docker {
            Some(docker) => LoadError::NoDaemon { docker },
            None => LoadError::NoLoader,
        })
    }

    /// A loader program of the caller's choice, run as `PROGRAM load`.
    pub fn with_program(program: impl Into<PathBuf>) -> Loader {
        Loader {
            program: program.into(),
        }
    }

    /// The program's file name (`docker`, `podman`).
    pub fn name(&self) -> String {
        self.program.file_name().map_or_else(
            || self.program.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    /// Streams the image, tagged `tags`, into the loader; returns what it printed (`Loaded
    /// image: ...`). Blocking.
    pub fn load(
        &self,
        store: &ContentStore,
        manifest: &Descriptor,
        tags: &[String],
    ) -> Result<String, LoadError> {
        let program = self.program.clone();
        let mut child = Command::new(&self.program)
            .arg("load")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| LoadError::Spawn {
                program: program.clone(),
                source,
            })?;
        let opts = ExportOptions {
            tags: tags.to_vec(),
            ..ExportOptions::default()
        };
        let written = match child.stdin.take() {
            Some(stdin) => export_docker_archive(store, manifest, stdin, &opts)
                .map_err(|e| crate::report::chain(&e))
                .and_then(|(_, mut w)| w.flush().map_err(|e| crate::report::chain(&e))),
            None => Err("no pipe to its standard input".to_string()),
        };
        // The pipe is closed (dropped) by now: the loader sees the end of the archive.
        let out = child
            .wait_with_output()
            .map_err(|source| LoadError::Spawn {
                program: program.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(LoadError::Failed {
                program,
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        if let Err(reason) = written {
            return Err(LoadError::Write { program, reason });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}
