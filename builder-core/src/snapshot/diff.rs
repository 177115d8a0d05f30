//! Finding what a step changed.
//!
//! - [`compare_trees`] (copy snapshotter) walks the parent tree and the active tree side by side,
//!   like containerd's walking differ. Entries are the same when type, permission bits, owner,
//!   link target, device number, xattrs, modification time (with nanoseconds) and, for
//!   non-directories, size are equal. When both times have zero nanoseconds (a filesystem or an
//!   archive that truncates them) equal metadata is not trusted and regular files' contents are
//!   compared. A directory that gained or lost an entry has a new modification time and is
//!   reported too, as Docker's layers record it.
//! - [`overlay_changes`] (overlay snapshotter) walks the upper directory: a 0/0 character device
//!   is a deletion, a directory marked opaque hides the lower ones, anything else was added or
//!   modified, except directories that overlayfs only copied up to hold a changed entry (same
//!   metadata as in the lower layer).
//!
//! Both report a directory whose previous entries are all gone (deleted and recreated) as
//! [`Change::Opaque`], and a directory that replaces a non-directory as [`Change::Upsert`], so the
//! two snapshotters agree on the list.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Stat};

use super::copytree::xattrs;
use super::{SnapshotError, io_err};
use crate::changes::Change;
use crate::stream::read_full;

fn lstat(path: &Path) -> Result<Option<Stat>, SnapshotError> {
    match rustix::fs::lstat(path) {
        Ok(st) => Ok(Some(st)),
        Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => Ok(None),
        Err(e) => Err(io_err("stat", path)(e.into())),
    }
}

