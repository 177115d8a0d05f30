//! kiln's own mount namespace: the snapshot overlays and step rootfs mounts it makes never reach
//! the host's mount table.

use rustix::thread::UnshareFlags;

use super::helper::single_threaded;

/// Moves this process into a mount namespace of its own, so every mount it makes (snapshot
/// overlays, the rootfs of a step) is invisible to the host and disappears with the process, even
/// when it is killed with SIGKILL. Mounts made on the host later still propagate in (`rslave`).
///
/// Call it first thing in `main()` (after [`super::sandbox_main_if_requested`]), before any thread
/// exists: the kernel refuses a new mount namespace to a process whose threads share its
/// filesystem context. It does nothing when not root (the rootless sandbox has its own user and
/// mount namespaces per step) or when the kernel refuses (inside a container without
/// `CAP_SYS_ADMIN`); returns whether the process is now isolated.
pub fn isolate_mounts() -> bool {
    if !rustix::process::geteuid().is_root() {
        return false;
    }
    if !matches!(single_threaded(), Ok(true)) {
        tracing::warn!("isolate_mounts called from a multi-threaded process; mounts stay shared");
        return false;
    }
    // SAFETY: no CLONE_FILES, and the process is single-threaded (checked above).
    if let Err(e) = unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNS) } {
        tracing::debug!(
            "no private mount namespace: {e}",
            e = crate::report::chain(&e)
        );
        return false;
    }
    // The new namespace starts with the host's propagation: make it receive but never send.
    match rustix::mount::mount_change(
        "/",
        rustix::mount::MountPropagationFlags::DOWNSTREAM
            | rustix::mount::MountPropagationFlags::REC,
    ) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(
                "cannot make the private mount namespace a slave of the host's: {e}",
                e = crate::report::chain(&e)
            );
            false
        }
    }
}
