//! Build progress as a stream of events. The library never prints: the CLI renders these (tty,
//! plain or JSON), an embedding program may do anything with them.

use std::time::Duration;

use crate::graph::StepId;

/// Which output stream a log chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One thing that happened during a build.
#[derive(Debug, Clone, PartialEq)]
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

/// Where events go. Cloning is cheap; sending never blocks and never fails (a dropped receiver
/// just means nobody watches).
#[derive(Debug, Clone)]
pub struct EventSink {
    tx: Option<tokio::sync::mpsc::UnboundedSender<BuildEvent>>,
}

impl EventSink {
    /// A sink that sends to `tx`.
    pub fn new(tx: tokio::sync::mpsc::UnboundedSender<BuildEvent>) -> Self {
        EventSink { tx: Some(tx) }
    }

    /// A sink that drops everything.
    pub fn discard() -> Self {
        EventSink { tx: None }
    }

    /// Sends an event.
    pub fn send(&self, event: BuildEvent) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(event);
        }
    }
}
