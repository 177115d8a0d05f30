//! Deterministic file trees for the context and layer benches, generated once into a data
//! directory (`KILN_BENCH_DATA`, else `/mnt/labfs/bench/micro` when that benchmark filesystem is
//! mounted, else `/var/tmp/kiln-bench-micro`) and reused by later runs.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A small, fast, deterministic PRNG (xorshift64*), enough to make file contents and sizes.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// `len` incompressible bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// `len` bytes of source-code-like text (compresses about 3-4x).
    pub fn text(&mut self, len: usize) -> Vec<u8> {
        const WORDS: &[&str] = &[
            "let", "mut", "fn", "impl", "struct", "match", "return", "self", "layer", "digest",
            "cache", "build", "context", "error", "result", "value", "index", "buffer", "=", "{",
            "}", "(", ")", ";", "->", "&",
        ];
        let mut out = Vec::with_capacity(len + 64);
        while out.len() < len {
            for _ in 0..self.range(0, 3) {
                out.extend_from_slice(b"    ");
            }
            for _ in 0..self.range(3, 10) {
                let w = WORDS[(self.next_u64() % WORDS.len() as u64) as usize];
                out.extend_from_slice(w.as_bytes());
                out.push(b' ');
            }
            let _ = write!(out, "{:08x}", self.next_u64() as u32);
            out.push(b'\n');
        }
        out.truncate(len);
        out
    }
}

/// The directory benchmark trees are generated into.
pub fn data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KILN_BENCH_DATA") {
        return PathBuf::from(d);
    }
    let labfs = Path::new("/mnt/labfs/bench");
    if labfs.is_dir() {
        labfs.join("micro")
    } else {
        PathBuf::from("/var/tmp/kiln-bench-micro")
    }
}

fn generate(name: &str, make: impl FnOnce(&Path) -> std::io::Result<()>) -> PathBuf {
    let dir = data_dir().join(name);
    let marker = dir.with_extension("done");
    if !marker.exists() {
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the bench data directory");
        make(&dir).expect("generate the bench tree");
        fs::write(&marker, b"").expect("write the marker");
    }
    dir
}

/// `files` text files of `min..=max` bytes, 50 per folder, in three levels of nested folders (the
/// shape of scenario S1). Returns the root and the total bytes.
pub fn small_files(files: usize, min: u64, max: u64) -> (PathBuf, u64) {
    let name = format!("small-{files}-{min}-{max}");
    let dir = generate(&name, |dir| {
        let mut rng = Rng::new(files as u64);
        for i in 0..files {
            let leaf = i / 50;
            let d = dir.join(format!(
                "src/pkg{:03}/mod{:02}/part{:02}",
                leaf / 100,
                (leaf / 10) % 10,
                leaf % 10
            ));
            if i % 50 == 0 {
                fs::create_dir_all(&d)?;
            }
            let len = rng.range(min, max) as usize;
            fs::write(d.join(format!("file{:03}.rs", i % 50)), rng.text(len))?;
        }
        Ok(())
    });
    (dir.clone(), tree_bytes(&dir))
}

/// A 256 MiB tree of mixed content: 4,096 text files of 1-31 KiB (~64 MiB), eight 16 MiB random
/// files and four 16 MiB text files. Returns the root and the total bytes.
pub fn mixed_256m() -> (PathBuf, u64) {
    let dir = generate("mixed-256m", |dir| {
        let mut rng = Rng::new(256);
        let mut small = 0u64;
        for i in 0..4096 {
            let d = dir.join(format!("src/d{:02}", i / 64));
            if i % 64 == 0 {
                fs::create_dir_all(&d)?;
            }
            // Sizes average 16 KiB so the small files total 64 MiB.
            let len = if i == 4095 {
                // The random sizes may already pass 64 MiB: then the last file is small.
                ((64u64 << 20).saturating_sub(small)).max(1 << 10)
            } else {
                rng.range(1 << 10, 31 << 10)
            };
            small += len;
            fs::write(d.join(format!("f{i:04}.txt")), rng.text(len as usize))?;
        }
        fs::create_dir_all(dir.join("bin"))?;
        for i in 0..8 {
            fs::write(dir.join(format!("bin/blob{i}.bin")), rng.bytes(16 << 20))?;
        }
        fs::create_dir_all(dir.join("logs"))?;
        for i in 0..4 {
            fs::write(dir.join(format!("logs/app{i}.log")), rng.text(16 << 20))?;
        }
        Ok(())
    });
    (dir.clone(), tree_bytes(&dir))
}

fn tree_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}

/// `n` context-relative paths shaped like a real repository with a `node_modules` tree.
pub fn context_paths(n: usize) -> Vec<String> {
    let mut rng = Rng::new(n as u64);
    let exts = ["rs", "js", "json", "md", "log", "png", "ts", "txt"];
    (0..n)
        .map(|i| {
            let ext = exts[(rng.next_u64() % exts.len() as u64) as usize];
            match i % 4 {
                0 => format!("src/pkg{:03}/mod{:02}/file{i}.{ext}", i % 97, i % 13),
                1 => format!(
                    "node_modules/lib{:04}/dist/esm/part{:02}/index{i}.{ext}",
                    i % 1500,
                    i % 17
                ),
                2 => format!("docs/section{:02}/images/fig{i}.{ext}", i % 31),
                _ => format!("target/debug/deps/obj{i}.{ext}"),
            }
        })
        .collect()
}

/// A realistic `.dockerignore`: directory names, `**` globs, negations and anchored paths.
pub const DOCKERIGNORE: &[&str] = &[
    ".git",
    "target/",
    "!target/debug/deps/keep*",
    "node_modules",
    "**/*.log",
    "**/test/**",
    "*.md",
    "!README.md",
    "docs/**/*.png",
    "src/**/generated_*.rs",
    "[a-c]*.tmp",
];
