//! A full copy of a directory tree that keeps everything a layer records: file types (devices and
//! FIFOs included), owners, modes (setuid bits too), nanosecond modification times, xattrs and hard
//! links between files of the tree. Contents are copied byte by byte (no reflinks, no links to the
//! source), so the copy shares nothing with the source.
//!
//! Both trees are trusted host directories that nothing else modifies during the copy; symlinks in
//! them are copied as links and never followed.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, Stat, Timespec, Timestamps, XattrFlags};

use super::{SnapshotError, io_err};

/// Copies the contents of `src` into the existing empty directory `dst`, and `src`'s own
/// metadata onto `dst`.
pub(crate) fn copy_tree(src: &Path, dst: &Path) -> Result<(), SnapshotError> {
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut dirs: Vec<(PathBuf, Stat)> = Vec::new();
    let walker = walkdir::WalkDir::new(src)
        .follow_links(false)
        .sort_by_file_name();
    for entry in walker {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(src).to_path_buf();
            io_err("walk", &path)(e.into())
        })?;
        let rel = entry.path().strip_prefix(src).unwrap_or(Path::new(""));
        let from = entry.path();
        let to = if rel.as_os_str().is_empty() {
            dst.to_path_buf()
        } else {
            dst.join(rel)
        };
        let st = rustix::fs::lstat(from).map_err(|e| io_err("stat", from)(e.into()))?;
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft == FileType::Directory {
            if !rel.as_os_str().is_empty() {
                rustix::fs::mkdir(&to, Mode::from_raw_mode(0o700))
                    .map_err(|e| io_err("create directory", &to)(e.into()))?;
            }
            dirs.push((to, st));
            continue;
        }
        if ft != FileType::Symlink && st.st_nlink > 1 {
            let id = (st.st_dev, st.st_ino);
            if let Some(first) = links.get(&id) {
                rustix::fs::linkat(CWD, first, CWD, &to, AtFlags::empty())
                    .map_err(|e| io_err("link", &to)(e.into()))?;
                continue;
            }
            links.insert(id, to.clone());
        }
        match ft {
            FileType::RegularFile => copy_file(from, &to)?,
            FileType::Symlink => {
                let target = rustix::fs::readlink(from, Vec::new())
                    .map_err(|e| io_err("read link", from)(e.into()))?;
                rustix::fs::symlink(OsStr::from_bytes(target.as_bytes()), &to)
                    .map_err(|e| io_err("create symlink", &to)(e.into()))?;
            }
            _ => {
                rustix::fs::mknodat(
                    CWD,
                    &to,
                    ft,
                    Mode::from_raw_mode(st.st_mode & 0o7777),
                    st.st_rdev,
                )
                .map_err(|e| io_err("create node", &to)(e.into()))?;
            }
        }
        apply_metadata(from, &to, &st)?;
    }
    // Directories last, deepest first, so adding their entries did not change their times.
    for (to, st) in dirs.iter().rev() {
        let from = src.join(to.strip_prefix(dst).unwrap_or(Path::new("")));
        apply_metadata(&from, to, st)?;
    }
    Ok(())
}

fn copy_file(from: &Path, to: &Path) -> Result<(), SnapshotError> {
    let mut input = std::fs::File::open(from).map_err(io_err("open", from))?;
    let mut output = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)
        .map_err(io_err("create", to))?;
    // A plain read/write loop: `io::copy` may use copy_file_range, which can share extents.
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err("read", from)(e)),
        };
        output.write_all(&buf[..n]).map_err(io_err("write", to))?;
    }
    Ok(())
}

/// Owner, mode, xattrs and times of `from`'s `st` onto `to`, in an order where no step undoes
/// another (chown clears setuid bits and capabilities).
pub(crate) fn apply_metadata(from: &Path, to: &Path, st: &Stat) -> Result<(), SnapshotError> {
    let ft = FileType::from_raw_mode(st.st_mode);
    rustix::fs::chownat(
        CWD,
        to,
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| io_err("chown", to)(e.into()))?;
    if ft != FileType::Symlink {
        rustix::fs::chmod(to, Mode::from_raw_mode(st.st_mode & 0o7777))
            .map_err(|e| io_err("chmod", to)(e.into()))?;
    }
    for (name, value) in xattrs(from)? {
        rustix::fs::lsetxattr(to, &name, &value, XattrFlags::empty())
            .map_err(|e| io_err("set xattr", to)(e.into()))?;
    }
    let t = Timespec {
        tv_sec: st.st_mtime as _,
        tv_nsec: st.st_mtime_nsec as _,
    };
    let a = Timespec {
        tv_sec: st.st_atime as _,
        tv_nsec: st.st_atime_nsec as _,
    };
    rustix::fs::utimensat(
        CWD,
        to,
        &Timestamps {
            last_access: a,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| io_err("set times", to)(e.into()))?;
    Ok(())
}

/// The extended attributes of `path` (not following a symlink), sorted by name.
pub(crate) fn xattrs(path: &Path) -> Result<Vec<(OsString, Vec<u8>)>, SnapshotError> {
    crate::xattr::list(path).map_err(io_err("list xattrs", path))
}
