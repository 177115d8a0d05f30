//! Where credentials are looked up: Docker's `config.json`, and the auth files of the
//! containers tools (podman, buildah, skopeo), which have the same format, so that a CI job
//! logged in with `podman login` or handed a `REGISTRY_AUTH_FILE` pushes without `kiln login`.

use std::path::{Path, PathBuf};

use super::RegistryError;
use super::auth::{Credentials, DockerConfig};

/// The auth files looked up after Docker's `config.json` in `docker_dir`, in order, as the
/// containers tools (podman, buildah, skopeo) name them: `$REGISTRY_AUTH_FILE` (first of all,
/// when set: it is named on purpose), `$XDG_RUNTIME_DIR/containers/auth.json`, then
/// `$XDG_CONFIG_HOME/containers/auth.json` (else `~/.config/containers/auth.json`).
pub fn auth_files(
    docker_dir: &Path,
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Vec<PathBuf> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let mut out = Vec::new();
    out.extend(var("REGISTRY_AUTH_FILE"));
    out.push(docker_dir.join("config.json"));
    if let Some(run) = var("XDG_RUNTIME_DIR") {
        out.push(run.join("containers/auth.json"));
    }
    let config_home = var("XDG_CONFIG_HOME").or_else(|| var("HOME").map(|h| h.join(".config")));
    if let Some(c) = config_home {
        out.push(c.join("containers/auth.json"));
    }
    out
}

/// The credentials for `registry` from the first of [`auth_files`] that has any (files that do
/// not exist are skipped; one that does not parse is an error naming it).
pub fn find_credentials(
    docker_dir: &Path,
    registry: &str,
) -> Result<Option<Credentials>, RegistryError> {
    for file in auth_files(docker_dir, |v| std::env::var_os(v)) {
        if let Some(c) = DockerConfig::load_file(file)?.credentials(registry)? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn podman_auth_files_are_looked_up_after_docker_config() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        let d = Path::new("/d");
        assert_eq!(
            auth_files(
                d,
                env(&[("XDG_RUNTIME_DIR", "/run/user/1"), ("HOME", "/h")])
            ),
            vec![
                PathBuf::from("/d/config.json"),
                "/run/user/1/containers/auth.json".into(),
                "/h/.config/containers/auth.json".into(),
            ]
        );
        assert_eq!(
            auth_files(
                d,
                env(&[("REGISTRY_AUTH_FILE", "/a.json"), ("XDG_CONFIG_HOME", "/c")])
            ),
            vec![
                PathBuf::from("/a.json"),
                "/d/config.json".into(),
                "/c/containers/auth.json".into(),
            ]
        );
        // The file has config.json's format.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth.json");
        std::fs::write(
            &file,
            r#"{"auths":{"reg.example:5000":{"auth":"dTpwdw=="}}}"#,
        )
        .unwrap();
        let c = DockerConfig::load_file(file)
            .unwrap()
            .credentials("reg.example:5000")
            .unwrap()
            .unwrap();
        assert_eq!(c.password.expose(), "pw");
    }
}
