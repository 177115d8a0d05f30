//! Extended attributes: the one reader every part of the crate uses (the context walk, COPY,
//! the copy snapshotter), so that what counts as "no xattrs" is decided once.

use std::ffi::{OsStr, OsString};
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Whether the xattr `name` is an overlay filesystem's own bookkeeping (the kernel's
/// `trusted.overlay.` and `user.overlay.`, fuse-overlayfs' `user.fuseoverlayfs.`), which layers
/// never carry.
pub(crate) fn is_overlay_own(name: &[u8]) -> bool {
    [
        &b"trusted.overlay."[..],
        b"user.overlay.",
        b"user.fuseoverlayfs.",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

/// The extended attributes of the entry at `target` (a trusted path such as a descriptor's
/// `/proc/self/fd` link joined with a name), not following a final symlink, sorted by name.
/// Filesystems without xattrs give none.
pub fn list(target: &Path) -> std::io::Result<Vec<(OsString, Vec<u8>)>> {
    read_all(
        |buf| rustix::fs::llistxattr(target, buf),
        |key, buf| rustix::fs::lgetxattr(target, key, buf),
    )
}

/// The extended attributes of the open file `fd`, sorted by name; as [`list`].
pub(crate) fn list_fd(fd: BorrowedFd<'_>) -> std::io::Result<Vec<(OsString, Vec<u8>)>> {
    read_all(
        |buf| rustix::fs::flistxattr(fd, buf),
        |key, buf| rustix::fs::fgetxattr(fd, key, buf),
    )
}

/// Lists the names, then reads each value, growing the buffers on `ERANGE` up to 1 MiB (the
/// kernel's own limit is 64 KiB a value). A name removed in between is skipped.
fn read_all(
    list_names: impl Fn(&mut [u8]) -> rustix::io::Result<usize>,
    get: impl Fn(&OsStr, &mut [u8]) -> rustix::io::Result<usize>,
) -> std::io::Result<Vec<(OsString, Vec<u8>)>> {
    let mut names = vec![0u8; 1024];
    let len = loop {
        match list_names(&mut names) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => names.resize(names.len() * 4, 0),
            Err(rustix::io::Errno::NOTSUP) | Err(rustix::io::Errno::PERM) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
        if names.len() > 1 << 20 {
            return Ok(Vec::new());
        }
    };
    let mut out = Vec::new();
    for key in names[..len].split(|b| *b == 0).filter(|k| !k.is_empty()) {
        let key = OsStr::from_bytes(key);
        let mut value = vec![0u8; 256];
        let n = loop {
            match get(key, &mut value) {
                Ok(n) => break Some(n),
                Err(rustix::io::Errno::RANGE) if value.len() < 1 << 20 => {
                    value.resize(value.len() * 4, 0)
                }
                Err(rustix::io::Errno::NODATA) => break None,
                Err(e) => return Err(e.into()),
            }
        };
        if let Some(n) = n {
            value.truncate(n);
            out.push((key.to_os_string(), value));
        }
    }
    out.sort();
    Ok(out)
}
