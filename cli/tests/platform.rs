//! Multi-platform builds through the `kiln` binary: a foreign platform's RUN steps under the
//! host's binfmt_misc emulators (qemu-user-static), images whose configs name the platform, an
//! image index for several platforms (pushed to a real registry and read back with skopeo, and
//! written as an OCI layout), and a `FROM --platform=$BUILDPLATFORM` stage shared by the targets.
//! Static busybox binaries of other architectures come from `KILN_TEST_BUSYBOX_DIR`
//! (`scripts/test.sh` unpacks Debian's busybox-static for arm64 and armhf). These need root; with
//! `KILN_REQUIRE_PRIVILEGED=1` (CI) a missing capability, emulator or binary fails them.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use std::path::Path;
use std::process::Command as Std;

use kiln_builder_core::image::Platform;
use kiln_builder_core::testing::{foreign_busybox_dir, privileged_required, require_privileged};

mod common;
use common::platforms::{context, emulator};
use common::{build, kiln, tool, try_build};

/// Whether the report `stderr` says `needle`, however it was wrapped.
fn says(stderr: &str, needle: &str) -> bool {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_whitespace() && !matches!(c, '│' | '×' | '╰' | '─' | '╭'))
            .collect()
    };
    squash(stderr).contains(&squash(needle))
}

/// The Dockerfile of the issue: the target's busybox, and a RUN that records `uname -m`.
const ARCH_DOCKERFILE: &str = "FROM scratch
ARG TARGETARCH
COPY busybox-${TARGETARCH} /bin/busybox
RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]
RUN busybox uname -m > /arch
";

fn stdout_of(root: &Path, args: &[&str]) -> String {
    let out = kiln(root).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "kiln {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn inspect(root: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["inspect"];
    all.extend_from_slice(args);
    serde_json::from_str(&stdout_of(root, &all)).unwrap()
}

