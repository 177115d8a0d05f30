//! Which ids an ordinary user's namespace gets: `/etc/subuid`, `/etc/subgid` and the setuid
//! helpers that map them.

use std::ffi::CStr;
use std::path::{Path, PathBuf};

/// How the user namespace of a rootless kiln is mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdPlan {
    /// The user's id becomes 0 and the subordinate ranges 1 and up, through `newuidmap` and
    /// `newgidmap`.
    Ranges {
        /// The user's uid and gid.
        uid: u32,
        /// The user's primary gid.
        gid: u32,
        /// `(start, count)` ranges from `/etc/subuid`.
        subuids: Vec<(u32, u32)>,
        /// `(start, count)` ranges from `/etc/subgid`.
        subgids: Vec<(u32, u32)>,
        /// The `newuidmap` found.
        newuidmap: PathBuf,
        /// The `newgidmap` found.
        newgidmap: PathBuf,
    },
    /// Only the user's own ids, mapped to 0, written by the process itself.
    Single {
        /// The user's uid.
        uid: u32,
        /// The user's primary gid.
        gid: u32,
        /// Why no ranges are used, for the notice.
        why: String,
    },
}

impl IdPlan {
    /// The lines `newuidmap`/`newgidmap` take after the pid, or the single map's line.
    pub fn uid_args(&self) -> Vec<u32> {
        match self {
            IdPlan::Ranges { uid, subuids, .. } => map_args(*uid, subuids),
            IdPlan::Single { uid, .. } => vec![0, *uid, 1],
        }
    }

    /// As [`IdPlan::uid_args`], for groups.
    pub fn gid_args(&self) -> Vec<u32> {
        match self {
            IdPlan::Ranges { gid, subgids, .. } => map_args(*gid, subgids),
            IdPlan::Single { gid, .. } => vec![0, *gid, 1],
        }
    }
}

fn map_args(own: u32, ranges: &[(u32, u32)]) -> Vec<u32> {
    let mut args = vec![0, own, 1];
    let mut next = 1u32;
    for &(start, count) in ranges {
        args.extend([next, start, count]);
        next = next.saturating_add(count);
    }
    args
}

/// The `(start, count)` ranges `text` (the contents of `/etc/subuid` or `/etc/subgid`) gives the
/// user named `name` or numbered `id`, in file order. Comments, malformed lines, empty ranges and
/// ranges overlapping an earlier one (a line added twice, by `useradd` and by hand) are skipped:
/// the kernel refuses overlapping maps.
pub fn subordinate_ranges(text: &str, name: Option<&str>, id: u32) -> Vec<(u32, u32)> {
    let mut kept: Vec<(u32, u32)> = Vec::new();
    for (start, count) in listed_ranges(text, name, id) {
        let end = u64::from(start) + u64::from(count);
        let overlaps = kept
            .iter()
            .any(|&(s, c)| u64::from(start) < u64::from(s) + u64::from(c) && u64::from(s) < end);
        if !overlaps {
            kept.push((start, count));
        }
    }
    kept
}

fn listed_ranges(text: &str, name: Option<&str>, id: u32) -> Vec<(u32, u32)> {
    let id = id.to_string();
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let mut f = line.trim().splitn(3, ':');
            let (owner, start, count) = (f.next()?, f.next()?, f.next()?);
            if owner != id && Some(owner) != name {
                return None;
            }
            let (start, count) = (start.parse::<u32>().ok()?, count.parse::<u32>().ok()?);
            (count > 0 && start.checked_add(count - 1).is_some()).then_some((start, count))
        })
        .collect()
}

/// The mapping an ordinary user's kiln uses. `KILN_USERNS=single` asks for the single-id map
/// even when ranges exist.
pub fn plan() -> IdPlan {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let single = |why: String| IdPlan::Single { uid, gid, why };
    if std::env::var_os("KILN_USERNS").is_some_and(|v| v == "single") {
        return single("KILN_USERNS=single".to_owned());
    }
    let name = user_name(uid);
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let subuids = subordinate_ranges(&read("/etc/subuid"), name.as_deref(), uid);
    let subgids = subordinate_ranges(&read("/etc/subgid"), name.as_deref(), uid);
    let who = name.clone().unwrap_or_else(|| uid.to_string());
    if subuids.is_empty() || subgids.is_empty() {
        let file = if subuids.is_empty() {
            "/etc/subuid"
        } else {
            "/etc/subgid"
        };
        return single(format!("{file} has no range for {who}"));
    }
    let (Some(newuidmap), Some(newgidmap)) = (find_program("newuidmap"), find_program("newgidmap"))
    else {
        return single(
            "newuidmap and newgidmap were not found (Debian and Ubuntu: apt-get install uidmap)"
                .to_owned(),
        );
    };
    IdPlan::Ranges {
        uid,
        gid,
        subuids,
        subgids,
        newuidmap,
        newgidmap,
    }
}

/// The account name of `uid`, through the system's user database (NSS included).
fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: passwd is plain data; all zeroes is a valid value.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the sizes given; the result points into `pwd`/`buf`.
    let r =
        unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
    if r != 0 || out.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded: pw_name is a NUL-terminated string inside `buf`.
    let name = unsafe { CStr::from_ptr(pwd.pw_name) };
    name.to_str().ok().map(str::to_owned)
}

/// `name` on `PATH`, else in the usual system directories.
fn find_program(name: &str) -> Option<PathBuf> {
    crate::programs::on_path(name).or_else(|| {
        ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
            .map(|d| Path::new(d).join(name))
            .into_iter()
            .find(|p| crate::programs::is_executable(p))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_match_by_name_or_uid() {
        let text = "# comment\nalice:100000:65536\n1000:300000:10\nbob:200000:65536\nalice:x:1\nalice:5:0\n";
        assert_eq!(
            subordinate_ranges(text, Some("alice"), 1000),
            vec![(100000, 65536), (300000, 10)]
        );
        assert_eq!(
            subordinate_ranges(text, Some("bob"), 1001),
            vec![(200000, 65536)]
        );
        assert!(subordinate_ranges(text, None, 1002).is_empty());
    }

    #[test]
    fn repeated_and_overlapping_ranges_are_kept_once() {
        let text = "u:100000:65536\nu:100000:65536\nu:165535:10\nu:165536:10\n";
        assert_eq!(
            subordinate_ranges(text, Some("u"), 1),
            vec![(100000, 65536), (165536, 10)]
        );
    }

    #[test]
    fn overflowing_ranges_are_skipped() {
        assert!(subordinate_ranges("u:4294967295:2\n", Some("u"), 1).is_empty());
    }

    #[test]
    fn ranges_follow_the_own_id() {
        let plan = IdPlan::Ranges {
            uid: 1000,
            gid: 1001,
            subuids: vec![(100000, 65536), (300000, 10)],
            subgids: vec![(100000, 65536)],
            newuidmap: "/usr/bin/newuidmap".into(),
            newgidmap: "/usr/bin/newgidmap".into(),
        };
        assert_eq!(
            plan.uid_args(),
            vec![0, 1000, 1, 1, 100000, 65536, 65537, 300000, 10]
        );
        assert_eq!(plan.gid_args(), vec![0, 1001, 1, 1, 100000, 65536]);
    }
}
