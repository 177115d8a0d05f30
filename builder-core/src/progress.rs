//! Build progress as a stream of events. The library never prints: the CLI renders these (tty,
//! plain or JSON), an embedding program may do anything with them.

use std::time::Duration;

pub use crate::graph::StepId;

/// Which output stream a log chunk came from: the executor's own type.
pub use crate::exec::Stream;

/// One thing that happened during a build.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BuildEvent {
    /// A step began (or was looked up in the cache).
    StepStarted {
        /// Which step.
        id: StepId,
        /// `[stage-name k/n] INSTRUCTION`-style title.
        name: String,
    },
    /// A step's result came from the cache.
    StepCached {
        /// Which step.
        id: StepId,
    },
    /// A step missed the cache and will run; `reasons` say why in plain words (their `Display`).
    CacheMiss {
        /// Which step.
        id: StepId,
        /// Why, most specific first; never a secret's value, build args only as digests.
        reasons: Vec<crate::cache::MissReason>,
    },
    /// Output of a running step.
    Log {
        /// Which step.
        id: StepId,
        /// Stdout or stderr.
        stream: Stream,
        /// The bytes, as they came.
        data: Vec<u8>,
    },
    /// A step finished.
    StepFinished {
        /// Which step.
        id: StepId,
        /// How long it took.
        duration: Duration,
        /// Size of the layer it produced, if any.
        layer_size: Option<u64>,
    },
    /// A non-fatal finding.
    Warning {
        /// The message.
        message: String,
    },
}

/// How many events the channel from the build to its renderer holds. Log events carry at most
/// [`MAX_LOG_CHUNK`] bytes, so at most a few MiB of output wait for a slow renderer; a step that
/// writes faster than the renderer draws is slowed down instead of buffered.
pub const EVENT_CHANNEL_CAPACITY: usize = 64;

/// The largest `data` of one [`BuildEvent::Log`].
pub const MAX_LOG_CHUNK: usize = 64 * 1024;

/// A bounded channel for build events: the sink to give to a build and the receiver to render
/// from. The receiver must be drained while the build runs (or dropped): a full channel makes the
/// build wait.
pub fn channel() -> (EventSink, tokio::sync::mpsc::Receiver<BuildEvent>) {
    let (tx, rx) = tokio::sync::mpsc::channel(EVENT_CHANNEL_CAPACITY);
    (EventSink::new(tx), rx)
}

/// Where events go. Cloning is cheap; sending waits while the channel is full (backpressure) and
/// never fails (a dropped receiver just means nobody watches).
#[derive(Debug, Clone)]
pub struct EventSink {
    tx: Option<tokio::sync::mpsc::Sender<BuildEvent>>,
}

impl EventSink {
    /// A sink that sends to `tx`.
    pub fn new(tx: tokio::sync::mpsc::Sender<BuildEvent>) -> Self {
        EventSink { tx: Some(tx) }
    }

    /// A sink that drops everything.
    pub fn discard() -> Self {
        EventSink { tx: None }
    }

    /// Sends an event, waiting while the channel is full.
    pub async fn send(&self, event: BuildEvent) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(event).await;
        }
    }
}

/// BuildKit's default limit of one step's output shown in the progress: 2 MiB.
pub const DEFAULT_STEP_LOG_LIMIT: u64 = 2 * 1024 * 1024;

/// How much of one step's output reaches the progress events (BuildKit's
/// `BUILDKIT_STEP_LOG_MAX_SIZE`). Past the limit a single "output clipped" notice is sent and the
/// rest is read and discarded: the step keeps running at full speed. The last lines of a failing
/// step are kept whatever the limit and reported in [`crate::Error::RunFailed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepLogLimit(Option<u64>);

impl Default for StepLogLimit {
    fn default() -> Self {
        StepLogLimit(Some(DEFAULT_STEP_LOG_LIMIT))
    }
}

impl StepLogLimit {
    /// At most `bytes` per step.
    pub fn bytes(bytes: u64) -> Self {
        StepLogLimit(Some(bytes))
    }

    /// No limit.
    pub fn unlimited() -> Self {
        StepLogLimit(None)
    }

    /// The limit in bytes; `None` for unlimited.
    pub fn get(self) -> Option<u64> {
        self.0
    }

    /// Parses BuildKit's spelling: a byte count, or `-1` for unlimited.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().parse::<i64>() {
            Ok(-1) => Ok(Self::unlimited()),
            Ok(n) if n >= 0 => Ok(Self::bytes(n.unsigned_abs())),
            _ => Err(format!(
                "invalid step log limit {s:?}: expected a number of bytes, or -1 for no limit"
            )),
        }
    }
}

impl std::fmt::Display for StepLogLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            None => f.write_str("unlimited"),
            Some(n) if n >= 1024 * 1024 && n % (1024 * 1024) == 0 => {
                write!(f, "{}MiB", n / (1024 * 1024))
            }
            Some(n) if n >= 1024 && n % 1024 == 0 => write!(f, "{}KiB", n / 1024),
            Some(n) => write!(f, "{n}B"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_log_limit_parses_buildkit_values() {
        assert_eq!(StepLogLimit::parse("-1"), Ok(StepLogLimit::unlimited()));
        assert_eq!(StepLogLimit::parse("1024"), Ok(StepLogLimit::bytes(1024)));
        assert!(StepLogLimit::parse("-2").is_err());
        assert!(StepLogLimit::parse("2M").is_err());
        assert_eq!(StepLogLimit::default().to_string(), "2MiB");
        assert_eq!(StepLogLimit::bytes(1000).to_string(), "1000B");
    }

    #[tokio::test]
    async fn a_full_channel_makes_the_sender_wait() {
        let (sink, mut rx) = channel();
        for _ in 0..EVENT_CHANNEL_CAPACITY {
            sink.send(BuildEvent::Warning {
                message: "x".into(),
            })
            .await;
        }
        let one_more = sink.send(BuildEvent::Warning {
            message: "y".into(),
        });
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), one_more).await;
        assert!(waited.is_err(), "the send waited for room");
        assert!(rx.recv().await.is_some());
        sink.send(BuildEvent::Warning {
            message: "z".into(),
        })
        .await;
    }
}
