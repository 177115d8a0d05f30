//! No panic, no hang and bounded work on hostile input.

use kiln_dockerfile_parser::block::parse_blocks;
use kiln_dockerfile_parser::shell::{ExpandErrorKind, Expander};
use kiln_dockerfile_parser::{Text, parse, parse_raw};
use proptest::prelude::*;

/// Parses `src` and reads every block every way an embedder can.
fn read_every_block(src: &str) {
    let Ok(df) = parse(src) else {
        return;
    };
    for b in df.instructions() {
        let _ = format!("{:?}", b.view());
        let _ = (
            b.to_raw(),
            b.to_node(),
            b.mounts().count(),
            b.heredocs().len(),
        );
        let _ = (b.onbuild_expression(), b.healthcheck_duration("interval"));
        if let Some(t) = b.trigger() {
            let _ = (format!("{:?}", t.view()), t.to_node());
        }
    }
}

fn env(_: &str) -> Option<String> {
    Some("v".into())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(src in "\\PC{0,200}") {
        read_every_block(&src);
        let _ = parse_blocks(&Text::from(src.as_str()));
    }

    #[test]
    fn dockerfile_like_text_never_panics(
        lines in proptest::collection::vec(
            prop_oneof![
                Just("FROM alpine AS b".to_string()),
                Just("RUN <<EOF".to_string()),
                Just("EOF".to_string()),
                Just("# escape=`".to_string()),
                Just("COPY --from=b <<-X /d".to_string()),
                Just("\tX".to_string()),
                Just("\\".to_string()),
                Just("`".to_string()),
                Just("ONBUILD RUN x".to_string()),
                Just("HEALTHCHECK --interval=1s CMD [\"a\"]".to_string()),
                Just("ONBUILD COPY --from=b <<E /d".to_string()),
                Just("HEALTHCHECK NONE".to_string()),
                Just("RUN --mount=type=cache,target=/c x".to_string()),
                Just("COPY --chown=\"a\" x y".to_string()),
                "[A-Za-z$={}\\[\\]\"' \\\\<>-]{0,40}",
            ],
            0..30,
        ),
        crlf in any::<bool>(),
    ) {
        let sep = if crlf { "\r\n" } else { "\n" };
        let src = lines.join(sep);
        read_every_block(&src);
        let _ = parse_raw(&src);
        let _ = parse_blocks(&Text::from(src.as_str()));
    }

    #[test]
    fn expansion_never_panics(word in "[a-z${}:#%/?+\\-\"'\\\\ *]{0,60}") {
        let _ = Expander::new('\\').expand(&word, &env);
        let _ = Expander::new('`').expand_words(&word, &env);
    }
}

#[test]
fn one_megabyte_line() {
    let src = format!("FROM alpine\nRUN echo {}\n", "x".repeat(1 << 20));
    let df = parse(&src).expect("parses");
    assert_eq!(df.instructions().count(), 2);
    let flag = format!(
        "FROM alpine\nRUN --mount=type=bind,target=/{} true\n",
        "y".repeat(1 << 20)
    );
    assert!(parse(&flag).is_ok());
    let env_line = format!("FROM alpine\nENV {}\n", "K=v ".repeat(1 << 18));
    assert!(parse(&env_line).is_ok());
}

#[test]
fn one_megabyte_continued_instruction() {
    let src = format!(
        "FROM alpine\nRUN true {}\n",
        "&& \\\n  echo x ".repeat(1 << 16)
    );
    let df = parse(&src).expect("parses");
    let run = df.stages().next().and_then(|s| s.instructions().next());
    assert_eq!(run.map(|r| r.end_line()), Some((1 << 16) + 2));
}

#[test]
fn deeply_nested_expansion_is_an_error_not_a_crash() {
    let n = 100_000;
    let word = format!("{}x{}", "${a:-".repeat(n), "}".repeat(n));
    let err = Expander::new('\\')
        .expand(&word, &env)
        .expect_err("too deep");
    assert_eq!(err.kind, ExpandErrorKind::TooDeep);
    // The same text inside a Dockerfile goes through the parser (and its heredoc scan) safely.
    let src = format!("FROM alpine\nRUN echo {word} <<EOF\nENV A={word}\n");
    assert!(parse(&src).is_ok());
}

#[test]
fn deeply_nested_json_falls_back_to_shell_form() {
    // Like Go's decoder past its depth limit, JSON nested too deeply is not JSON.
    let src = format!(
        "FROM alpine\nCMD {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(parse(&src).is_ok());
    let src = format!("FROM alpine\nCMD {}\n", "[".repeat(100_000));
    assert!(parse(&src).is_ok());
}

#[test]
fn flags_up_to_the_limit_parse_and_one_more_is_an_error_at_its_line() {
    use kiln_dockerfile_parser::{MAX_FLAGS, ParseErrorKind};
    let copy = |n: usize| format!("FROM scratch\n  COPY {}. /app\n", "--exclude=x ".repeat(n));
    let df = parse(&copy(MAX_FLAGS)).expect("parses");
    let block = df.instructions().nth(1).expect("the COPY");
    assert_eq!(block.flags().count(), MAX_FLAGS);
    assert_eq!(block.flags().last().map(|f| f.text), Some("--exclude=x"));

    let err = parse(&copy(MAX_FLAGS + 1)).expect_err("one flag too many");
    assert!(matches!(err.kind(), ParseErrorKind::TooManyFlags(n) if *n == MAX_FLAGS + 1));
    assert_eq!((err.line(), err.column()), (2, 3));
    assert!(err.to_string().contains("too many flags"), "{err}");
}