fn list(dir: &Path) -> Result<Vec<OsString>, SnapshotError> {
    let mut names: Vec<OsString> = std::fs::read_dir(dir)
        .map_err(io_err("list", dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(io_err("list", dir))?;
    names.sort();
    Ok(names)
}

fn ftype(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// Xattrs that describe the content, not overlayfs' (or fuse-overlayfs') bookkeeping.
fn content_xattrs(path: &Path) -> Result<Vec<(OsString, Vec<u8>)>, SnapshotError> {
    let mut x = xattrs(path)?;
    let prefix = crate::rootless::current().overlay_xattr_prefix();
    x.retain(|(n, _)| {
        let n = n.to_string_lossy();
        !n.starts_with(prefix) && !n.starts_with(super::fuse::XATTR_PREFIX)
    });
    Ok(x)
}

/// Whether `name` is one of fuse-overlayfs' whiteout or opaque marker files.
fn is_fuse_marker(name: &OsString) -> bool {
    name.as_encoded_bytes()
        .starts_with(super::fuse::WHITEOUT_PREFIX)
}

/// Whether `a` (at `pa`) and `b` (at `pb`) are the same entry for a layer.
fn same_entry(pa: &Path, a: &Stat, pb: &Path, b: &Stat) -> Result<bool, SnapshotError> {
    let ft = ftype(a);
    if ft != ftype(b) || a.st_mode != b.st_mode || a.st_uid != b.st_uid || a.st_gid != b.st_gid {
        return Ok(false);
    }
    if a.st_mtime != b.st_mtime
        || a.st_mtime_nsec != b.st_mtime_nsec
        || (ft != FileType::Directory && a.st_size != b.st_size)
    {
        return Ok(false);
    }
    match ft {
        FileType::Symlink => {
            let ta = rustix::fs::readlink(pa, Vec::new())
                .map_err(|e| io_err("read link", pa)(e.into()))?;
            let tb = rustix::fs::readlink(pb, Vec::new())
                .map_err(|e| io_err("read link", pb)(e.into()))?;
            if ta != tb {
                return Ok(false);
            }
        }
        FileType::CharacterDevice | FileType::BlockDevice if a.st_rdev != b.st_rdev => {
            return Ok(false);
        }
        _ => {}
    }
    if content_xattrs(pa)? != content_xattrs(pb)? {
        return Ok(false);
    }
    if ft == FileType::RegularFile && a.st_mtime_nsec == 0 && b.st_mtime_nsec == 0 {
        return same_content(pa, pb);
    }
    Ok(true)
}

fn same_content(pa: &Path, pb: &Path) -> Result<bool, SnapshotError> {
    let mut fa = std::fs::File::open(pa).map_err(io_err("open", pa))?;
    let mut fb = std::fs::File::open(pb).map_err(io_err("open", pb))?;
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let na = read_full(&mut fa, &mut ba).map_err(io_err("read", pa))?;
        let nb = read_full(&mut fb, &mut bb).map_err(io_err("read", pb))?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

/// Every entry below `dir` (excluding it) as an upsert, skipping overlay whiteouts (and with
/// `fuse`, fuse-overlayfs' marker files).
fn add_all(
    root: &Path,
    rel: &Path,
    fuse: bool,
    out: &mut Vec<Change>,
) -> Result<(), SnapshotError> {
    let dir = root.join(rel);
    for name in list(&dir)? {
        if fuse && is_fuse_marker(&name) {
            continue;
        }
        let r = rel.join(&name);
        let Some(st) = lstat(&root.join(&r))? else {
            continue;
        };
        if is_whiteout(&st) {
            continue;
        }
        out.push(Change::Upsert(r.clone()));
        if ftype(&st) == FileType::Directory {
            add_all(root, &r, fuse, out)?;
        }
    }
    Ok(())
}

/// Changes from the tree `old` (absent for an empty parent) to the tree `new`, sorted by path.
pub(crate) fn compare_trees(old: Option<&Path>, new: &Path) -> Result<Vec<Change>, SnapshotError> {
    let mut out = Vec::new();
    match old {
        Some(old) => compare_dir(old, new, Path::new(""), &mut out)?,
        None => add_all(new, Path::new(""), false, &mut out)?,
    }
    out.sort_by(|a, b| a.path().cmp(b.path()));
    Ok(out)
}

fn compare_dir(
    old: &Path,
    new: &Path,
    rel: &Path,
    out: &mut Vec<Change>,
) -> Result<(), SnapshotError> {
    let old_names = list(&old.join(rel))?;
    let new_names = list(&new.join(rel))?;
    for name in &old_names {
        if new_names.binary_search(name).is_err() {
            out.push(Change::Delete(rel.join(name)));
        }
    }
    for name in &new_names {
        let r = rel.join(name);
        let (po, pn) = (old.join(&r), new.join(&r));
        let Some(sn) = lstat(&pn)? else { continue };
        let so = if old_names.binary_search(name).is_ok() {
            lstat(&po)?
        } else {
            None
        };
        let new_is_dir = ftype(&sn) == FileType::Directory;
        match so {
            None => {
                out.push(Change::Upsert(r.clone()));
                if new_is_dir {
                    add_all(new, &r, false, out)?;
                }
            }
            Some(so) if new_is_dir && ftype(&so) == FileType::Directory => {
                let before = list(&po)?;
                let now = list(&pn)?;
                if !before.is_empty() && before.iter().all(|n| now.binary_search(n).is_err()) {
                    out.push(Change::Opaque(r.clone()));
                    add_all(new, &r, false, out)?;
                } else {
                    if !same_entry(&po, &so, &pn, &sn)? {
                        out.push(Change::Upsert(r.clone()));
                    }
                    compare_dir(old, new, &r, out)?;
                }
            }
            Some(so) => {
                if !same_entry(&po, &so, &pn, &sn)? {
                    out.push(Change::Upsert(r.clone()));
                    if new_is_dir {
                        add_all(new, &r, false, out)?;
                    }
                }
            }
        }
    }
    Ok(())
}

fn is_whiteout(st: &Stat) -> bool {
    ftype(st) == FileType::CharacterDevice && st.st_rdev == 0
}

fn is_opaque(path: &Path, fuse: bool) -> Result<bool, SnapshotError> {
    let name = format!(
        "{}opaque",
        crate::rootless::current().overlay_xattr_prefix()
    );
    if has_yes(path, &name)? {
        return Ok(true);
    }
    if !fuse {
        return Ok(false);
    }
    // fuse-overlayfs: its own xattr (or the privileged one when it could set it), and a marker
    // file beside them.
    let fuse_name = format!("{}opaque", super::fuse::XATTR_PREFIX);
    Ok(has_yes(path, &fuse_name)?
        || has_yes(path, "trusted.overlay.opaque")?
        || lstat(&path.join(super::fuse::OPAQUE_FILE))?.is_some())
}

fn has_yes(path: &Path, name: &str) -> Result<bool, SnapshotError> {
    let mut buf = [0u8; 4];
    match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
        Ok(n) => Ok(&buf[..n] == b"y"),
        Err(rustix::io::Errno::NODATA)
        | Err(rustix::io::Errno::NOTSUP)
        | Err(rustix::io::Errno::PERM) => Ok(false),
        Err(rustix::io::Errno::RANGE) => Ok(false),
        Err(e) => Err(io_err("read xattr", path)(e.into())),
    }
}

/// The entry the lower layers (`lowers`, topmost first) show at `rel`, with its path. With
/// `fuse`, a `.wh.NAME` file is a whiteout too.
fn lower_entry(
    lowers: &[PathBuf],
    rel: &Path,
    fuse: bool,
) -> Result<Option<(PathBuf, Stat)>, SnapshotError> {
    for l in lowers {
        let p = l.join(rel);
        if fuse && let Some(name) = rel.file_name() {
            let mut wh = OsString::from(".wh.");
            wh.push(name);
            if lstat(&p.with_file_name(wh))?.is_some() {
                return Ok(None);
            }
        }
        if let Some(st) = lstat(&p)? {
            if is_whiteout(&st) {
                return Ok(None);
            }
            return Ok(Some((p, st)));
        }
    }
    Ok(None)
}

/// Whether every entry of the upper directory `rel` replaces one the lower layers have (nothing
/// added, nothing deleted), fuse-overlayfs' markers and whiteouts of nothing aside.
fn only_copied_up(upper: &Path, lowers: &[PathBuf], rel: &Path) -> Result<bool, SnapshotError> {
    for name in list(&upper.join(rel))? {
        if is_fuse_marker(&name) {
            let bytes = &name.as_encoded_bytes()[super::fuse::WHITEOUT_PREFIX.len()..];
            let target = rel.join(std::ffi::OsStr::from_bytes(bytes));
            let is_file = lstat(&upper.join(rel).join(&name))?
                .is_some_and(|st| ftype(&st) == FileType::RegularFile);
            if is_file
                && !bytes.starts_with(super::fuse::WHITEOUT_PREFIX)
                && lower_entry(lowers, &target, true)?.is_some()
            {
                return Ok(false);
            }
            continue;
        }
        let r = rel.join(&name);
        let Some(st) = lstat(&upper.join(&r))? else {
            continue;
        };
        let below = lower_entry(lowers, &r, true)?.is_some();
        if is_whiteout(&st) == below {
            // A deletion of something below, or a new name.
            return Ok(false);
        }
    }
    Ok(true)
}

/// Changes recorded in an overlay upper directory over `lowers` (topmost first), sorted by path.
/// With `fuse`, the upper directory was written by fuse-overlayfs (see the `fuse` module).
pub(crate) fn overlay_changes(
    upper: &Path,
    lowers: &[PathBuf],
    fuse: bool,
) -> Result<Vec<Change>, SnapshotError> {
    let mut out = Vec::new();
    walk_upper(upper, lowers, Path::new(""), fuse, &mut out)?;
    out.sort_by(|a, b| a.path().cmp(b.path()));
    Ok(out)
}

fn walk_upper(
    upper: &Path,
    lowers: &[PathBuf],
    rel: &Path,
    fuse: bool,
    out: &mut Vec<Change>,
) -> Result<(), SnapshotError> {
    for name in list(&upper.join(rel))? {
        if fuse && is_fuse_marker(&name) {
            let bytes = name.as_encoded_bytes();
            let target = &bytes[super::fuse::WHITEOUT_PREFIX.len()..];
            let is_file = lstat(&upper.join(rel).join(&name))?
                .is_some_and(|st| ftype(&st) == FileType::RegularFile);
            // `.wh.NAME`, a file: NAME was deleted. The opaque marker (`.wh..wh..opq`) and
            // whiteouts of marker names are read elsewhere or mean nothing for the layer.
            if is_file && !target.starts_with(super::fuse::WHITEOUT_PREFIX) && !target.is_empty() {
                let t = rel.join(std::ffi::OsStr::from_bytes(target));
                // A name deleted and made again: the new entry is the change.
                if lstat(&upper.join(&t))?.is_none() && lower_entry(lowers, &t, fuse)?.is_some() {
                    out.push(Change::Delete(t));
                }
            }
            continue;
        }
        let r = rel.join(&name);
        let p = upper.join(&r);
        let Some(st) = lstat(&p)? else { continue };
        if is_whiteout(&st) {
            // fuse-overlayfs also whites out what only the upper directory had (a mount point
            // a step created and removed): nothing below to hide, no change.
            if !fuse || lower_entry(lowers, &r, fuse)?.is_some() {
                out.push(Change::Delete(r));
            }
            continue;
        }
        if ftype(&st) != FileType::Directory {
            out.push(Change::Upsert(r));
            continue;
        }
        let lower = lower_entry(lowers, &r, fuse)?;
        let lower_dir = lower
            .as_ref()
            .filter(|(_, ls)| ftype(ls) == FileType::Directory);
        if is_opaque(&p, fuse)? {
            // Opaque only hides something when a lower layer has a non-empty directory here.
            let hides = match lower_dir {
                Some((lp, _)) => !list(lp)?.is_empty(),
                None => false,
            };
            out.push(if hides {
                Change::Opaque(r.clone())
            } else {
                Change::Upsert(r.clone())
            });
            add_all(upper, &r, fuse, out)?;
            continue;
        }
        let copied_up_only = match lower_dir {
            Some((lp, ls)) => {
                same_entry(lp, ls, &p, &st)?
                    || (fuse && {
                        // fuse-overlayfs does not give a directory its time back when it copies
                        // an entry up into it (the kernel does): a directory whose upper entries
                        // all replace lower ones is taken as copied up, whatever its time.
                        let mut same_time = st;
                        same_time.st_mtime = ls.st_mtime;
                        same_time.st_mtime_nsec = ls.st_mtime_nsec;
                        same_entry(lp, ls, &p, &same_time)? && only_copied_up(upper, lowers, &r)?
                    })
            }
            None => false,
        };
        if !copied_up_only {
            out.push(Change::Upsert(r.clone()));
        }
        walk_upper(upper, lowers, &r, fuse, out)?;
    }
    Ok(())
}
