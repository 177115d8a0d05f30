//! Writing an image out of the store: Docker's `--output` syntax.

use std::path::{Path, PathBuf};

use kiln_builder_core::content::ContentStore;
use kiln_builder_core::export::{
    ExportOptions, export_docker_archive, export_oci_archive, export_oci_dir, export_rootfs,
    export_rootfs_tar,
};
use kiln_builder_core::image::Descriptor;
use std::io::Write as _;

use miette::{IntoDiagnostic, WrapErr, miette};

use super::build::parse_kv;

/// One `--output`.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// `type=oci,dest=FILE`: an OCI archive tar, as BuildKit writes it.
    OciArchive(PathBuf),
    /// `type=oci,dest=DIR,tar=false`: an OCI image layout directory.
    OciDir(PathBuf),
    /// `type=docker,dest=FILE`: a docker-archive tar for `docker load`.
    Docker(PathBuf),
    /// `type=local,dest=DIR`: the image's root filesystem.
    Local(PathBuf),
    /// `type=tar,dest=FILE`: the image's root filesystem as one tar.
    Tar(PathBuf),
    /// `type=image[,name=NAME]`: the image in the store, with these extra names.
    Image(Vec<String>),
}

impl Output {
    /// Whether it writes to standard output (`dest=-`).
    pub fn is_stdout(&self) -> bool {
        match self {
            Output::OciArchive(p) | Output::Docker(p) | Output::Tar(p) => p.as_os_str() == "-",
            _ => false,
        }
    }
}

/// Parses `type=...,dest=...[,tar=false]`.
pub fn parse_output(spec: &str) -> miette::Result<Output> {
    let mut kind = None;
    let mut dest = None;
    let mut tar = true;
    let mut names = Vec::new();
    for part in spec.split(',') {
        let (k, v) = parse_kv(part, "--output field")?;
        match k.as_str() {
            "type" => kind = Some(v),
            "dest" => dest = Some(PathBuf::from(v)),
            "tar" => tar = v != "false",
            "name" => names.push(v),
            other => {
                return Err(miette!(
                    "unknown --output field {other:?} (expected type, dest, tar or name)"
                ));
            }
        }
    }
    if kind.as_deref() == Some("image") {
        if dest.is_some() {
            return Err(miette!("--output type=image takes name=, not dest="));
        }
        return Ok(Output::Image(names));
    }
    if !names.is_empty() {
        return Err(miette!("--output name= is only for type=image"));
    }
    let dest = dest.ok_or_else(|| miette!("--output {spec:?} needs dest="))?;
    let out = match kind.as_deref() {
        Some("oci") if tar => Output::OciArchive(dest),
        Some("oci") => Output::OciDir(dest),
        Some("docker") => Output::Docker(dest),
        Some("local") => Output::Local(dest),
        Some("tar") => Output::Tar(dest),
        Some(other) => {
            return Err(miette!(
                "--output type={other} is not supported (oci, docker, local, tar, image)"
            ));
        }
        None => return Err(miette!("--output {spec:?} needs type=")),
    };
    if matches!(&out, Output::OciDir(p) | Output::Local(p) if p.as_os_str() == "-") {
        return Err(miette!(
            "--output {spec:?}: a directory cannot go to standard output"
        ));
    }
    Ok(out)
}

/// Writes a file through a temp file beside it, renamed into place only when complete.
pub(crate) fn write_file_atomically(
    dest: &Path,
    write: impl FnOnce(std::fs::File) -> miette::Result<std::fs::File>,
) -> miette::Result<()> {
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // Readable by others like any file a command writes (a temp file would be 0600).
    let tmp = tempfile::Builder::new()
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(dir)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot create a file in {}", dir.display()))?;
    let (file, path) = tmp.into_parts();
    let file = write(file)?;
    file.sync_all().into_diagnostic()?;
    path.persist(dest)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot write {}", dest.display()))?;
    Ok(())
}

