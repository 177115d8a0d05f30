//! Support for kiln's own tests (feature `testing`): deciding whether privileged tests run, finding
//! the registries the test command started, and building offline busybox root filesystems.
//!
//! Privileged tests never silently skip in CI: when `KILN_REQUIRE_PRIVILEGED=1` is set (the test
//! command sets it) and root or namespaces are missing, [`require_privileged`] panics, so the test
//! fails. Without it, a developer's unprivileged run skips those tests with a printed reason.
//!
//! ```no_run
//! # fn t() {
//! if !kiln_builder_core::testing::require_privileged("sandbox isolation") {
//!     return;
//! }
//! // ... a test that needs root and namespaces ...
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The environment variable that turns a missing capability into a test failure.
pub const REQUIRE_PRIVILEGED_ENV: &str = "KILN_REQUIRE_PRIVILEGED";
/// The environment variable naming the plain-HTTP test registry (`host:port`).
pub const REGISTRY_ENV: &str = "KILN_TEST_REGISTRY";
/// The environment variable naming the basic-auth test registry (`host:port`).
pub const REGISTRY_BASIC_ENV: &str = "KILN_TEST_REGISTRY_BASIC";

/// Whether `KILN_REQUIRE_PRIVILEGED` asks for every privileged test to run.
pub fn privileged_required() -> bool {
    matches!(
        std::env::var(REQUIRE_PRIVILEGED_ENV).as_deref(),
        Ok("1") | Ok("true") | Ok("yes")
    )
}

/// Why privileged tests cannot run here, or `None` when they can. Probed once per process: the
/// caller must be root and a child must be able to create mount, PID, IPC, UTS and network
/// namespaces.
pub fn privilege_problem() -> Option<String> {
    static PROBE: OnceLock<Option<String>> = OnceLock::new();
    PROBE.get_or_init(probe_privileges).clone()
}

fn probe_privileges() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("not running as root".to_string());
    }
    // Probe in a child so this process's namespaces stay as they are. `unshare` from util-linux is
    // on every Debian system; fall back to reporting it missing.
    let status = std::process::Command::new("unshare")
        .args([
            "--mount", "--pid", "--ipc", "--uts", "--net", "--fork", "true",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output();
    match status {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "cannot create namespaces: unshare exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Some(format!("cannot run unshare(1) to probe namespaces: {e}")),
    }
}

/// Returns whether a privileged test named `what` may run. With `KILN_REQUIRE_PRIVILEGED=1` a
/// missing capability panics (the test fails); otherwise it prints why it skips and returns false.
pub fn require_privileged(what: &str) -> bool {
    match privilege_problem() {
        None => true,
        Some(problem) if privileged_required() => {
            panic!("{what}: privileged test required by {REQUIRE_PRIVILEGED_ENV}=1 but {problem}")
        }
        Some(problem) => {
            eprintln!(
                "skipping {what}: {problem} (set {REQUIRE_PRIVILEGED_ENV}=1 to fail instead)"
            );
            false
        }
    }
}

/// A registry the test command started on loopback.
#[derive(Clone, PartialEq, Eq)]
pub struct TestRegistry {
    /// `host:port`, e.g. `127.0.0.1:41234`.
    pub addr: String,
    /// Basic-auth credentials, for the registry started with an htpasswd file.
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for TestRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRegistry")
            .field("addr", &self.addr)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|(u, _)| (u, "<redacted>")),
            )
            .finish()
    }
}

fn registry_from_env(env: &str, what: &str, with_credentials: bool) -> Option<TestRegistry> {
    let addr = match std::env::var(env) {
        Ok(addr) if !addr.is_empty() => addr,
        _ if privileged_required() => {
            panic!("{what}: {env} is not set; run the tests with scripts/test.sh, which starts it")
        }
        _ => {
            eprintln!("skipping {what}: {env} is not set (scripts/test.sh starts a registry)");
            return None;
        }
    };
    let credentials = if with_credentials {
        let user = std::env::var("KILN_TEST_REGISTRY_USER").ok()?;
        let password = std::env::var("KILN_TEST_REGISTRY_PASSWORD").ok()?;
        Some((user, password))
    } else {
        None
    };
    Some(TestRegistry { addr, credentials })
}

