use super::*;
use crate::graph::{Op, SourceRef};

fn plan_src(src: &str, opts: &PlanOptions) -> Result<BuildGraph, PlanError> {
    let df = kiln_dockerfile_parser::parse(src).expect("test Dockerfile parses");
    plan(&df, opts, &|r: &ImageRef, _: &crate::image::Platform| {
        (r.to_string() == "base:1").then(|| {
            let mut c = ContainerConfig::default();
            c.env_set("PATH", "/bin");
            c.env_set("FROM_BASE", "yes");
            c.cmd = Some(vec!["base-cmd".into()]);
            c.working_dir = Some("/base".into());
            c.on_build = Some(vec!["ENV TRIGGERED=1".into()]);
            c
        })
    })
}

fn opts_with_args(args: &[(&str, &str)]) -> PlanOptions {
    PlanOptions {
        build_args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..PlanOptions::default()
    }
}

#[test]
fn global_args_reach_from_and_redeclared_args() {
    let src = "ARG TAG=1\nARG UNUSED_DEFAULT=x\nFROM base:${TAG}\nARG TAG\nRUN echo $TAG\n";
    let g = plan_src(src, &PlanOptions::default()).unwrap();
    let stage = g.target_stage();
    assert_eq!(
        stage.base,
        Base::Image(crate::graph::ImageRef::Reference("base:1".into()))
    );
    // The base's ONBUILD trigger comes first, then ARG, then RUN.
    assert_eq!(stage.steps.len(), 3);
    let Op::Run(run) = &stage.steps[2].op else {
        panic!("expected RUN")
    };
    assert!(run.env.contains(&("TAG".into(), "1".into())));
    assert_eq!(
        stage.steps[2].created_by,
        "RUN |1 TAG=1 /bin/sh -c echo $TAG"
    );
    // A global ARG not re-declared is not visible in the stage.
    assert!(!run.env.iter().any(|(k, _)| k == "UNUSED_DEFAULT"));
}

#[test]
fn build_arg_overrides_default_and_env_wins_over_arg() {
    let src = "FROM scratch\nARG A=default\nENV B=$A\nARG C=1\nENV C=env\nWORKDIR /w/$C\n";
    let g = plan_src(src, &opts_with_args(&[("A", "given"), ("NOBODY", "x")])).unwrap();
    let stage = g.target_stage();
    assert_eq!(stage.config.env_get("B"), Some("given"));
    assert_eq!(stage.config.workdir_or_root(), "/w/env");
    assert_eq!(
        g.warnings,
        vec!["build arg NOBODY was given but no ARG declares it"]
    );
    // ARG values never reach the image config.
    assert!(stage.config.env_get("A").is_none());
}

#[test]
fn proxy_args_reach_run_but_not_history() {
    let src = "FROM scratch\nRUN true\n";
    let g = plan_src(src, &opts_with_args(&[("HTTP_PROXY", "http://p:3128")])).unwrap();
    let step = &g.target_stage().steps[0];
    let Op::Run(run) = &step.op else { panic!() };
    assert!(
        run.env
            .contains(&("HTTP_PROXY".into(), "http://p:3128".into()))
    );
    assert!(run.env_not_cached.contains("HTTP_PROXY"));
    assert_eq!(step.created_by, "RUN /bin/sh -c true");
    assert!(g.warnings.is_empty());
}

