//! Big files a COPY wrote once: into the layer blob, read from the context, while the snapshot
//! got placeholders of the right size and metadata (sparse, no data written). The snapshot is
//! committed with a note of where each placeholder's bytes lie in the blob, and is completed
//! (the bytes copied in the kernel from the blob, `copy_file_range`) the first time something
//! reads file contents from it: a mount for a RUN, a view for `COPY --from`, a stacked COPY.
//! What only reads metadata (the next COPY's check of its destination) does not complete it.
//!
//! A COPY of a 1 GiB file that no later step reads therefore writes 1 GiB, not 2 (snapshot and
//! blob); a later RUN on it costs the one in-kernel copy the COPY used to make.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use rustix::fs::{FileType, Mode, OFlags, Timespec, Timestamps};

use crate::content::{ContentStore, Digest};
use crate::copy::Deferred;
use crate::fsroot::Root;
use crate::layer::Substitutes;
use crate::snapshot::{FillError, Snapshotter};

/// Regular files from this size on are written only into the layer by a direct COPY.
pub(super) const DEFER_MIN: u64 = 8 << 20;

/// The note kept with a snapshot whose placeholders `placed` lie in the blob `digest`: the
/// digest on the first line, then per file `<offset> <size> <path as hex>`.
pub(super) fn note(digest: &Digest, placed: &[(PathBuf, u64, u64)]) -> Vec<u8> {
    let mut out = format!("{digest}\n").into_bytes();
    for (path, offset, size) in placed {
        let hex = hex::encode(path.as_os_str().as_bytes());
        out.extend_from_slice(format!("{offset} {size} {hex}\n").as_bytes());
    }
    out
}

type Placed = Vec<(PathBuf, u64, u64)>;

fn parse(note: &[u8]) -> Option<(Digest, Placed)> {
    let text = std::str::from_utf8(note).ok()?;
    // Every line ends with a newline: a note cut short is refused, not misread.
    if !text.ends_with('\n') {
        return None;
    }
    let mut lines = text.lines();
    let digest: Digest = lines.next()?.parse().ok()?;
    let mut placed = Vec::new();
    for line in lines {
        let mut f = line.split(' ');
        let offset = f.next()?.parse().ok()?;
        let size = f.next()?.parse().ok()?;
        let path = hex::decode(f.next()?).ok()?;
        placed.push((
            PathBuf::from(std::ffi::OsStr::from_bytes(&path)),
            offset,
            size,
        ));
    }
    Some((digest, placed))
}

/// The placeholders of a COPY, by path, for the layer writer.
pub(super) fn substitutes(deferred: Vec<Deferred>) -> Result<Substitutes, std::io::Error> {
    let mut subst = Substitutes::default();
    for d in deferred {
        let st = rustix::fs::fstat(&d.placeholder)?;
        subst
            .files
            .insert(d.path, (d.source, d.size, (st.st_dev, st.st_ino)));
    }
    Ok(subst)
}

/// Completes the committed snapshot `key` when it has placeholders (see the module docs).
pub(crate) fn complete(
    store: &ContentStore,
    snapshots: &dyn Snapshotter,
    key: &str,
) -> Result<(), crate::snapshot::SnapshotError> {
    snapshots.complete(key, &mut |root, note| fill(store, root, note))
}

/// Completes `key` and its ancestors.
pub(super) fn complete_chain(
    store: &ContentStore,
    snapshots: &dyn Snapshotter,
    key: &str,
) -> Result<(), crate::snapshot::SnapshotError> {
    let mut next = Some(key.to_owned());
    let mut depth = 0;
    while let Some(k) = next {
        complete(store, snapshots, &k)?;
        next = snapshots.parent(&k)?;
        depth += 1;
        if depth > 4096 {
            break;
        }
    }
    Ok(())
}

fn invalid(what: &str) -> FillError {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned()).into()
}

/// Copies each placeholder's bytes from the blob the note names, keeping its times.
fn fill(store: &ContentStore, root: &Root, note: &[u8]) -> Result<(), FillError> {
    let (digest, placed) = parse(note).ok_or_else(|| invalid("unreadable note of placeholders"))?;
    let blob_path = store.blob_path(&digest);
    let blob = File::open(&blob_path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", blob_path.display())))?;
    let blob_len = blob.metadata()?.len();
    // Trusted as a cache hit trusts a layer: stamped when written, else hashed again.
    let layer = crate::cache::LayerRef {
        diff_id: digest,
        size: blob_len,
        packed: None,
    };
    if !super::verify::layer_is_intact(store, &layer) {
        return Err(invalid(
            "the layer holding the placeholders' bytes is corrupt",
        ));
    }
    for (rel, offset, size) in placed {
        if offset.checked_add(size).is_none_or(|end| end > blob_len) {
            return Err(invalid("a placeholder lies outside its layer"));
        }
        let (parent, name) = root.parent(&rel, false)?;
        let name = name.ok_or_else(|| invalid("a placeholder without a name"))?;
        let fd = rustix::fs::openat(
            &parent,
            &name,
            OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let st = rustix::fs::fstat(&fd)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile
            || st.st_size as u64 != size
            || st.st_nlink != 1
        {
            return Err(invalid("a placeholder changed"));
        }
        let out = File::from(fd);
        copy_range(&blob, offset, &out, size)?;
        let times = Timestamps {
            last_access: Timespec {
                tv_sec: st.st_atime,
                tv_nsec: st.st_atime_nsec as _,
            },
            last_modification: Timespec {
                tv_sec: st.st_mtime,
                tv_nsec: st.st_mtime_nsec as _,
            },
        };
        rustix::fs::futimens(out.as_fd(), &times)?;
    }
    Ok(())
}

/// `size` bytes of `from` at `offset` into `to` at 0: in the kernel where it can, else read and
/// written.
fn copy_range(from: &File, offset: u64, to: &File, size: u64) -> std::io::Result<()> {
    let (mut off_in, mut off_out) = (offset, 0u64);
    let mut left = size;
    while left > 0 {
        let want = left.min(1 << 30) as usize;
        match rustix::fs::copy_file_range(from, Some(&mut off_in), to, Some(&mut off_out), want) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => left -= n as u64,
            Err(rustix::io::Errno::INTR) => {}
            Err(
                rustix::io::Errno::XDEV
                | rustix::io::Errno::NOSYS
                | rustix::io::Errno::INVAL
                | rustix::io::Errno::OPNOTSUPP,
            ) => return copy_by_hand(from, off_in, to, off_out, left),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn copy_by_hand(
    from: &File,
    mut off_in: u64,
    to: &File,
    mut off_out: u64,
    mut left: u64,
) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        from.read_exact_at(&mut buf[..want], off_in)?;
        to.write_all_at(&buf[..want], off_out)?;
        off_in += want as u64;
        off_out += want as u64;
        left -= want as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_round_trips_and_a_torn_one_is_refused() {
        let digest = Digest::from_hex(&"ab".repeat(32)).unwrap();
        let placed = vec![
            (PathBuf::from("data/random.bin"), 1536, 1 << 30),
            (PathBuf::from("a b/\u{e9}\n.log"), 7, 0),
        ];
        let note = note(&digest, &placed);
        assert_eq!(parse(&note), Some((digest, placed)));
        assert_eq!(parse(&note[..note.len() - 3]), None);
        assert_eq!(parse(b"not a digest\n"), None);
    }
}
