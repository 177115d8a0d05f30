//! Rendering build events: BuildKit-style numbered plain lines for logs and CI, or one JSON object
//! per line for machines. Everything goes to stderr; stdout is for results.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

use kiln_builder_core::progress::StepId;
use kiln_builder_core::progress::{BuildEvent, Stream};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// tty when stderr is a terminal, plain otherwise.
    Auto,
    /// Live display for terminals.
    Tty,
    /// Numbered lines with durations, for logs.
    Plain,
    /// One JSON event per line.
    Json,
    /// Nothing but errors.
    Quiet,
}

/// Renders events as plain numbered lines: `#3 [build 2/4] RUN make`, output lines prefixed with
/// the step number and elapsed time, `#3 DONE 1.2s` or `#3 CACHED`.
pub struct PlainRenderer<W: Write> {
    out: W,
    numbers: BTreeMap<StepId, usize>,
    started: Instant,
    partial: BTreeMap<StepId, Vec<u8>>,
    cached: std::collections::BTreeSet<StepId>,
}

impl<W: Write> PlainRenderer<W> {
    /// A renderer writing to `out`.
    pub fn new(out: W) -> Self {
        PlainRenderer {
            out,
            numbers: BTreeMap::new(),
            started: Instant::now(),
            partial: BTreeMap::new(),
            cached: std::collections::BTreeSet::new(),
        }
    }

    fn number(&mut self, id: StepId) -> usize {
        let next = self.numbers.len() + 1;
        *self.numbers.entry(id).or_insert(next)
    }

    /// Renders one event. Write errors are ignored: progress must never fail a build.
    pub fn event(&mut self, event: &BuildEvent) {
        match event {
            BuildEvent::StepStarted { id, name } => {
                let n = self.number(*id);
                let _ = writeln!(self.out, "#{n} {name}");
            }
            BuildEvent::StepCached { id } => {
                let n = self.number(*id);
                self.cached.insert(*id);
                let _ = writeln!(self.out, "#{n} CACHED");
            }
            BuildEvent::CacheMiss { id, reasons } => {
                let n = self.number(*id);
                for r in reasons {
                    let _ = writeln!(self.out, "#{n} CACHE MISS: {r}");
                }
            }
            BuildEvent::Log {
                id,
                stream: _,
                data,
            } => {
                let n = self.number(*id);
                let prefix = format!("#{n} {:.3} ", self.started.elapsed().as_secs_f64());
                let partial = self.partial.entry(*id).or_default();
                write_lines(&mut self.out, &prefix, partial, data);
            }
            // A cache hit is reported as CACHED only, as BuildKit does.
            BuildEvent::StepFinished { id, .. } if self.cached.contains(id) => {}
            BuildEvent::StepFinished { id, duration, .. } => {
                let n = self.number(*id);
                if let Some(rest) = self.partial.remove(id).filter(|r| !r.is_empty()) {
                    let elapsed = self.started.elapsed().as_secs_f64();
                    let _ = writeln!(
                        self.out,
                        "#{n} {elapsed:.3} {}",
                        String::from_utf8_lossy(&rest)
                    );
                }
                let _ = writeln!(self.out, "#{n} DONE {:.1}s", duration.as_secs_f64());
            }
            BuildEvent::Warning { message } => {
                let _ = writeln!(self.out, "WARNING: {message}");
            }
            // Events of a newer library than this renderer knows.
            _ => {}
        }
        let _ = self.out.flush();
    }
}

/// A line longer than this is shown in pieces, so that output without newlines does not pile
/// up in memory.
pub const MAX_LINE: usize = 64 * 1024;

/// Writes the complete lines of `partial` + `data`, each after `prefix`, and keeps the unfinished
/// rest in `partial`. No allocation per line: the lines are sliced out of `data`.
fn write_lines<W: Write>(out: &mut W, prefix: &str, partial: &mut Vec<u8>, data: &[u8]) {
    let mut rest = data;
    if !partial.is_empty() {
        match rest.iter().position(|b| *b == b'\n') {
            Some(pos) => {
                partial.extend_from_slice(&rest[..pos]);
                write_line(out, prefix, partial);
                partial.clear();
                rest = &rest[pos + 1..];
            }
            None => {
                partial.extend_from_slice(rest);
                rest = &[];
            }
        }
    }
    while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
        write_line(out, prefix, &rest[..pos]);
        rest = &rest[pos + 1..];
    }
    partial.extend_from_slice(rest);
    while partial.len() >= MAX_LINE {
        write_line(out, prefix, &partial[..MAX_LINE]);
        partial.drain(..MAX_LINE);
    }
}

