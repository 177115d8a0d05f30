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
