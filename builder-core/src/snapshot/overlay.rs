//! The overlayfs snapshotter: one directory per layer, an overlay mount per active snapshot.

use std::path::{Path, PathBuf};

use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags};

use super::diff::overlay_changes;
use super::store::{Active, FS, MERGED, Store, TempEntry, View};
use super::{CompleteFill, Fill, SnapshotError, Snapshotter, io_err};
use crate::changes::{Change, WhiteoutStyle};
use crate::fsroot::Root;

const UPPER: &str = "upper";
const WORK: &str = "work";

/// Options that keep the upper directory a plain record of changes: no redirects of renamed
/// directories and no metadata-only copy-ups, which a walk of the upper directory could not read.
const OPTIONS: &[(&str, &str)] = &[
    ("redirect_dir", "off"),
    ("metacopy", "off"),
    ("index", "off"),
];

/// In a user namespace: overlayfs keeps its bookkeeping in `user.overlay.` xattrs (`userxattr`,
/// Linux 5.11), which rules out `redirect_dir=off` (only `nofollow`, which never writes a
/// redirect either).
const USERNS_OPTIONS: &[(&str, &str)] = &[
    ("redirect_dir", "nofollow"),
    ("metacopy", "off"),
    ("index", "off"),
];

fn options() -> &'static [(&'static str, &'static str)] {
    if crate::rootless::current().initial() {
        OPTIONS
    } else {
        USERNS_OPTIONS
    }
}

/// Snapshots as overlayfs layers. Needs root: of the machine (`trusted.` xattrs) or of a user
/// namespace (`user.` xattrs, Linux 5.11); or, with [`OverlaySnapshotter::open_fuse`], the
/// fuse-overlayfs program mounts them in user space.
#[derive(Debug)]
pub struct OverlaySnapshotter {
    store: Store,
    /// The fuse-overlayfs program, when it mounts the overlays instead of the kernel.
    fuse: Option<PathBuf>,
}

impl OverlaySnapshotter {
    /// Opens (creating if needed) the snapshots under `dir` and removes leftovers of killed builds.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, SnapshotError> {
        Ok(Self {
            store: Store::open(dir.as_ref())?,
            fuse: None,
        })
    }

    /// As [`OverlaySnapshotter::open`], with every overlay mounted by the fuse-overlayfs program
    /// `program` (the same layer format; see the `fuse` module for what it adds in upper
    /// directories).
    pub fn open_fuse(dir: impl AsRef<Path>, program: PathBuf) -> Result<Self, SnapshotError> {
        Ok(Self {
            store: Store::open(dir.as_ref())?,
            fuse: Some(program),
        })
    }

    /// Mounts through the kernel or fuse-overlayfs; the daemon, when there is one, serves the
    /// mount until it is dropped.
    fn mount(
        &self,
        lowers: &[PathBuf],
        upper: Option<(&Path, &Path)>,
        target: &Path,
    ) -> Result<Option<super::fuse::Daemon>, SnapshotError> {
        match &self.fuse {
            Some(program) => super::fuse::mount(program, lowers, upper, target).map(Some),
            None => mount_overlay(lowers, upper, target).map(|()| None),
        }
    }

    fn entry_of<'a>(&self, active: &'a Active) -> Result<&'a TempEntry, SnapshotError> {
        match &active.entry {
            Some(e) if e.dir.starts_with(&self.store.tmp) => Ok(e),
            _ => Err(io_err("use active snapshot", active.root())(
                std::io::Error::other("it does not belong to this snapshotter"),
            )),
        }
    }

    /// Commits `active` under `key`, with a pending note when its tree is not complete yet.
    fn commit_with(
        &self,
        mut active: Active,
        key: &str,
        pending: Option<&[u8]>,
    ) -> Result<(), SnapshotError> {
        self.entry_of(&active)?;
        active.unmount()?;
        let Some(entry) = active.entry.take() else {
            return Ok(());
        };
        let dir = entry.dir.clone();
        std::fs::rename(dir.join(UPPER), dir.join(FS)).map_err(io_err("rename", &dir))?;
        for extra in [WORK, MERGED] {
            let p = dir.join(extra);
            match std::fs::remove_dir_all(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove", &p)(e)),
            }
        }
        if let Some(note) = pending {
            self.store.set_pending(&entry, note)?;
        }
        self.store.commit(entry, key, active.parent.as_deref())?;
        Ok(())
    }
}

