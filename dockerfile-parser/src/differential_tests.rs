//! The shortcuts (keyword and flags without the grammar, JSON arrays of plain strings without the
//! decoder) change nothing: every file of the corpus and the golden cases, and generated
//! Dockerfile-like text, parse to the same AST and the same errors with them and without them.

use std::path::Path;

use proptest::prelude::*;

use crate::{REFERENCE, parse_typed as parse};

fn both(
    src: &str,
) -> (
    Result<crate::TypedDockerfile, crate::ParseError>,
    Result<crate::TypedDockerfile, crate::ParseError>,
) {
    REFERENCE.with(|r| r.set(true));
    let reference = parse(src);
    REFERENCE.with(|r| r.set(false));
    (reference, parse(src))
}

/// Every Dockerfile under `testdata/` (the corpus and the golden cases), sorted.
pub(crate) fn testdata_dockerfiles() -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata");
    let mut paths = Vec::new();
    files(&root, &mut paths);
    paths.sort();
    assert!(paths.len() > 150, "found {} Dockerfiles", paths.len());
    paths
}

/// Every file under `dir` whose name holds `Dockerfile`.
fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains("Dockerfile"))
        {
            out.push(p);
        }
    }
}

#[test]
fn corpus_and_golden_cases_parse_the_same_without_shortcuts() {
    let paths = testdata_dockerfiles();
    let mut whole = String::new();
    for p in &paths {
        let Ok(src) = std::fs::read_to_string(p) else {
            continue;
        };
        let (reference, fast) = both(&src);
        assert_eq!(reference, fast, "{}", p.display());
        if let Ok(df) = &fast {
            crate::dump::tests::assert_same_pretty_text(df);
        }
        crate::dump::tests::assert_streamed_same(&src);
        crate::dump::tests::assert_blocks_same(&src);
        if !src.starts_with("# escape") {
            whole.push_str(&src);
            whole.push('\n');
        }
    }
    // All of them as one file too (errors and all).
    let (reference, fast) = both(&whole);
    assert_eq!(reference, fast);
    if let Ok(df) = &fast {
        crate::dump::tests::assert_same_pretty_text(df);
    }
    crate::dump::tests::assert_streamed_same(&whole);
    crate::dump::tests::assert_blocks_same(&whole);
}

/// The dump skips the lowering of instructions it can tell are valid (`valid_without_lowering`):
/// on the shapes next to that line, the dump's errors and warnings are still the parse's (and
/// every skip is checked against the lowering while the tests run).
#[test]
fn the_dump_checks_what_it_does_not_lower() {
    for body in [
        "ENV A=1 B=2",
        "ENV A 1",
        "ENV =1",
        "ENV A=1 =2",
        "ENV",
        "LABEL a=b c",
        "LABEL a b",
        "ARG A",
        "ARG =x",
        "ARG A=1 =x",
        "ARG",
        "VOLUME /a",
        "VOLUME [\"\"]",
        "VOLUME [\" \"]",
        "VOLUME",
        "EXPOSE 80",
        "EXPOSE",
        "USER a",
        "USER a b",
        "USER",
        "WORKDIR /a",
        "WORKDIR",
        "STOPSIGNAL 9",
        "STOPSIGNAL --x=1 9",
        "CMD [\"a\"]",
        "CMD a",
        "CMD",
        "ENTRYPOINT a",
        "ENTRYPOINT []",
        "RUN a",
        "RUN",
        "RUN --bad a",
        "COPY a b",
        "COPY a",
        "COPY a <<EOF",
        "COPY [\"a\", \"<<EOF\"]",
        "COPY <<EOF /d\nx\nEOF",
        "ADD a b",
        "ADD --bad a b",
        "MAINTAINER x",
        "SHELL a",
    ] {
        for src in [format!("FROM a\n{body}\n"), format!("{body}\nFROM a\n")] {
            crate::dump::tests::assert_streamed_same(&src);
            crate::dump::tests::assert_blocks_same(&src);
        }
    }
}

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("FROM alpine AS b".to_string()),
        Just("FROM --platform=$BUILDPLATFORM golang:1.22 AS build".to_string()),
        Just("RUN --mount=type=cache,target=/root/.cache \\".to_string()),
        Just("    --mount=\"type=bind,source=a b\",target=/x go build".to_string()),
        Just("RUN <<EOF".to_string()),
        Just("EOF".to_string()),
        Just("COPY --from=b --chmod=0755 <<-X /d".to_string()),
        Just("COPY [\"a\", \"b c\", \"/d/\"]".to_string()),
        Just("COPY --from=b --link --chown=1:1 a /d".to_string()),
        Just("RUN --mount=type=cache,target=/x,sharing=locked --network=none make".to_string()),
        Just("from a As B".to_string()),
        Just("CMD [\"a\\\"b\", \"\\u00e9\"]".to_string()),
        Just("ENTRYPOINT [ \"/bin/app\" ,\"--port\",\"80\" ]".to_string()),
        Just("SHELL [\"/bin/sh\", \"-c\"]".to_string()),
        Just("ENV A=1 B=\"2 3\" C".to_string()),
        Just("LABEL a=b".to_string()),
        Just("ARG X=1".to_string()),
        Just("ARG =1 Y".to_string()),
        Just("ENV A 1".to_string()),
        Just("CMD a b".to_string()),
        Just("USER".to_string()),
        Just("HEALTHCHECK --interval=1s CMD [\"a\"]".to_string()),
        Just("ONBUILD RUN [\"x\"]".to_string()),
        Just("VOLUME [\"/a\", 1]".to_string()),
        Just("\\".to_string()),
        Just("# comment".to_string()),
        Just(String::new()),
        "(RUN|COPY|CMD|FROM|ADD|ENV|VOLUME|ARG|LABEL|EXPOSE|USER|WORKDIR|STOPSIGNAL|ENTRYPOINT) (--[a-z]{1,6}(=[a-z\"' \\\\]{0,5})? ){0,2}[\\[\\]\", a-z\\\\{}é]{0,20}",
        "[A-Za-z$={}\\[\\]\"' \\\\<>,-]{0,30}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn generated_text_parses_the_same_without_shortcuts(
        lines in proptest::collection::vec(line(), 1..16),
        crlf in any::<bool>(),
    ) {
        let src = lines.join(if crlf { "\r\n" } else { "\n" });
        let (reference, fast) = both(&src);
        prop_assert_eq!(&reference, &fast);
        if let Ok(df) = &fast {
            crate::dump::tests::assert_same_pretty_text(df);
        }
        crate::dump::tests::assert_streamed_same(&src);
        crate::dump::tests::assert_blocks_same(&src);
        crate::block::tests::assert_same(&src);
    }
}
