//! End-to-end builds through the `kiln` binary: real namespaces, real layers in a real store, the
//! results unpacked with `umoci` and launched with `runc`, exports read back with `skopeo`.
//! These need root; with `KILN_REQUIRE_PRIVILEGED=1` (CI) a missing capability fails them.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use std::process::Command as Std;

use kiln_builder_core::testing::require_privileged;

mod common;
use common::{
    build, context_with, dockerfile_context, example_context as context, kiln, raw_config,
    run_image, tool, try_build,
};

#[test]
fn hello_builds_runs_and_rebuilds_from_cache() {
    if !require_privileged("hello build") || !tool("umoci") || !tool("runc") || !tool("skopeo") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context("hello");
    let (id, stderr) = build(root.path(), ctx.path(), &["-t", "hello:1"]);
    assert!(stderr.contains("0 of 5 steps cached"), "{stderr}");

    let (again, stderr) = build(root.path(), ctx.path(), &["-t", "hello:1"]);
    assert_eq!(again, id, "a rebuild gives the same image");
    assert!(stderr.contains("5 of 5 steps cached"), "{stderr}");

    let (stdout, cfg) = run_image(root.path(), "docker.io/library/hello:1");
    assert_eq!(
        stdout,
        "hello from kiln\nbuilt by kiln from testdata/examples/hello\n"
    );
    assert_eq!(cfg["process"]["cwd"], "/srv");
    let env: Vec<String> = serde_json::from_value(cfg["process"]["env"].clone()).unwrap();
    assert!(
        env.contains(&"GREETING=hello from kiln".to_string()),
        "{env:?}"
    );
    assert_eq!(
        cfg["annotations"]["org.opencontainers.image.title"],
        "kiln hello example"
    );
    assert_eq!(
        cfg["annotations"]["org.opencontainers.image.exposedPorts"],
        "8080/tcp"
    );

    // A changed file re-runs from the COPY that reads it: that COPY and the WORKDIR after it.
    std::fs::write(ctx.path().join("motd.txt"), "changed\n").unwrap();
    let (changed, stderr) = build(root.path(), ctx.path(), &["-t", "hello:1"]);
    assert_ne!(changed, id);
    assert!(stderr.contains("3 of 5 steps cached"), "{stderr}");
}

#[test]
fn exports_load_with_skopeo() {
    if !require_privileged("export build") || !tool("skopeo") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context("hello");
    let out = tempfile::tempdir().unwrap();
    let oci = out.path().join("img.tar");
    let docker = out.path().join("docker.tar");
    build(
        root.path(),
        ctx.path(),
        &[
            "-t",
            "hello:2",
            "--output",
            &format!("type=oci,dest={}", oci.display()),
            "--output",
            &format!("type=docker,dest={}", docker.display()),
        ],
    );
    let inspect = Std::new("skopeo")
        .arg("inspect")
        .arg("--config")
        .arg(format!("oci-archive:{}", oci.display()))
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let config: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(config["config"]["WorkingDir"], "/srv");
    assert_eq!(
        config["config"]["Cmd"],
        serde_json::json!(["sh", "-c", "cat /srv/message; cat /etc/motd"])
    );

    let copied = out.path().join("copied");
    let copy = Std::new("skopeo")
        .arg("copy")
        .arg(format!("docker-archive:{}", docker.display()))
        .arg(format!("oci:{}:x", copied.display()))
        .output()
        .unwrap();
    assert!(
        copy.status.success(),
        "{}",
        String::from_utf8_lossy(&copy.stderr)
    );
    // skopeo re-serialises the config when it converts the manifest to OCI, so compare what it
    // means: the runtime config, the layers and the history.
    let theirs = raw_config(&format!("oci:{}:x", copied.display()));
    let ours = raw_config(&format!(
        "oci:{}:docker.io/library/hello:2",
        root.path().display()
    ));
    assert_eq!(ours["rootfs"]["diff_ids"].as_array().map(Vec::len), Some(4));
    for key in [
        "config",
        "rootfs",
        "history",
        "created",
        "architecture",
        "os",
    ] {
        assert_eq!(
            theirs[key], ours[key],
            "{key} round-trips through docker-archive"
        );
    }
}

