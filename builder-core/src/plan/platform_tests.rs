//! The platform args and stage platforms, as BuildKit defines them.

use super::*;
use crate::graph::Op;

fn opts(target: &str, build: &str) -> PlanOptions {
    PlanOptions {
        platform: Platform::parse(target).unwrap(),
        build_platform: Platform::parse(build).unwrap(),
        ..PlanOptions::default()
    }
}

fn graph(src: &str, opts: &PlanOptions) -> Result<BuildGraph, PlanError> {
    let df = kiln_dockerfile_parser::parse(src).unwrap();
    plan(&df, opts, &|_, _| Some(ContainerConfig::default()))
}

fn run_env(g: &BuildGraph, stage: usize) -> BTreeMap<String, String> {
    let Some(Op::Run(run)) = g.stages[&stage].steps.iter().map(|s| &s.op).next_back() else {
        panic!("stage {stage} ends with a RUN");
    };
    run.env.iter().cloned().collect()
}

const ARGS: &str = "ARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM BUILDOS BUILDARCH BUILDVARIANT\nRUN true\n";

#[test]
fn target_and_build_args_are_the_normalized_platforms() {
    let g = graph(
        &format!("FROM scratch\n{ARGS}"),
        &opts("linux/armhf", "linux/x86_64"),
    )
    .unwrap();
    let env = run_env(&g, 0);
    let get = |k: &str| env.get(k).map(String::as_str);
    assert_eq!(get("TARGETPLATFORM"), Some("linux/arm/v7"));
    assert_eq!(get("TARGETOS"), Some("linux"));
    assert_eq!(get("TARGETARCH"), Some("arm"));
    assert_eq!(get("TARGETVARIANT"), Some("v7"));
    assert_eq!(get("BUILDPLATFORM"), Some("linux/amd64"));
    assert_eq!(get("BUILDOS"), Some("linux"));
    assert_eq!(get("BUILDARCH"), Some("amd64"));
    assert_eq!(get("BUILDVARIANT"), Some(""));
    // arm64 has no variant in BuildKit's spelling.
    let g = graph(
        &format!("FROM scratch\n{ARGS}"),
        &opts("linux/arm64/v8", "linux/arm64"),
    )
    .unwrap();
    let env = run_env(&g, 0);
    assert_eq!(env["TARGETPLATFORM"], "linux/arm64");
    assert_eq!(env["TARGETVARIANT"], "");
    assert_eq!(env["BUILDPLATFORM"], "linux/arm64");
}

#[test]
fn the_host_is_the_default_for_both() {
    let g = graph(&format!("FROM scratch\n{ARGS}"), &PlanOptions::default()).unwrap();
    let env = run_env(&g, 0);
    let host = Platform::host();
    assert_eq!(env["TARGETPLATFORM"], host.to_string());
    assert_eq!(env["BUILDARCH"], host.architecture);
    assert_eq!(g.target_stage().platform, host);
}

#[test]
fn stages_run_on_their_from_platform_else_their_base_stage_else_the_target() {
    let src = "FROM --platform=$BUILDPLATFORM scratch AS build
ARG TARGETARCH
RUN true
FROM build AS tools
RUN true
FROM --platform=linux/s390x scratch AS other
FROM scratch
COPY --from=tools /x /x
COPY --from=other /y /y
";
    let g = graph(src, &opts("linux/arm64", "linux/amd64")).unwrap();
    let names = |i: usize| g.stages[&i].platform.to_string();
    assert_eq!(names(0), "linux/amd64");
    assert_eq!(
        names(1),
        "linux/amd64",
        "a stage inherits its base stage's platform"
    );
    assert_eq!(names(2), "linux/s390x");
    assert_eq!(names(3), "linux/arm64");
    // The build stage cross-compiles: it sees the target's args.
    assert_eq!(run_env(&g, 0)["TARGETARCH"], "arm64");
}

#[test]
fn base_images_are_asked_for_per_platform() {
    let src = "FROM --platform=$BUILDPLATFORM alpine AS build\nFROM alpine\nFROM alpine\n";
    let df = kiln_dockerfile_parser::parse(src).unwrap();
    let bases = base_images(&df, &opts("linux/arm64", "linux/amd64")).unwrap();
    let got: Vec<String> = bases.iter().map(|(r, p, _)| format!("{r} {p}")).collect();
    assert_eq!(got, ["alpine linux/amd64", "alpine linux/arm64"]);
}

#[test]
fn a_bad_from_platform_is_an_error_at_its_flag() {
    let src = "ARG P=linux\nFROM --platform=$P scratch\n";
    let err = graph(src, &PlanOptions::default()).unwrap_err();
    assert!(err.to_string().contains("\"linux\""), "{err}");
    let span = err.span().unwrap();
    assert_eq!(&src[span.range()], "--platform=$P");
}
