//! The memory a walked build context holds, measured exactly with a counting allocator (nothing
//! is timed): the index of a context of small files, a `COPY` selection of all of it (which
//! shares the index's entries), and the stat cache saved from the index and loaded again.
//!
//! The counters are global (the walk lists directories on several threads), so this binary
//! holds this one test only: nothing else allocates while it measures.
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};

use kiln_builder_core::testing::internals::{
    BuildContext, CachingHasher, Entry, EntryKind, RACY_WINDOW, StatCache,
};

struct Counting;

static HELD: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn count(delta: isize) {
    let held = HELD.fetch_add(delta, Ordering::Relaxed) + delta;
    PEAK.fetch_max(held, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counters are atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Starts a measurement: the bytes held now.
fn start() -> isize {
    let now = HELD.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// Bytes held since `start`, and the most held meanwhile.
fn since(start: isize) -> (isize, isize) {
    (
        HELD.load(Ordering::Relaxed) - start,
        PEAK.load(Ordering::Relaxed) - start,
    )
}

/// 4,000 files of a few bytes in 40 directories two levels deep, with names like S6's.
fn context(dir: &Path) {
    for d in 0..40 {
        let sub = dir.join(format!("src/pkg{:03}/mod{:02}", d / 4, d % 4));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..100 {
            std::fs::write(sub.join(format!("file{f:04}.rs")), format!("{d} {f}")).unwrap();
        }
    }
}

#[test]
fn a_large_context_costs_a_bounded_number_of_bytes_per_entry() {
    let dir = tempfile::tempdir().unwrap();
    let ctx_dir = dir.path().join("ctx");
    context(&ctx_dir);
    let ctx = BuildContext::open(&ctx_dir, None).unwrap();

    let walk = start();
    let index = ctx.walk().unwrap();
    let (held, peak) = since(walk);
    let n = index.len() as isize;
    assert!(n > 4000);
    eprintln!(
        "index: {} bytes per entry held, {} at the peak",
        held / n,
        peak / n
    );
    // Each entry: its metadata (~200 bytes, reference-counted), its path, its place in the
    // walk order. The peak adds the listing threads' work lists.
    assert!(
        held / n <= 280,
        "the index holds {} bytes per entry",
        held / n
    );
    assert!(
        peak / n <= 340,
        "the walk peaked at {} bytes per entry",
        peak / n
    );

    // A COPY of the whole context shares the index's entries: one reference per entry.
    let sel = start();
    let shared: Vec<Arc<Entry>> = index.descendants_shared(Path::new("")).cloned().collect();
    let (held, _) = since(sel);
    assert_eq!(held, (shared.capacity() * size_of::<Arc<Entry>>()) as isize);
    drop(shared);

    // Hashing every file ahead of a COPY's key keeps each digest in the index's own entry:
    // the hasher holds no record of its own (one was ~115 bytes per file), and the stat cache
    // saved from the index has them all. Files changed within the racy window are not kept.
    std::thread::sleep(RACY_WINDOW * 2);
    let hasher = CachingHasher::new(StatCache::new());
    let prime = start();
    for e in index.iter().filter(|e| e.kind == EntryKind::File) {
        hasher.prime(ctx.root(), e).unwrap();
    }
    let (held, _) = since(prime);
    assert_eq!(hasher.files_read(), 4000);
    assert!(
        index
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .all(|e| e.digest.get().is_some())
    );
    eprintln!("hashing: {} bytes per file held", held / 4000);
    assert!(held <= 4000, "hashing the files held {held} bytes");
    let primed = dir.path().join("primed");
    hasher.with_cache(|c| c.save_for(&primed, &index)).unwrap();
    assert_eq!(StatCache::load(&primed).len(), 4000);
    drop(hasher);

    // The stat cache saved from the index (digests as the walk found them) and loaded again.
    let mut cache = StatCache::new();
    for e in index.iter().filter(|e| e.kind == EntryKind::File) {
        let key = kiln_builder_core::testing::internals::StatKey::of(e);
        cache.insert(
            e.path.clone(),
            key,
            kiln_builder_core::testing::internals::ContentDigest::of(b"x"),
        );
    }
    let file = dir.path().join("statcache");
    cache.save_for(&file, &index).unwrap();
    drop(cache);
    let load = start();
    let loaded = StatCache::load(&file);
    let (held, peak) = since(load);
    assert_eq!(loaded.len(), 4000);
    let per = held / 4000;
    eprintln!(
        "stat cache: {per} bytes per record held, {} at the peak",
        peak / 4000
    );
    assert!(
        per <= 160,
        "the loaded stat cache holds {per} bytes per record"
    );
    // The file's bytes become the records' buffer: loading holds no second copy.
    assert!(
        peak / 4000 <= 160,
        "loading peaked at {} bytes per record",
        peak / 4000
    );
}
