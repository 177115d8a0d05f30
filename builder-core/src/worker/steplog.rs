//! A RUN step's output on its way from the executor to the progress events.
//!
//! Memory stays bounded whatever the step prints: the executor hands over chunks through a bounded
//! channel, the events go through the bounded [`EventSink`], and past the step's log limit the
//! output is read and discarded. The last [`TAIL_BYTES`] are kept in a ring whatever the limit, so
//! that a failing step's last lines (its real error, usually) reach the error report even when
//! the progress display clipped them or could not keep up.

use std::collections::VecDeque;

use tokio::sync::mpsc;

use crate::graph::StepId;
use crate::progress::{BuildEvent, EventSink, MAX_LOG_CHUNK, StepLogLimit, Stream};

/// Bytes of the end of a step's output kept for its error report.
pub const TAIL_BYTES: usize = 8 * 1024;

/// Lines of the end of a step's output put in its error report.
pub const TAIL_LINES: usize = 20;

/// Chunks in flight between the executor's reader and [`forward`].
pub(super) const CHUNKS_IN_FLIGHT: usize = 4;

/// The last bytes of a step's output, both streams in the order they came.
#[derive(Debug, Default)]
pub(super) struct Tail {
    bytes: VecDeque<u8>,
}

impl Tail {
    fn push(&mut self, data: &[u8]) {
        let data = &data[data.len().saturating_sub(TAIL_BYTES)..];
        let excess = (self.bytes.len() + data.len()).saturating_sub(TAIL_BYTES);
        self.bytes.drain(..excess);
        self.bytes.extend(data);
    }

    /// The last [`TAIL_LINES`] lines, without line ends; the first may be cut short.
    pub(super) fn lines(&self) -> Vec<String> {
        let (a, b) = self.bytes.as_slices();
        let all = [a, b].concat();
        let text = String::from_utf8_lossy(&all);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let mut lines: Vec<String> = text
            .rsplit('\n')
            .take(TAIL_LINES)
            .map(|l| l.trim_end_matches('\r').to_string())
            .collect();
        lines.reverse();
        if lines.len() == 1 && lines[0].is_empty() {
            lines.clear();
        }
        lines
    }
}

/// Sends a step's output as [`BuildEvent::Log`]s up to `limit`, then one notice, then nothing;
/// returns the tail once the executor closed its end of `rx`.
pub(super) async fn forward(
    id: StepId,
    limit: StepLogLimit,
    events: EventSink,
    mut rx: mpsc::Receiver<(Stream, Vec<u8>)>,
) -> Tail {
    let mut tail = Tail::default();
    let mut shown: u64 = 0;
    let mut clipped = false;
    let mut held: Option<(Stream, Vec<u8>)> = None;
    loop {
        let (stream, mut data) = match held.take() {
            Some(c) => c,
            None => match rx.recv().await {
                Some(c) => c,
                None => break,
            },
        };
        tail.push(&data);
        if clipped {
            // Past the limit the output is only read, at the step's own speed.
            continue;
        }
        // Coalesce what already waits, so that a slow renderer gets fewer, bigger events.
        while data.len() < MAX_LOG_CHUNK {
            match rx.try_recv() {
                Ok((s, more)) if s == stream && data.len() + more.len() <= MAX_LOG_CHUNK => {
                    tail.push(&more);
                    data.extend_from_slice(&more);
                }
                Ok(other) => {
                    held = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        if let Some(max) = limit.get() {
            let room = usize::try_from(max.saturating_sub(shown)).unwrap_or(usize::MAX);
            if data.len() > room {
                data.truncate(room);
                clipped = true;
            }
        }
        shown += data.len() as u64;
        if !data.is_empty() {
            events.send(BuildEvent::Log { id, stream, data }).await;
        }
        if clipped {
            let notice = format!("\n[output clipped, log limit {limit} reached]\n");
            events
                .send(BuildEvent::Log {
                    id,
                    stream,
                    data: notice.into_bytes(),
                })
                .await;
        }
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(limit: StepLogLimit, chunks: Vec<(Stream, Vec<u8>)>) -> (Vec<u8>, Tail) {
        let (sink, mut events) = crate::progress::channel();
        let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let id = StepId { stage: 0, index: 1 };
        let collect = tokio::spawn(async move {
            let mut shown = Vec::new();
            while let Some(ev) = events.recv().await {
                if let BuildEvent::Log { data, .. } = ev {
                    shown.extend_from_slice(&data);
                }
            }
            shown
        });
        let feed = tokio::spawn(async move {
            for c in chunks {
                tx.send(c).await.unwrap();
            }
        });
        let tail = forward(id, limit, sink, rx).await;
        feed.await.unwrap();
        (collect.await.unwrap(), tail)
    }

    #[tokio::test]
    async fn output_past_the_limit_is_clipped_once_and_the_tail_kept() {
        let mut chunks = Vec::new();
        for i in 0..1000 {
            chunks.push((
                Stream::Stdout,
                format!("line {i}\n").repeat(20).into_bytes(),
            ));
        }
        chunks.push((Stream::Stderr, b"REAL-ERROR\n".to_vec()));
        let (shown, tail) = run(StepLogLimit::bytes(1000), chunks).await;
        let text = String::from_utf8(shown).unwrap();
        assert_eq!(
            text.len(),
            1000 + "\n[output clipped, log limit 1000B reached]\n".len()
        );
        assert_eq!(text.matches("output clipped").count(), 1, "{text}");
        assert!(!text.contains("REAL-ERROR"));
        let lines = tail.lines();
        assert_eq!(lines.len(), TAIL_LINES);
        assert_eq!(lines.last().map(String::as_str), Some("REAL-ERROR"));
        assert_eq!(lines[TAIL_LINES - 2], "line 999");
    }

    #[tokio::test]
    async fn output_at_the_limit_or_unlimited_is_shown_whole() {
        let chunks = vec![(Stream::Stdout, b"abc\n".to_vec())];
        let (shown, tail) = run(StepLogLimit::bytes(4), chunks.clone()).await;
        assert_eq!(shown, b"abc\n");
        assert_eq!(tail.lines(), vec!["abc".to_string()]);
        let big: Vec<_> = (0..100)
            .map(|_| (Stream::Stdout, vec![b'x'; 50_000]))
            .collect();
        let (shown, _) = run(StepLogLimit::unlimited(), big).await;
        assert_eq!(shown.len(), 5_000_000);
        let (shown, tail) = run(StepLogLimit::default(), Vec::new()).await;
        assert!(shown.is_empty() && tail.lines().is_empty());
    }
}
