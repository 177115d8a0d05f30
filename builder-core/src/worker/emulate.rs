//! Running binaries of another platform: the host's binfmt_misc registrations (Debian's
//! `qemu-user-static` registers one per architecture) make the kernel start an emulator for them.
//! A registration with the `F` flag has its interpreter opened by the kernel when it was
//! registered, so it works inside any mount namespace; one without it is looked up by path inside
//! the step's rootfs when the step execs, so the worker binds the interpreter there read-only, as
//! BuildKit's QEMU support does.
//!
//! A registration is found the way the kernel finds it: by matching its magic and mask against the
//! ELF header a binary of the platform starts with, not by guessing its name.

use std::path::{Path, PathBuf};

use crate::image::Platform;

/// Where binfmt_misc lives.
pub const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";

/// An enabled binfmt_misc registration that runs binaries of some platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emulator {
    /// The registration's name (`qemu-aarch64`).
    pub name: String,
    /// The interpreter the kernel starts (`/usr/libexec/qemu-binfmt/aarch64-binfmt-P`).
    pub interpreter: PathBuf,
    /// The `F` flag: the kernel holds the interpreter open, no path lookup at exec time.
    pub fix_binary: bool,
    /// The interpreters to bind into a step's rootfs: those of every matching registration
    /// without `F` (the kernel uses the newest registration, which `/proc` does not tell).
    pub binds: Vec<PathBuf>,
}

/// Why a foreign platform's RUN cannot run.
#[derive(Debug, thiserror::Error)]
pub enum EmulationError {
    /// No enabled binfmt_misc registration runs the platform's binaries.
    #[error(
        "cannot run RUN steps for {platform} on this {host} machine: no emulator for {platform} is registered with binfmt_misc ({reason}); install one, e.g. `apt-get install qemu-user-static binfmt-support` (and `update-binfmts --enable`), or build for {host}"
    )]
    NoEmulator {
        /// The platform asked for.
        platform: String,
        /// The host's platform.
        host: String,
        /// What was looked at.
        reason: String,
    },
}

/// The ELF header (first 20 bytes) a Linux binary of `platform` starts with, or `None` for an
/// architecture kiln does not know.
pub fn elf_header(platform: &Platform) -> Option<[u8; 20]> {
    let p = platform.normalized();
    // (64-bit, big-endian, e_machine)
    let (wide, big, machine): (bool, bool, u16) = match p.architecture.as_str() {
        "amd64" => (true, false, 62),
        "386" => (false, false, 3),
        "arm64" => (true, false, 183),
        "arm" => (false, false, 40),
        "ppc64le" => (true, false, 21),
        "ppc64" => (true, true, 21),
        "s390x" => (true, true, 22),
        "riscv64" => (true, false, 243),
        "mips64le" => (true, false, 8),
        "mips64" => (true, true, 8),
        "mipsle" => (false, false, 8),
        "mips" => (false, true, 8),
        "loong64" => (true, false, 258),
        _ => return None,
    };
    let mut h = [0u8; 20];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = if wide { 2 } else { 1 };
    h[5] = if big { 2 } else { 1 };
    h[6] = 1;
    let (e_type, e_machine) = if big {
        (2u16.to_be_bytes(), machine.to_be_bytes())
    } else {
        (2u16.to_le_bytes(), machine.to_le_bytes())
    };
    h[16..18].copy_from_slice(&e_type);
    h[18..20].copy_from_slice(&e_machine);
    Some(h)
}

/// One parsed registration file.
#[derive(Debug, Default)]
struct Entry {
    enabled: bool,
    interpreter: Option<PathBuf>,
    flags: String,
    offset: usize,
    magic: Option<Vec<u8>>,
    mask: Option<Vec<u8>>,
}

fn parse_entry(text: &str) -> Entry {
    let mut e = Entry::default();
    for line in text.lines() {
        let line = line.trim();
        if line == "enabled" {
            e.enabled = true;
        } else if let Some(v) = line.strip_prefix("interpreter ") {
            e.interpreter = Some(PathBuf::from(v.trim()));
        } else if let Some(v) = line.strip_prefix("flags:") {
            e.flags = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("offset ") {
            e.offset = v.trim().parse().unwrap_or(usize::MAX);
        } else if let Some(v) = line.strip_prefix("magic ") {
            e.magic = hex::decode(v.trim()).ok();
        } else if let Some(v) = line.strip_prefix("mask ") {
            e.mask = hex::decode(v.trim()).ok();
        }
    }
    e
}

fn entry_matches(e: &Entry, header: &[u8]) -> bool {
    let Some(magic) = &e.magic else {
        return false;
    };
    let Some(window) = e
        .offset
        .checked_add(magic.len())
        .and_then(|end| header.get(e.offset..end))
    else {
        return false;
    };
    window.iter().enumerate().all(|(i, b)| {
        let m = e
            .mask
            .as_ref()
            .and_then(|m| m.get(i))
            .copied()
            .unwrap_or(0xff);
        b & m == magic[i] & m
    })
}

/// The enabled registration in `dir` that runs binaries of `platform`. Unreadable entries are
/// skipped; `Err` says why nothing was found.
pub fn find_in(dir: &Path, platform: &Platform) -> Result<Emulator, String> {
    let header =
        elf_header(platform).ok_or_else(|| "kiln does not know its binary format".to_string())?;
    let status = std::fs::read_to_string(dir.join("status")).map_err(|e| {
        format!(
            "{} is not mounted: {e}",
            dir.display(),
            e = crate::report::chain(&e)
        )
    })?;
    if status.trim() != "enabled" {
        return Err(format!("binfmt_misc is disabled ({})", dir.display()));
    }
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display(), e = crate::report::chain(&e)))?;
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n != "status" && n != "register")
        .collect();
    names.sort();
    let mut found: Option<Emulator> = None;
    let mut binds = Vec::new();
    for name in names {
        let Ok(text) = std::fs::read_to_string(dir.join(&name)) else {
            continue;
        };
        let entry = parse_entry(&text);
        if !entry.enabled || !entry_matches(&entry, &header) {
            continue;
        }
        let Some(interpreter) = entry.interpreter else {
            continue;
        };
        let fix_binary = entry.flags.contains('F');
        if !fix_binary && !binds.contains(&interpreter) {
            binds.push(interpreter.clone());
        }
        found.get_or_insert(Emulator {
            name,
            interpreter,
            fix_binary,
            binds: Vec::new(),
        });
    }
    match found {
        Some(mut e) => {
            e.binds = binds;
            Ok(e)
        }
        None => Err(format!("no enabled entry in {} matches", dir.display())),
    }
}