#[test]
fn arm64_build_says_arm64_and_runs_under_emulation() {
    if !require_privileged("arm64 build") || !emulator("linux/arm64") {
        return;
    }
    let Some(bb) = foreign_busybox_dir("arm64 build", &["arm64"]) else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let ctx = context(&bb, &["arm64"], ARCH_DOCKERFILE);
    build(
        root.path(),
        ctx.path(),
        &["--platform", "linux/arm64", "-t", "arch:arm64"],
    );
    let config = inspect(root.path(), &["--only", "config", "arch:arm64"]);
    assert_eq!(config["architecture"], "arm64", "{config}");
    assert_eq!(config["os"], "linux");
    assert!(config.get("variant").is_none(), "{config}");
    // What the RUN step saw, and what the image does when run.
    assert_eq!(
        stdout_of(root.path(), &["run", "arch:arm64", "cat", "/arch"]),
        "aarch64\n"
    );
    assert_eq!(
        stdout_of(
            root.path(),
            &["run", "arch:arm64", "busybox", "uname", "-m"]
        ),
        "aarch64\n"
    );
    let images = stdout_of(root.path(), &["images"]);
    assert!(images.contains("linux/arm64"), "{images}");
    // Asking for another platform of a single-platform image is an error, not the wrong image.
    let other = kiln(root.path())
        .args(["inspect", "--platform", "linux/s390x", "arch:arm64"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(
        !other.status.success() && says(&stderr, "no image for platform linux/s390x"),
        "{stderr}"
    );
}

#[test]
fn arm_v7_builds_and_runs_under_emulation() {
    if !require_privileged("arm/v7 build") || !emulator("linux/arm/v7") {
        return;
    }
    let Some(bb) = foreign_busybox_dir("arm/v7 build", &["arm", "arm64"]) else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let dockerfile =
        format!("{ARCH_DOCKERFILE}ARG TARGETVARIANT\nRUN echo $TARGETVARIANT > /variant\n");
    let ctx = context(&bb, &["arm"], &dockerfile);
    build(
        root.path(),
        ctx.path(),
        &["--platform", "linux/arm/v7", "-t", "arch:armv7"],
    );
    let config = inspect(root.path(), &["--only", "config", "arch:armv7"]);
    assert_eq!(config["architecture"], "arm", "{config}");
    assert_eq!(config["variant"], "v7", "{config}");
    assert_eq!(
        stdout_of(
            root.path(),
            &["run", "arch:armv7", "cat", "/arch", "/variant"]
        ),
        "armv7l\nv7\n"
    );
    // An arm/v7 stage takes an arm/v6 image when that is all an index has (containerd's rule).
    let layout = tempfile::tempdir().unwrap();
    let v6 = context(
        &bb,
        &["arm", "arm64"],
        "FROM scratch\nARG TARGETARCH\nCOPY busybox-${TARGETARCH} /bin/busybox\n",
    );
    let dest = format!("type=oci,dest={},tar=false", layout.path().display());
    build(
        root.path(),
        v6.path(),
        &["--platform", "linux/arm/v6,linux/arm64", "-o", &dest],
    );
    let child = context(
        &bb,
        &[],
        "FROM base\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox uname -m > /seen\"]\n",
    );
    let named = format!("base=oci-layout://{}", layout.path().display());
    build(
        root.path(),
        child.path(),
        &[
            "--platform",
            "linux/arm/v7",
            "--build-context",
            &named,
            "-t",
            "child:v7",
        ],
    );
    let config = inspect(root.path(), &["--only", "config", "child:v7"]);
    assert_eq!(
        config["variant"], "v7",
        "the image is for the target: {config}"
    );
    assert_eq!(
        stdout_of(
            root.path(),
            &["run", "child:v7", "/bin/busybox", "cat", "/seen"]
        ),
        "armv7l\n"
    );
    // Without an arm image in the index, the error lists what it has.
    let (ok, _, stderr) = try_build(
        root.path(),
        child.path(),
        &["--platform", "linux/s390x", "--build-context", &named],
    );
    assert!(
        !ok && says(&stderr, "it has: linux/arm/v6, linux/arm64"),
        "{stderr}"
    );
}

#[test]
fn two_platforms_make_an_index() {
    if !require_privileged("multi-platform build") || !emulator("linux/arm64") || !tool("skopeo") {
        return;
    }
    let Some(bb) = foreign_busybox_dir("multi-platform build", &["amd64", "arm64"]) else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let ctx = context(&bb, &["amd64", "arm64"], ARCH_DOCKERFILE);
    let layout = tempfile::tempdir().unwrap();
    let dest = format!("type=oci,dest={},tar=false", layout.path().display());
    let rootfs = tempfile::tempdir().unwrap();
    let local = format!("type=local,dest={}", rootfs.path().display());
    let tar_dir = tempfile::tempdir().unwrap();
    let tarball = tar_dir.path().join("all.tar");
    let tar_out = format!("type=tar,dest={}", tarball.display());
    let (id, _) = build(
        root.path(),
        ctx.path(),
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            "multi:1",
            "-o",
            &dest,
            "-o",
            &local,
            "-o",
            &tar_out,
        ],
    );
    // type=local and type=tar: one root filesystem per platform, named as BuildKit names them.
    let in_tar = common::tar_texts(&tarball);
    for (dir, arch) in [("linux_amd64", "x86_64"), ("linux_arm64", "aarch64")] {
        let got = std::fs::read_to_string(rootfs.path().join(dir).join("arch")).unwrap();
        assert_eq!(got, format!("{arch}\n"), "{dir}");
        assert_eq!(
            in_tar[&format!("{dir}/arch")],
            format!("{arch}\n"),
            "tar {dir}"
        );
    }
    // The tag names the index; each platform runs as itself.
    for (platform, arch) in [("linux/amd64", "x86_64"), ("linux/arm64", "aarch64")] {
        let out = stdout_of(
            root.path(),
            &["run", "--platform", platform, "multi:1", "cat", "/arch"],
        );
        assert_eq!(out, format!("{arch}\n"), "{platform}");
        let config = inspect(root.path(), &["--platform", platform, "multi:1"]);
        assert_eq!(config["Platform"], platform);
    }
    let images = stdout_of(root.path(), &["images", "multi"]);
    assert!(
        images.contains("linux/amd64") && images.contains("linux/arm64"),
        "{images}"
    );
    // The OCI layout's one entry is an index with both platforms.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.path().join("index.json")).unwrap()).unwrap();
    let top = &index["manifests"][0];
    assert_eq!(top["mediaType"], "application/vnd.oci.image.index.v1+json");
    let hex = top["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let inner: serde_json::Value = serde_json::from_slice(
        &std::fs::read(layout.path().join("blobs/sha256").join(hex)).unwrap(),
    )
    .unwrap();
    let platforms: Vec<String> = inner["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    let arm = Std::new("skopeo")
        .args(["inspect", "--override-arch", "arm64"])
        .arg(format!("oci:{}", layout.path().display()))
        .output()
        .unwrap();
    assert!(
        arm.status.success(),
        "{}",
        String::from_utf8_lossy(&arm.stderr)
    );
    let arm: serde_json::Value = serde_json::from_slice(&arm.stdout).unwrap();
    assert_eq!(arm["Architecture"], "arm64");
    // Outputs that hold one image ask for one platform; `save` too.
    let (ok, _, stderr) = try_build(
        root.path(),
        ctx.path(),
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            "type=docker,dest=/dev/null",
        ],
    );
    assert!(
        !ok && stderr.contains("needs a single platform"),
        "{stderr}"
    );
    let saved = kiln(root.path())
        .args(["save", "multi:1", "-o", "/dev/null"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&saved.stderr);
    assert!(
        !saved.status.success() && stderr.contains("--platform"),
        "{stderr}"
    );
    let saved = kiln(root.path())
        .args([
            "save",
            "--platform",
            "linux/arm64",
            "multi:1",
            "-o",
            "/dev/null",
        ])
        .output()
        .unwrap();
    assert!(
        saved.status.success(),
        "{}",
        String::from_utf8_lossy(&saved.stderr)
    );
    assert!(id.starts_with("sha256:"));
}

#[test]
fn two_platforms_push_an_index() {
    if !require_privileged("multi-platform push") || !emulator("linux/arm64") || !tool("skopeo") {
        return;
    }
    let Some(registry) = kiln_builder_core::testing::registry("multi-platform push") else {
        return;
    };
    let Some(bb) = foreign_busybox_dir("multi-platform push", &["amd64", "arm64"]) else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let ctx = context(&bb, &["amd64", "arm64"], ARCH_DOCKERFILE);
    let name = format!("{}/kiln-test/multi-{}:1", registry.addr, std::process::id());
    build(
        root.path(),
        ctx.path(),
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            &name,
            "--push",
            "--insecure-registry",
            &registry.addr,
        ],
    );
    let raw = Std::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{name}"))
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    let index: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let arches: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(arches, ["amd64", "arm64"]);
    let arm = Std::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--override-arch", "arm64"])
        .arg(format!("docker://{name}"))
        .output()
        .unwrap();
    assert!(
        arm.status.success(),
        "{}",
        String::from_utf8_lossy(&arm.stderr)
    );
    let arm: serde_json::Value = serde_json::from_slice(&arm.stdout).unwrap();
    assert_eq!(arm["Architecture"], "arm64");
    // A build of another store resolves the pushed index per platform, each platform's image
    // kept in the store: arm64, then amd64, then arm64 again.
    let other = tempfile::tempdir().unwrap();
    let child = tempfile::tempdir().unwrap();
    std::fs::write(
        child.path().join("Dockerfile"),
        format!("FROM {name}\nRUN cp /arch /from-base\n"),
    )
    .unwrap();
    for (platform, arch) in [
        ("linux/arm64", "aarch64"),
        ("linux/amd64", "x86_64"),
        ("linux/arm64", "aarch64"),
    ] {
        let tag = format!("child:{}", arch);
        build(
            other.path(),
            child.path(),
            &["--platform", platform, "-t", &tag],
        );
        let seen = stdout_of(other.path(), &["run", &tag, "cat", "/from-base"]);
        assert_eq!(seen, format!("{arch}\n"), "{platform}");
    }
}

#[test]
fn build_platform_stage_runs_once_for_two_targets() {
    if !require_privileged("BUILDPLATFORM stage") || !emulator("linux/arm64") {
        return;
    }
    let host = Platform::host().architecture;
    let Some(bb) = foreign_busybox_dir("BUILDPLATFORM stage", &[&host, "arm64", "amd64"]) else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let dockerfile = "FROM --platform=$BUILDPLATFORM scratch AS tools
ARG BUILDARCH
COPY busybox-${BUILDARCH} /bin/busybox
RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo tools-step-ran; /bin/busybox uname -m > /built-on\"]
FROM scratch
ARG TARGETARCH
COPY busybox-${TARGETARCH} /bin/busybox
COPY --from=tools /built-on /built-on
";
    let ctx = context(&bb, &["amd64", "arm64"], dockerfile);
    let out = kiln(root.path())
        .args([
            "build",
            "--progress",
            "json",
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            "cross:1",
        ])
        .arg(ctx.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let runs = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| {
            e["event"] == "log"
                && e["data"]
                    .as_str()
                    .is_some_and(|d| d.contains("tools-step-ran"))
        })
        .count();
    assert_eq!(runs, 1, "the shared stage ran once:\n{stderr}");
    let native = match host.as_str() {
        "amd64" => "x86_64\n",
        "arm64" => "aarch64\n",
        _ => return,
    };
    for platform in ["linux/amd64", "linux/arm64"] {
        let seen = stdout_of(
            root.path(),
            &[
                "run",
                "--platform",
                platform,
                "cross:1",
                "/bin/busybox",
                "cat",
                "/built-on",
            ],
        );
        assert_eq!(seen, native, "{platform} got the natively built file");
    }
}

#[test]
fn unknown_platform_run_says_what_is_missing() {
    if !require_privileged("foreign RUN without emulator") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = common::context_with(&[(
        "Dockerfile",
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"true\"]\n",
    )]);
    let (ok, _, stderr) = try_build(root.path(), ctx.path(), &["--platform", "linux/sparc64"]);
    assert!(!ok);
    assert!(
        says(&stderr, "linux/sparc64") && says(&stderr, "qemu-user-static"),
        "{stderr}"
    );
    assert!(!stderr.contains("exec format error"), "{stderr}");
}

/// A binfmt_misc registration of this test's own, removed when dropped.
struct Registration(std::path::PathBuf);

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, "-1");
    }
}