/// Writes a tar to `dest`, or to standard output for `-`.
fn write_tar(
    dest: &Path,
    write: impl FnOnce(Box<dyn std::io::Write>) -> miette::Result<Box<dyn std::io::Write>>,
) -> miette::Result<()> {
    if dest.as_os_str() == "-" {
        let out = std::io::BufWriter::new(std::io::stdout().lock());
        let mut out = write(Box::new(out))?;
        return out.flush().into_diagnostic();
    }
    write_file_atomically(dest, |f| {
        // The writer gets its own handle of the file; the original is synced and renamed.
        let handle = f.try_clone().into_diagnostic()?;
        write(Box::new(std::io::BufWriter::new(handle)))?
            .flush()
            .into_diagnostic()?;
        Ok(f)
    })
}

/// Writes the image `manifest` as `output` says.
pub fn write_output(
    store: &ContentStore,
    manifest: &Descriptor,
    output: &Output,
    tags: &[String],
    show_progress: bool,
) -> miette::Result<()> {
    use crate::tty_progress::{CountingWriter, byte_bar};
    let bar = byte_bar(show_progress, "exporting", false);
    let opts = ExportOptions {
        tags: tags
            .iter()
            .map(|t| kiln_builder_core::worker::normalize_reference(t))
            .collect(),
        ..ExportOptions::default()
    };
    let fail = |dest: &Path, e: &dyn std::fmt::Display| {
        miette!("cannot export to {}: {e}", dest.display())
    };
    let result = match output {
        Output::OciArchive(dest) => write_tar(dest, |f| {
            export_oci_archive(store, manifest, CountingWriter::new(f, bar.clone()), &opts)
                .map(|(_, f)| f.into_inner())
                .map_err(|e| fail(dest, &e))
        }),
        Output::Docker(dest) => write_tar(dest, |f| {
            export_docker_archive(store, manifest, CountingWriter::new(f, bar.clone()), &opts)
                .map(|(_, f)| f.into_inner())
                .map_err(|e| fail(dest, &e))
        }),
        Output::Tar(dest) => write_tar(dest, |f| {
            export_rootfs_tar(
                store,
                manifest,
                &store.state_dir().join("tmp"),
                CountingWriter::new(f, bar.clone()),
            )
            .map(CountingWriter::into_inner)
            .map_err(|e| fail(dest, &e))
        }),
        // The build already tagged the image with these names.
        Output::Image(_) => Ok(()),
        Output::OciDir(dest) => {
            export_oci_dir(store, manifest, dest, &opts)
                .map_err(|e| miette!("cannot export to {}: {e}", dest.display()))?;
            Ok(())
        }
        Output::Local(dest) => export_rootfs(store, manifest, dest, &Default::default())
            .map_err(|e| miette!("cannot export to {}: {e}", dest.display())),
    };
    if result.is_ok()
        && !matches!(
            output,
            Output::Image(_) | Output::OciDir(_) | Output::Local(_)
        )
    {
        crate::tty_progress::finish_bytes(&bar, "exported");
    } else {
        bar.finish_and_clear();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_parse_like_docker() {
        assert_eq!(
            parse_output("type=oci,dest=a.tar").unwrap(),
            Output::OciArchive("a.tar".into())
        );
        assert_eq!(
            parse_output("type=oci,dest=d,tar=false").unwrap(),
            Output::OciDir("d".into())
        );
        assert_eq!(
            parse_output("type=docker,dest=x").unwrap(),
            Output::Docker("x".into())
        );
        assert_eq!(
            parse_output("type=tar,dest=-").unwrap(),
            Output::Tar("-".into())
        );
        assert!(parse_output("type=tar,dest=-").unwrap().is_stdout());
        assert_eq!(
            parse_output("type=image,name=a:1").unwrap(),
            Output::Image(vec!["a:1".into()])
        );
        assert!(parse_output("type=local,dest=-").is_err());
        assert!(parse_output("type=registry,dest=x").is_err());
        assert!(parse_output("type=oci").is_err());
    }
}
