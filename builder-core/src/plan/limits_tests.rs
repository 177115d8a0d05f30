//! The planner's size limits: doubling variables, oversized environment strings, the total.

use super::limits::{MAX_ARG_STRLEN, MAX_EXPANDED_TOTAL, MAX_WORD_BYTES};
use super::*;
use kiln_dockerfile_parser::LineIndex;
use kiln_dockerfile_parser::shell::ExpandErrorKind;

fn plan_err(src: &str, opts: &PlanOptions) -> PlanError {
    let df = kiln_dockerfile_parser::parse(src).expect("test Dockerfile parses");
    plan(&df, opts, &|_, _| None).expect_err("planning fails")
}

fn line_of(src: &str, err: &PlanError) -> usize {
    let span = err.span().expect("the error has a span");
    LineIndex::new(src).line(span.start())
}

#[test]
fn doubling_args_stop_at_the_word_limit_on_their_line() {
    let mut src = String::from("FROM scratch\nARG a0=xx\n");
    for i in 1..40 {
        src.push_str(&format!("ARG a{i}=$a{}$a{}\n", i - 1, i - 1));
    }
    src.push_str("RUN true\n");
    let started = std::time::Instant::now();
    let err = plan_err(&src, &PlanOptions::default());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // a19 is 2^20 bytes, exactly the limit; a20 passes it.
    assert_eq!(line_of(&src, &err), 22, "{err}");
    match &err {
        PlanError::Expand { what, source, .. } => {
            assert_eq!(what, "ARG a20");
            assert_eq!(
                source.kind,
                ExpandErrorKind::TooLong {
                    limit: MAX_WORD_BYTES
                }
            );
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(
        crate::report::chain(&err).contains("limit of 1048576 bytes per word"),
        "{err}"
    );
    // Global ARGs too.
    let global = src
        .replacen("FROM scratch\n", "", 1)
        .replace("RUN true\n", "FROM scratch\n");
    let err = plan_err(&global, &PlanOptions::default());
    assert_eq!(line_of(&global, &err), 21, "{err}");
}

#[test]
fn many_words_under_the_limit_stop_at_the_total() {
    // 2^19 bytes per ARG: under the word limit, but 200 of them pass the total.
    let mut src = String::from("FROM scratch\nARG a0=xx\n");
    for i in 1..19 {
        src.push_str(&format!("ARG a{i}=$a{}$a{}\n", i - 1, i - 1));
    }
    for i in 0..200 {
        src.push_str(&format!("LABEL l{i}=$a18\n"));
    }
    let err = plan_err(&src, &PlanOptions::default());
    assert!(matches!(err, PlanError::TooLarge { limit, .. } if limit == MAX_EXPANDED_TOTAL));
    // 2 * 2^19 per line in ARG a18 and the LABELs: the 64 MiB are passed at the 128th LABEL,
    // after what the ARGs took.
    let line = line_of(&src, &err);
    assert!((140..=150).contains(&line), "line {line}: {err}");
}

#[test]
fn an_oversized_env_fails_at_the_line_that_set_it() {
    let big = "v".repeat(200_000);
    let src = format!("FROM scratch\nENV SMALL=1\nENV BIG={big}\nLABEL ok=1\nRUN true\n");
    let err = plan_err(&src, &PlanOptions::default());
    assert!(matches!(err, PlanError::ArgumentTooLong { .. }), "{err:?}");
    assert_eq!(line_of(&src, &err), 3);
    let text = err.to_string();
    assert!(text.contains("environment variable BIG"), "{text}");
    assert!(
        text.contains(&format!("{} bytes", 4 + 200_000 + 1)),
        "{text}"
    );
    assert!(text.contains(&MAX_ARG_STRLEN.to_string()), "{text}");
    assert!(
        text.contains("MAX_ARG_STRLEN") && text.contains("line 5"),
        "{text}"
    );
    // Without a RUN the value is fine (it only ends up in the image config).
    let df = kiln_dockerfile_parser::parse(&src.replace("RUN true\n", "")).expect("parses");
    assert!(plan(&df, &PlanOptions::default(), &|_, _| None).is_ok());
    // An ARG is set by its line too; a value from --build-arg points at the ARG's name.
    let src = format!("FROM scratch\nARG A\nARG BIG={big}\nRUN true\n");
    assert_eq!(line_of(&src, &plan_err(&src, &PlanOptions::default())), 3);
    let opts = PlanOptions {
        build_args: [("A".to_string(), big.clone())].into(),
        ..PlanOptions::default()
    };
    let src = "FROM scratch\nARG A\nRUN true\n";
    let err = plan_err(src, &opts);
    assert_eq!(line_of(src, &err), 2, "{err}");
    // Just under the kernel's limit is fine: `A=` + value + NUL.
    let opts = PlanOptions {
        build_args: [("A".to_string(), "v".repeat(MAX_ARG_STRLEN - 3))].into(),
        ..PlanOptions::default()
    };
    let df = kiln_dockerfile_parser::parse(src).expect("parses");
    assert!(plan(&df, &opts, &|_, _| None).is_ok());
}

#[test]
fn an_oversized_command_or_environment_fails_at_the_run() {
    let long = "x".repeat(MAX_ARG_STRLEN);
    let src = format!("FROM scratch\nRUN echo {long}\n");
    let err = plan_err(&src, &PlanOptions::default());
    assert_eq!(line_of(&src, &err), 2);
    assert!(err.to_string().contains("the RUN command is"), "{err}");
    // 25 variables of 100 KB each: every one is fine, all together are not.
    let mut src = String::from("FROM scratch\n");
    for i in 0..25 {
        src.push_str(&format!("ENV V{i}={}\n", "v".repeat(100_000)));
    }
    src.push_str("RUN true\n");
    let err = plan_err(&src, &PlanOptions::default());
    assert_eq!(line_of(&src, &err), 27);
    assert!(err.to_string().contains("2097152 bytes"), "{err}");
}