#[test]
fn source_date_epoch_makes_fresh_builds_identical() {
    if !require_privileged("reproducible build") {
        return;
    }
    let ctx = context("hello");
    let ids: Vec<String> = (0..2)
        .map(|_| {
            let root = tempfile::tempdir().unwrap();
            common::ok_stdout(
                kiln(root.path())
                    .env("SOURCE_DATE_EPOCH", "1700000000")
                    .args(["build", "-q"])
                    .arg(ctx.path()),
            )
        })
        .collect();
    assert_eq!(ids[0], ids[1]);
}

#[test]
fn multistage_and_every_instruction_images_run() {
    if !require_privileged("multi-stage build") || !tool("umoci") || !tool("runc") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context("multistage");
    build(root.path(), ctx.path(), &["-t", "multi:1"]);
    let (stdout, _) = run_image(root.path(), "docker.io/library/multi:1");
    assert_eq!(stdout, "left\nright\n");

    let ctx = context("every-instruction");
    build(root.path(), ctx.path(), &["-t", "every:1"]);
    let (stdout, cfg) = run_image(root.path(), "docker.io/library/every:1");
    assert_eq!(
        stdout,
        "hello from a heredoc\ninline test\n1000\n1000:1000 640\n"
    );
    assert_eq!(cfg["process"]["user"]["uid"], 1000);
    assert_eq!(cfg["process"]["cwd"], "/app");
    let config = raw_config(&format!(
        "oci:{}:docker.io/library/every:1",
        root.path().display()
    ));
    let c = &config["config"];
    assert_eq!(c["User"], "app");
    assert_eq!(
        c["ExposedPorts"],
        serde_json::json!({"53/udp": {}, "8080/tcp": {}})
    );
    assert_eq!(c["Volumes"], serde_json::json!({"/data": {}}));
    assert_eq!(c["StopSignal"], "SIGTERM");
    assert_eq!(c["Healthcheck"]["Test"], serde_json::json!(["CMD", "true"]));
    assert_eq!(c["OnBuild"], serde_json::json!(["RUN echo triggered"]));
    assert_eq!(c["Shell"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(c["Labels"]["org.example.name"], "every instruction");
    assert_eq!(config["author"], "kiln tests");
}

#[test]
fn failing_run_points_at_its_line() {
    if !require_privileged("failing build") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context("hello");
    std::fs::write(ctx.path().join("Dockerfile"), "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo doomed; exit 3\"]\n").unwrap();
    let out = kiln(root.path())
        .arg("build")
        .arg(ctx.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("exit code 3"), "{stderr}");
    assert!(stderr.contains("this step failed"), "{stderr}");
    assert!(
        stderr.contains("3 │ RUN"),
        "the failing line is shown: {stderr}"
    );
    assert!(stderr.contains("doomed"), "its output is shown: {stderr}");
}

#[test]
fn base_images_from_oci_layouts_and_archives_and_onbuild_triggers() {
    if !require_privileged("base image build") || !tool("umoci") || !tool("runc") {
        return;
    }
    let first = tempfile::tempdir().unwrap();
    let ctx = context("every-instruction");
    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("layout");
    let archive = out.path().join("img.tar");
    build(
        first.path(),
        ctx.path(),
        &[
            "-t",
            "every:1",
            "-o",
            &format!("type=oci,dest={},tar=false", layout.display()),
            "-o",
            &format!("type=docker,dest={}", archive.display()),
        ],
    );

    // A fresh store builds on the exported image (an OCI layout granted with --build-context,
    // or a docker-archive loaded into the store); the base's ONBUILD trigger runs first.
    for base in ["layout", "loaded"] {
        let second = tempfile::tempdir().unwrap();
        let mut extra = vec!["-t".to_string(), "child:1".to_string()];
        let from = if base == "layout" {
            extra.push("--build-context".into());
            extra.push(format!("base=oci-layout://{}", layout.display()));
            "base"
        } else {
            let out = kiln(second.path())
                .arg("load")
                .arg("-i")
                .arg(&archive)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            "every:1"
        };
        let child = context_with(&[(
            "Dockerfile",
            &format!(
                "FROM {from}\nRUN cat /app/inline.txt > /tmp/child\nCMD [\"cat /tmp/child\"]\n"
            ),
        )]);
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let (_, stderr) = build(second.path(), child.path(), &extra);
        assert!(
            stderr.contains("RUN echo triggered"),
            "the ONBUILD trigger ran: {stderr}"
        );
        let (stdout, cfg) = run_image(second.path(), "docker.io/library/child:1");
        assert_eq!(stdout, "inline test\n");
        // Inherited config: user, workdir and entrypoint come from the base.
        assert_eq!(cfg["process"]["user"]["uid"], 1000);
        assert_eq!(cfg["process"]["cwd"], "/app");
    }
}

#[test]
fn dockerignore_and_secrets() {
    if !require_privileged("dockerignore build") || !tool("umoci") || !tool("runc") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context_with(&[
        (".dockerignore", "*.log\nsecret-dir\n!keep.log\n"),
        ("a.txt", "a\n"),
        ("debug.log", "noise\n"),
        ("keep.log", "kept\n"),
        ("secret-dir/key", "hidden\n"),
        (
            "Dockerfile",
            "FROM scratch\nCOPY busybox /bin/busybox\nCOPY . /ctx/\n\
             RUN --mount=type=secret,id=token,target=/run/secrets/token,required=true [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox cat /run/secrets/token > /seen\"]\n\
             CMD [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox ls /ctx /run/secrets 2>&1; /bin/busybox cat /seen\"]\n",
        ),
    ]);
    let secret = ctx
        .path()
        .join("..")
        .join(format!("kiln-secret-{}", std::process::id()));
    std::fs::write(&secret, "s3cr3t\n").unwrap();
    let (id, _) = build(
        root.path(),
        ctx.path(),
        &[
            "-t",
            "ign:1",
            "--secret",
            &format!("id=token,src={}", secret.display()),
        ],
    );
    let (stdout, _) = run_image(root.path(), "docker.io/library/ign:1");
    std::fs::remove_file(&secret).unwrap();
    // Ignored files are not in the image; the re-included one is; the secret was readable during
    // the RUN but its mount point left nothing in the image.
    assert!(
        stdout.contains("a.txt") && stdout.contains("keep.log"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("debug.log") && !stdout.contains("secret-dir"),
        "{stdout}"
    );
    assert!(stdout.contains("s3cr3t"), "{stdout}");
    assert!(
        stdout.contains("/run/secrets: No such file or directory") || !stdout.contains("token\n"),
        "{stdout}"
    );

    // A change to an ignored file invalidates nothing.
    std::fs::write(ctx.path().join("debug.log"), "more noise\n").unwrap();
    let out = kiln(root.path())
        .args(["build", "-t", "ign:1", "--secret"])
        .arg("id=token,env=KILN_TEST_TOKEN")
        .env("KILN_TEST_TOKEN", "s3cr3t\n")
        .arg(ctx.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), id);

    // A required secret that is missing is a clear error.
    let out = kiln(root.path())
        .args(["build", "--no-cache"])
        .arg(ctx.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("secret token"), "{stderr}");
}

#[test]
fn busybox_base_layout_from_test_support() {
    if !require_privileged("busybox layout build") || !tool("umoci") || !tool("runc") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("busybox");
    let first = kiln_builder_core::testing::busybox_layout(&layout, "1").unwrap();
    let again = kiln_builder_core::testing::busybox_layout(&dir.path().join("again"), "1").unwrap();
    assert_eq!(first, again, "the base image is reproducible");
    let root = tempfile::tempdir().unwrap();
    let ctx = context_with(&[(
        "Dockerfile",
        "FROM busybox\nRUN echo from-base > /m\nCMD [\"cat\", \"/m\"]\n",
    )]);
    let granted = format!("busybox=oci-layout://{}:1", layout.display());
    build(
        root.path(),
        ctx.path(),
        &["-t", "onbase:1", "--build-context", &granted],
    );
    let (stdout, _) = run_image(root.path(), "docker.io/library/onbase:1");
    assert_eq!(stdout, "from-base\n");
}

#[test]
fn read_write_bind_mounts_discard_their_writes() {
    if !require_privileged("rw bind mounts") || !tool("umoci") || !tool("runc") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context_with(&[
        (".dockerignore", "**/*.log\n"),
        ("src/a.txt", "from context\n"),
        ("src/debug.log", "ignored\n"),
        ("one.txt", "single file\n"),
        (
            "Dockerfile",
            "FROM scratch AS tools\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox mkdir /data && echo stage > /data/s.txt\"]\n\
             FROM tools\n\
             RUN --mount=type=bind,source=src,target=/src,rw --mount=type=bind,from=tools,source=/data,target=/d,rw --mount=type=bind,source=one.txt,target=/one.txt,rw \
             [\"/bin/busybox\", \"sh\", \"-c\", \"echo new > /src/new.txt && echo changed > /src/a.txt && echo x >> /d/s.txt && echo y >> /one.txt && /bin/busybox ls /src > /seen && /bin/busybox cat /d/s.txt /one.txt >> /seen\"]\n\
             CMD [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox cat /seen; echo DATA; /bin/busybox cat /data/s.txt\"]\n",
        ),
    ]);
    build(root.path(), ctx.path(), &["-t", "rw:1"]);
    let (stdout, _) = run_image(root.path(), "docker.io/library/rw:1");
    // During the RUN the mounts were writable and the context copy had no ignored file.
    assert!(
        stdout.contains("a.txt\nnew.txt\n") && !stdout.contains("debug.log"),
        "{stdout}"
    );
    assert!(stdout.contains("stage\nx\nsingle file\ny\n"), "{stdout}");
    // The writes went nowhere: the stage's files and the context are unchanged, and the mount
    // points left nothing in the image.
    assert!(stdout.ends_with("DATA\nstage\n"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(ctx.path().join("src/a.txt")).unwrap(),
        "from context\n"
    );
    assert!(!ctx.path().join("src/new.txt").exists());
    assert_eq!(
        std::fs::read_to_string(ctx.path().join("one.txt")).unwrap(),
        "single file\n"
    );
}

#[test]
fn ssh_mounts_reach_the_agent_through_a_relay() {
    if !require_privileged("ssh mounts") || !tool("umoci") || !tool("runc") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let agent_path = agent_dir.path().join("agent.sock");
    let agent = std::os::unix::net::UnixListener::bind(&agent_path).unwrap();
    let seen = common::agent::stand_in(agent);
    // busybox's `logger` speaks to /dev/log over a stream socket when datagrams are refused:
    // a client for the relay that needs nothing but busybox.
    let ctx = dockerfile_context(
        "FROM scratch\nCOPY busybox /bin/busybox\n\
         RUN --mount=type=ssh,target=/dev/log,uid=1000,mode=0660 [\"/bin/busybox\", \"sh\", \"-c\", \
         \"/bin/busybox logger -t kiln hello-agent && /bin/busybox stat -c '%u %a' /dev/log > /seen && echo $SSH_AUTH_SOCK >> /seen\"]\n\
         CMD [\"/bin/busybox\", \"cat\", \"/seen\"]\n",
    );
    build(
        root.path(),
        ctx.path(),
        &[
            "-t",
            "ssh:1",
            "--ssh",
            &format!("default={}", agent_path.display()),
        ],
    );
    let received = seen.join().unwrap();
    assert!(received.contains("kiln: hello-agent"), "{received:?}");
    let (stdout, _) = run_image(root.path(), "docker.io/library/ssh:1");
    assert_eq!(stdout, "1000 660\n/dev/log\n");

    // Without an agent, a required ssh mount is an error naming the id.
    let ctx = dockerfile_context(
        "FROM scratch\nCOPY busybox /bin/busybox\n\
         RUN --mount=type=ssh,id=deploy,required=true [\"/bin/busybox\", \"true\"]\n",
    );
    let (ok, _, stderr) = try_build(root.path(), ctx.path(), &["-t", "ssh:2"]);
    assert!(!ok);
    assert!(stderr.contains("SSH agent deploy is required"), "{stderr}");
    // A file that is neither a socket nor a private key is refused up front.
    let (ok, _, stderr) = try_build(
        root.path(),
        ctx.path(),
        &[
            "--ssh",
            &format!("deploy={}", ctx.path().join("Dockerfile").display()),
        ],
    );
    assert!(!ok);
    assert!(stderr.contains("kiln::secret::ssh_key"), "{stderr}");
}
