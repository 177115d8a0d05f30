//! What the person running a build sets for every RUN step besides the Dockerfile: extra
//! `/etc/hosts` entries (`--add-host`), the size of `/dev/shm` (`--shm-size`) and resource limits
//! (`--ulimit`), with Docker's syntax. They change what a step can do, so they are part of its
//! cache key (as in BuildKit, where they are fields of the exec op).

use std::net::IpAddr;

/// `--add-host`, `--shm-size` and `--ulimit`, as a step gets them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct StepSettings {
    /// Extra `/etc/hosts` lines, in order: `(name, address)`.
    pub extra_hosts: Vec<(String, IpAddr)>,
    /// Size of `/dev/shm` in bytes; 64 MiB when unset (Docker's default).
    pub shm_size: Option<u64>,
    /// Resource limits set before the command starts.
    pub ulimits: Vec<Ulimit>,
}

impl StepSettings {
    /// Whether nothing is set (the default every step had before these flags existed).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Adds one `--add-host NAME:IP` (or `NAME=IP`, as buildx also accepts).
    pub fn add_host(&mut self, spec: &str) -> Result<(), String> {
        let (name, addr) = spec
            .split_once('=')
            .or_else(|| spec.split_once(':'))
            .ok_or_else(|| format!("{spec:?}: expected NAME:IP"))?;
        if name.is_empty()
            || name.len() > 253
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        {
            return Err(format!("{spec:?}: {name:?} is not a host name"));
        }
        if addr == "host-gateway" {
            return Err(format!(
                "{spec:?}: host-gateway is not supported: RUN steps do not reach the host's own services (use --network host, or the host's address)"
            ));
        }
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("{spec:?}: {addr:?} is not an IP address"))?;
        self.extra_hosts.push((name.to_owned(), ip));
        Ok(())
    }

    /// Sets `--shm-size` from Docker's size syntax (`64m`, `1g`, `1048576`).
    pub fn set_shm_size(&mut self, spec: &str) -> Result<(), String> {
        let size = parse_size(spec)
            .ok_or_else(|| format!("{spec:?}: expected a size such as 64m or 1g"))?;
        if size == 0 {
            return Err(format!("{spec:?}: the size must be above zero"));
        }
        self.shm_size = Some(size);
        Ok(())
    }

    /// Adds one `--ulimit NAME=SOFT[:HARD]` (`-1` for unlimited). A later one for the same
    /// resource replaces the earlier.
    pub fn add_ulimit(&mut self, spec: &str) -> Result<(), String> {
        let u = Ulimit::parse(spec)?;
        self.ulimits.retain(|o| o.name != u.name);
        self.ulimits.push(u);
        Ok(())
    }

    /// `/etc/hosts` lines for the extra hosts.
    pub(crate) fn hosts_lines(&self) -> String {
        self.extra_hosts
            .iter()
            .map(|(name, ip)| format!("{ip}\t{name}\n"))
            .collect()
    }
}

/// A resource limit, `RLIMIT_<NAME>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Ulimit {
    /// Docker's name: `nofile`, `nproc`, `core`, ...
    pub name: String,
    /// Soft limit; `u64::MAX` is unlimited.
    pub soft: u64,
    /// Hard limit; `u64::MAX` is unlimited.
    pub hard: u64,
}

/// Docker's ulimit names and their resources.
const RESOURCES: &[(&str, i32)] = &[
    ("core", libc::RLIMIT_CORE as i32),
    ("cpu", libc::RLIMIT_CPU as i32),
    ("data", libc::RLIMIT_DATA as i32),
    ("fsize", libc::RLIMIT_FSIZE as i32),
    ("locks", libc::RLIMIT_LOCKS as i32),
    ("memlock", libc::RLIMIT_MEMLOCK as i32),
    ("msgqueue", libc::RLIMIT_MSGQUEUE as i32),
    ("nice", libc::RLIMIT_NICE as i32),
    ("nofile", libc::RLIMIT_NOFILE as i32),
    ("nproc", libc::RLIMIT_NPROC as i32),
    ("rss", libc::RLIMIT_RSS as i32),
    ("rtprio", libc::RLIMIT_RTPRIO as i32),
    ("rttime", libc::RLIMIT_RTTIME as i32),
    ("sigpending", libc::RLIMIT_SIGPENDING as i32),
    ("stack", libc::RLIMIT_STACK as i32),
];

