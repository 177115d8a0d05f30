//! `kiln parse --json`'s work alone, for profiles: the compact dump of a file, written to stdout.
//! With `ast` as second argument: `parse()` alone; with `blocks`: `block::parse_blocks` alone.
use std::io::Write;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        return;
    };
    let Ok(src) = std::fs::read_to_string(path) else {
        return;
    };
    let source = kiln_dockerfile_parser::Text::new(src);
    let mode = std::env::args().nth(2).unwrap_or_default();
    let out = std::io::stdout();
    let mut out = out.lock();
    if mode == "blocks" {
        let n = kiln_dockerfile_parser::block::parse_blocks(&source).map(|f| {
            let all = f.instructions().len();
            (
                all,
                all - f.instructions().filter(|b| b.node().is_some()).count(),
            )
        });
        let _ = writeln!(out, "{n:?} (instructions, in blocks of their own)");
        return;
    }
    if mode == "ast" {
        let n = kiln_dockerfile_parser::parse_shared(&source).map(|d| d.instructions().count());
        let _ = writeln!(out, "{n:?}");
        return;
    }
    if let Ok(dump) = kiln_dockerfile_parser::dump::parse_to_json(&source, false) {
        let _ = dump.write_to(&mut out);
    }
}
