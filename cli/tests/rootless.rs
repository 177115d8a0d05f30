//! Rootless mode: an ordinary user (with ranges in /etc/subuid and /etc/subgid, made by
//! `scripts/test.sh`) builds, runs, saves, pushes and pulls with default flags; the layers carry
//! the image's ids, not the host's. With `KILN_REQUIRE_PRIVILEGED=1` (CI) these never skip.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

mod common;
use common::rootless::{User, user};

/// Owners (uid, gid) and modes of every entry in the image's layers, later layers winning.
fn layer_owners(user: &User, image: &str) -> BTreeMap<String, (u64, u64, u32)> {
    let out_dir = user.dir("save");
    let archive = out_dir.join("image.tar");
    let out = user
        .kiln()
        .args(["save", image, "-o"])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(out.status.success(), "save {image}: {out:?}");
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut outer = tar::Archive::new(std::fs::File::open(&archive).unwrap());
    for e in outer.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        files.insert(name, data);
    }
    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let mut owners = BTreeMap::new();
    for layer in manifest[0]["Layers"].as_array().unwrap() {
        let data = &files[layer.as_str().unwrap()];
        let reader: Box<dyn Read> = if data.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::read::GzDecoder::new(&data[..]))
        } else {
            Box::new(&data[..])
        };
        let mut inner = tar::Archive::new(reader);
        for e in inner.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            let path = e
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches('/')
                .to_owned();
            owners.insert(
                path,
                (
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    h.mode().unwrap() & 0o7777,
                ),
            );
        }
    }
    owners
}

fn write(dir: &Path, files: &[(&str, &str)], user: &User) {
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    std::fs::copy("/bin/busybox", dir.join("busybox")).unwrap();
    user.give(dir);
}

const CHOWN_DOCKERFILE: &str = r#"FROM scratch AS build
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd && echo 'root:x:0:' > /etc/group \
 && echo 'app:x:1234:1234::/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1234:' >> /etc/group \
 && mkdir -p /home/app /shared && chown app:app /home/app \
 && chown 2000:3000 /shared && chmod 2775 /shared
COPY --chown=1234:1234 data.txt /home/app/data.txt
RUN --mount=type=cache,target=/cache,uid=1234,gid=1234 stat -c %u:%g /cache > /cache-owner
USER app
WORKDIR /home/app
RUN id -u > mine.txt

FROM scratch
COPY --from=build / /
USER app
CMD ["sh", "-c", "id -u; stat -c '%u:%g %a' /home/app /home/app/data.txt /home/app/mine.txt /shared; cat /cache-owner"]
"#;

#[test]
fn an_ordinary_user_builds_runs_and_keeps_image_ids() {
    let Some(user) = user("an_ordinary_user_builds_runs_and_keeps_image_ids") else {
        return;
    };
    let ctx = user.dir("chown");
    write(
        &ctx,
        &[("Dockerfile", CHOWN_DOCKERFILE), ("data.txt", "data\n")],
        &user,
    );
    let out = user
        .kiln()
        .args(["build", "-t", "rootless:1"])
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rootless build: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = user
        .kiln()
        .args(["run", "--rm", "rootless:1"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1234\n1234:1234 755\n1234:1234 644\n1234:1234 644\n2000:3000 2775\n1234:1234\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success());

    // The layers carry the image's ids, not the host's subordinate ones.
    let owners = layer_owners(&user, "rootless:1");
    assert_eq!(owners["bin/busybox"].0, 0);
    assert_eq!(owners["bin/busybox"].1, 0);
    assert_eq!(owners["home/app/data.txt"], (1234, 1234, 0o644));
    assert_eq!(owners["home/app/mine.txt"].0, 1234);
    assert_eq!(owners["shared"], (2000, 3000, 0o2775));

    // The store is the user's, private, under XDG_DATA_HOME.
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(user.store()).unwrap();
    assert_eq!(meta.uid(), user.uid);
    assert_eq!(meta.mode() & 0o777, 0o700);
    // Run state lives in the user's runtime directory, not in the store.
    let run = user.home.path().join("run/kiln");
    let meta = std::fs::metadata(&run).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o700);
    assert!(!user.store().join("kiln/run").exists());

    let out = user
        .kiln()
        .args(["info", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["rootless"], true);
    assert_eq!(info["uid"], user.uid);
    assert_eq!(info["snapshotter"], "overlayfs");
    let uid_map = info["uid_map"].as_array().unwrap();
    assert!(uid_map.len() >= 2, "{info:#}");
    assert_eq!(uid_map[0]["outside"], user.uid);

    // `kiln unshare` shows the store as kiln sees it: root owns it.
    let out = user
        .kiln()
        .args(["unshare", "stat", "-c", "%u"])
        .arg(user.store())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n", "{out:?}");
}

#[test]
fn without_ranges_only_root_exists_and_the_user_is_told() {
    let Some(user) = user("without_ranges_only_root_exists_and_the_user_is_told") else {
        return;
    };
    let ctx = user.dir("single");
    write(
        &ctx,
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY busybox /bin/busybox\nCOPY --chown=1234:1234 data.txt /data.txt\n",
            ),
            ("data.txt", "data\n"),
        ],
        &user,
    );
    let out = user
        .kiln()
        .env("KILN_USERNS", "single")
        .args(["build", "-t", "single:1"])
        .arg(&ctx)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("rootless with your own id only"),
        "{stderr}"
    );
    assert!(stderr.contains("/etc/subuid"), "{stderr}");
    let owners = layer_owners(&user, "single:1");
    assert_eq!(owners["data.txt"].0, 0, "kept root: no other id exists");

    // A step as another user fails with what to do, not a bare EPERM.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nUSER 1234\nRUN [\"/bin/busybox\", \"true\"]\n",
    )
    .unwrap();
    let out = user
        .kiln()
        .env("KILN_USERNS", "single")
        .args(["build"])
        .arg(&ctx)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("maps only root"), "{stderr}");
    assert!(stderr.contains("/etc/subuid"), "{stderr}");
}