/// The emulator for a RUN of `platform` on this machine: `None` when the platform runs natively.
pub fn emulator_for(platform: &Platform) -> Result<Option<Emulator>, EmulationError> {
    // A config that names no architecture says nothing to check: the kernel decides.
    if platform.is_native() || platform.architecture.is_empty() {
        return Ok(None);
    }
    find_in(Path::new(BINFMT_DIR), platform)
        .map(Some)
        .map_err(|reason| EmulationError::NoEmulator {
            platform: platform.normalized().to_string(),
            host: Platform::host().to_string(),
            reason,
        })
}

/// The platforms this machine runs through an emulator, for `kiln info`-style reports.
pub fn emulated_platforms() -> Vec<Platform> {
    [
        "linux/amd64",
        "linux/386",
        "linux/arm64",
        "linux/arm/v7",
        "linux/arm/v6",
        "linux/ppc64le",
        "linux/s390x",
        "linux/riscv64",
        "linux/mips64le",
        "linux/loong64",
    ]
    .iter()
    .filter_map(|s| Platform::parse(s))
    .filter(|p| !p.is_native() && emulator_for(p).is_ok())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(entries: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("status"), "enabled\n").unwrap();
        std::fs::write(dir.path().join("register"), "").unwrap();
        for (name, text) in entries {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    // What Debian's qemu-user-static registers for aarch64 and arm.
    const AARCH64: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POCF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";
    const ARM: &str = "enabled\ninterpreter /usr/bin/qemu-arm-static\nflags: OC\noffset 0\nmagic 7f454c4601010100000000000000000002002800\nmask ffffffffffffff00fffffffffffffffffeffffff\n";

    #[test]
    fn finds_the_registration_by_its_magic_not_its_name() {
        let dir = registry(&[("a", AARCH64), ("b", ARM)]);
        let arm64 = find_in(dir.path(), &Platform::parse("linux/arm64").unwrap()).unwrap();
        assert_eq!(arm64.name, "a");
        assert!(arm64.fix_binary);
        assert!(arm64.binds.is_empty());
        let arm = find_in(dir.path(), &Platform::parse("linux/arm/v7").unwrap()).unwrap();
        assert_eq!(arm.interpreter, Path::new("/usr/bin/qemu-arm-static"));
        assert!(!arm.fix_binary);
        assert_eq!(arm.binds, [Path::new("/usr/bin/qemu-arm-static")]);
        let err = find_in(dir.path(), &Platform::parse("linux/s390x").unwrap()).unwrap_err();
        assert!(err.contains("no enabled entry"), "{err}");
    }

    #[test]
    fn every_matching_registration_without_f_is_bound() {
        let other = AARCH64.replace("flags: POCF", "flags: ").replace(
            "/usr/libexec/qemu-binfmt/aarch64-binfmt-P",
            "/opt/qemu-aarch64",
        );
        let dir = registry(&[("a", AARCH64), ("b", &other)]);
        let e = find_in(dir.path(), &Platform::parse("linux/arm64").unwrap()).unwrap();
        assert_eq!(e.binds, [Path::new("/opt/qemu-aarch64")]);
    }

    #[test]
    fn disabled_or_unmounted_registrations_are_not_used() {
        let dir = registry(&[("qemu-aarch64", &AARCH64.replace("enabled\n", "disabled\n"))]);
        assert!(find_in(dir.path(), &Platform::parse("linux/arm64").unwrap()).is_err());
        let empty = tempfile::tempdir().unwrap();
        let err = find_in(empty.path(), &Platform::parse("linux/arm64").unwrap()).unwrap_err();
        assert!(err.contains("not mounted"), "{err}");
    }

    #[test]
    fn the_missing_emulator_error_names_the_platform_and_the_package() {
        let err = EmulationError::NoEmulator {
            platform: "linux/arm64".into(),
            host: "linux/amd64".into(),
            reason: "no enabled entry".into(),
        }
        .to_string();
        assert!(
            err.contains("linux/arm64") && err.contains("qemu-user-static"),
            "{err}"
        );
        assert!(!err.contains("exec format error"));
    }

    #[test]
    fn host_binaries_need_no_emulator() {
        assert_eq!(emulator_for(&Platform::host()).unwrap(), None);
        let own = std::fs::read("/proc/self/exe").unwrap();
        assert_eq!(&own[..4], b"\x7fELF");
        let header = elf_header(&Platform::host()).unwrap();
        // The running binary's class, byte order and machine are what the host header says.
        assert_eq!(own[4..6], header[4..6]);
        assert_eq!(own[18..20], header[18..20]);
    }
}