/// The plain-HTTP registry on loopback, or `None` (with a printed reason) when the tests were not
/// started by the test command. In CI (`KILN_REQUIRE_PRIVILEGED=1`) a missing registry panics.
pub fn registry(what: &str) -> Option<TestRegistry> {
    registry_from_env(REGISTRY_ENV, what, false)
}

/// The basic-auth registry on loopback with its credentials; see [`registry`].
pub fn basic_auth_registry(what: &str) -> Option<TestRegistry> {
    registry_from_env(REGISTRY_BASIC_ENV, what, true)
}

/// The environment variable naming the directory of static busybox binaries for other
/// architectures (`busybox-amd64`, `busybox-arm64`, `busybox-arm`), which `scripts/test.sh`
/// unpacks from Debian's `busybox-static` packages.
pub const BUSYBOX_DIR_ENV: &str = "KILN_TEST_BUSYBOX_DIR";

/// The directory of [`BUSYBOX_DIR_ENV`] when it holds `busybox-<arch>` for every `arch` (Go's
/// names), or `None` with a printed reason. In CI (`KILN_REQUIRE_PRIVILEGED=1`) a missing one
/// panics, naming the script that provides it.
pub fn foreign_busybox_dir(what: &str, arches: &[&str]) -> Option<PathBuf> {
    let dir = std::env::var_os(BUSYBOX_DIR_ENV).map(PathBuf::from);
    let missing: Vec<&str> = arches
        .iter()
        .copied()
        .filter(|a| {
            dir.as_ref()
                .is_none_or(|d| !d.join(format!("busybox-{a}")).is_file())
        })
        .collect();
    if missing.is_empty() {
        return dir;
    }
    let problem = format!(
        "{BUSYBOX_DIR_ENV} has no busybox for {} (scripts/test.sh unpacks busybox-static for other architectures)",
        missing.join(", ")
    );
    if privileged_required() {
        panic!("{what}: {problem}");
    }
    eprintln!("skipping {what}: {problem}");
    None
}

/// The static busybox binary from Debian's `busybox-static` package.
pub fn busybox_binary() -> PathBuf {
    PathBuf::from("/bin/busybox")
}

/// The applets linked in every busybox rootfs these helpers build.
pub const BUSYBOX_APPLETS: &[&str] = &[
    "sh", "echo", "cat", "ls", "ps", "id", "hostname", "sleep", "true", "false", "mkdir", "rm",
    "touch", "env", "pwd", "ip", "wc", "grep", "sed", "head", "tail", "test", "[", "printf",
    "chmod", "chown", "ln", "cp", "mv", "stat", "find", "tar", "sort", "uname", "kill", "mount",
    "date",
];

/// Builds a minimal busybox root filesystem in `dir`: `/bin/busybox`, applet symlinks, `/etc/passwd`
/// and `/etc/group` with root and nobody, and empty `/tmp`, `/proc`, `/dev`, `/sys`.
pub fn busybox_rootfs(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for sub in ["bin", "etc", "tmp", "proc", "dev", "sys", "root"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    std::fs::set_permissions(dir.join("tmp"), std::fs::Permissions::from_mode(0o1777))?;
    std::fs::copy(busybox_binary(), dir.join("bin/busybox"))?;
    std::fs::set_permissions(
        dir.join("bin/busybox"),
        std::fs::Permissions::from_mode(0o755),
    )?;
    for applet in BUSYBOX_APPLETS {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet))?;
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    std::fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    Ok(())
}

/// Errors of [`busybox_layout`].
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// Building the rootfs failed.
    #[error("cannot build the busybox rootfs in {path}")]
    Rootfs {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing blobs or the layer failed (boxed: the error is large).
    #[error(transparent)]
    Worker(Box<crate::worker::WorkerError>),
    /// Exporting the layout failed.
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
}

impl From<crate::worker::WorkerError> for LayoutError {
    fn from(e: crate::worker::WorkerError) -> Self {
        LayoutError::Worker(Box::new(e))
    }
}

