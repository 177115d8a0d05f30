//! Reading and editing a [`ContainerConfig`] the way Dockerfile instructions do, so the planner
//! works on the same type that images are read from and written to (and unknown fields of a base
//! image's config carry over into the child, as Docker does).

use std::borrow::Cow;
use std::collections::BTreeSet;

use super::config::ContainerConfig;

/// The shell used for shell-form commands when SHELL was never set.
pub const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// The PATH Docker sets in Linux images that do not set one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn split_env(kv: &str) -> (&str, &str) {
    kv.split_once('=').unwrap_or((kv, ""))
}

impl ContainerConfig {
    /// The config with every string a Dockerfile instruction sets passed through `f`. The
    /// planner works on strings in the lossless form of `kiln_dockerfile_parser::bytes`: a base
    /// image's config enters it through [`ContainerConfig::lossless`] and an image's config
    /// leaves it through [`ContainerConfig::json_text`].
    pub fn map_text(mut self, f: impl Fn(&str) -> Cow<'_, str>) -> Self {
        let one = |s: &mut String| {
            if let Cow::Owned(o) = f(s) {
                *s = o;
            }
        };
        let list = |v: &mut Option<Vec<String>>| v.iter_mut().flatten().for_each(one);
        let set = |v: &mut Option<BTreeSet<String>>| {
            if let Some(s) = v {
                *s = std::mem::take(s)
                    .into_iter()
                    .map(|x| f(&x).into_owned())
                    .collect();
            }
        };
        self.user.iter_mut().for_each(one);
        self.working_dir.iter_mut().for_each(one);
        self.stop_signal.iter_mut().for_each(one);
        list(&mut self.env);
        list(&mut self.entrypoint);
        list(&mut self.cmd);
        list(&mut self.on_build);
        list(&mut self.shell);
        set(&mut self.exposed_ports);
        set(&mut self.volumes);
        if let Some(h) = &mut self.healthcheck {
            list(&mut h.test);
        }
        if let Some(labels) = &mut self.labels {
            *labels = std::mem::take(labels)
                .into_iter()
                .map(|(k, v)| (f(&k).into_owned(), f(&v).into_owned()))
                .collect();
        }
        self
    }

    /// A config read from an image, in the planner's lossless form (see [`Self::map_text`]).
    pub fn lossless(self) -> Self {
        self.map_text(|s| kiln_dockerfile_parser::bytes::decode(s.as_bytes()).0)
    }

    /// The planner's config as an image's JSON holds it: bytes that are not UTF-8 as U+FFFD,
    /// which is what Go's JSON encoder (and so Docker's image config) writes.
    pub fn json_text(self) -> Self {
        self.map_text(kiln_dockerfile_parser::bytes::to_json_text)
    }

    /// The value of environment variable `key`, if set.
    pub fn env_get(&self, key: &str) -> Option<&str> {
        self.env.iter().flatten().find_map(|kv| {
            let (k, v) = split_env(kv);
            (k == key).then_some(v)
        })
    }

    /// Sets `key=value`, replacing an existing value in place or appending.
    pub fn env_set(&mut self, key: &str, value: &str) {
        let entry = format!("{key}={value}");
        let env = self.env.get_or_insert_with(Vec::new);
        match env.iter_mut().find(|kv| split_env(kv).0 == key) {
            Some(slot) => *slot = entry,
            None => env.push(entry),
        }
    }

    /// The environment as key/value pairs in order.
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        self.env
            .iter()
            .flatten()
            .map(|kv| {
                let (k, v) = split_env(kv);
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    /// The SHELL in effect.
    pub fn shell_or_default(&self) -> Vec<String> {
        match &self.shell {
            Some(shell) if !shell.is_empty() => shell.clone(),
            _ => DEFAULT_SHELL.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The working directory in effect (`/` when unset).
    pub fn workdir_or_root(&self) -> &str {
        match self.working_dir.as_deref() {
            Some(w) if !w.is_empty() => w,
            _ => "/",
        }
    }

    /// The USER in effect (empty for root).
    pub fn user_or_root(&self) -> &str {
        self.user.as_deref().unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_set_replaces_in_place() {
        let mut c = ContainerConfig::default();
        assert_eq!(c.env_get("A"), None);
        c.env_set("A", "1");
        c.env_set("B", "2");
        c.env_set("A", "3");
        assert_eq!(c.env, Some(vec!["A=3".to_string(), "B=2".to_string()]));
        assert_eq!(c.env_get("A"), Some("3"));
        assert_eq!(c.env_pairs()[1], ("B".to_string(), "2".to_string()));
    }

    #[test]
    fn rfc3339_round_trips() {
        use crate::image::{format_rfc3339, parse_rfc3339};
        for secs in [0, 1, 951_782_400, 1_700_000_000, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&format_rfc3339(secs)), Some(secs));
        }
        assert_eq!(
            parse_rfc3339("2024-01-02T03:04:05.999999999+01:00"),
            parse_rfc3339("2024-01-02T02:04:05Z")
        );
        assert_eq!(parse_rfc3339("2024-13-02T03:04:05Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn defaults_when_unset() {
        let c = ContainerConfig::default();
        assert_eq!(c.shell_or_default(), vec!["/bin/sh", "-c"]);
        assert_eq!(c.workdir_or_root(), "/");
        assert_eq!(c.user_or_root(), "");
    }
}
