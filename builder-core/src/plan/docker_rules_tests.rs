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