/// Whether an overlay with a whiteout can be mounted under `dir` (filesystem, privileges).
pub(crate) fn probe(dir: &Path) -> Result<(), SnapshotError> {
    probe_with(
        dir,
        |lower, upper, work, merged| {
            mount_overlay(&[lower.to_path_buf()], Some((upper, work)), merged)
                .map(|()| merged.to_path_buf())
        },
        |merged: PathBuf| {
            let _ = rustix::mount::unmount(&merged, rustix::mount::UnmountFlags::DETACH);
            Ok(())
        },
    )
}

/// The probe of an overlay driver: under a fresh directory in `dir`, a lower directory with a
/// file, an upper and a work directory; `mount(lower, upper, work, merged)`, the file removed
/// through the merged view (which needs a whiteout), then `unmount` of what `mount` returned.
pub(crate) fn probe_with<M>(
    dir: &Path,
    mount: impl FnOnce(&Path, &Path, &Path, &Path) -> Result<M, SnapshotError>,
    unmount: impl FnOnce(M) -> Result<(), SnapshotError>,
) -> Result<(), SnapshotError> {
    std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    let t = tempfile::Builder::new()
        .prefix(".probe-")
        .tempdir_in(dir)
        .map_err(io_err("create probe in", dir))?;
    let p = t.path();
    for d in ["l", UPPER, WORK, MERGED] {
        std::fs::create_dir(p.join(d)).map_err(io_err("create", p))?;
    }
    std::fs::write(p.join("l/f"), b"x").map_err(io_err("write", p))?;
    let merged = p.join(MERGED);
    let mounted = mount(&p.join("l"), &p.join(UPPER), &p.join(WORK), &merged)?;
    let removed = std::fs::remove_file(merged.join("f"));
    unmount(mounted)?;
    removed.map_err(io_err("remove in probe", p))?;
    Ok(())
}

/// Mounts an overlay of `lowers` (topmost first) on `target`, writable with `upper` (upper, work
/// directories), read-only without.
pub(crate) fn mount_overlay(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<(), SnapshotError> {
    let mount_err = |source: std::io::Error| SnapshotError::Mount {
        target: target.to_path_buf(),
        layers: lowers.len(),
        source,
    };
    match mount_fsconfig(lowers, upper, target) {
        Ok(()) => Ok(()),
        Err(Fallback::Unsupported) => mount_classic(lowers, upper, target).map_err(mount_err),
        Err(Fallback::Failed(e)) => Err(mount_err(e)),
    }
}

enum Fallback {
    Unsupported,
    Failed(std::io::Error),
}

/// The new mount API: every lower layer is its own `lowerdir+` parameter, so no option string
/// limits the chain (overlayfs itself stacks up to 500 layers).
fn mount_fsconfig(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<(), Fallback> {
    let failed = |e: rustix::io::Errno| Fallback::Failed(e.into());
    let fs = match rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) {
        Ok(fs) => fs,
        Err(rustix::io::Errno::NOSYS) => return Err(Fallback::Unsupported),
        Err(e) => return Err(failed(e)),
    };
    for (i, l) in lowers.iter().enumerate() {
        match rustix::mount::fsconfig_set_string(&fs, "lowerdir+", l.as_path()) {
            Ok(()) => {}
            // Kernels before 6.8 do not know `lowerdir+`.
            Err(rustix::io::Errno::INVAL) if i == 0 => return Err(Fallback::Unsupported),
            Err(e) => return Err(failed(e)),
        }
    }
    if let Some((u, w)) = upper {
        rustix::mount::fsconfig_set_string(&fs, "upperdir", u).map_err(failed)?;
        rustix::mount::fsconfig_set_string(&fs, "workdir", w).map_err(failed)?;
    }
    for (k, v) in options() {
        rustix::mount::fsconfig_set_string(&fs, *k, *v).map_err(failed)?;
    }
    if !crate::rootless::current().initial() {
        rustix::mount::fsconfig_set_flag(&fs, "userxattr").map_err(failed)?;
    }
    if upper.is_some() {
        // No sync of the upper filesystem at unmount (see `Store::forget_after_reboot`);
        // kernels before 5.10 do not know the option and sync as before.
        match rustix::mount::fsconfig_set_flag(&fs, "volatile") {
            Ok(()) | Err(rustix::io::Errno::INVAL) => {}
            Err(e) => return Err(failed(e)),
        }
    }
    rustix::mount::fsconfig_create(&fs).map_err(failed)?;
    let attrs = if upper.is_some() {
        MountAttrFlags::empty()
    } else {
        MountAttrFlags::MOUNT_ATTR_RDONLY
    };
    let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs).map_err(failed)?;
    rustix::mount::move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(failed)
}

