//! Layer writing of a 256 MiB mixed tree: the deterministic tar writer alone, tar + sha256 (the
//! diff_id pass), and gzip (parallel, byte-identical for any thread count) and zstd -3 of the
//! same tar bytes. Compare with `gzip -1` / `zstd -3` / `sha256sum` in docs/performance.md.

use std::io::{self, Write};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kiln_benches::trees::mixed_256m;
use kiln_builder_core::fsroot::Root;
use kiln_builder_core::layer::{LayerOptions, gzip_parallel, write_tree};
use sha2::{Digest as _, Sha256};

/// A writer that only hashes, as the store writer does besides writing.
struct HashSink(Sha256);

impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn layer(c: &mut Criterion) {
    let (dir, _) = mixed_256m();
    let root = Root::open(&dir).expect("open the bench tree");
    let opts = LayerOptions::default();
    let (tar, _) = write_tree(&root, &opts, Vec::new()).expect("write the bench layer");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());

    let mut group = c.benchmark_group("layer_256m");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(tar.len() as u64));
    group.bench_function("tar", |b| {
        b.iter(|| write_tree(&root, &opts, io::sink()).expect("write").1)
    });
    group.bench_function("tar_sha256", |b| {
        b.iter(|| {
            let (h, _) = write_tree(&root, &opts, HashSink(Sha256::new())).expect("write");
            h.0.finalize()
        })
    });
    group.bench_function(format!("gzip_parallel_{threads}_threads"), |b| {
        b.iter(|| gzip_parallel(&tar[..], io::sink(), threads).expect("gzip"))
    });
    group.bench_function("gzip_parallel_1_thread", |b| {
        b.iter(|| gzip_parallel(&tar[..], io::sink(), 1).expect("gzip"))
    });
    group.bench_function("zstd_3", |b| {
        b.iter(|| {
            let mut enc = zstd::stream::write::Encoder::new(io::sink(), 3).expect("zstd");
            enc.write_all(&tar).expect("zstd");
            enc.finish().expect("zstd")
        })
    });
    group.finish();
}

criterion_group!(benches, layer);
criterion_main!(benches);
