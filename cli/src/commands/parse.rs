//! `kiln parse [--json] [FILE|-]`: the parser's view of a Dockerfile.

use std::io::IsTerminal;
use std::io::Read;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use kiln_dockerfile_parser::Text;
use miette::{IntoDiagnostic, NamedSource, Report, WrapErr};

/// Arguments of `kiln parse`.
#[derive(Debug, Args)]
pub struct ParseArgs {
    /// Print one JSON document: directives, warnings and every instruction with its flags,
    /// arguments, heredocs and lines (indented at a terminal, on one line otherwise). On a parse
    /// error, `{"error", "line", "column"}`.
    #[arg(long)]
    json: bool,

    /// The Dockerfile to parse; `-` reads standard input.
    #[arg(value_name = "FILE|-", default_value = "Dockerfile")]
    file: PathBuf,
}

/// Reads a Dockerfile from a path, or from stdin for `-`. Returns its display name and text.
/// Bytes that are not UTF-8 are accepted, as BuildKit accepts them, with a warning, and kept:
/// the text is in [`kiln_dockerfile_parser::decode`]'s form (see `kiln_dockerfile_parser::bytes`).
pub fn read_dockerfile(path: &std::path::Path) -> miette::Result<(String, String)> {
    let (name, bytes) = if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .into_diagnostic()
            .wrap_err("cannot read the Dockerfile from standard input")?;
        ("<stdin>".to_string(), bytes)
    } else {
        let bytes = read_file(path)
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot read {}", path.display()))?;
        (path.display().to_string(), bytes)
    };
    let text = match String::from_utf8(bytes) {
        // Valid UTF-8 changes only if it holds one of the code points that stand for bytes.
        Ok(text) => match kiln_dockerfile_parser::bytes::decode_str(&text) {
            std::borrow::Cow::Owned(escaped) => Some(escaped),
            std::borrow::Cow::Borrowed(_) => None,
        }
        .unwrap_or(text),
        Err(e) => {
            eprintln!(
                "warning: {name} is not valid UTF-8: its bytes are kept as they are in commands, \
                 paths and files; the image config shows each invalid byte as U+FFFD, as \
                 Docker's does"
            );
            kiln_dockerfile_parser::decode(e.as_bytes()).0.into_owned()
        }
    };
    Ok((name, text))
}

/// Buffers from this size on are backed by huge pages where the kernel allows it.
const LARGE: usize = 4 << 20;

/// The size of a transparent huge page (x86-64, and aarch64 with 4 KiB pages).
const HUGE_PAGE: usize = 2 << 20;

