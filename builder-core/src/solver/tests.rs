//! Solver tests with a fake worker that counts executions.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::cache::{FileCacheStore, LayerRef};
use crate::graph::Op;
use crate::plan::{PlanOptions, plan};

/// A worker whose "filesystem" is the op text: a step's layer digest is the hash of its key
/// inputs, and `inputs` plays the build context (COPY source name → content digest).
#[derive(Default)]
struct FakeWorker {
    executed: AtomicUsize,
    executed_steps: Mutex<Vec<String>>,
    inputs: Mutex<BTreeMap<String, String>>,
    missing_layers: Mutex<Vec<crate::content::Digest>>,
    fail_on: Option<String>,
    /// Concurrently running executions, and the maximum seen.
    running: AtomicUsize,
    max_running: AtomicUsize,
}

impl Worker for FakeWorker {
    fn resolve_image<'a>(
        &'a self,
        reference: &'a crate::graph::ImageRef,
        _platform: &'a crate::image::Platform,
    ) -> BoxFuture<'a, Result<ResolvedImage, crate::Error>> {
        Box::pin(async move {
            Ok(ResolvedImage {
                digest: crate::content::Digest::of(reference.to_string().as_bytes()),
                config: ContainerConfig::default(),
                layers: vec![],
                history: vec![],
                created: Some(1),
                author: None,
            })
        })
    }

    fn input_digest<'a>(
        &'a self,
        step: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Option<String>, crate::Error>> {
        Box::pin(async move {
            Ok(match step.op {
                Op::Copy(c) if c.from == SourceRef::Context => {
                    let inputs = self.inputs.lock().unwrap();
                    Some(
                        c.sources
                            .iter()
                            .map(|s| inputs.get(s).cloned().unwrap_or_default())
                            .collect::<Vec<_>>()
                            .join(","),
                    )
                }
                _ => None,
            })
        })
    }

    fn has_layer(&self, layer: &LayerRef) -> bool {
        !self.missing_layers.lock().unwrap().contains(&layer.diff_id)
    }

    fn execute<'a>(
        &'a self,
        step: &'a StepContext<'a>,
        _events: EventSink,
    ) -> BoxFuture<'a, Result<Option<LayerRef>, crate::Error>> {
        Box::pin(async move {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_running.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            self.executed.fetch_add(1, Ordering::SeqCst);
            self.executed_steps
                .lock()
                .unwrap()
                .push(step.origin.text.clone());
            if self.fail_on.as_deref() == Some(step.origin.text.as_str()) {
                return Err(crate::Error::RunFailed {
                    argv: vec!["x".into()],
                    status: "exit code: 1".into(),
                    no_network: false,
                    output: Vec::new(),
                });
            }
            if let Op::Run(r) = step.op
                && r.argv.last().is_some_and(|a| a == "true")
            {
                return Ok(None);
            }
            let digest = crate::content::Digest::of(
                &KeyBuilder::new(&step.origin.text, Some(&step.parent.key))
                    .finish()
                    .0,
            );
            Ok(Some(LayerRef {
                diff_id: digest,
                size: 1,
                packed: None,
            }))
        })
    }
}

struct Harness {
    worker: Arc<FakeWorker>,
    cache: Arc<FileCacheStore>,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn new(worker: FakeWorker) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Harness {
            worker: Arc::new(worker),
            cache: Arc::new(FileCacheStore::new(dir.path())),
            _dir: dir,
        }
    }

    async fn build(
        &self,
        src: &str,
        opts: &PlanOptions,
        solve: SolveOptions,
    ) -> Result<StageResult, crate::Error> {
        let df = kiln_dockerfile_parser::parse(src).unwrap();
        let graph = plan(&df, opts, &|_, _| Some(ContainerConfig::default())).unwrap();
        let mut bases = BTreeMap::new();
        for r in crate::plan::base_images(&df, opts).unwrap() {
            let image = self.worker.resolve_image(&r.0, &r.1).await.unwrap();
            bases.insert((r.0, r.1), image);
        }
        solve_graph(self, graph, bases, solve).await
    }

    fn executed(&self) -> usize {
        self.worker.executed.swap(0, Ordering::SeqCst)
    }
}

async fn solve_graph(
    h: &Harness,
    graph: BuildGraph,
    bases: BTreeMap<crate::solver::BaseKey, ResolvedImage>,
    opts: SolveOptions,
) -> Result<StageResult, crate::Error> {
    solve(
        h.worker.clone(),
        h.cache.clone(),
        Arc::new(graph),
        bases,
        opts,
        EventSink::discard(),
    )
    .await
}

