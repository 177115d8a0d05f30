//! `kiln build --load`: stream the image as a docker-archive into `docker load` (when a Docker
//! daemon answers) or `podman load`, as `docker buildx build --load` does.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use kiln_builder_core::content::ContentStore;
use kiln_builder_core::export::{ExportOptions, export_docker_archive};
use kiln_builder_core::image::Descriptor;
use miette::miette;

/// The program that loads the archive.
#[derive(Debug, Clone)]
pub struct Loader {
    program: PathBuf,
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Whether `docker` reaches a daemon (a client alone cannot load anything).
fn daemon_answers(docker: &PathBuf) -> bool {
    Command::new(docker)
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Finds `docker` with a daemon, else `podman`; a clear error when neither is usable. Checked
/// before the build, so that a build is not wasted.
pub fn find_loader() -> miette::Result<Loader> {
    let docker = on_path("docker");
    if let Some(d) = &docker
        && daemon_answers(d)
    {
        return Ok(Loader { program: d.clone() });
    }
    if let Some(p) = on_path("podman") {
        return Ok(Loader { program: p });
    }
    Err(match docker {
        Some(d) => miette!(
            "--load: {} does not reach a Docker daemon and podman is not installed; use -o type=docker,dest=FILE (or -o type=oci) and load the file yourself",
            d.display()
        ),
        None => miette!(
            "--load needs docker (with a running daemon) or podman on $PATH, and neither is installed; use -o type=docker,dest=FILE and load the file yourself"
        ),
    })
}

/// Streams the image, tagged `tags`, into the loader.
pub fn load(
    store: &ContentStore,
    manifest: &Descriptor,
    tags: &[String],
    loader: &Loader,
) -> miette::Result<()> {
    let shown = loader.program.display().to_string();
    let mut child = Command::new(&loader.program)
        .arg("load")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| miette!("--load: cannot run {shown} load: {e}"))?;
    let opts = ExportOptions {
        tags: tags.to_vec(),
        ..ExportOptions::default()
    };
    let written = match child.stdin.take() {
        Some(stdin) => export_docker_archive(store, manifest, stdin, &opts)
            .map(|(_, mut w)| w.flush())
            .map_err(|e| e.to_string()),
        None => Err("no pipe to its standard input".to_string()),
    };
    // The pipe is closed (dropped) by now: the loader sees the end of the archive.
    let out = child
        .wait_with_output()
        .map_err(|e| miette!("--load: {shown} load: {e}"))?;
    if !out.status.success() {
        return Err(miette!(
            "--load: {shown} load failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    if let Err(e) = written {
        return Err(miette!("--load: cannot write the archive to {shown}: {e}"));
    }
    eprintln!(
        "loaded into {}: {}",
        loader
            .program
            .file_name()
            .map_or(shown.clone(), |n| n.to_string_lossy().into_owned()),
        String::from_utf8_lossy(&out.stdout).trim()
    );
    Ok(())
}
