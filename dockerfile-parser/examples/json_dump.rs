//! `kiln parse --json`'s work alone, for profiles: the compact dump of a file, written to stdout
//! from its blocks. With `ast` as second argument: `parse_typed()` alone (the typed layer); with
//! `blocks`: `parse()` alone (one block per instruction); with `streamed`: the dump written while
//! parsing the raw layer (`dump::parse_to_json`), held whole, then written.
//! Given a directory, parses each of its files 100 times (`ast` or `blocks`), as the
//! `parse/corpus` bench does.
use std::io::Write;
use std::os::fd::AsFd;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        return;
    };
    if std::path::Path::new(&path).is_dir() {
        // Each file of a directory, as the `parse/corpus` bench does, 100 times over.
        let mut files: Vec<_> = std::fs::read_dir(&path)
            .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        let texts: Vec<String> = files
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect();
        let blocks = std::env::args().nth(2).as_deref() == Some("blocks");
        let mut ok = 0;
        for _ in 0..100 {
            for t in &texts {
                let source = kiln_dockerfile_parser::Text::from(t.as_str());
                ok += usize::from(if blocks {
                    kiln_dockerfile_parser::parse_shared(&source).is_ok()
                } else {
                    kiln_dockerfile_parser::parse_typed_shared(&source).is_ok()
                });
            }
        }
        println!("{ok} parses");
        return;
    }
    let Ok(src) = std::fs::read_to_string(path) else {
        return;
    };
    let source = kiln_dockerfile_parser::Text::new(src);
    let mode = std::env::args().nth(2).unwrap_or_default();
    // Whole buffers to a duplicate of stdout's descriptor, as `kiln parse --json` writes (the
    // locked stdout is line-buffered: it searches every write for a newline).
    let Ok(fd) = std::io::stdout().as_fd().try_clone_to_owned() else {
        return;
    };
    let mut out = std::fs::File::from(fd);
    if mode == "blocks" {
        let n = kiln_dockerfile_parser::parse_shared(&source).map(|f| f.instructions().len());
        let _ = writeln!(out, "{n:?}");
        return;
    }
    if mode == "ast" {
        let n =
            kiln_dockerfile_parser::parse_typed_shared(&source).map(|d| d.instructions().count());
        let _ = writeln!(out, "{n:?}");
        return;
    }
    if mode == "streamed" {
        if let Ok(dump) = kiln_dockerfile_parser::dump::parse_to_json(&source, false) {
            let _ = dump.write_to(&mut out);
        }
        return;
    }
    if let Ok(file) = kiln_dockerfile_parser::parse_shared(&source) {
        let _ = kiln_dockerfile_parser::dump::write_blocks(&file, &mut out, false);
    }
}
