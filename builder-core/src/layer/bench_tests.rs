//! Throughput measurements, run by hand:
//! `cargo test -p kiln-builder-core --lib layer::bench_tests -- --ignored --nocapture`.
//! They print MB/s next to the GNU tools on the same bytes; they assert nothing about speed.

use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::*;
use crate::content::ContentStore;
use crate::image::Compression;

const SIZE: usize = 256 << 20;

fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

fn text_bytes(n: usize) -> Vec<u8> {
    let words = [
        "layer",
        "image",
        "build",
        "the",
        "of",
        "container",
        "kiln",
        "digest",
        "fn",
        "let",
        "struct",
        "impl",
        "return",
        "error",
        "path",
        "{",
        "}",
        "(",
        ");",
        "\n    ",
    ];
    let mut out = Vec::with_capacity(n + 16);
    let mut x: u32 = 7;
    while out.len() < n {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        out.extend_from_slice(words[(x >> 16) as usize % words.len()].as_bytes());
        out.push(if x.is_multiple_of(11) { b'\n' } else { b' ' });
    }
    out.truncate(n);
    out
}

fn mbps(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

fn shell_time(cmd: &str) -> f64 {
    let t = Instant::now();
    let ok = Command::new("sh")
        .args(["-c", cmd])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "{cmd}");
    t.elapsed().as_secs_f64()
}

#[test]
#[ignore = "benchmark"]
fn bench_gzip_vs_gnu_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path().join("store")).unwrap();
    for (label, data) in [("random", random_bytes(SIZE)), ("text", text_bytes(SIZE))] {
        let file = dir.path().join(label);
        fs::write(&file, &data).unwrap();
        let blob = store.put_bytes(&data).unwrap();
        drop(data);
        let gnu = shell_time(&format!("gzip -1 -c {} > /dev/null", file.display()));
        let t = Instant::now();
        let out = compress_layer(
            &store,
            &blob.digest,
            Compression::Gzip,
            &CompressOptions::default(),
        )
        .unwrap();
        let ours = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let z = compress_layer(
            &store,
            &blob.digest,
            Compression::Zstd,
            &CompressOptions::default(),
        )
        .unwrap();
        let zstd = t.elapsed().as_secs_f64();
        eprintln!(
            "{label}: gzip -1 {:.0} MB/s; kiln gzip {:.0} MB/s ({:.2}x, ratio {:.3}); kiln zstd-3 {:.0} MB/s (ratio {:.3})",
            mbps(SIZE, gnu),
            mbps(SIZE, ours),
            gnu / ours,
            out.size as f64 / SIZE as f64,
            mbps(SIZE, zstd),
            z.size as f64 / SIZE as f64,
        );
    }
}

#[test]
#[ignore = "benchmark"]
fn bench_layer_write_vs_tar_sha256sum() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    // 4 files of 60 MiB plus 4,000 small files: 256 MiB in all.
    fs::create_dir_all(tree.join("small")).unwrap();
    let big = random_bytes(60 << 20);
    for i in 0..4 {
        fs::write(tree.join(format!("big{i}")), &big).unwrap();
    }
    let small = text_bytes(4 << 10);
    for i in 0..4000 {
        let mut f = fs::File::create(tree.join("small").join(format!("f{i:05}"))).unwrap();
        f.write_all(&small).unwrap();
    }
    let total = 4 * (60 << 20) + 4000 * (4 << 10);
    let sync = || {
        let _ = Command::new("sync").status();
    };
    sync();
    let tar = shell_time(&format!("tar -C {} -cf - . | sha256sum", tree.display()));
    let store = ContentStore::open(dir.path().join("store")).unwrap();
    let root = crate::fsroot::Root::open(&tree).unwrap();
    let t = Instant::now();
    let (blob, stats) = write_tree_to_store(&store, &root, &LayerOptions::default()).unwrap();
    let ours = t.elapsed().as_secs_f64();
    let cp = shell_time(&format!(
        "cp {} {}/copy && sha256sum {}/copy",
        store.blob_path(&blob.digest).display(),
        dir.path().display(),
        dir.path().display()
    ));
    let dest = dir.path().join("applied");
    fs::create_dir(&dest).unwrap();
    let t = Instant::now();
    apply_layer(
        &crate::fsroot::Root::open(&dest).unwrap(),
        store.open_verified(&blob.digest).unwrap(),
        crate::changes::WhiteoutStyle::Apply,
        &ApplyOptions::default(),
    )
    .unwrap();
    let applied = t.elapsed().as_secs_f64();
    let untar = shell_time(&format!(
        "mkdir {d}/untar && tar -C {d}/untar -xf {}",
        store.blob_path(&blob.digest).display(),
        d = dir.path().display()
    ));
    eprintln!("apply: kiln {applied:.2} s, tar -x {untar:.2} s");
    eprintln!(
        "layer of {} entries, {} MiB: kiln write+sha256+fsync into store {:.0} MB/s ({:.2} s); \
         tar -c | sha256sum {:.0} MB/s ({:.2} s); cp + sha256sum of the layer {:.2} s",
        stats.entries,
        total >> 20,
        mbps(total, ours),
        ours,
        mbps(total, tar),
        tar,
        cp
    );
}
