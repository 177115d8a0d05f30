//! Helpers shared by the end-to-end test binaries: running `kiln`, making build contexts with the
//! static busybox, and launching built images with umoci + runc.
// Each test binary uses a different subset.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command as Std, Stdio};
use std::time::Duration;

use assert_cmd::Command;

pub mod agent;
pub mod checks;
pub mod debian;
pub mod platforms;
pub mod proxy;
pub mod rootless;

/// Two stages, each with a RUN that prints a marker when it runs (`one-42`, `two-42`): what the
/// cache tests build to see which steps came from a cache.
pub const TWO_STAGES: &str = r#"FROM scratch AS tools
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "echo one-$((40+2)); echo tool > /tool.txt"]
FROM scratch
COPY busybox /bin/busybox
COPY --from=tools /tool.txt /tool.txt
RUN ["/bin/busybox", "sh", "-c", "echo two-$((40+2)); cat /tool.txt > /final.txt"]
"#;

/// Upper bound for any single `kiln` run in the tests.
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(120);

/// `kiln --root ROOT`, with a clean `SOURCE_DATE_EPOCH` and a timeout.
pub fn kiln(root: &Path) -> Command {
    let mut c = Command::cargo_bin("kiln").expect("the kiln binary is built for tests");
    c.arg("--root")
        .arg(root)
        .env_remove("SOURCE_DATE_EPOCH")
        .timeout(BUILD_TIMEOUT);
    c
}

/// `testdata/examples`.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/examples")
}

/// A build context: a copy of `testdata/examples/<name>` plus the static busybox.
pub fn example_context(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(examples().join(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    std::fs::copy("/bin/busybox", dir.path().join("busybox")).unwrap();
    dir
}

/// A build context holding the static busybox and `files` (path, content).
pub fn context_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy("/bin/busybox", dir.path().join("busybox")).unwrap();
    for (name, content) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    dir
}

/// Whether the tool is installed; in CI (`KILN_REQUIRE_PRIVILEGED=1`) a missing tool panics.
pub fn tool(name: &str) -> bool {
    tool_answering(name, "--version")
}

/// [`tool`] for a tool that shows its version with another argument (`openssl version`).
pub fn tool_answering(name: &str, version_arg: &str) -> bool {
    let found = Std::new(name)
        .arg(version_arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if !found && kiln_builder_core::testing::privileged_required() {
        panic!("{name} is required (scripts/test.sh installs it)");
    }
    found
}

/// Runs `kiln build`; returns (success, stdout, stderr).
pub fn try_build(root: &Path, ctx: &Path, extra: &[&str]) -> (bool, String, String) {
    let out = kiln(root)
        .arg("build")
        .args(extra)
        .arg(ctx)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Builds and returns (image id, stderr); a failed build fails the test.
pub fn build(root: &Path, ctx: &Path, extra: &[&str]) -> (String, String) {
    let (ok, id, stderr) = try_build(root, ctx, extra);
    assert!(ok, "build failed:\n{stderr}");
    assert!(id.starts_with("sha256:"), "stdout is the image id: {id:?}");
    (id, stderr)
}

/// Unpacks `name` from the store with umoci and runs it with runc; returns (stdout, the bundle's
/// config.json).
pub fn run_image(root: &Path, name: &str) -> (String, serde_json::Value) {
    let bundle = tempfile::tempdir().unwrap();
    let dir = bundle.path().join("b");
    let status = Std::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:{name}", root.display()))
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let cfg_path = dir.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    cfg["process"]["terminal"] = serde_json::Value::Bool(false);
    std::fs::write(&cfg_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let id = format!("kiln-test-{}-{n}", std::process::id());
    let out = Std::new("runc")
        .arg("run")
        .arg(&id)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = Std::new("runc").args(["delete", "-f", &id]).output();
    assert!(
        out.status.success(),
        "runc run {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (String::from_utf8_lossy(&out.stdout).to_string(), cfg)
}

/// The config blob of an image, as JSON, read with `skopeo inspect --raw --config`.
pub fn raw_config(image: &str) -> serde_json::Value {
    let out = Std::new("skopeo")
        .args(["inspect", "--raw", "--config", image])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A build context holding the static busybox and `dockerfile`.
pub fn dockerfile_context(dockerfile: &str) -> tempfile::TempDir {
    context_with(&[("Dockerfile", dockerfile)])
}

/// Unpacks and runs `name`; returns its stdout.
pub fn run_stdout(root: &Path, name: &str) -> String {
    run_image(root, name).0
}

/// Builds and exports the image's root filesystem to a fresh directory (`<dir>/rootfs`).
pub fn build_rootfs(root: &Path, ctx: &Path, extra: &[&str]) -> (tempfile::TempDir, String) {
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("rootfs");
    let mut args = extra.to_vec();
    let output = format!("type=local,dest={}", dest.display());
    args.extend(["--output", &output]);
    let (_, stderr) = build(root, ctx, &args);
    (out, stderr)
}

/// A repository name no other test run uses.
pub fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("kiln-test/{name}-{}-{nanos}", std::process::id())
}

/// Asserts that a command succeeded, showing its stderr otherwise.
pub fn assert_ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a command that must succeed (its stderr shown otherwise); returns its stdout, trimmed.
pub fn ok_stdout(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert_ok(&out);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The manifest (or index) bytes a registry serves for `reference`, through skopeo.
pub fn raw_manifest_bytes(reference: &str) -> Vec<u8> {
    let out = Std::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    assert_ok(&out);
    out.stdout
}

/// `git` in `dir` with a throw-away identity and no user or system configuration; its stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Std::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Every entry of the tar at `path` with its contents as text (lossy), by path.
pub fn tar_texts(path: &Path) -> std::collections::BTreeMap<String, String> {
    use std::io::Read;
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    let entries = archive.entries().unwrap().map(|e| e.unwrap());
    entries
        .map(|mut e| {
            let mut bytes = Vec::new();
            let _ = e.read_to_end(&mut bytes);
            let name = e.path().unwrap().display().to_string();
            (name, String::from_utf8_lossy(&bytes).into_owned())
        })
        .collect()
}