const SRC: &str = "FROM scratch\nCOPY a /a\nRUN make\nCOPY b /b\nRUN test\nENV X=1\n";

#[tokio::test]
async fn rebuild_runs_nothing_and_gives_identical_result() {
    let h = Harness::new(FakeWorker::default());
    h.worker
        .inputs
        .lock()
        .unwrap()
        .extend([("a".into(), "A1".into()), ("b".into(), "B1".into())]);
    let first = h
        .build(SRC, &PlanOptions::default(), SolveOptions::default())
        .await
        .unwrap();
    assert_eq!(h.executed(), 4);
    let second = h
        .build(SRC, &PlanOptions::default(), SolveOptions::default())
        .await
        .unwrap();
    assert_eq!(h.executed(), 0);
    assert_eq!(first.state, second.state);
    assert_eq!(first.history, second.history);
    assert_eq!(first.created, second.created);
    assert!(second.steps.iter().all(|s| s.cached));
}

#[tokio::test]
async fn changed_input_reruns_from_the_first_step_that_reads_it() {
    let h = Harness::new(FakeWorker::default());
    h.worker
        .inputs
        .lock()
        .unwrap()
        .extend([("a".into(), "A1".into()), ("b".into(), "B1".into())]);
    h.build(SRC, &PlanOptions::default(), SolveOptions::default())
        .await
        .unwrap();
    h.executed();
    h.worker
        .inputs
        .lock()
        .unwrap()
        .insert("b".into(), "B2".into());
    h.worker.executed_steps.lock().unwrap().clear();
    h.build(SRC, &PlanOptions::default(), SolveOptions::default())
        .await
        .unwrap();
    assert_eq!(h.executed(), 2);
    assert_eq!(
        *h.worker.executed_steps.lock().unwrap(),
        vec!["COPY b /b", "RUN test"]
    );
}