/// The file's bytes, read into a buffer of its size ([`large_buffer`]).
fn read_file(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata().map_or(0, |m| m.len());
    // One byte more than the file: the read that finds its end needs no room of its own.
    let mut bytes = large_buffer(usize::try_from(len).unwrap_or(0).saturating_add(1));
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// An empty buffer with room for at least `len` bytes, for memory the process writes once and
/// keeps (the Dockerfile read). From [`LARGE`] on, the kernel is asked to back it with
/// transparent huge pages: one page fault per 2 MiB instead of one per 4 KiB. Only advice: where
/// huge pages are off, nothing changes.
fn large_buffer(len: usize) -> Vec<u8> {
    if len < LARGE {
        return Vec::with_capacity(len);
    }
    // Room for whole huge pages inside the allocation, wherever it starts.
    let mut buf = Vec::with_capacity(len.next_multiple_of(HUGE_PAGE) + HUGE_PAGE);
    advise_huge_pages(&mut buf);
    buf
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(buf: &mut Vec<u8>) {
    let start = buf.as_mut_ptr() as usize;
    let first = start.next_multiple_of(HUGE_PAGE);
    let end = (start + buf.capacity()) / HUGE_PAGE * HUGE_PAGE;
    if end > first {
        // SAFETY: `first..end` lies inside the vector's allocation, which this process owns;
        // the advice changes how the kernel backs those pages, never their contents. A refusal
        // (huge pages off or unsupported) leaves the buffer as it was.
        unsafe {
            libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_buf: &mut Vec<u8>) {}

/// Runs `kiln parse`.
pub fn run(args: &ParseArgs) -> miette::Result<ExitCode> {
    let (name, text) = match read_dockerfile(&args.file) {
        Ok(r) => r,
        // `--json` always prints one JSON document, for a file that cannot be read too.
        Err(e) if args.json => {
            let value = serde_json::json!({ "error": format!("{e:#}") });
            println!("{}", serde_json::to_string(&value).into_diagnostic()?);
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    // One shared buffer that the AST slices; the text read becomes it without a copy.
    let source = Text::new(text);
    let stdout = std::io::stdout().lock();
    let tty = stdout.is_terminal();
    // Standard output is line-buffered, which looks for newlines in every write and copies the
    // tail: whole buffers go to a duplicate of its descriptor instead.
    let raw = std::fs::File::from(stdout.as_fd().try_clone_to_owned().into_diagnostic()?);
    let mut out = std::io::BufWriter::with_capacity(1 << 16, raw);
    // The file is parsed into blocks (about 150 bytes per instruction besides the text) and
    // nothing is printed unless the whole file parses; then the JSON dump (about five times the
    // input) is written from the blocks through a small buffer, never held whole, or the listing
    // is.
    let parsed = kiln_dockerfile_parser::parse_shared(&source);
    match parsed {
        Ok(df) => {
            let written = write_output(&df, args.json, tty, source.len(), &mut out);
            match written {
                // The reader went away (`kiln parse --json | head`): it has what it wanted, as
                // `cat` or `grep` would see it; nothing to report.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    return Ok(ExitCode::SUCCESS);
                }
                written => written.into_diagnostic()?,
            }
            // One write for all the warnings, not one per line.
            let mut err = std::io::BufWriter::new(std::io::stderr().lock());
            for w in &df.warnings {
                writeln!(err, "warning: {name}:{}: {}", w.line, w.message).into_diagnostic()?;
            }
            err.flush().into_diagnostic()?;
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            if args.json {
                let value = kiln_dockerfile_parser::dump::error_to_json(&err);
                println!("{}", serde_json::to_string(&value).into_diagnostic()?);
            }
            let report =
                Report::new(err).with_source_code(NamedSource::new(name, source.to_string()));
            crate::render::print_report(&report);
            Ok(ExitCode::from(1))
        }
    }
}

/// Writes the parsed file to `out`: the JSON dump (indented for a person at a terminal, on one
/// line for a program reading a pipe or a file; the writer fills pieces of about 64 KiB, which
/// pass `out`'s buffer) or the listing of its instructions.
fn write_output(
    df: &kiln_dockerfile_parser::Dockerfile,
    json: bool,
    tty: bool,
    source_len: usize,
    out: &mut impl Write,
) -> std::io::Result<()> {
    if json {
        kiln_dockerfile_parser::dump::write_blocks(df, &mut *out, tty)?;
        writeln!(out)?;
    } else {
        let mut listing = Vec::with_capacity(source_len + source_len / 4);
        for block in df.instructions() {
            listing_line(&mut listing, block.start_line(), block.original());
        }
        out.write_all(&listing)?;
    }
    out.flush()
}

/// One line of `kiln parse`'s listing: `format!("{line:>4}  {text}\n")` without the formatter.
fn listing_line(out: &mut Vec<u8>, line: usize, text: &str) {
    let mut digits = itoa::Buffer::new();
    let number = digits.format(line).as_bytes();
    out.extend(std::iter::repeat_n(
        b' ',
        4usize.saturating_sub(number.len()),
    ));
    out.extend_from_slice(number);
    out.extend_from_slice(b"  ");
    out.extend_from_slice(text.as_bytes());
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    #[test]
    fn listing_lines_are_formatted_lines() {
        for (line, text) in [(1, "FROM a"), (9999, ""), (12345, "RUN x"), (0, "é")] {
            let mut out = Vec::new();
            super::listing_line(&mut out, line, text);
            assert_eq!(
                String::from_utf8_lossy(&out),
                format!("{line:>4}  {text}\n")
            );
        }
    }
}
