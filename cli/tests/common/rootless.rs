//! Running `kiln` as an ordinary user: the account `scripts/test.sh` makes (with ranges in
//! `/etc/subuid` and `/etc/subgid`) and names in `KILN_TEST_ROOTLESS_USER`. The tests run as
//! root and drop to that user with `setpriv` for each command.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// The unprivileged user and a home of its own for one test.
pub struct User {
    /// Account name.
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
    /// A fresh home: the kiln binary, the store (`$XDG_DATA_HOME/kiln`), runtime and contexts.
    pub home: tempfile::TempDir,
    kiln: PathBuf,
}

fn id_of(name: &str, flag: &str) -> u32 {
    let out = std::process::Command::new("id")
        .args([flag, name])
        .output()
        .unwrap();
    assert!(out.status.success(), "id {flag} {name}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// The test user, or `None` (skip) outside CI; with `KILN_REQUIRE_PRIVILEGED=1` a missing user
/// is a failure.
pub fn user(test: &str) -> Option<User> {
    let required = std::env::var_os("KILN_REQUIRE_PRIVILEGED").is_some_and(|v| v == "1");
    let name = match std::env::var("KILN_TEST_ROOTLESS_USER") {
        Ok(n) if !n.is_empty() => n,
        _ => {
            assert!(
                !required,
                "{test}: KILN_TEST_ROOTLESS_USER is not set: run the tests with scripts/test.sh"
            );
            eprintln!("skipping {test}: no unprivileged test user (run scripts/test.sh)");
            return None;
        }
    };
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            !required,
            "{test}: the tests must run as root to switch users"
        );
        return None;
    }
    let (uid, gid) = (id_of(&name, "-u"), id_of(&name, "-g"));
    let home = tempfile::Builder::new()
        .prefix("kiln-rootless-")
        .tempdir()
        .unwrap();
    let kiln = home.path().join("bin/kiln");
    std::fs::create_dir_all(kiln.parent().unwrap()).unwrap();
    std::fs::copy(assert_cmd::cargo::cargo_bin("kiln"), &kiln).unwrap();
    for d in [".local/share", "run", "ctx"] {
        std::fs::create_dir_all(home.path().join(d)).unwrap();
    }
    let user = User {
        name,
        uid,
        gid,
        home,
        kiln,
    };
    user.give(user.home.path());
    std::fs::set_permissions(
        user.home.path().join("run"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    Some(user)
}

impl User {
    /// `kiln ARGS` as the user, with a clean environment, its home and a timeout.
    pub fn kiln(&self) -> Command {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .arg(&self.kiln)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", self.home.path())
            .env("USER", &self.name)
            .env("XDG_DATA_HOME", self.home.path().join(".local/share"))
            .env("XDG_RUNTIME_DIR", self.home.path().join("run"))
            .timeout(super::BUILD_TIMEOUT * 3);
        for key in ["KILN_TEST_REGISTRY", "NO_COLOR"] {
            if let Some(v) = std::env::var_os(key) {
                c.env(key, v);
            }
        }
        c
    }

    /// `kiln ARGS` as the user, as [`User::kiln`], for a process to start and stop by hand.
    pub fn kiln_process(&self) -> std::process::Command {
        let mut c = std::process::Command::new("setpriv");
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .arg(&self.kiln)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", self.home.path())
            .env("USER", &self.name)
            .env("XDG_DATA_HOME", self.home.path().join(".local/share"))
            .env("XDG_RUNTIME_DIR", self.home.path().join("run"));
        c
    }

    /// The user's copy of the kiln binary.
    pub fn binary(&self) -> &Path {
        &self.kiln
    }

    /// The store the user's kiln uses by default.
    pub fn store(&self) -> PathBuf {
        self.home.path().join(".local/share/kiln")
    }

    /// A directory for a build context, owned by the user.
    pub fn dir(&self, name: &str) -> PathBuf {
        let d = self.home.path().join("ctx").join(name);
        std::fs::create_dir_all(&d).unwrap();
        self.give(&d);
        d
    }

    /// Gives everything under `path` to the user.
    pub fn give(&self, path: &Path) {
        let st = std::process::Command::new("chown")
            .args(["-R", &format!("{}:{}", self.uid, self.gid)])
            .arg(path)
            .status()
            .unwrap();
        assert!(st.success(), "chown -R {}", path.display());
    }
}
