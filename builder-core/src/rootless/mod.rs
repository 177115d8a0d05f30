//! Rootless mode: what an ordinary user's kiln does to build as root would.
//!
//! A process that is not root cannot chown files to other users, mount overlays or create
//! namespaces for a RUN step. [`reexec`] starts the program again inside a user namespace of its
//! own, as buildah and podman do: the user's own id becomes root (uid 0) there, and the user's
//! subordinate ranges from `/etc/subuid` and `/etc/subgid` (mapped by the setuid helpers
//! `newuidmap` and `newgidmap`) become ids 1 and up. Inside, kiln is root: files owned by uid 1234
//! in an image are owned by uid 1234 as kiln sees them (on the host, by the range's id 1233
//! above its start), so layers carry the image's ids, not the host's. Without ranges or helpers,
//! only the user's own id is mapped (to 0) and changing ownership to other ids cannot work:
//! [`UserNamespace::single_id`] says so, and extraction keeps everything owned by root.
//!
//! [`current`] describes the namespace this process runs in; the snapshotter, layer extraction
//! and the RUN sandbox ask it what they may do.
//!
//! ```
//! let ns = kiln_builder_core::rootless::current();
//! if ns.rootless() {
//!     println!("rootless, {} uids mapped", ns.uid_map.iter().map(|r| r.count as u64).sum::<u64>());
//! }
//! ```

mod reexec;
mod subid;

use std::sync::OnceLock;

pub use reexec::{RootlessError, reexec};
pub use subid::{IdPlan, plan};

/// One line of a user namespace's id map: `count` ids from `inside` are the host's ids from
/// `outside`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct IdRange {
    /// First id as seen inside the namespace.
    pub inside: u32,
    /// First id as seen by the parent namespace (the host).
    pub outside: u32,
    /// Number of ids.
    pub count: u32,
}

/// The user namespace this process runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserNamespace {
    /// `/proc/self/uid_map`.
    pub uid_map: Vec<IdRange>,
    /// `/proc/self/gid_map`.
    pub gid_map: Vec<IdRange>,
    /// The process's effective uid (in this namespace).
    pub euid: u32,
}

impl UserNamespace {
    /// Reads the maps of the calling process.
    pub fn read() -> Self {
        let map = |path: &str| {
            std::fs::read_to_string(path)
                .map(|s| parse_map(&s))
                .unwrap_or_else(|_| vec![INITIAL])
        };
        Self {
            uid_map: map("/proc/self/uid_map"),
            gid_map: map("/proc/self/gid_map"),
            euid: rustix::process::geteuid().as_raw(),
        }
    }

    /// Whether this is the machine's initial user namespace (every id maps to itself).
    pub fn initial(&self) -> bool {
        self.uid_map == [INITIAL]
    }

    /// Whether kiln runs without the host's root: as an ordinary user, or as root of a user
    /// namespace an ordinary user made.
    pub fn rootless(&self) -> bool {
        self.euid != 0 || !self.initial()
    }

    /// Whether kiln runs as root of a user namespace where root is the only id (no subordinate
    /// ranges): files cannot be given to other owners.
    pub fn single_id(&self) -> bool {
        !self.initial() && (mapped(&self.uid_map) <= 1 || mapped(&self.gid_map) <= 1)
    }

    /// Whether `uid` (as seen here) exists in this namespace.
    pub fn maps_uid(&self, uid: u32) -> bool {
        self.uid_map.iter().any(|r| contains(r, uid))
    }

    /// Whether `gid` (as seen here) exists in this namespace.
    pub fn maps_gid(&self, gid: u32) -> bool {
        self.gid_map.iter().any(|r| contains(r, gid))
    }

    /// The host's uid for `uid` as seen here (`uid` itself where it is not mapped).
    pub fn host_uid(&self, uid: u32) -> u32 {
        host_id(&self.uid_map, uid)
    }

    /// The host's gid for `gid` as seen here (`gid` itself where it is not mapped).
    pub fn host_gid(&self, gid: u32) -> u32 {
        host_id(&self.gid_map, gid)
    }

    /// The prefix of overlayfs's own extended attributes: `trusted.overlay.` for the host's root,
    /// `user.overlay.` (mount option `userxattr`) inside a user namespace.
    pub fn overlay_xattr_prefix(&self) -> &'static str {
        if self.initial() {
            "trusted.overlay."
        } else {
            "user.overlay."
        }
    }
}

const INITIAL: IdRange = IdRange {
    inside: 0,
    outside: 0,
    count: u32::MAX,
};

fn contains(r: &IdRange, id: u32) -> bool {
    id >= r.inside && u64::from(id) < u64::from(r.inside) + u64::from(r.count)
}