impl Ulimit {
    /// Parses `NAME=SOFT[:HARD]` (`-1` for unlimited; HARD defaults to SOFT).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (name, values) = spec
            .split_once('=')
            .ok_or_else(|| format!("{spec:?}: expected NAME=SOFT[:HARD]"))?;
        if !RESOURCES.iter().any(|(n, _)| *n == name) {
            let known: Vec<&str> = RESOURCES.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "{spec:?}: unknown limit {name:?} (known: {})",
                known.join(", ")
            ));
        }
        let value = |v: &str| -> Result<u64, String> {
            if v == "-1" {
                return Ok(u64::MAX);
            }
            v.parse()
                .map_err(|_| format!("{spec:?}: {v:?} is not a number or -1"))
        };
        let (soft, hard) = match values.split_once(':') {
            Some((s, h)) => (value(s)?, value(h)?),
            None => {
                let v = value(values)?;
                (v, v)
            }
        };
        if soft > hard {
            return Err(format!("{spec:?}: the soft limit is above the hard limit"));
        }
        Ok(Ulimit {
            name: name.to_owned(),
            soft,
            hard,
        })
    }

    /// The `RLIMIT_*` number.
    pub(crate) fn resource(&self) -> Option<i32> {
        RESOURCES
            .iter()
            .find(|(n, _)| *n == self.name)
            .map(|(_, r)| *r)
    }

    /// The OCI name (`RLIMIT_NOFILE`).
    pub(crate) fn oci_name(&self) -> String {
        format!("RLIMIT_{}", self.name.to_ascii_uppercase())
    }
}

/// Docker's size syntax: a number with an optional `b`, `k`, `m`, `g` (powers of 1024), any case,
/// with or without a trailing `b` (`64m`, `64mb`, `1G`).
pub(crate) fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (digits, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        't' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_syntax() {
        let mut s = StepSettings::default();
        s.add_host("db:10.1.2.3").unwrap();
        s.add_host("v6=fd00::1").unwrap();
        s.add_host("v6b:[fd00::2]").unwrap();
        assert_eq!(s.hosts_lines(), "10.1.2.3\tdb\nfd00::1\tv6\nfd00::2\tv6b\n");
        for bad in [
            "nocolon",
            ":1.2.3.4",
            "a b:1.2.3.4",
            "x:999.1.1.1",
            "x:host-gateway",
        ] {
            assert!(s.add_host(bad).is_err(), "{bad}");
        }
        s.set_shm_size("128m").unwrap();
        assert_eq!(s.shm_size, Some(128 << 20));
        assert!(s.set_shm_size("lots").is_err());
        assert!(s.set_shm_size("0").is_err());
        s.add_ulimit("nofile=1024:2048").unwrap();
        s.add_ulimit("nproc=-1").unwrap();
        s.add_ulimit("nofile=512").unwrap();
        assert_eq!(
            s.ulimits,
            vec![
                Ulimit {
                    name: "nproc".into(),
                    soft: u64::MAX,
                    hard: u64::MAX
                },
                Ulimit {
                    name: "nofile".into(),
                    soft: 512,
                    hard: 512
                },
            ]
        );
        for bad in ["nofile", "files=1", "nofile=2:1", "nofile=x"] {
            assert!(Ulimit::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_size("1GB"), Some(1 << 30));
        assert_eq!(parse_size("4096"), Some(4096));
    }
}