/// `mount(2)` with the whole configuration in one option string, limited to a page.
fn mount_classic(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
) -> std::io::Result<()> {
    let mut data = String::from("lowerdir=");
    let lower: Vec<String> = lowers.iter().map(|l| l.display().to_string()).collect();
    data.push_str(&lower.join(":"));
    if let Some((u, w)) = upper {
        data.push_str(&format!(
            ",upperdir={},workdir={}",
            u.display(),
            w.display()
        ));
    }
    for (k, v) in options() {
        data.push_str(&format!(",{k}={v}"));
    }
    if !crate::rootless::current().initial() {
        data.push_str(",userxattr");
    }
    if data.len() >= 4096 {
        return Err(std::io::Error::other(format!(
            "the overlay options for {} layers exceed a page; this kernel lacks `lowerdir+` (Linux 6.8)",
            lowers.len()
        )));
    }
    let flags = if upper.is_some() {
        MountFlags::empty()
    } else {
        MountFlags::RDONLY
    };
    let plain = std::ffi::CString::new(data.clone()).map_err(std::io::Error::other)?;
    if upper.is_some() {
        // As in `mount_fsconfig`: `volatile` where the kernel knows it.
        let volatile = std::ffi::CString::new(data + ",volatile").map_err(std::io::Error::other)?;
        match rustix::mount::mount("overlay", target, "overlay", flags, volatile.as_c_str()) {
            Err(rustix::io::Errno::INVAL) => {}
            other => return other.map_err(Into::into),
        }
    }
    rustix::mount::mount("overlay", target, "overlay", flags, plain.as_c_str()).map_err(Into::into)
}

fn mkdirs(base: &Path, names: &[&str]) -> Result<(), SnapshotError> {
    for n in names {
        let p = base.join(n);
        std::fs::create_dir(&p).map_err(io_err("create", &p))?;
    }
    Ok(())
}