fn host_id(map: &[IdRange], id: u32) -> u32 {
    map.iter()
        .find(|r| contains(r, id))
        .map_or(id, |r| r.outside + (id - r.inside))
}

fn mapped(map: &[IdRange]) -> u64 {
    map.iter().map(|r| u64::from(r.count)).sum()
}

/// Parses the text of `/proc/<pid>/uid_map`; malformed lines are skipped.
pub(crate) fn parse_map(text: &str) -> Vec<IdRange> {
    text.lines()
        .filter_map(|line| {
            let mut it = line.split_whitespace().map(str::parse::<u32>);
            match (it.next(), it.next(), it.next()) {
                (Some(Ok(inside)), Some(Ok(outside)), Some(Ok(count))) => Some(IdRange {
                    inside,
                    outside,
                    count,
                }),
                _ => None,
            }
        })
        .collect()
}

/// The outcome of changing a file's owner to `uid`:`gid` here. With only root mapped, other
/// owners cannot exist: the change is skipped and the file stays root's (as podman's
/// `ignore_chown_errors`; the command line says so up front). With ranges, an id beyond them is an
/// error that names it and what to change.
pub(crate) fn owner_change(res: rustix::io::Result<()>, uid: u32, gid: u32) -> std::io::Result<()> {
    match res {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::INVAL) if current().single_id() => {
            tracing::debug!(uid, gid, "owner not mapped, kept root");
            Ok(())
        }
        Err(rustix::io::Errno::INVAL) if current().rootless() => {
            let ns = current();
            let id = if ns.maps_uid(uid) {
                format!("gid {gid}")
            } else {
                format!("uid {uid}")
            };
            Err(std::io::Error::other(format!(
                "{id} is outside the ids this rootless user namespace maps; give the user a \
                 larger range in /etc/subuid and /etc/subgid"
            )))
        }
        Err(e) => Err(e.into()),
    }
}

/// Where per-run state (step directories, secret files) lives for the store at `store_root`:
/// rootless with `XDG_RUNTIME_DIR` set, under `$XDG_RUNTIME_DIR/kiln/` (the user's own tmpfs,
/// emptied at logout, as podman's run root), one directory per store; else `in_store`.
pub fn run_dir(store_root: &std::path::Path, in_store: std::path::PathBuf) -> std::path::PathBuf {
    use sha2::Digest as _;
    use std::os::unix::fs::DirBuilderExt;
    if !current().rootless() {
        return in_store;
    }
    let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR")
        .map(std::path::PathBuf::from)
        .filter(|d| d.is_absolute() && d.is_dir())
    else {
        return in_store;
    };
    let id = hex::encode(sha2::Sha256::digest(
        store_root.as_os_str().as_encoded_bytes(),
    ));
    let dir = runtime.join("kiln").join(&id[..16]);
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
    {
        Ok(()) => dir,
        Err(e) => {
            tracing::debug!(dir = %dir.display(), "run state stays in the store: {e}", e = crate::report::chain(&e));
            in_store
        }
    }
}

/// The user namespace of this process, read once.
pub fn current() -> &'static UserNamespace {
    static NS: OnceLock<UserNamespace> = OnceLock::new();
    NS.get_or_init(UserNamespace::read)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(uid: &str, gid: &str) -> UserNamespace {
        UserNamespace {
            uid_map: parse_map(uid),
            gid_map: parse_map(gid),
            euid: 0,
        }
    }

    #[test]
    fn the_initial_namespace_is_root() {
        let n = ns("         0          0 4294967295\n", "0 0 4294967295\n");
        assert!(n.initial());
        assert!(!n.rootless());
        assert!(!n.single_id());
        assert_eq!(n.overlay_xattr_prefix(), "trusted.overlay.");
        assert!(n.maps_uid(4_294_967_294));
    }

    #[test]
    fn subordinate_ranges_map_many_ids() {
        let n = ns("0 1000 1\n1 100000 65536\n", "0 1000 1\n1 100000 65536\n");
        assert!(n.rootless());
        assert!(!n.single_id());
        assert!(n.maps_uid(1234));
        assert!(n.maps_uid(65536));
        assert!(!n.maps_uid(65537));
        assert_eq!(n.host_uid(0), 1000);
        assert_eq!(n.host_uid(1234), 101233);
        assert_eq!(n.host_gid(70000), 70000, "unmapped ids stay as they are");
        assert_eq!(n.overlay_xattr_prefix(), "user.overlay.");
    }

    #[test]
    fn one_id_is_single() {
        let n = ns("0 1000 1\n", "0 1000 1\n");
        assert!(n.single_id());
        assert!(n.maps_gid(0));
        assert!(!n.maps_gid(1));
    }

    #[test]
    fn malformed_lines_are_skipped() {
        assert_eq!(parse_map("x y z\n0 1\n\n5 6 7").len(), 1);
    }
}
