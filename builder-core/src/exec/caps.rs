//! Docker's default capability set, which a RUN step keeps; everything else is dropped from the
//! bounding set.

use rustix::thread::CapabilitySet;

/// Docker's default capabilities, as (bit number, OCI name).
pub(crate) const DEFAULT_CAPS: &[(u32, &str)] = &[
    (0, "CAP_CHOWN"),
    (1, "CAP_DAC_OVERRIDE"),
    (3, "CAP_FOWNER"),
    (4, "CAP_FSETID"),
    (5, "CAP_KILL"),
    (6, "CAP_SETGID"),
    (7, "CAP_SETUID"),
    (8, "CAP_SETPCAP"),
    (10, "CAP_NET_BIND_SERVICE"),
    (13, "CAP_NET_RAW"),
    (18, "CAP_SYS_CHROOT"),
    (27, "CAP_MKNOD"),
    (29, "CAP_AUDIT_WRITE"),
    (31, "CAP_SETFCAP"),
];

/// Every capability this crate knows by name, in bit order, for `RUN --security=insecure` under
/// an OCI runtime.
const ALL_NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// OCI names of every capability this process may still hand on (its bounding set): an
/// insecure step gets all of them, as a privileged container does.
pub(crate) fn all_names() -> Vec<String> {
    ALL_NAMES
        .iter()
        .enumerate()
        .filter(|(bit, _)| {
            rustix::thread::capability_is_in_bounding_set(CapabilitySet::from_bits_retain(
                1u64 << bit,
            ))
            .unwrap_or(false)
        })
        .map(|(_, n)| (*n).to_owned())
        .collect()
}

/// The default set as a bit set.
pub(crate) fn default_set() -> CapabilitySet {
    let bits = DEFAULT_CAPS
        .iter()
        .fold(0u64, |acc, (bit, _)| acc | (1u64 << bit));
    CapabilitySet::from_bits_retain(bits)
}

/// OCI names of the default set.
pub(crate) fn default_names() -> Vec<String> {
    DEFAULT_CAPS.iter().map(|(_, n)| (*n).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_match_names() {
        let set = default_set();
        assert!(set.contains(CapabilitySet::CHOWN));
        assert!(set.contains(CapabilitySet::SETFCAP));
        assert!(set.contains(CapabilitySet::NET_RAW));
        assert!(set.contains(CapabilitySet::AUDIT_WRITE));
        assert!(set.contains(CapabilitySet::SYS_CHROOT));
        assert!(set.contains(CapabilitySet::MKNOD));
        assert!(!set.contains(CapabilitySet::SYS_ADMIN));
        assert_eq!(set.bits().count_ones() as usize, DEFAULT_CAPS.len());
    }
}
