//! Copying a big directory's regular files on every core (see
//! [`Writer::copy_contents_parallel`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{Deferred, Writer};
use crate::context::EntryKind;
use crate::copy::CopyError;

/// What one copying thread wrote: the paths and their owners.
type Written = (Vec<PathBuf>, HashMap<PathBuf, (u32, u32)>, Vec<Deferred>);

impl Writer<'_> {
    /// Copies a directory item's contents (in pre-order, below `top`): first everything but
    /// regular files, in order, then the regular files on every core, each thread taking a run
    /// of them. Each path is written once either way, and a directory still gets something
    /// created in it exactly when the copy in order would create something in it, so its time
    /// is again the moment of the copy (or its source's time when nothing is created in it).
    /// Contents with hard links are copied in order (the first path of an inode must be
    /// written before its links).
    pub(super) fn copy_contents_parallel(
        &mut self,
        contents: &[crate::copy::Selected],
        top: &Path,
    ) -> Result<(), CopyError> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let linked = contents
            .iter()
            .any(|s| s.entry.kind == EntryKind::File && s.entry.nlink > 1);
        let mut links = HashMap::new();
        if threads < 2 || linked {
            for s in contents {
                self.copy_entry(&s.entry, &top.join(s.rel()), true, &mut links)?;
            }
            return Ok(());
        }
        let mut files = Vec::new();
        for s in contents {
            if s.entry.kind == EntryKind::File {
                files.push(s);
            } else {
                self.copy_entry(&s.entry, &top.join(s.rel()), true, &mut links)?;
            }
        }
        if files.is_empty() {
            return Ok(());
        }
        let per = files.len().div_ceil(threads);
        let dest = self.dest;
        let workers: Vec<_> = files
            .chunks(per)
            .map(|run| (self.sibling(run.len()), run))
            .collect();
        let done: Vec<Result<Written, CopyError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = workers
                .into_iter()
                .map(|(mut w, run)| {
                    scope.spawn(move || {
                        let mut links = HashMap::new();
                        for s in run {
                            w.copy_entry(&s.entry, &top.join(s.rel()), true, &mut links)?;
                        }
                        Ok((w.written, w.owners, w.deferred))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(CopyError::Io {
                            op: "copy into",
                            root: dest.path().to_path_buf(),
                            path: top.to_path_buf(),
                            source: std::io::Error::other("a copying thread failed"),
                        })
                    })
                })
                .collect()
        });
        for r in done {
            let (written, owners, deferred) = r?;
            self.written.extend(written);
            self.owners.extend(owners);
            self.deferred.extend(deferred);
        }
        Ok(())
    }
}
