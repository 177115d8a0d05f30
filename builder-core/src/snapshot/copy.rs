//! The copy snapshotter: every snapshot is a full copy of its tree. Works on any filesystem and,
//! for trees owned by the caller, without privileges; costs a full copy per prepared snapshot.

use std::path::Path;

use super::copytree::copy_tree;
use super::diff::compare_trees;
use super::store::{Active, FS, Store, TempEntry, View};
use super::{Fill, SnapshotError, Snapshotter, io_err};
use crate::changes::{Change, WhiteoutStyle};
use crate::fsroot::Root;

/// Snapshots as full directory copies.
#[derive(Debug)]
pub struct CopySnapshotter {
    store: Store,
}

impl CopySnapshotter {
    /// Opens (creating if needed) the snapshots under `dir` and removes leftovers of killed builds.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, SnapshotError> {
        Ok(Self {
            store: Store::open(dir.as_ref())?,
        })
    }

    /// A temporary entry whose `fs/` is a copy of `parent`'s tree (empty without a parent).
    fn fresh(&self, parent: Option<&str>) -> Result<TempEntry, SnapshotError> {
        let src = match parent {
            Some(p) => Some(self.store.require(p)?.join(FS)),
            None => None,
        };
        let entry = self.store.temp()?;
        let fs = entry.dir.join(FS);
        std::fs::create_dir(&fs).map_err(io_err("create", &fs))?;
        if let Some(src) = src {
            copy_tree(&src, &fs)?;
        }
        Ok(entry)
    }

    fn entry_of<'a>(&self, active: &'a Active) -> Result<&'a TempEntry, SnapshotError> {
        match &active.entry {
            Some(e) if e.dir.starts_with(&self.store.tmp) => Ok(e),
            _ => Err(io_err("use active snapshot", active.root())(
                std::io::Error::other("it does not belong to this snapshotter"),
            )),
        }
    }
}

impl Snapshotter for CopySnapshotter {
    fn name(&self) -> &'static str {
        "copy"
    }

    fn prepare(&self, parent: Option<&str>) -> Result<Active, SnapshotError> {
        let entry = self.fresh(parent)?;
        Ok(Active {
            root: entry.dir.join(FS),
            parent: parent.map(str::to_owned),
            entry: Some(entry),
            mounted: None,
            daemon: None,
            own: None,
        })
    }

    fn changes(&self, active: &Active) -> Result<Vec<Change>, SnapshotError> {
        let entry = self.entry_of(active)?;
        let old = match &active.parent {
            Some(p) => Some(self.store.require(p)?.join(FS)),
            None => None,
        };
        compare_trees(old.as_deref(), &entry.dir.join(FS))
    }

    fn commit(&self, mut active: Active, key: &str) -> Result<(), SnapshotError> {
        self.entry_of(&active)?;
        let Some(entry) = active.entry.take() else {
            return Ok(());
        };
        self.store.commit(entry, key, active.parent.as_deref())?;
        Ok(())
    }

    fn import(&self, key: &str, parent: Option<&str>, fill: Fill<'_>) -> Result<(), SnapshotError> {
        if self.store.exists(key) {
            return Ok(());
        }
        let entry = self.fresh(parent)?;
        let root = Root::open(entry.dir.join(FS))?;
        fill(&root, WhiteoutStyle::Apply).map_err(|source| SnapshotError::Fill {
            key: key.to_owned(),
            source,
        })?;
        self.store.commit(entry, key, parent)?;
        Ok(())
    }

    fn view(&self, key: &str) -> Result<View, SnapshotError> {
        Ok(View {
            path: self.store.require(key)?.join(FS),
            _mount: None,
        })
    }

    fn exists(&self, key: &str) -> bool {
        self.store.exists(key)
    }

    fn parent(&self, key: &str) -> Result<Option<String>, SnapshotError> {
        self.store.parent(key)
    }

    /// Copies do not depend on their parents, so any snapshot can be removed.
    fn remove(&self, key: &str) -> Result<(), SnapshotError> {
        self.store.remove(key)
    }
}