/// Makes a busybox base image offline and writes it as an OCI image layout at `dest`, tagged
/// `tag` (grant it with `--build-context NAME=oci-layout://<dest>:<tag>` and use it as
/// `FROM NAME`). The image has one layer (the rootfs of
/// [`busybox_rootfs`]), `PATH` set and `sh` as its command; with the same busybox binary it is
/// byte-for-byte the same every time. Returns the manifest digest.
pub fn busybox_layout(dest: &Path, tag: &str) -> Result<crate::content::Digest, LayoutError> {
    use crate::image::{Descriptor, ImageConfig, Manifest, Platform, RootFs, media};
    use crate::worker::WorkerError;
    let work = tempfile::tempdir().map_err(|source| LayoutError::Rootfs {
        path: std::env::temp_dir(),
        source,
    })?;
    let rootfs = work.path().join("rootfs");
    busybox_rootfs(&rootfs).map_err(|source| LayoutError::Rootfs {
        path: rootfs.clone(),
        source,
    })?;
    let store =
        crate::content::ContentStore::open(work.path().join("store")).map_err(WorkerError::from)?;
    let root = crate::fsroot::Root::open(&rootfs).map_err(WorkerError::from)?;
    // Fixed times so the layout is reproducible.
    let opts = crate::layer::LayerOptions {
        source_date_epoch: Some(0),
    };
    let (layer, _) =
        crate::layer::write_tree_to_store(&store, &root, &opts).map_err(WorkerError::from)?;
    let mut config = ImageConfig::scratch(&Platform::host());
    config.created = Some(crate::image::format_rfc3339(0));
    let mut cc = crate::image::ContainerConfig::default();
    cc.env_set("PATH", crate::image::DEFAULT_PATH);
    cc.cmd = Some(vec!["sh".to_string()]);
    config.config = Some(cc);
    config.rootfs = RootFs {
        diff_ids: vec![layer.digest],
        ..RootFs::default()
    };
    let config_desc = store
        .put_json(&config, media::OCI_CONFIG)
        .map_err(WorkerError::from)?;
    let manifest = Manifest::oci(
        config_desc,
        vec![Descriptor::new(
            media::OCI_LAYER_TAR,
            layer.digest,
            layer.size,
        )],
    );
    let manifest_desc = store
        .put_json(&manifest, media::OCI_MANIFEST)
        .map_err(WorkerError::from)?;
    let export = crate::export::ExportOptions {
        tags: vec![tag.to_string()],
        ..Default::default()
    };
    crate::export::export_oci_dir(&store, &manifest_desc, dest, &export)?;
    Ok(manifest_desc.digest)
}

/// Internals that kiln's benchmarks (a crate of their own, `benches/`) measure and that the
/// executor's integration tests drive together with a snapshotter. They are not part of the
/// library's interface: the tests need the `kiln-sandbox` binary, which only an integration test
/// gets, and the benchmarks run outside the crate.
#[doc(hidden)]
pub mod internals {
    pub use crate::cache::{CacheKey, CacheRecord, CacheStore, KeyBuilder, LayerRef, PackedBlob};
    pub use crate::changes::{Change, WhiteoutStyle};
    pub use crate::context::hash::{ContentDigest, RACY_WINDOW, Sha256Digest, StatKey};
    pub use crate::context::pattern::Pattern;
    pub use crate::context::{
        BuildContext, CachingHasher, DirectHasher, Entry, EntryKind, FileHasher, IgnoreMatcher,
        MatchState, StatCache, hash_all, walk,
    };
    pub use crate::fsroot::Root;
    pub use crate::graph::{CopyOp, ImageRef, InlineFile, Network, Op, RunMount, RunOp, SourceRef};
    pub use crate::layer::{
        ApplyOptions, ApplyStats, LayerOptions, WriteStats, apply_layer, gzip_parallel, write_tree,
    };
    pub use crate::snapshot::{Active, CopySnapshotter, OverlaySnapshotter, Snapshotter, View};
    pub use crate::solver::step_key;
}
