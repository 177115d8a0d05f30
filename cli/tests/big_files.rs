//! A COPY of big files into a path the parent lacks writes their bytes once, into the layer; the
//! snapshot gets placeholders that are completed when a later step reads the files. Whatever
//! step comes first, the files must read back whole, with their times, and the image must be
//! the same. Needs root.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use std::path::Path;
use std::process::Command;

use kiln_builder_core::testing::require_privileged;

mod common;
use common::{context_with, kiln};

const EPOCH: &str = "1700000000";
/// The big file's modification time (before the epoch, so the layer keeps it too).
const MTIME: u64 = 1_600_000_000;

fn build_id(root: &Path, ctx: &Path, dockerfile: &str) -> String {
    common::ok_stdout(
        kiln(root)
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .args(["build", "-q", "-f"])
            .arg(ctx.join(dockerfile))
            .arg(ctx),
    )
}

/// 9 MiB of pseudo-random bytes (over the size from which COPY defers a file's bytes).
fn big_bytes(seed: u64) -> Vec<u8> {
    let mut x = seed;
    let mut out = Vec::with_capacity(9 << 20);
    while out.len() < 9 << 20 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

fn put_big(ctx: &Path, rel: &str, seed: u64) -> String {
    let p = ctx.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, big_bytes(seed)).unwrap();
    let f = std::fs::File::options().write(true).open(&p).unwrap();
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(MTIME))
        .unwrap();
    let out = Command::new("sha256sum").arg(&p).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split(' ')
        .next()
        .unwrap()
        .to_string()
}

/// Notes of placeholders not completed yet in the store at `root`.
fn pending(root: &Path) -> usize {
    let dir = root.join("kiln/snapshots/snapshots");
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().join("pending").exists()))
        .count()
}

const COPIES: &str = "FROM scratch
COPY busybox /bin/busybox
COPY big.bin /data/big.bin
COPY small.txt /data/small.txt
COPY tree /app
";

#[test]
fn big_files_read_back_whole_after_a_copy_that_wrote_them_once() {
    if !require_privileged("big files") {
        return;
    }
    let ctx = context_with(&[("small.txt", "small"), ("tree/a.txt", "a")]);
    let c = ctx.path();
    let big = put_big(c, "big.bin", 1);
    let inner = put_big(c, "tree/inner/big2.bin", 2);
    let check = format!(
        "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo '{big}  /data/big.bin' | /bin/busybox sha256sum -c && echo '{inner}  /app/inner/big2.bin' | /bin/busybox sha256sum -c && test $(/bin/busybox stat -c %Y /data/big.bin) = {MTIME} && test $(/bin/busybox stat -c %Y /app/inner/big2.bin) = {MTIME}\"]\n"
    );
    std::fs::write(c.join("Copies.Dockerfile"), COPIES).unwrap();
    std::fs::write(c.join("Check.Dockerfile"), format!("{COPIES}{check}")).unwrap();

    // The COPYs alone: nothing reads the files, so their bytes are only in the layers.
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let copies = build_id(r, c, "Copies.Dockerfile");
    let overlay = std::fs::read_to_string(r.join("kiln/snapshots/.driver"))
        .is_ok_and(|d| d.trim().starts_with("overlayfs"));
    if overlay {
        assert!(pending(r) > 0, "the big files' bytes were deferred");
    }
    // A RUN on the cached COPYs completes the snapshots first and reads every byte.
    let checked = build_id(r, c, "Check.Dockerfile");
    assert_eq!(pending(r), 0);

    // Same images from a store of their own, where the RUN follows the COPYs at once.
    let other = tempfile::tempdir().unwrap();
    assert_eq!(build_id(other.path(), c, "Check.Dockerfile"), checked);
    assert_eq!(build_id(other.path(), c, "Copies.Dockerfile"), copies);

    // A changed small file next to a big one: the COPY starts from its previous result (a
    // snapshot on the completed one) and the image is the one of a build from nothing.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(c.join("tree/a.txt"), "b").unwrap();
    let again = build_id(r, c, "Check.Dockerfile");
    let fresh = tempfile::tempdir().unwrap();
    assert_eq!(again, build_id(fresh.path(), c, "Check.Dockerfile"));
}

/// Builds `Dockerfile` in `ctx` with plain progress; returns (image id, how many steps were
/// cache hits).
fn build_counting_hits(root: &Path, ctx: &Path) -> (String, usize) {
    let out = kiln(root)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .args(["build", "--progress", "plain"])
        .arg(ctx)
        .output()
        .unwrap();
    common::assert_ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let hits = stderr.lines().filter(|l| l.ends_with(" CACHED")).count();
    (
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        hits,
    )
}

/// Writes `byte` at `offset` of `path` and puts its modification time back.
fn poke(path: &Path, offset: u64, byte: u8) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.write_all_at(&[byte], offset).unwrap();
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(MTIME))
        .unwrap();
}

/// The COPY's key covers every byte of a big file: one byte changed in its middle (size and
/// modification time kept) misses the cache and gives the image a build from nothing gives;
/// the byte put back hits the first build's record again, also once the stat cache is gone
/// (the file is hashed again, not trusted by its metadata).
#[test]
fn one_changed_byte_in_a_big_file_changes_the_key() {
    if !require_privileged("big files") {
        return;
    }
    let ctx = context_with(&[("Dockerfile", "FROM scratch\nCOPY big.bin /data/big.bin\n")]);
    let c = ctx.path();
    put_big(c, "big.bin", 3);
    let big = c.join("big.bin");
    let offset = (9 << 20) / 2 + 7;
    let was = std::fs::read(&big).unwrap()[offset as usize];

    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let (first, hits) = build_counting_hits(r, c);
    assert_eq!(hits, 0);
    assert_eq!(build_counting_hits(r, c), (first.clone(), 1));

    poke(&big, offset, was ^ 0x40);
    let (changed, hits) = build_counting_hits(r, c);
    assert_eq!(hits, 0, "one changed byte must miss the cache");
    assert_ne!(changed, first);
    let fresh = tempfile::tempdir().unwrap();
    assert_eq!(build_counting_hits(fresh.path(), c).0, changed);

    poke(&big, offset, was);
    std::fs::remove_dir_all(r.join("kiln/statcache")).unwrap();
    assert_eq!(build_counting_hits(r, c), (first, 1));
}