#[test]
fn an_emulator_without_the_f_flag_is_bound_into_the_step() {
    if !require_privileged("emulator without F") || !emulator("linux/arm64") {
        return;
    }
    // Debian's wrapper name makes qemu take the binary's own argv[0] (the `P` flag).
    let interpreter = Path::new("/usr/libexec/qemu-binfmt/aarch64-binfmt-P");
    let register = Path::new("/proc/sys/fs/binfmt_misc/register");
    if !interpreter.is_file() || !register.exists() {
        assert!(
            !privileged_required(),
            "qemu-user-static and binfmt_misc are required"
        );
        return;
    }
    let Some(bb) = foreign_busybox_dir("emulator without F", &["arm64"]) else {
        return;
    };
    // The newest registration is the one the kernel uses: this one, looked up by path when a
    // binary starts, so inside the step's rootfs.
    let name = format!("kiln-test-aarch64-{}", std::process::id());
    let magic = r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00";
    let mask = r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff";
    std::fs::write(
        register,
        format!(":{name}:M::{magic}:{mask}:{}:P", interpreter.display()),
    )
    .unwrap();
    let _registered = Registration(Path::new("/proc/sys/fs/binfmt_misc").join(&name));
    let root = tempfile::tempdir().unwrap();
    let ctx = context(&bb, &["arm64"], ARCH_DOCKERFILE);
    let out = tempfile::tempdir().unwrap();
    let dest = format!("type=local,dest={}", out.path().display());
    build(
        root.path(),
        ctx.path(),
        &["--platform", "linux/arm64", "-t", "nof:1", "-o", &dest],
    );
    assert_eq!(
        std::fs::read_to_string(out.path().join("arch")).unwrap(),
        "aarch64\n"
    );
    // The interpreter's mount point is not part of the image.
    assert!(!out.path().join("usr").exists(), "{:?}", out.path());
    assert_eq!(
        stdout_of(root.path(), &["run", "nof:1", "busybox", "uname", "-m"]),
        "aarch64\n"
    );
}

#[test]
fn the_registry_cache_carries_every_platform() {
    if !require_privileged("multi-platform cache") || !emulator("linux/arm64") {
        return;
    }
    let Some(registry) = kiln_builder_core::testing::registry("multi-platform cache") else {
        return;
    };
    let Some(bb) = foreign_busybox_dir("multi-platform cache", &["amd64", "arm64"]) else {
        return;
    };
    let ctx = context(&bb, &["amd64", "arm64"], ARCH_DOCKERFILE);
    let cache = format!(
        "type=registry,ref={}/kiln-test/platform-cache-{}:c",
        registry.addr,
        std::process::id()
    );
    let first = tempfile::tempdir().unwrap();
    let (id, stderr) = build(
        first.path(),
        ctx.path(),
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "--cache-to",
            &cache,
        ],
    );
    assert!(stderr.contains("0 of 6 steps cached"), "{stderr}");
    let second = tempfile::tempdir().unwrap();
    let (again, stderr) = build(
        second.path(),
        ctx.path(),
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "--cache-from",
            &cache,
        ],
    );
    assert!(stderr.contains("6 of 6 steps cached"), "{stderr}");
    assert_eq!(again, id, "the same index from the imported cache");
}
