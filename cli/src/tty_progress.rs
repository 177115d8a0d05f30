//! The live progress display for terminals (indicatif): one line per step as
//! `[stage 2/4] RUN make`, a spinner and the elapsed time while it runs with the last lines of
//! its output under it, then `DONE 1.2s` with the layer's size, or `CACHED`. Finished steps
//! stay on screen, so the display ends as a readable record of the build.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kiln_builder_core::progress::BuildEvent;
use kiln_builder_core::progress::StepId;

use crate::commands::images::human_size;

/// Lines of a running step's output shown under it.
const SHOWN_LINES: usize = 5;

/// Bytes of an unfinished output line kept for the display.
const MAX_PARTIAL: usize = 4096;

struct Step {
    bar: ProgressBar,
    lines: VecDeque<String>,
    partial: Vec<u8>,
}

/// Renders events on a terminal.
pub struct TtyRenderer {
    multi: MultiProgress,
    steps: BTreeMap<StepId, Step>,
    color: bool,
}

fn style(template: &str) -> ProgressStyle {
    // The templates are constants; a bad one is a programming error caught by the tests.
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
}

impl TtyRenderer {
    /// A display on stderr (hidden by indicatif when stderr is not a terminal).
    pub fn new(color: bool) -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        TtyRenderer {
            multi,
            steps: BTreeMap::new(),
            color,
        }
    }

    fn running_style(&self) -> ProgressStyle {
        if self.color {
            style("{spinner:.cyan} {prefix:.bold} {elapsed:.dim}{msg}")
        } else {
            style("{spinner} {prefix} {elapsed}{msg}")
        }
        .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏✔")
    }

    fn done_style(&self, mark: &str) -> ProgressStyle {
        if self.color {
            style(&format!("{mark} {{prefix}} {{msg:.dim}}"))
        } else {
            style(&format!("{mark} {{prefix}} {{msg}}"))
        }
    }

    /// Renders one event.
    pub fn event(&mut self, event: &BuildEvent) {
        match event {
            BuildEvent::StepStarted { id, name } => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(self.running_style());
                bar.set_prefix(name.clone());
                bar.enable_steady_tick(Duration::from_millis(100));
                self.steps.insert(
                    *id,
                    Step {
                        bar,
                        lines: VecDeque::new(),
                        partial: Vec::new(),
                    },
                );
            }
            BuildEvent::StepCached { id } => {
                let done = self.done_style(if self.color {
                    "\x1b[34m✔\x1b[0m"
                } else {
                    "✔"
                });
                if let Some(s) = self.steps.get(id) {
                    s.bar.set_style(done);
                    s.bar.finish_with_message("CACHED");
                }
            }
            BuildEvent::CacheMiss { id, reasons } => {
                // Shown until the step's own output takes the space.
                if let (Some(s), Some(first)) = (self.steps.get(id), reasons.first()) {
                    s.bar.set_message(format!(
                        "\n  │ cache miss: {}",
                        sanitize(&first.to_string())
                    ));
                }
            }
            BuildEvent::Log { id, data, .. } => {
                if let Some(s) = self.steps.get_mut(id) {
                    // Only the last lines are shown: the others are skipped, not converted.
                    match data.iter().rposition(|b| *b == b'\n') {
                        Some(end) => {
                            let done = &data[..end];
                            let count = done.iter().filter(|b| **b == b'\n').count() + 1;
                            let mut fresh: Vec<&[u8]> =
                                done.rsplit(|b| *b == b'\n').take(SHOWN_LINES).collect();
                            fresh.reverse();
                            for (i, line) in fresh.into_iter().enumerate() {
                                let text = if i == 0 && count <= SHOWN_LINES {
                                    s.partial.extend_from_slice(line);
                                    String::from_utf8_lossy(&s.partial).into_owned()
                                } else {
                                    String::from_utf8_lossy(line).into_owned()
                                };
                                s.lines.push_back(text.trim_end_matches('\r').to_string());
                                if s.lines.len() > SHOWN_LINES {
                                    s.lines.pop_front();
                                }
                            }
                            s.partial.clear();
                            s.partial.extend_from_slice(&data[end + 1..]);
                        }
                        None => s.partial.extend_from_slice(data),
                    }
                    // A line without end is shown by its start only.
                    s.partial.truncate(MAX_PARTIAL);
                    let msg: String = s
                        .lines
                        .iter()
                        .map(|l| format!("\n  │ {}", sanitize(l)))
                        .collect();
                    s.bar.set_message(msg);
                }
            }
            BuildEvent::StepFinished {
                id,
                duration,
                layer_size,
            } => {
                let done = self.done_style(if self.color {
                    "\x1b[32m✔\x1b[0m"
                } else {
                    "✔"
                });
                if let Some(s) = self.steps.get(id).filter(|s| !s.bar.is_finished()) {
                    s.bar.set_style(done);
                    let layer = match layer_size {
                        Some(n) => format!(", layer {}", human_size(*n)),
                        None => String::new(),
                    };
                    s.bar
                        .finish_with_message(format!("DONE {:.1}s{layer}", duration.as_secs_f64()));
                }
            }
            BuildEvent::Warning { message } => {
                let _ = self.multi.println(format!("WARNING: {message}"));
            }
            // Events of a newer library than this renderer knows.
            _ => {}
        }
    }

    /// Stops every spinner still running (a failed or interrupted build) and leaves the screen
    /// with the final state.
    pub fn finish(&mut self, failed: bool) {
        let mark = if self.color {
            "\x1b[31m✘\x1b[0m"
        } else {
            "✘"
        };
        let style = self.done_style(mark);
        for s in self.steps.values() {
            if !s.bar.is_finished() {
                s.bar.set_style(style.clone());
                s.bar
                    .abandon_with_message(if failed { "ERROR" } else { "CANCELED" });
            }
        }
        // indicatif leaves the cursor after the last line it drew.
        if !self.steps.is_empty() && !self.multi.is_hidden() {
            eprintln!();
        }
    }
}

/// Output lines are shown inside the display: control characters would break it.
fn sanitize(line: &str) -> String {
    let clean: String = line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    clean.chars().take(160).collect()
}

/// A byte counter for a terminal (`pushing 12.3 MiB/40.0 MiB 95 MiB/s [====   ]`, or without a
/// total `exporting 12.3 MiB 95 MiB/s`), or a hidden one when progress is not shown, so callers
/// can count unconditionally. [`finish_bytes`] leaves its final line.
pub fn byte_bar(visible: bool, label: &str, with_total: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    let template = if with_total {
        "{prefix} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} [{wide_bar}] {elapsed}"
    } else {
        "{prefix} {binary_bytes} {binary_bytes_per_sec} {elapsed}"
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(label.to_string());
    bar
}

/// Ends a [`byte_bar`] with `label` (`exported`, `pushed`) and its final count on screen.
pub fn finish_bytes(bar: &ProgressBar, label: &str) {
    bar.set_prefix(label.to_string());
    bar.abandon();
}