fn write_line<W: Write>(out: &mut W, prefix: &str, line: &[u8]) {
    let _ = out.write_all(prefix.as_bytes());
    let _ = match std::str::from_utf8(line) {
        Ok(_) => out.write_all(line),
        Err(_) => out.write_all(String::from_utf8_lossy(line).as_bytes()),
    };
    let _ = out.write_all(b"\n");
}

/// One JSON object per event.
pub fn event_json(event: &BuildEvent) -> serde_json::Value {
    use serde_json::json;
    let step = |id: &StepId| json!({"stage": id.stage, "index": id.index});
    match event {
        BuildEvent::StepStarted { id, name } => {
            json!({"event": "step_started", "step": step(id), "name": name})
        }
        BuildEvent::StepCached { id } => json!({"event": "step_cached", "step": step(id)}),
        BuildEvent::CacheMiss { id, reasons } => json!({
            "event": "cache_miss",
            "step": step(id),
            "reasons": serde_json::to_value(reasons).unwrap_or_default(),
            "text": reasons.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        }),
        BuildEvent::Log { id, stream, data } => json!({
            "event": "log",
            "step": step(id),
            "stream": match stream { Stream::Stdout => "stdout", Stream::Stderr => "stderr" },
            "data": String::from_utf8_lossy(data),
        }),
        BuildEvent::StepFinished {
            id,
            duration,
            layer_size,
        } => json!({
            "event": "step_finished",
            "step": step(id),
            "seconds": duration.as_secs_f64(),
            "layer_size": layer_size,
        }),
        BuildEvent::Warning { message } => json!({"event": "warning", "message": message}),
        _ => json!({"event": "other"}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn plain_lines_are_numbered_and_split_on_newlines() {
        let mut out = Vec::new();
        let a = StepId { stage: 0, index: 1 };
        let b = StepId { stage: 0, index: 2 };
        {
            let mut r = PlainRenderer::new(&mut out);
            r.event(&BuildEvent::StepStarted {
                id: a,
                name: "[stage-0 1/2] RUN make".into(),
            });
            r.event(&BuildEvent::Log {
                id: a,
                stream: Stream::Stdout,
                data: b"one\ntw".to_vec(),
            });
            r.event(&BuildEvent::Log {
                id: a,
                stream: Stream::Stdout,
                data: b"o\nthree".to_vec(),
            });
            r.event(&BuildEvent::StepFinished {
                id: a,
                duration: Duration::from_millis(1500),
                layer_size: Some(3),
            });
            r.event(&BuildEvent::StepStarted {
                id: b,
                name: "[stage-0 2/2] COPY a /a".into(),
            });
            r.event(&BuildEvent::StepCached { id: b });
            r.event(&BuildEvent::StepFinished {
                id: b,
                duration: Duration::ZERO,
                layer_size: None,
            });
        }
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "#1 [stage-0 1/2] RUN make");
        assert!(
            lines[1].starts_with("#1 ") && lines[1].ends_with(" one"),
            "{text}"
        );
        assert!(lines[2].ends_with(" two"), "{text}");
        assert!(lines[3].ends_with(" three"), "{text}");
        assert_eq!(lines[4], "#1 DONE 1.5s");
        assert_eq!(lines[5], "#2 [stage-0 2/2] COPY a /a");
        assert_eq!(lines[6], "#2 CACHED");
        assert_eq!(lines.len(), 7, "no DONE after CACHED: {text}");
    }

    #[test]
    fn json_events_have_a_kind_and_step() {
        let v = event_json(&BuildEvent::StepCached {
            id: StepId { stage: 1, index: 4 },
        });
        assert_eq!(
            v,
            serde_json::json!({"event": "step_cached", "step": {"stage": 1, "index": 4}})
        );
    }
}
