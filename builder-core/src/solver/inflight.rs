//! Steps shared by concurrent solves of one build (one per target platform): a step whose key
//! another solve is running waits for it and then takes its result from the cache, so a stage
//! that is the same for every platform (`FROM --platform=$BUILDPLATFORM`) runs once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use crate::cache::CacheKey;

/// The keys being run or already run by the solves of one build.
#[derive(Debug, Default)]
pub struct InFlight {
    running: Mutex<BTreeMap<CacheKey, Arc<tokio::sync::Mutex<()>>>>,
    done: Mutex<BTreeSet<CacheKey>>,
}

impl InFlight {
    /// A fresh set, to share between the solves of one build.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Waits until no other solve runs `key`, and holds it until the guard drops.
    pub async fn claim(&self, key: &CacheKey) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut running = match self.running.lock() {
                Ok(r) => r,
                Err(poisoned) => poisoned.into_inner(),
            };
            running.entry(*key).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// Whether a solve of this build already ran `key` (its record is this build's own, so
    /// `--no-cache` does not ask to run it again).
    pub fn is_done(&self, key: &CacheKey) -> bool {
        match self.done.lock() {
            Ok(d) => d.contains(key),
            Err(poisoned) => poisoned.into_inner().contains(key),
        }
    }

    /// Records that `key` ran in this build.
    pub fn mark_done(&self, key: &CacheKey) {
        match self.done.lock() {
            Ok(mut d) => d.insert(*key),
            Err(poisoned) => poisoned.into_inner().insert(*key),
        };
    }
}