#[tokio::test]
async fn config_changes_do_not_invalidate_runs_but_env_does() {
    let h = Harness::new(FakeWorker::default());
    h.build(
        "FROM scratch\nLABEL a=1\nRUN x\n",
        &PlanOptions::default(),
        SolveOptions::default(),
    )
    .await
    .unwrap();
    h.executed();
    h.build(
        "FROM scratch\nLABEL a=2\nRUN x\n",
        &PlanOptions::default(),
        SolveOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(h.executed(), 0, "a LABEL does not change what RUN does");
    h.build(
        "FROM scratch\nENV a=2\nRUN x\n",
        &PlanOptions::default(),
        SolveOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(h.executed(), 1, "ENV reaches RUN's environment");
}

#[tokio::test]
async fn arg_in_later_stage_does_not_invalidate_earlier_stage() {
    let src = "FROM scratch AS a\nRUN one\nFROM scratch\nARG V\nRUN two $V\nCOPY --from=a /x /x\n";
    let h = Harness::new(FakeWorker::default());
    let opts = |v: &str| PlanOptions {
        build_args: [("V".to_string(), v.to_string())].into(),
        ..Default::default()
    };
    h.build(src, &opts("1"), SolveOptions::default())
        .await
        .unwrap();
    assert_eq!(h.executed(), 3);
    h.worker.executed_steps.lock().unwrap().clear();
    h.build(src, &opts("2"), SolveOptions::default())
        .await
        .unwrap();
    assert_eq!(h.executed(), 2);
    assert_eq!(
        *h.worker.executed_steps.lock().unwrap(),
        vec!["RUN two $V", "COPY --from=a /x /x"]
    );
}

#[tokio::test]
async fn proxy_args_do_not_invalidate() {
    let h = Harness::new(FakeWorker::default());
    h.build(
        "FROM scratch\nRUN x\n",
        &PlanOptions::default(),
        SolveOptions::default(),
    )
    .await
    .unwrap();
    h.executed();
    let opts = PlanOptions {
        build_args: [("HTTP_PROXY".to_string(), "http://p".to_string())].into(),
        ..Default::default()
    };
    h.build("FROM scratch\nRUN x\n", &opts, SolveOptions::default())
        .await
        .unwrap();
    assert_eq!(h.executed(), 0);
}

#[tokio::test]
async fn no_cache_and_missing_layers_rerun() {
    let h = Harness::new(FakeWorker::default());
    let r = h
        .build(
            "FROM scratch\nRUN x\n",
            &PlanOptions::default(),
            SolveOptions::default(),
        )
        .await
        .unwrap();
    h.executed();
    h.build(
        "FROM scratch\nRUN x\n",
        &PlanOptions::default(),
        SolveOptions {
            no_cache: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(h.executed(), 1);
    h.worker
        .missing_layers
        .lock()
        .unwrap()
        .push(r.state.layers[0].diff_id);
    h.build(
        "FROM scratch\nRUN x\n",
        &PlanOptions::default(),
        SolveOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(h.executed(), 1, "a record whose layer is gone is a miss");
}

#[tokio::test]
async fn no_cache_stages_rerun_only_their_steps() {
    let src = "FROM scratch AS a\nRUN a\nFROM scratch\nRUN b\nCOPY --from=a /a /a\n";
    let h = Harness::new(FakeWorker::default());
    h.build(src, &PlanOptions::default(), SolveOptions::default())
        .await
        .unwrap();
    assert_eq!(h.executed(), 3);
    h.build(
        src,
        &PlanOptions::default(),
        SolveOptions {
            no_cache_stages: vec![0],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(h.executed(), 1, "only stage a's RUN runs again");
}

#[tokio::test]
async fn independent_stages_run_concurrently() {
    let src = "FROM scratch AS a\nRUN a\nFROM scratch AS b\nRUN b\nFROM scratch AS c\nRUN c\nFROM scratch\nCOPY --from=a /a /a\nCOPY --from=b /b /b\nCOPY --from=c /c /c\n";
    let h = Harness::new(FakeWorker::default());
    h.build(src, &PlanOptions::default(), SolveOptions::default())
        .await
        .unwrap();
    assert_eq!(h.executed(), 6);
    assert_eq!(h.worker.max_running.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn empty_steps_make_no_layer_and_epoch_fixes_times() {
    let h = Harness::new(FakeWorker::default());
    let r = h
        .build(
            "FROM scratch\nRUN true\nRUN x\nCMD [\"a\"]\n",
            &PlanOptions::default(),
            SolveOptions {
                source_date_epoch: Some(42),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(r.state.layers.len(), 1);
    let empties: Vec<bool> = r.history.iter().map(|h| h.empty_layer).collect();
    assert_eq!(empties, vec![true, false, true]);
    assert!(r.history.iter().all(|h| h.created == 42));
    assert_eq!(r.created, 42);
}

#[tokio::test]
async fn failing_step_names_its_line() {
    let h = Harness::new(FakeWorker {
        fail_on: Some("RUN broken".into()),
        ..Default::default()
    });
    let err = h
        .build(
            "FROM scratch\nRUN ok\nRUN broken\n",
            &PlanOptions::default(),
            SolveOptions::default(),
        )
        .await
        .unwrap_err();
    match err {
        crate::Error::Step { origin, source } => {
            assert_eq!(origin.start_line, 3);
            assert!(matches!(*source, crate::Error::RunFailed { .. }));
        }
        other => panic!("unexpected {other}"),
    }
    // The manifest written before the failing step ran is gone again: only `RUN ok` has a
    // record and a manifest.
    let mut names = Vec::new();
    for sub in std::fs::read_dir(h.cache.dir()).unwrap() {
        for f in std::fs::read_dir(sub.unwrap().path()).unwrap() {
            names.push(f.unwrap().file_name().to_string_lossy().into_owned());
        }
    }
    assert_eq!(
        names
            .iter()
            .filter(|n| n.ends_with(".manifest.json"))
            .count(),
        1
    );
    assert_eq!(names.len(), 2, "{names:?}");
}

fn previous(r: &StageResult) -> SolveOptions {
    SolveOptions {
        previous_keys: Arc::new(
            r.explanations
                .iter()
                .map(|e| {
                    (
                        e.position.clone(),
                        crate::cache::CacheKey::from_hex(&e.key).unwrap(),
                    )
                })
                .collect(),
        ),
        ..Default::default()
    }
}

#[tokio::test]
async fn misses_are_explained_against_the_previous_build() {
    use crate::cache::MissReason;
    let src = "FROM alpine AS base\nCOPY src /src\nFROM base\nARG V\nRUN make\nRUN install\n";
    let h = Harness::new(FakeWorker::default());
    h.worker
        .inputs
        .lock()
        .unwrap()
        .insert("src".into(), "1".into());
    let opts = |v: &str| PlanOptions {
        build_args: [("V".to_string(), v.to_string())].into(),
        ..Default::default()
    };
    let r = h
        .build(src, &opts("1"), SolveOptions::default())
        .await
        .unwrap();
    assert_eq!(r.explanations.len(), 3);
    assert!(
        r.explanations
            .iter()
            .all(|e| e.reasons == vec![MissReason::FirstBuild])
    );
    h.executed();
    // Only the build arg changes: the RUNs that see it miss and name it (the second also because
    // its parent changed), the COPY is cached.
    let r2 = h.build(src, &opts("2"), previous(&r)).await.unwrap();
    assert_eq!(h.executed(), 2);
    assert!(r2.explanations[0].cached && r2.explanations[0].reasons.is_empty());
    assert!(
        matches!(&r2.explanations[1].reasons[..], [MissReason::EnvChanged { name, old: Some(_), new: Some(_) }] if name == "V"),
        "{:?}",
        r2.explanations[1].reasons
    );
    assert!(matches!(
        &r2.explanations[2].reasons[..],
        [
            MissReason::EnvChanged { .. },
            MissReason::ParentChanged { .. }
        ]
    ));
    // A COPY input change reaches the next stage as "stage changed"; a dropped layer is reported.
    h.worker
        .inputs
        .lock()
        .unwrap()
        .insert("src".into(), "2".into());
    let r3 = h.build(src, &opts("2"), previous(&r2)).await.unwrap();
    assert_eq!(r3.explanations[0].reasons, vec![MissReason::InputsChanged]);
    assert!(matches!(
        &r3.explanations[1].reasons[..],
        [MissReason::ParentChanged { from }] if from.contains("stage base")
    ));
    let mut events_seen = Vec::new();
    let (sink, mut rx) = crate::progress::channel();
    let layer = r3.state.layers.last().unwrap().diff_id;
    h.worker.missing_layers.lock().unwrap().push(layer);
    let df = kiln_dockerfile_parser::parse(src).unwrap();
    let graph = plan(&df, &opts("2"), &|_, _| Some(ContainerConfig::default())).unwrap();
    let mut bases = BTreeMap::new();
    let alpine = crate::graph::ImageRef::Reference("alpine".to_string());
    let host = crate::image::Platform::host();
    bases.insert(
        (alpine.clone(), host.clone()),
        h.worker.resolve_image(&alpine, &host).await.unwrap(),
    );
    solve(
        h.worker.clone(),
        h.cache.clone(),
        Arc::new(graph),
        bases,
        previous(&r3),
        sink,
    )
    .await
    .unwrap();
    while let Ok(ev) = rx.try_recv() {
        if let BuildEvent::CacheMiss { reasons, .. } = ev {
            events_seen.push(reasons);
        }
    }
    assert_eq!(events_seen, vec![vec![MissReason::RecordUnusable]]);
}

fn for_platform(p: &str) -> PlanOptions {
    PlanOptions {
        platform: crate::image::Platform::parse(p).unwrap(),
        ..PlanOptions::default()
    }
}

#[tokio::test]
async fn the_platform_is_in_every_key() {
    let h = Harness::new(FakeWorker::default());
    for src in ["FROM scratch\nRUN make\n", "FROM alpine\nRUN make\n"] {
        h.build(src, &for_platform("linux/amd64"), SolveOptions::default())
            .await
            .unwrap();
        assert_eq!(h.executed(), 1, "{src}");
        h.build(src, &for_platform("linux/amd64"), SolveOptions::default())
            .await
            .unwrap();
        assert_eq!(h.executed(), 0, "{src}");
        // The fake worker resolves `alpine` to one digest whatever the platform, like an image
        // without an index: the results still differ by platform.
        h.build(src, &for_platform("linux/arm64"), SolveOptions::default())
            .await
            .unwrap();
        assert_eq!(h.executed(), 1, "{src} for arm64 runs again");
    }
}

#[tokio::test]
async fn concurrent_solves_sharing_inflight_run_a_common_step_once() {
    let src = "FROM scratch\nRUN make\nRUN test\n";
    let opts = for_platform("linux/amd64");
    let solve = |inflight: Option<Arc<crate::solver::InFlight>>| SolveOptions {
        no_cache: true,
        inflight,
        ..SolveOptions::default()
    };
    // Without it, two concurrent solves of the same steps both run them.
    let h = Harness::new(FakeWorker::default());
    let (a, b) = tokio::join!(
        h.build(src, &opts, solve(None)),
        h.build(src, &opts, solve(None))
    );
    a.unwrap();
    b.unwrap();
    assert_eq!(h.executed(), 4);
    // With it, each step runs once, even with --no-cache (the record is this build's own).
    let shared = crate::solver::InFlight::new();
    let (a, b) = tokio::join!(
        h.build(src, &opts, solve(Some(shared.clone()))),
        h.build(src, &opts, solve(Some(shared.clone())))
    );
    assert_eq!(a.unwrap().state, b.unwrap().state);
    assert_eq!(h.executed(), 2);
}
