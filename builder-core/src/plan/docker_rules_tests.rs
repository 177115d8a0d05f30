//! Planning rules where kiln follows `docker build` to the letter.

use super::*;

fn plan_scratch(src: &str) -> BuildGraph {
    let df = kiln_dockerfile_parser::parse(src).expect("test Dockerfile parses");
    plan(&df, &PlanOptions::default(), &|_: &ImageRef| None).expect("plans")
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
        let err = plan(&df, &PlanOptions::default(), &|_: &ImageRef| None)
            .expect_err("the target stage's mount is checked");
        match err {
            PlanError::Invalid { message: m, span } => {
                assert_eq!(m, format!("invalid --mount: {message}"), "{mount}");
                assert_eq!(built[span.start..span.end], format!("--mount={mount}"));
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
