//! What `kiln build` shows: the progress of the build (tty, plain, JSON), byte bars for the
//! outputs and the push, the cache explanation and the summary.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use kiln_builder_core::BuildOutput;
use kiln_builder_core::content::ContentStore;
use kiln_builder_core::deliver::{DeliveryEvent, DeliveryProgress, image_size};
use kiln_builder_core::progress::EventSink;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use crate::progress::{PlainRenderer, ProgressMode, event_json};
use crate::tty_progress::{TtyRenderer, byte_bar, finish_bytes};

/// Starts drawing the build's events in `mode`; the sink goes to the build.
pub(super) fn render_events(
    runtime: &Runtime,
    mode: ProgressMode,
) -> (EventSink, JoinHandle<Option<TtyRenderer>>) {
    let (sink, mut rx) = kiln_builder_core::progress::channel();
    let render = runtime.spawn(async move {
        // One write per event: output lines are batched, not written one by one.
        let stderr = std::io::BufWriter::with_capacity(128 * 1024, std::io::stderr());
        let mut plain = PlainRenderer::new(stderr);
        let mut tty =
            (mode == ProgressMode::Tty).then(|| TtyRenderer::new(crate::render::colors()));
        while let Some(ev) = rx.recv().await {
            match mode {
                ProgressMode::Tty => {
                    if let Some(t) = tty.as_mut() {
                        t.event(&ev);
                    }
                }
                ProgressMode::Plain | ProgressMode::Auto => plain.event(&ev),
                ProgressMode::Json => eprintln!("{}", event_json(&ev)),
                ProgressMode::Quiet => {}
            }
        }
        tty
    });
    (sink, render)
}

/// Waits for the renderer once the build future (and with it every sender) is gone. The
/// channel is bounded, so little is left to draw.
pub(super) fn finish_events(
    runtime: &Runtime,
    render: JoinHandle<Option<TtyRenderer>>,
    failed: bool,
) {
    let rendered =
        runtime.block_on(async { tokio::time::timeout(Duration::from_secs(5), render).await });
    if let Ok(Ok(Some(mut t))) = rendered {
        t.finish(failed);
    }
}

/// Byte bars on a terminal for the outputs and the push.
pub(super) struct DeliveryBars {
    visible: bool,
    export: Arc<Mutex<Option<ProgressBar>>>,
    push: ProgressBar,
}

impl DeliveryBars {
    /// Bars shown when `visible`; a push bar from the start when `push`.
    pub(super) fn new(visible: bool, push: bool) -> Self {
        DeliveryBars {
            visible,
            export: Arc::new(Mutex::new(None)),
            push: byte_bar(visible && push, "pushing", true),
        }
    }

    /// The callback the delivery reports to.
    pub(super) fn progress(&self) -> DeliveryProgress {
        let (visible, export, push) = (self.visible, self.export.clone(), self.push.clone());
        DeliveryProgress(Arc::new(move |e| {
            let Ok(mut current) = export.lock() else {
                return;
            };
            match e {
                DeliveryEvent::ExportStarted { .. } => {
                    *current = Some(byte_bar(visible, "exporting", false));
                }
                DeliveryEvent::Exported(n) => {
                    if let Some(b) = current.as_ref() {
                        b.inc(n);
                    }
                }
                DeliveryEvent::ExportFinished { ok, streamed } => {
                    if let Some(b) = current.take() {
                        if ok && streamed {
                            finish_bytes(&b, "exported");
                        } else {
                            b.finish_and_clear();
                        }
                    }
                }
                DeliveryEvent::PushBlob { size } => push.inc_length(size),
                DeliveryEvent::PushSent(n) => push.inc(n),
                DeliveryEvent::PushFinished { ok: true } => finish_bytes(&push, "pushed"),
                DeliveryEvent::PushFinished { ok: false } => push.finish_and_clear(),
                _ => {}
            }
        }))
    }

    /// Clears what is left (a delivery that failed half-way).
    pub(super) fn finish(&self) {
        if let Ok(mut b) = self.export.lock()
            && let Some(b) = b.take()
        {
            b.finish_and_clear();
        }
        if !self.push.is_finished() {
            self.push.finish_and_clear();
        }
    }
}

/// `--explain-cache`: why each step ran, on stderr.
pub(super) fn print_explanation(output: &BuildOutput) -> std::io::Result<()> {
    let explanation = kiln_builder_core::builder::BuildExplanation {
        id: output.build_id.clone(),
        time: 0,
        dockerfile: None,
        steps: output.explanations.clone(),
    };
    crate::commands::cache::print_explanation(&mut std::io::stderr().lock(), &explanation)
}

/// The summary on stderr: id, digest, size, cache hits, each platform, cache exports, tags.
pub(super) fn print_summary(store: &ContentStore, output: &BuildOutput, started: Instant) {
    let cached = output.steps.iter().filter(|s| s.cached).count();
    let size = output
        .images
        .iter()
        .map(|m| image_size(store, &m.digest))
        .sum::<Option<u64>>();
    eprintln!(
        "image {}\n  digest {}\n  size {}\n  {} of {} steps cached, {:.1}s",
        output.config_digest,
        output.manifest.digest,
        size.map_or("unknown".into(), crate::commands::images::human_size),
        cached,
        output.steps.len(),
        started.elapsed().as_secs_f64(),
    );
    if output.images.len() > 1 {
        for m in &output.images {
            let platform = m.platform.as_ref().map(ToString::to_string);
            eprintln!("  {} {}", platform.unwrap_or_default(), m.digest);
        }
    }
    for (to, d) in &output.cache_exports {
        eprintln!("  cache exported ({to}): {d}");
    }
    for t in &output.tags {
        eprintln!(
            "  tagged {}",
            kiln_builder_core::registry::normalize_reference(t)
        );
    }
}
