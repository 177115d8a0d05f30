//! Parse memory stays within 10 times the input: the blocks of real Dockerfiles, the JSON dump (as
//! `kiln parse --json` makes it, from the blocks, and held whole while parsing) and a streamed
//! parse, on the corpus and on files made to blow memory up (300,000-line ENV and LABEL
//! floods, scaled down here).
//!
//! A counting allocator records the peak of the bytes held by the measuring thread while it
//! parses (the source's copy into the parser's buffer included), so the figure is exact and the
//! same on every run: nothing is timed and other tests running at the same time do not count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

use kiln_dockerfile_parser::{Text, dump, parse, parse_shared, parse_streamed};

struct Counting;

thread_local! {
    /// Whether this thread is measured, the bytes it holds and the most it held.
    static MEASURED: Cell<bool> = const { Cell::new(false) };
    static HELD: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    // `try_with`: a thread being torn down has no counters any more.
    let _ = MEASURED.try_with(|m| {
        if m.get() {
            let held = HELD.with(|h| {
                h.set(h.get() + delta);
                h.get()
            });
            PEAK.with(|p| p.set(p.get().max(held)));
        }
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counters are
// thread-local cells initialised without allocating.
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

/// The most bytes held at once while `f` ran, above what was held when it started.
fn peak_of<T>(f: impl FnOnce() -> T) -> (usize, T) {
    HELD.with(|h| h.set(0));
    PEAK.with(|p| p.set(0));
    MEASURED.with(|m| m.set(true));
    let out = f();
    MEASURED.with(|m| m.set(false));
    (PEAK.with(Cell::get).max(0) as usize, out)
}

const LIMIT: f64 = 10.0;

/// Peak memory of building the blocks, of the streamed parse and of the JSON dump of `src` (from
/// the blocks, and held whole), each as a multiple of its size; panics above [`LIMIT`].
fn check(name: &str, src: &str) {
    let size = src.len() as f64;
    let (ast, df) = peak_of(|| parse(src).map(|df| df.instructions().count()));
    let count = df.unwrap_or_else(|e| panic!("{name}: {e}"));
    let source = Text::from(src);
    let (streamed, _) = peak_of(|| parse_streamed(&source, |_| {}).map(|_| ()));
    let (json, written) =
        peak_of(|| parse_shared(&source).map(|f| dump::write_blocks(&f, std::io::sink(), false)));
    assert!(matches!(written, Ok(Ok(()))), "{name}: the dump is written");
    let (held, dumped) = peak_of(|| dump::parse_to_json(&source, false));
    drop(dumped);
    let ratios = [ast, streamed, json, held].map(|b| b as f64 / size);
    eprintln!(
        "{name}: {} bytes, {count} instructions; peak: blocks {:.2}x, streamed {:.2}x, \
         JSON {:.2}x, JSON held {:.2}x",
        src.len(),
        ratios[0],
        ratios[1],
        ratios[2],
        ratios[3]
    );
    let what = ["blocks", "streamed parse", "JSON dump", "held JSON dump"];
    for (what, r) in what.iter().zip(ratios) {
        assert!(
            r <= LIMIT,
            "{name}: the {what} peaks at {r:.2}x the input (limit {LIMIT}x)"
        );
    }
}

/// The corpus concatenated `copies` times (files with an escape directive left out, as
/// `benches/scenarios/parse.sh` does), each copy's `AS name` made unique: a file of many
/// copies must not declare a stage twice (that is a warning per FROM).
fn corpus(copies: usize) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/dockerfiles/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "Dockerfile"))
        .collect();
    files.sort();
    let texts: Vec<String> = files
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("read"))
        .filter(|t| !t.to_ascii_lowercase().starts_with("# escape="))
        .collect();
    let mut out = String::new();
    for k in 0..copies {
        for (i, text) in texts.iter().enumerate() {
            for line in text.lines() {
                out.push_str(line);
                let words: Vec<&str> = line.split_whitespace().collect();
                let named = words.len() >= 4
                    && words[0].eq_ignore_ascii_case("from")
                    && words[words.len() - 2].eq_ignore_ascii_case("as");
                if named {
                    out.push_str(&format!("-s{k}x{i}"));
                }
                out.push('\n');
            }
        }
    }
    out
}

#[test]
fn the_corpus_parses_within_ten_times_its_size() {
    check("corpus x8", &corpus(8));
}

#[test]
fn env_and_label_floods_parse_within_ten_times_their_size() {
    // The shapes of the 300,000-line ENV file of benches/scenarios/parse.sh and of a LABEL
    // flood, 20,000 lines each.
    let mut env = String::from("FROM scratch\n");
    let mut label = String::from("FROM scratch\n");
    for i in 0..20_000u64 {
        let hex = u128::from(i).wrapping_mul(2_654_435_761);
        env.push_str(&format!("ENV VAR_{i}=value-{i}-{hex:032x}\n"));
        label.push_str(&format!(
            "LABEL org.example.label-{i}=\"value {i} {hex:032x}\"\n"
        ));
    }
    check("ENV x20000", &env);
    check("LABEL x20000", &label);
}
