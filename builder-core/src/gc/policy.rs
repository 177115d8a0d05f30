//! The automatic collection policy and the size and duration syntax of the prune flags.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::GcError;
use crate::content::ContentStore;

/// Default for the automatic policy: keep the store under 10 GiB.
pub const DEFAULT_KEEP_STORAGE: u64 = 10 << 30;

/// The automatic policy's settings, `<store>/kiln/gc.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcPolicy {
    /// Whether builds collect after they finish.
    pub enabled: bool,
    /// Keep the store's blobs under this many bytes.
    pub keep_storage: u64,
}

impl Default for GcPolicy {
    fn default() -> Self {
        GcPolicy {
            enabled: true,
            keep_storage: DEFAULT_KEEP_STORAGE,
        }
    }
}

impl GcPolicy {
    fn path(store: &ContentStore) -> PathBuf {
        store.state_dir().join("gc.json")
    }

    /// The store's policy (the default when none is set or it is unreadable).
    pub fn load(store: &ContentStore) -> Self {
        std::fs::read(Self::path(store))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Saves the policy atomically.
    pub fn save(&self, store: &ContentStore) -> Result<(), GcError> {
        let bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        crate::content::write_atomic(&Self::path(store), &bytes)
            .map_err(|e| GcError::Content(Box::new(e)))
    }
}

/// Parses a size: a number with an optional unit (`B`, `KB`/`K`, `MB`/`M`, `GB`/`G`, `TB`/`T`,
/// powers of 1024, as in Docker's `--keep-storage`; case-insensitive, `iB` accepted).
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().trim_end_matches("ib").trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    (n >= 0.0 && n.is_finite()).then_some((n * mult as f64) as u64)
}

/// Parses a duration such as `24h`, `90m`, `7d`, `30s`, or combinations like `1h30m`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut total = 0u64;
    let mut num = String::new();
    let mut any = false;
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 7 * 86400,
            _ => return None,
        };
        any = true;
    }
    if !num.is_empty() || !any {
        return None;
    }
    Some(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("1KB"), Some(1024));
        assert_eq!(parse_size("1.5g"), Some(3 << 29));
        assert_eq!(parse_size("2MiB"), Some(2 << 20));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("1q"), None);
        assert_eq!(parse_duration("24h"), Some(Duration::from_secs(86400)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("h"), None);
        assert_eq!(parse_duration(""), None);
    }
}