#[test]
fn a_failing_id_mapper_is_named_with_what_to_check() {
    let Some(user) = user("a_failing_id_mapper_is_named_with_what_to_check") else {
        return;
    };
    let fake = user.dir("fakebin");
    std::fs::write(
        fake.join("newuidmap"),
        "#!/bin/sh\necho 'newuidmap: write to uid_map failed: Operation not permitted' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::copy(fake.join("newuidmap"), fake.join("newgidmap")).unwrap();
    for f in ["newuidmap", "newgidmap"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(fake.join(f), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    user.give(&fake);
    let out = user
        .kiln()
        .env("PATH", format!("{}:/usr/bin:/bin", fake.display()))
        .arg("images")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("newuidmap"), "{stderr}");
    assert!(stderr.contains("Operation not permitted"), "{stderr}");
    assert!(stderr.contains("/etc/subuid"), "{stderr}");
}

/// Secret and SSH mounts with owners other than root, as an ordinary user.
#[test]
fn secret_and_ssh_mounts_work_rootless() {
    let Some(user) = user("secret_and_ssh_mounts_work_rootless") else {
        return;
    };
    let ctx = user.dir("mounts");
    let dockerfile = "FROM scratch\nCOPY busybox /bin/busybox\n\
        RUN --mount=type=secret,id=tok,uid=1234,mode=0400 \
            --mount=type=ssh,target=/dev/log,uid=1234,mode=0660 [\"/bin/busybox\", \"sh\", \"-c\", \
        \"/bin/busybox logger -t kiln hello-agent; /bin/busybox stat -c '%u %a' /run/secrets/tok /dev/log > /seen; /bin/busybox cat /run/secrets/tok >> /seen\"]\n\
        CMD [\"/bin/busybox\", \"cat\", \"/seen\"]\n";
    write(
        &ctx,
        &[("Dockerfile", dockerfile), ("tok", "s3cret\n")],
        &user,
    );
    let agent_path = ctx.join("agent.sock");
    let agent = std::os::unix::net::UnixListener::bind(&agent_path).unwrap();
    user.give(&agent_path);
    let seen = common::agent::stand_in(agent);
    let out = user
        .kiln()
        .args(["build", "-t", "mounts:1", "--secret"])
        .arg(format!("id=tok,src={}", ctx.join("tok").display()))
        .arg("--ssh")
        .arg(format!("default={}", agent_path.display()))
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(seen.join().unwrap().contains("kiln: hello-agent"));
    let out = user
        .kiln()
        .args(["run", "--rm", "mounts:1"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1234 400\n1234 660\ns3cret\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Inside a container whose runtime refuses user namespaces (as Docker's default seccomp profile
/// does), kiln stops at once with the options, not with a bare EPERM later. The refusal is made
/// here by a user namespace (ids 0-199999 mapped to themselves) whose root sets
/// `user.max_user_namespaces` to 0 before becoming the test user.
#[test]
fn a_refused_user_namespace_lists_the_options() {
    let Some(user) = user("a_refused_user_namespace_lists_the_options") else {
        return;
    };
    let inner = r#"i=0
while [ -z "$(cat /proc/self/uid_map)" ]; do i=$((i+1)); [ $i -lt 500 ] || exit 99; sleep 0.01; done
exec sh -c 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"' sh "$@""#;
    let child = std::process::Command::new("unshare")
        .args(["--user", "sh", "-c", inner, "sh", "setpriv"])
        .arg(format!("--reuid={}", user.uid))
        .arg(format!("--regid={}", user.gid))
        .args(["--init-groups", "env", "-i", "PATH=/usr/bin:/bin"])
        .arg(format!("HOME={}", user.home.path().display()))
        .arg(user.binary())
        .arg("images")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    let pid = child.id().to_string();
    let mut waited = 0;
    while ns(&pid) == ns("self") {
        waited += 1;
        assert!(waited < 500, "unshare made no user namespace");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    for map in ["uid_map", "gid_map"] {
        std::fs::write(format!("/proc/{pid}/{map}"), "0 0 200000\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    // The report wraps lines: compare with single spaces.
    let stderr = String::from_utf8_lossy(&out.stderr)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot create a user namespace"),
        "{stderr}"
    );
    assert!(stderr.contains("seccomp=unconfined"), "{stderr}");
    assert!(stderr.contains("run it as root"), "{stderr}");
}

const DEBIAN_DOCKERFILE: &str = r#"FROM kiln-test/debian:bookworm AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG DEBIAN_FRONTEND=noninteractive
RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \
    --mount=type=cache,target=/var/lib/apt/lists,sharing=locked \
    rm -f /etc/apt/apt.conf.d/docker-clean \
 && apt-get update \
 && apt-get install -y --no-install-recommends hello
RUN useradd --create-home --uid 1234 app && mkdir /srv/data && chown app:app /srv/data
COPY --chown=1234:1234 note.txt /home/app/note.txt
USER app
WORKDIR /home/app
RUN hello > greeting && id -u > id && touch /srv/data/mine

FROM kiln-test/debian:bookworm
RUN useradd --uid 1234 app
COPY --from=build /usr/bin/hello /usr/bin/hello
COPY --from=build /home/app /home/app
COPY --from=build /srv/data /srv/data
USER app
CMD ["bash", "-c", "hello; id -u; stat -c '%U:%G %u:%g' /home/app /home/app/note.txt /home/app/greeting /srv/data/mine; cat /home/app/id"]
"#;

/// The issue's whole walk as an ordinary user: a Debian base, apt-get (which drops to `_apt`),
/// useradd, chown, COPY --chown, USER, a cache mount and a multi-stage COPY --from, with default
/// flags; run it; read the layers; push to the registry and pull back into a fresh store.
#[test]
fn a_debian_image_builds_runs_and_round_trips_through_a_registry_rootless() {
    let test = "a_debian_image_builds_runs_and_round_trips_through_a_registry_rootless";
    let Some(user) = user(test) else {
        return;
    };
    let Some(tar) = common::debian::debian_tar() else {
        return;
    };
    let Ok(registry) = std::env::var("KILN_TEST_REGISTRY") else {
        assert!(
            std::env::var_os("KILN_REQUIRE_PRIVILEGED").is_none_or(|v| v != "1"),
            "{test}: KILN_TEST_REGISTRY is not set: run the tests with scripts/test.sh"
        );
        return;
    };
    let base = user.dir("base");
    std::fs::copy(&tar, base.join("rootfs.tar")).unwrap();
    std::fs::write(
        base.join("Dockerfile"),
        "FROM scratch\nADD rootfs.tar /\nCMD [\"/bin/bash\"]\n",
    )
    .unwrap();
    user.give(&base);
    let out = user
        .kiln()
        .args(["build", "-t", "kiln-test/debian:bookworm"])
        .arg(&base)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "base: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let ctx = user.dir("debian");
    write(
        &ctx,
        &[("Dockerfile", DEBIAN_DOCKERFILE), ("note.txt", "note\n")],
        &user,
    );
    let image = format!("{registry}/rootless/debian:1");
    let out = user
        .kiln()
        .args(["build", "-t", &image])
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "build: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // COPY of a directory's contents creates the missing destination as root's, as BuildKit.
    let expected = "Hello, world!\n1234\nroot:root 0:0\napp:app 1234:1234\napp:app 1234:1234\napp:app 1234:1234\n1234\n";
    let out = user.kiln().args(["run", "--rm", &image]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        expected,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The base's many owners round-trip (setgid programs of group shadow, the mail spool of
    // group mail) and the image's own files carry 1234, not the host's subordinate ids.
    let owners = layer_owners(&user, &image);
    assert_eq!(owners["usr/bin/chage"], (0, 42, 0o2755));
    assert_eq!(owners["var/mail"], (0, 8, 0o2775));
    assert_eq!(owners["home/app/note.txt"], (1234, 1234, 0o644));
    assert_eq!(owners["srv/data/mine"].0, 1234);
    assert_eq!(owners["usr/bin/hello"].0, 0);
    assert!(
        owners.values().all(|o| o.0 < 65536 && o.1 < 65536),
        "a host id leaked into a layer"
    );

    let out = user.kiln().args(["push", &image]).output().unwrap();
    assert!(
        out.status.success(),
        "push: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fresh = user.dir("fresh-store");
    let out = user
        .kiln()
        .arg("--root")
        .arg(&fresh)
        .args(["pull", &image])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pull: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = user
        .kiln()
        .arg("--root")
        .arg(&fresh)
        .args(["run", "--rm", &image])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        expected,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