#[test]
fn target_selects_needed_stages_only() {
    let src = "FROM scratch AS a\nRUN a\nFROM scratch AS b\nRUN b\nFROM scratch AS c\nCOPY --from=a /x /x\nCOPY --from=0 /y /y\nFROM c AS d\n";
    let g = plan_src(
        src,
        &PlanOptions {
            target: Some("C".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(g.target, 2);
    assert_eq!(g.stages.keys().copied().collect::<Vec<_>>(), vec![0, 2]);
    let Op::Copy(c) = &g.stages[&2].steps[0].op else {
        panic!()
    };
    assert_eq!(c.from, SourceRef::Stage(0));
    let all = plan_src(src, &PlanOptions::default()).unwrap();
    assert_eq!(
        all.stages.keys().copied().collect::<Vec<_>>(),
        vec![0, 2, 3]
    );
    assert_eq!(all.stages[&3].base, Base::Stage(2));

    let err = plan_src(
        src,
        &PlanOptions {
            target: Some("zzz".into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, PlanError::UnknownTarget { .. }), "{err}");
}

#[test]
fn copy_from_index_out_of_range_is_an_error_with_span() {
    let src = "FROM scratch\nCOPY --from=5 /a /b\nFROM scratch\n";
    let err = plan_src(src, &PlanOptions::default()).unwrap_err();
    let span = err.span().expect("points at the line");
    assert_eq!(&src[span.range()], "--from=5");
}

#[test]
fn copy_from_unknown_name_is_an_image_source() {
    let src = "FROM scratch\nCOPY --from=busybox:1 /bin/busybox /bin/\n";
    let g = plan_src(src, &PlanOptions::default()).unwrap();
    assert!(
        g.target_stage()
            .image_sources
            .contains(&ImageRef::Reference("busybox:1".into()))
    );
}

#[test]
fn entrypoint_resets_inherited_cmd_but_keeps_own() {
    let g = plan_src(
        "FROM base:1\nENTRYPOINT [\"/e\"]\n",
        &PlanOptions::default(),
    )
    .unwrap();
    assert_eq!(g.target_stage().config.cmd, None);
    let g = plan_src(
        "FROM base:1\nCMD x\nENTRYPOINT [\"/e\"]\n",
        &PlanOptions::default(),
    )
    .unwrap();
    assert_eq!(
        g.target_stage().config.cmd,
        Some(vec!["/bin/sh".into(), "-c".into(), "x".into()])
    );
}

#[test]
fn base_config_is_inherited_and_onbuild_triggers_run() {
    let g = plan_src("FROM base:1\nWORKDIR sub\n", &PlanOptions::default()).unwrap();
    let s = g.target_stage();
    assert_eq!(s.config.env_get("FROM_BASE"), Some("yes"));
    assert_eq!(s.config.env_get("TRIGGERED"), Some("1"));
    assert_eq!(s.config.workdir_or_root(), "/base/sub");
    assert!(s.config.on_build.is_none(), "triggers are consumed");
    let err = plan_src("FROM other:2\n", &PlanOptions::default()).unwrap_err();
    assert!(matches!(err, PlanError::UnresolvedImage { .. }));
}

#[test]
fn expose_volume_stopsignal_healthcheck() {
    let src = "FROM scratch\nARG P=80\nEXPOSE $P 53/udp 8000-8002\nVOLUME /data \"/other\"\nSTOPSIGNAL SIGTERM\nHEALTHCHECK --interval=5s --retries=3 CMD curl -f http://localhost/\n";
    let g = plan_src(src, &PlanOptions::default()).unwrap();
    let c = &g.target_stage().config;
    let ports: Vec<_> = c.exposed_ports.iter().flatten().cloned().collect();
    assert_eq!(
        ports,
        vec!["53/udp", "80/tcp", "8000/tcp", "8001/tcp", "8002/tcp"]
    );
    assert!(c.volumes.as_ref().is_some_and(|v| v.contains("/data")));
    assert_eq!(c.stop_signal.as_deref(), Some("SIGTERM"));
    let hc = c.healthcheck.as_ref().unwrap();
    assert_eq!(
        hc.test.as_deref(),
        Some(
            &[
                "CMD-SHELL".to_string(),
                "curl -f http://localhost/".to_string()
            ][..]
        )
    );
    assert_eq!(hc.interval, Some(5_000_000_000));
    assert_eq!(hc.retries, Some(3));
    let err = plan_src("FROM scratch\nEXPOSE 80/foo\n", &PlanOptions::default()).unwrap_err();
    assert!(err.to_string().contains("80/foo"), "{err}");
    let err = plan_src(
        "FROM scratch\nSTOPSIGNAL SIGNOPE\n",
        &PlanOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("SIGNOPE"), "{err}");
}

#[test]
fn copy_dest_is_absolute_against_workdir() {
    let src = "FROM scratch\nWORKDIR /app\nCOPY a b/\nCOPY [\"x y\", \"z\"]\nCOPY c .\n";
    let g = plan_src(src, &PlanOptions::default()).unwrap();
    let dests: Vec<_> = g
        .target_stage()
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            Op::Copy(c) => Some((c.sources.clone(), c.dest.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        dests,
        vec![
            (vec!["a".to_string()], "/app/b/".to_string()),
            (vec!["x y".to_string()], "/app/z".to_string()),
            (vec!["c".to_string()], "/app/".to_string()),
        ]
    );
}

#[test]
fn run_heredoc_becomes_script() {
    let src = "FROM scratch\nRUN <<EOF\necho one\necho two\nEOF\nRUN cat <<A > /f\nbody\nA\n";
    let g = plan_src(src, &PlanOptions::default()).unwrap();
    let runs: Vec<_> = g
        .target_stage()
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            Op::Run(r) => Some(r.argv.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(runs[0], vec!["/bin/sh", "-c", "echo one\necho two\n"]);
    assert_eq!(runs[1], vec!["/bin/sh", "-c", "cat <<A > /f\nbody\nA"]);
}

#[test]
fn labels_from_options_apply_to_target_only() {
    let src = "FROM scratch AS a\nLABEL x=1\nFROM a\nLABEL y=\"two words\"\n";
    let mut opts = PlanOptions::default();
    opts.labels.insert("ci".into(), "yes".into());
    let g = plan_src(src, &opts).unwrap();
    let labels = g.target_stage().config.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("x").map(String::as_str), Some("1"));
    assert_eq!(labels.get("y").map(String::as_str), Some("two words"));
    assert_eq!(labels.get("ci").map(String::as_str), Some("yes"));
    assert!(
        !g.stages[&0]
            .config
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key("ci"))
    );
}

#[test]
fn env_and_label_pairs_expand_alike_and_refuse_blank_names() {
    let src = "FROM scratch\nARG K=k\nENV $K=1 b=$K\nLABEL $K=2 c=\"$K x\"\n";
    let g = plan_src(src, &PlanOptions::default()).unwrap();
    let stage = g.target_stage();
    let history: Vec<_> = stage.steps.iter().map(|s| s.created_by.as_str()).collect();
    assert_eq!(&history[1..], ["ENV k=1 b=k", "LABEL k=2 c=k x"]);
    let labels = stage.config.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("c").map(String::as_str), Some("k x"));
    for (line, keyword) in [("ENV $E=1", "ENV"), ("LABEL a=1 ${E}=2", "LABEL")] {
        let src = format!("FROM scratch\nARG E\n{line}\n");
        let err = plan_src(&src, &PlanOptions::default()).unwrap_err();
        let PlanError::Invalid { message, span } = err else {
            panic!("expected a blank-name error, got {err:?}")
        };
        assert_eq!(message, format!("{keyword} names can not be blank"));
        let at = src.find(line).unwrap() + line.find("$").unwrap();
        assert_eq!(span.start(), at);
    }
}

#[test]
fn invalid_onbuild_trigger_fails_the_child_build_at_its_from_line() {
    let src = "FROM scratch\nFROM bad:1\nRUN x\n";
    let df = kiln_dockerfile_parser::parse(src).unwrap();
    let err = plan(&df, &PlanOptions::default(), &|_, _| {
        Some(ContainerConfig {
            on_build: Some(vec!["COPY onlyone".into()]),
            ..ContainerConfig::default()
        })
    })
    .unwrap_err();
    assert!(matches!(err, PlanError::Onbuild { .. }), "{err}");
    assert!(err.to_string().contains("COPY onlyone"), "{err}");
    let span = err.span().unwrap();
    assert_eq!(&src[span.range()], "FROM bad:1");
}

#[test]
fn later_stages_are_stages_in_from_copy_and_mounts() {
    // `b` is defined after the stage that reads it: it is that stage, never the image `b`.
    let src = "FROM scratch AS a\nCOPY --from=b /x /x\nRUN --mount=from=c,target=/c true\n\
               FROM scratch AS b\nFROM d AS c\nFROM scratch AS d\nFROM a\n";
    let g = plan_src(src, &PlanOptions::default()).unwrap();
    let a = &g.stages[&0];
    assert_eq!(a.depends_on, std::collections::BTreeSet::from([1, 2]));
    assert!(a.image_sources.is_empty(), "{:?}", a.image_sources);
    assert_eq!(g.stages[&2].base, Base::Stage(3));
    assert_eq!(
        g.stages.keys().copied().collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    // Phase one asks for no image named after a stage.
    let df = kiln_dockerfile_parser::parse(src).unwrap();
    assert!(
        base_images(&df, &PlanOptions::default())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn stage_cycles_are_errors_naming_stages_and_lines() {
    let copy_cycle =
        "FROM scratch AS a\nCOPY --from=b /x /x\nFROM scratch AS b\nCOPY --from=a /y /y\n";
    let err = plan_src(copy_cycle, &PlanOptions::default()).unwrap_err();
    assert!(matches!(err, PlanError::StageCycle { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("a (line 1)") && msg.contains("b (line 3)"),
        "{msg}"
    );
    assert!(err.span().is_some());

    let from_cycle = "FROM b AS a\nFROM a AS b\nFROM b\n";
    let err = plan_src(from_cycle, &PlanOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("a (line 1)") && msg.contains("b (line 2)"),
        "{msg}"
    );
    let span = err.span().unwrap();
    assert!(["a", "b"].contains(&&from_cycle[span.range()]));

    let mount_self = "FROM scratch AS a\nRUN --mount=from=a,target=/a true\n";
    let err = plan_src(mount_self, &PlanOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("a (line 1) -> a (line 1)"),
        "{err}"
    );

    // A stage's own name in its FROM is the image, as in BuildKit: no cycle.
    let err = plan_src("FROM busybox AS busybox\n", &PlanOptions::default()).unwrap_err();
    assert!(matches!(err, PlanError::UnresolvedImage { .. }), "{err}");
}

#[test]
fn host_paths_in_the_dockerfile_are_refused_naming_the_flag() {
    for (src, needle) in [
        ("FROM oci-archive:/etc/shadow\n", "oci-archive:/etc/shadow"),
        ("FROM OCI-LAYOUT:///store:tag\n", "OCI-LAYOUT:///store:tag"),
        (
            "FROM scratch\nCOPY --from=oci-layout:///other/store /a /b\n",
            "--from=oci-layout:///other/store",
        ),
        (
            "FROM scratch\nRUN --mount=from=docker-archive:/x.tar,target=/x true\n",
            "--mount=from=docker-archive:/x.tar,target=/x",
        ),
        ("ARG P=/etc\nFROM oci-layout://${P}\n", "oci-layout://${P}"),
    ] {
        let df = kiln_dockerfile_parser::parse(src).unwrap();
        let err = base_images(&df, &PlanOptions::default())
            .err()
            .or_else(|| plan_src(src, &PlanOptions::default()).err())
            .unwrap_or_else(|| panic!("{src} is refused"));
        assert!(matches!(err, PlanError::HostPath { .. }), "{err}");
        assert!(err.to_string().contains("--build-context"), "{err}");
        let span = err.span().unwrap();
        assert_eq!(&src[span.range()], needle);
    }
}

#[test]
fn named_contexts_override_stages_and_images() {
    use crate::context::{BuildContexts, NamedContext};
    let mut contexts = BuildContexts::new();
    let (n, c) = BuildContexts::parse_spec("base=docker-image://base:1").unwrap();
    contexts.insert(&n, c).unwrap();
    contexts
        .insert("src", NamedContext::Dir("/tmp/src".into()))
        .unwrap();
    let (n, c) = BuildContexts::parse_spec("lay=oci-layout:///l:1").unwrap();
    contexts.insert(&n, c).unwrap();
    let opts = PlanOptions {
        contexts,
        ..PlanOptions::default()
    };
    let src = "FROM scratch AS base\nFROM base\nCOPY --from=src /a /a\nCOPY --from=lay /b /b\n";
    let df = kiln_dockerfile_parser::parse(src).unwrap();
    let g = plan(&df, &opts, &|_, _| Some(ContainerConfig::default())).unwrap();
    let t = g.target_stage();
    assert_eq!(
        t.base,
        Base::Image(ImageRef::Reference("docker.io/library/base:1".into()))
    );
    let froms: Vec<SourceRef> = t
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            Op::Copy(c) => Some(c.from.clone()),
            _ => None,
        })
        .collect();
    let lay = BuildContexts::key("lay").unwrap();
    assert_eq!(
        froms,
        vec![
            SourceRef::Dir(BuildContexts::key("src").unwrap()),
            SourceRef::Image(ImageRef::Layout(lay.clone()))
        ]
    );
    assert!(t.image_sources.contains(&ImageRef::Layout(lay)));
    // A directory is no base image.
    let err = plan_src("FROM src\n", &opts).unwrap_err();
    assert!(err.to_string().contains("directory"), "{err}");
}

#[test]
fn a_dockerfile_planned() {
    let df = kiln_dockerfile_parser::parse("FROM scratch\nENV A=1\nCMD [\"/app\"]\n").unwrap();
    let graph = plan(&df, &PlanOptions::default(), &|_, _| None).unwrap();
    let target = graph.target_stage();
    assert_eq!(target.config.env_get("A"), Some("1"));
    // Like Docker, an image without PATH gets the default one.
    assert!(target.config.env_get("PATH").is_some());
}