impl Snapshotter for OverlaySnapshotter {
    fn name(&self) -> &'static str {
        if self.fuse.is_some() {
            "fuse-overlayfs"
        } else {
            "overlayfs"
        }
    }

    fn prepare(&self, parent: Option<&str>) -> Result<Active, SnapshotError> {
        let lowers = match parent {
            Some(p) => self.store.chain(p)?,
            None => Vec::new(),
        };
        let entry = self.store.temp()?;
        let dir = entry.dir.clone();
        let mut active = Active {
            root: dir.join(UPPER),
            parent: parent.map(str::to_owned),
            entry: Some(entry),
            mounted: None,
            daemon: None,
            own: Some(dir.join(UPPER)),
        };
        if lowers.is_empty() {
            // Nothing below: the upper directory is the rootfs, no mount needed.
            mkdirs(&dir, &[UPPER])?;
            return Ok(active);
        }
        mkdirs(&dir, &[UPPER, WORK, MERGED])?;
        let merged = dir.join(MERGED);
        active.daemon = self.mount(&lowers, Some((&dir.join(UPPER), &dir.join(WORK))), &merged)?;
        active.root = merged.clone();
        active.mounted = Some(merged);
        Ok(active)
    }

    fn prepare_unmounted(&self, parent: Option<&str>) -> Result<Option<Active>, SnapshotError> {
        if let Some(p) = parent {
            self.store.require(p)?;
        }
        let entry = self.store.temp()?;
        let dir = entry.dir.clone();
        mkdirs(&dir, &[UPPER])?;
        Ok(Some(Active {
            root: dir.join(UPPER),
            parent: parent.map(str::to_owned),
            entry: Some(entry),
            mounted: None,
            daemon: None,
            own: Some(dir.join(UPPER)),
        }))
    }

    fn changes(&self, active: &Active) -> Result<Vec<Change>, SnapshotError> {
        let entry = self.entry_of(active)?;
        let lowers = match &active.parent {
            Some(p) => self.store.chain(p)?,
            None => Vec::new(),
        };
        overlay_changes(&entry.dir.join(UPPER), &lowers, self.fuse.is_some())
    }

    fn commit(&self, active: Active, key: &str) -> Result<(), SnapshotError> {
        self.commit_with(active, key, None)
    }

    fn commit_pending(&self, active: Active, key: &str, note: &[u8]) -> Result<(), SnapshotError> {
        if active.mounted.is_some() {
            return Err(SnapshotError::Io(crate::report::IoError {
                op: "commit an incomplete snapshot",
                path: active.root().to_path_buf(),
                source: std::io::Error::from(std::io::ErrorKind::Unsupported),
            }));
        }
        self.commit_with(active, key, Some(note))
    }

    fn complete(&self, key: &str, fill: CompleteFill<'_>) -> Result<(), SnapshotError> {
        self.store.complete(key, fill)
    }

    fn import(&self, key: &str, parent: Option<&str>, fill: Fill<'_>) -> Result<(), SnapshotError> {
        if self.store.exists(key) {
            return Ok(());
        }
        let entry = self.store.temp()?;
        mkdirs(&entry.dir, &[FS])?;
        let root = Root::open(entry.dir.join(FS))?;
        fill(&root, WhiteoutStyle::Overlay).map_err(|source| SnapshotError::Fill {
            key: key.to_owned(),
            source,
        })?;
        // After the fill: the layer's own directory does not need the parent's, and the layers
        // of a chain may be filled at the same time (`imports_are_independent`).
        if let Some(p) = parent {
            self.store.require(p)?;
        }
        self.store.commit(entry, key, parent)?;
        Ok(())
    }

    fn imports_are_independent(&self) -> bool {
        true
    }

    fn view(&self, key: &str) -> Result<View, SnapshotError> {
        let chain = self.store.chain(key)?;
        if chain.len() == 1 {
            // A base layer is its own full tree.
            return Ok(View {
                path: chain[0].clone(),
                _mount: None,
            });
        }
        let entry = self.store.temp()?;
        mkdirs(&entry.dir, &[MERGED])?;
        let merged = entry.dir.join(MERGED);
        let mut active = Active {
            root: merged.clone(),
            parent: Some(key.to_owned()),
            entry: Some(entry),
            mounted: None,
            daemon: None,
            own: None,
        };
        active.daemon = self.mount(&chain, None, &merged)?;
        active.mounted = Some(merged.clone());
        Ok(View {
            path: merged,
            _mount: Some(active),
        })
    }

    fn exists(&self, key: &str) -> bool {
        self.store.exists(key)
    }

    fn parent(&self, key: &str) -> Result<Option<String>, SnapshotError> {
        self.store.parent(key)
    }

    fn remove(&self, key: &str) -> Result<(), SnapshotError> {
        self.store.require(key)?;
        if let Some(child) = self.store.child_of(key)? {
            return Err(SnapshotError::InUse {
                key: key.to_owned(),
                child,
            });
        }
        self.store.remove(key)
    }
}
