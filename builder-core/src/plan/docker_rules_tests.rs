//! Planning rules where kiln follows `docker build` to the letter.

use super::*;

fn plan_scratch(src: &str) -> BuildGraph {
    let df = kiln_dockerfile_parser::parse(src).expect("test Dockerfile parses");
    plan(
        &df,
        &PlanOptions::default(),
        &|_: &ImageRef, _: &crate::image::Platform| None,
    )
    .expect("plans")
}

/// The Dockerfile reference's own example for ENV: every value of one ENV instruction is
/// expanded against the environment as it was before that instruction.
#[test]
fn env_pairs_expand_against_the_environment_before_the_instruction() {
    let src = "FROM scratch\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\n";
    let g = plan_scratch(src);
    let config = &g.target_stage().config;
    assert_eq!(config.env_get("abc"), Some("bye"));
    assert_eq!(config.env_get("def"), Some("hello"));
    assert_eq!(config.env_get("ghi"), Some("bye"));
    let history: Vec<&str> = g
        .target_stage()
        .steps
        .iter()
        .map(|s| s.created_by.as_str())
        .collect();
    assert_eq!(history[1], "ENV abc=bye def=hello");
}

/// A name set twice in one ENV keeps the last value; neither sees the other.
#[test]
fn env_pairs_in_one_instruction_do_not_see_each_other() {
    let src = "FROM scratch\nENV a=1 b=${a:-unset} a=2 c=$a\n";
    let g = plan_scratch(src);
    let config = &g.target_stage().config;
    assert_eq!(config.env_get("a"), Some("2"));
    assert_eq!(config.env_get("b"), Some("unset"));
    assert_eq!(config.env_get("c"), Some(""));
}

/// Mount options are checked in the stages the build runs, as BuildKit checks them: a bad
/// option in a skipped stage is no error, the same option in the target stage is one, with the
/// mount's span.
#[test]
fn mount_options_are_checked_only_in_stages_the_build_runs() {
    let bad = [
        (
            "type=bind,target=/src,z",
            "invalid field 'z' must be a key=value pair",
        ),
        ("type=cahce,target=/x", "unsupported mount type \"cahce\""),
        (
            "type=bind,target=/x,mode=0755",
            "mode not allowed for \"bind\" type mounts",
        ),
        (
            "type=secret",
            "invalid secret mount. one of source, target required",
        ),
        (
            "type=bind,target=/x,sourc=y",
            "unexpected key 'sourc' in 'sourc=y'",
        ),
        (
            "type=bind,from=$STAGE,target=/x",
            "'from' doesn't support variable expansion, define alias stage instead",
        ),
    ];
    for (mount, message) in bad {
        let skipped = format!("FROM scratch AS unused\nRUN --mount={mount} true\nFROM scratch\n");
        plan_scratch(&skipped);
        let built = format!("FROM scratch\nRUN --mount={mount} true\n");
        let df = kiln_dockerfile_parser::parse(&built).expect("parses");
        let err = plan(
            &df,
            &PlanOptions::default(),
            &|_: &ImageRef, _: &crate::image::Platform| None,
        )
        .expect_err("the target stage's mount is checked");
        match err {
            PlanError::Invalid { message: m, span } => {
                assert_eq!(m, format!("invalid --mount: {message}"), "{mount}");
                assert_eq!(built[span.range()], format!("--mount={mount}"));
            }
            other => panic!("{mount}: unexpected {other:?}"),
        }
    }
}

fn run_argvs(g: &BuildGraph) -> Vec<Vec<String>> {
    g.target_stage()
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            crate::graph::Op::Run(r) => Some(r.argv.clone()),
            _ => None,
        })
        .collect()
}

/// `RUN << EOF` and `RUN 3<<EOF` are a heredoc alone, as BuildKit reads them: the body is the
/// script (a shell given `<< EOF` and the body would read the body and run nothing).
#[test]
fn run_with_only_a_heredoc_marker_runs_the_body() {
    let src = "FROM scratch\nRUN << EOF\necho one\nEOF\nRUN 3<<EOF\necho two\nEOF\n\
               RUN <<EOF python3\nprint(3)\nEOF\n";
    let runs = run_argvs(&plan_scratch(src));
    assert_eq!(runs[0], ["/bin/sh", "-c", "echo one\n"]);
    assert_eq!(runs[1], ["/bin/sh", "-c", "echo two\n"]);
    assert_eq!(runs[2], ["/bin/sh", "-c", "<<EOF python3\nprint(3)\nEOF"]);
}

fn plan_with(src: &str, opts: &PlanOptions) -> Result<BuildGraph, PlanError> {
    let df = kiln_dockerfile_parser::parse(src).expect("parses");
    plan(&df, opts, &|_: &ImageRef, _: &crate::image::Platform| None)
}

/// `# syntax=docker/dockerfile:1.x` is kiln's own frontend: one notice, no error.
#[test]
fn dockerfile_syntax_1x_is_this_frontend_with_one_notice() {
    let g = plan_with(
        "# syntax=docker/dockerfile:1.7\nFROM scratch\n",
        &PlanOptions::default(),
    )
    .expect("plans");
    let notices: Vec<&String> = g
        .warnings
        .iter()
        .filter(|w| w.contains("frontend"))
        .collect();
    assert_eq!(notices.len(), 1, "{:?}", g.warnings);
    assert!(notices[0].contains("# syntax= (line 1)"), "{notices:?}");
}

/// Any other frontend image is an error pointing at the directive, unless `ignore_syntax`.
#[test]
fn other_frontend_images_are_errors_unless_ignored() {
    let src = "# escape=\\\n# syntax=example.com/made/up:1 --opt\nFROM scratch\n";
    let err = plan_with(src, &PlanOptions::default()).expect_err("foreign frontend");
    let span = err.span().expect("points at the directive");
    assert_eq!(&src[span.range()], "# syntax=example.com/made/up:1 --opt");
    let message = err.to_string();
    assert!(message.contains("line 2"), "{message}");
    assert!(
        message.contains("kiln runs only its own Dockerfile frontend"),
        "{message}"
    );
    let opts = PlanOptions {
        ignore_syntax: true,
        ..PlanOptions::default()
    };
    let g = plan_with(src, &opts).expect("ignored");
    assert!(
        g.warnings.iter().any(|w| w.contains("--ignore-syntax")),
        "{:?}",
        g.warnings
    );
}

/// `BUILDKIT_SYNTAX` comes before the directive, as in BuildKit, and is no unused build arg.
#[test]
fn buildkit_syntax_arg_overrides_the_directive() {
    let src = "# syntax=example.com/made/up:1\nFROM scratch\n";
    let mut opts = PlanOptions::default();
    opts.build_args
        .insert(SYNTAX_ARG.into(), "docker/dockerfile:1".into());
    let g = plan_with(src, &opts).expect("the build arg wins");
    assert_eq!(g.warnings.len(), 1, "{:?}", g.warnings);
    opts.build_args
        .insert(SYNTAX_ARG.into(), "example.com/other:2".into());
    let err = plan_with("FROM scratch\n", &opts).expect_err("foreign frontend");
    assert!(err.span().is_none());
    assert!(
        err.to_string().contains("--build-arg BUILDKIT_SYNTAX"),
        "{err}"
    );
}
