//! Writing an image out of the store: Docker's `--output` syntax.

use std::path::{Path, PathBuf};

use kiln_builder_core::content::ContentStore;
use kiln_builder_core::export::{
    ExportOptions, export_docker_archive, export_oci_archive, export_oci_dir, export_rootfs,
};
use kiln_builder_core::image::Descriptor;
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
}

/// Parses `type=...,dest=...[,tar=false]`.
pub fn parse_output(spec: &str) -> miette::Result<Output> {
    let mut kind = None;
    let mut dest = None;
    let mut tar = true;
    for part in spec.split(',') {
        let (k, v) = parse_kv(part, "--output field")?;
        match k.as_str() {
            "type" => kind = Some(v),
            "dest" => dest = Some(PathBuf::from(v)),
            "tar" => tar = v != "false",
            other => {
                return Err(miette!(
                    "unknown --output field {other:?} (expected type, dest or tar)"
                ));
            }
        }
    }
    let dest = dest.ok_or_else(|| miette!("--output {spec:?} needs dest="))?;
    match kind.as_deref() {
        Some("oci") if tar => Ok(Output::OciArchive(dest)),
        Some("oci") => Ok(Output::OciDir(dest)),
        Some("docker") => Ok(Output::Docker(dest)),
        Some("local") => Ok(Output::Local(dest)),
        Some(other) => Err(miette!(
            "--output type={other} is not supported (oci, docker, local)"
        )),
        None => Err(miette!("--output {spec:?} needs type=")),
    }
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
    let tmp = tempfile::NamedTempFile::new_in(dir)
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

/// Writes the image `manifest` as `output` says.
pub fn write_output(
    store: &ContentStore,
    manifest: &Descriptor,
    output: &Output,
    tags: &[String],
) -> miette::Result<()> {
    let opts = ExportOptions {
        tags: tags
            .iter()
            .map(|t| kiln_builder_core::worker::normalize_reference(t))
            .collect(),
        ..ExportOptions::default()
    };
    match output {
        Output::OciArchive(dest) => write_file_atomically(dest, |f| {
            export_oci_archive(store, manifest, f, &opts)
                .map(|(_, f)| f)
                .map_err(|e| miette!("cannot export to {}: {e}", dest.display()))
        }),
        Output::Docker(dest) => write_file_atomically(dest, |f| {
            export_docker_archive(store, manifest, f, &opts)
                .map(|(_, f)| f)
                .map_err(|e| miette!("cannot export to {}: {e}", dest.display()))
        }),
        Output::OciDir(dest) => {
            export_oci_dir(store, manifest, dest, &opts)
                .map_err(|e| miette!("cannot export to {}: {e}", dest.display()))?;
            Ok(())
        }
        Output::Local(dest) => export_rootfs(store, manifest, dest, &Default::default())
            .map_err(|e| miette!("cannot export to {}: {e}", dest.display())),
    }
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
        assert!(parse_output("type=registry,dest=x").is_err());
        assert!(parse_output("type=oci").is_err());
    }
}
