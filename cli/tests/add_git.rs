//! `ADD <git repository>`: BuildKit's `URL#REF:SUBDIR` sources against a real `git daemon` and a
//! dumb-HTTP server on 127.0.0.1. These need root; with `KILN_REQUIRE_PRIVILEGED=1` (CI) a missing
//! capability fails them.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kiln_builder_core::testing::require_privileged;

mod common;
use common::{build_rootfs, dockerfile_context as context, git, try_build};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(mut cmd: Command, port: u16) -> Server {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server on {port} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

#[test]
fn add_fetches_git_repositories_by_ref_and_subdir() {
    if !require_privileged("add_fetches_git_repositories_by_ref_and_subdir") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(work.join("docs/site")).unwrap();
    std::fs::write(work.join("a.txt"), "version one\n").unwrap();
    std::fs::write(work.join("docs/site/index.html"), "<h1>site</h1>\n").unwrap();
    std::os::unix::fs::symlink("/etc/shadow", work.join("escape")).unwrap();
    git(&work, &["init", "-q"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "one"]);
    git(&work, &["tag", "-a", "v1", "-m", "v1"]);
    let commit_time: i64 = git(&work, &["log", "-1", "--format=%ct"]).parse().unwrap();
    let served = tmp.path().join("served");
    std::fs::create_dir(&served).unwrap();
    git(
        tmp.path(),
        &["clone", "-q", "--bare", "work", "served/repo.git"],
    );
    git(&served.join("repo.git"), &["update-server-info"]);

    let gport = free_port();
    let mut daemon = Command::new("git");
    daemon
        .args([
            "daemon",
            "--reuseaddr",
            "--export-all",
            "--listen=127.0.0.1",
        ])
        .arg(format!("--port={gport}"))
        .arg(format!("--base-path={}", served.display()))
        .arg(&served);
    let _daemon = serve(daemon, gport);
    let hport = free_port();
    let mut http = Command::new("python3");
    http.args([
        "-m",
        "http.server",
        &hport.to_string(),
        "--bind",
        "127.0.0.1",
    ])
    .current_dir(&served);
    let _http = serve(http, hport);

    let dockerfile = format!(
        "FROM scratch\n\
         ADD git://127.0.0.1:{gport}/repo.git#v1 /src/\n\
         ADD git://127.0.0.1:{gport}/repo.git#main:docs/site /site\n\
         ADD --keep-git-dir=true git://127.0.0.1:{gport}/repo.git#v1 /withgit/\n\
         ADD http://127.0.0.1:{hport}/repo.git#v1 /http/\n"
    );
    let root = tempfile::tempdir().unwrap();
    let ctx = context(&dockerfile);
    let (fs, _) = build_rootfs(root.path(), ctx.path(), &[]);
    let r = fs.path().join("rootfs");
    assert_eq!(
        std::fs::read_to_string(r.join("src/a.txt")).unwrap(),
        "version one\n"
    );
    assert!(!r.join("src/.git").exists(), ".git is dropped by default");
    assert_eq!(
        std::fs::read_link(r.join("src/escape")).unwrap(),
        Path::new("/etc/shadow"),
        "symlinks stay links"
    );
    assert_eq!(
        std::fs::read_to_string(r.join("site/index.html")).unwrap(),
        "<h1>site</h1>\n"
    );
    assert!(!r.join("site/a.txt").exists());
    assert!(r.join("withgit/.git").is_dir());
    assert_eq!(
        std::fs::read_to_string(r.join("http/a.txt")).unwrap(),
        "version one\n"
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(r.join("src/a.txt")).unwrap().mtime(),
        commit_time
    );

    // Unchanged refs are cache hits; a moved branch is a miss for its step only.
    let (ok, _, err) = try_build(root.path(), ctx.path(), &["--progress", "plain"]);
    assert!(ok, "{err}");
    assert_eq!(err.matches("CACHED").count(), 4, "{err}");
    std::fs::write(work.join("docs/site/index.html"), "<h1>site two</h1>\n").unwrap();
    git(&work, &["commit", "-q", "-am", "two"]);
    git(&work, &["push", "-q", "../served/repo.git", "main"]);
    git(&served.join("repo.git"), &["update-server-info"]);
    let (fs, _) = build_rootfs(root.path(), ctx.path(), &[]);
    assert_eq!(
        std::fs::read_to_string(fs.path().join("rootfs/site/index.html")).unwrap(),
        "<h1>site two</h1>\n"
    );

    // A ref that does not exist names the repository and the ref.
    let ctx = context(&format!(
        "FROM scratch\nADD git://127.0.0.1:{gport}/repo.git#nope /x/\n"
    ));
    let (ok, _, err) = try_build(root.path(), ctx.path(), &[]);
    assert!(!ok);
    assert!(err.contains("repo.git") && err.contains("nope"), "{err}");
}
