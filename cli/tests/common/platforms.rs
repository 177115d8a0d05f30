//! Foreign platforms in the tests: whether the host's binfmt_misc emulators can run a platform's
//! RUN steps, and build contexts with the static busybox of each architecture
//! (`KILN_TEST_BUSYBOX_DIR`, unpacked by `scripts/test.sh`).

use std::path::Path;

use kiln_builder_core::image::Platform;
use kiln_builder_core::testing::privileged_required;

/// Whether RUN steps for `platform` can run here; in CI a missing emulator panics.
pub fn emulator(platform: &str) -> bool {
    let p = Platform::parse(platform).unwrap();
    match kiln_builder_core::info::can_run(&p) {
        Ok(_) => true,
        Err(e) if privileged_required() => panic!("{e}"),
        Err(e) => {
            eprintln!("skipping: {e}");
            false
        }
    }
}

/// A context with `Dockerfile` and the busybox of each architecture as `busybox-<arch>`.
pub fn context(dir: &Path, arches: &[&str], dockerfile: &str) -> tempfile::TempDir {
    let ctx = tempfile::tempdir().unwrap();
    for arch in arches {
        let name = format!("busybox-{arch}");
        std::fs::copy(dir.join(&name), ctx.path().join(&name)).unwrap();
    }
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    ctx
}
