//! Users and groups of a container root filesystem, read from its `/etc/passwd` and `/etc/group`
//! through a [`Root`]. Never asks the host's user database (NSS).
//!
//! [`UserDb::resolve_chown`] resolves `COPY --chown` / `ADD --chown` values as BuildKit does:
//! `user[:group]`, each part numeric or a name; a numeric user without a group also gives the
//! group (`--chown=1000` is `1000:1000`), a named user without a group gives the user's primary
//! group from `/etc/passwd`. A name that is not found is an error naming the file.
//!
//! Parsing is lenient like moby's `user` package: blank lines, `#` comments and malformed lines
//! are skipped.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::fsroot::Root;

/// The passwd file inside a root filesystem.
pub const PASSWD: &str = "/etc/passwd";
/// The group file inside a root filesystem.
pub const GROUP: &str = "/etc/group";

/// An entry of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory.
    pub home: String,
    /// Login shell.
    pub shell: String,
}

/// An entry of `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// Group id.
    pub gid: u32,
    /// Member user names.
    pub members: Vec<String>,
}

/// An error resolving a user or group.
#[derive(Debug, thiserror::Error)]
pub enum UserDbError {
    /// A user file exists but cannot be read.
    #[error("cannot read {path}")]
    Read {
        /// The file inside the root filesystem.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A user name is not in `/etc/passwd`.
    #[error("unable to find user {name}: no matching entries in passwd file {file}")]
    UnknownUser {
        /// The name asked for.
        name: String,
        /// The file searched.
        file: &'static str,
    },
    /// A group name is not in `/etc/group`.
    #[error("unable to find group {name}: no matching entries in group file {file}")]
    UnknownGroup {
        /// The name asked for.
        name: String,
        /// The file searched.
        file: &'static str,
    },
    /// The value is empty or has an empty part.
    #[error("invalid user or group specification {0:?}")]
    Invalid(String),
}

/// The users and groups of one root filesystem.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserDb {
    /// Entries of `/etc/passwd`, in file order.
    pub users: Vec<User>,
    /// Entries of `/etc/group`, in file order.
    pub groups: Vec<Group>,
}

fn read_in_root(root: &Root, path: &str) -> Result<Option<String>, UserDbError> {
    let mut file = match root.open_file(Path::new(path)) {
        Ok(f) => f,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => {
            return Err(UserDbError::Read {
                path: path.into(),
                source: e.source,
            });
        }
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|source| UserDbError::Read {
            path: path.into(),
            source,
        })?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

fn lines(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect())
}

impl UserDb {
    /// Reads `/etc/passwd` and `/etc/group` of `root`; missing files give no entries.
    pub fn load(root: &Root) -> Result<Self, UserDbError> {
        let passwd = read_in_root(root, PASSWD)?.unwrap_or_default();
        let group = read_in_root(root, GROUP)?.unwrap_or_default();
        Ok(Self::parse(&passwd, &group))
    }

    /// Parses the contents of a passwd and a group file.
    pub fn parse(passwd: &str, group: &str) -> Self {
        let users = lines(passwd)
            .filter_map(|f| {
                Some(User {
                    name: f.first()?.to_string(),
                    uid: f.get(2)?.parse().ok()?,
                    gid: f.get(3)?.parse().ok()?,
                    home: f.get(5).unwrap_or(&"").to_string(),
                    shell: f.get(6).unwrap_or(&"").to_string(),
                })
            })
            .collect();
        let groups = lines(group)
            .filter_map(|f| {
                Some(Group {
                    name: f.first()?.to_string(),
                    gid: f.get(2)?.parse().ok()?,
                    members: f
                        .get(3)
                        .map(|m| {
                            m.split(',')
                                .map(str::trim)
                                .filter(|s| !s.is_empty())
                                .map(String::from)
                                .collect()
                        })
                        .unwrap_or_default(),
                })
            })
            .collect();
        Self { users, groups }
    }

    /// The first user with this name.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    /// The first group with this name.
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// Resolves a `--chown` value to `(uid, gid)` (see the module docs).
    pub fn resolve_chown(&self, spec: &str) -> Result<(u32, u32), UserDbError> {
        let (user, group) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        if user.is_empty() || group == Some("") {
            return Err(UserDbError::Invalid(spec.to_string()));
        }
        let (uid, mut gid) = match parse_id(user) {
            Some(id) => (id, id),
            None => {
                let u = self.user(user).ok_or_else(|| UserDbError::UnknownUser {
                    name: user.to_string(),
                    file: PASSWD,
                })?;
                (u.uid, u.gid)
            }
        };
        if let Some(group) = group {
            gid = match parse_id(group) {
                Some(id) => id,
                None => {
                    self.group(group)
                        .ok_or_else(|| UserDbError::UnknownGroup {
                            name: group.to_string(),
                            file: GROUP,
                        })?
                        .gid
                }
            };
        }
        Ok((uid, gid))
    }

    /// Whether resolving `spec` needs the user database (it names a user or group).
    pub fn chown_needs_lookup(spec: &str) -> bool {
        spec.split(':').any(|p| parse_id(p).is_none())
    }
}

fn parse_id(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD_FILE: &str = "root:x:0:0:root:/root:/bin/sh\n\
        # comment\n\
        \n\
        app:x:1000:1001:App:/home/app:/bin/sh\n\
        broken line\n\
        nogid:x:1002\n\
        www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n";
    const GROUP_FILE: &str = "root:x:0:\nstaff:x:50:app,www-data\napp:x:1001:\n";

    #[test]
    fn chown_resolution_table() {
        let db = UserDb::parse(PASSWD_FILE, GROUP_FILE);
        type Case = (&'static str, Result<(u32, u32), &'static str>);
        let cases: &[Case] = &[
            ("0", Ok((0, 0))),
            ("1000", Ok((1000, 1000))),
            ("1000:50", Ok((1000, 50))),
            ("app", Ok((1000, 1001))),
            ("app:staff", Ok((1000, 50))),
            ("app:0", Ok((1000, 0))),
            ("33:app", Ok((33, 1001))),
            ("www-data", Ok((33, 33))),
            (
                "nobody",
                Err("unable to find user nobody: no matching entries in passwd file /etc/passwd"),
            ),
            (
                "app:nogroup",
                Err("unable to find group nogroup: no matching entries in group file /etc/group"),
            ),
            (
                "nogid",
                Err("unable to find user nogid: no matching entries in passwd file /etc/passwd"),
            ),
            ("", Err("invalid user or group specification \"\"")),
            (":50", Err("invalid user or group specification \":50\"")),
            ("app:", Err("invalid user or group specification \"app:\"")),
            (
                "99999999999",
                Err(
                    "unable to find user 99999999999: no matching entries in passwd file /etc/passwd",
                ),
            ),
        ];
        for (spec, want) in cases {
            let got = db.resolve_chown(spec).map_err(|e| e.to_string());
            assert_eq!(got, want.map_err(String::from), "{spec:?}");
        }
        assert!(!UserDb::chown_needs_lookup("1:2"));
        assert!(UserDb::chown_needs_lookup("1:staff"));
    }

    #[test]
    fn reads_the_roots_files_not_the_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        // No /etc at all: names fail, numbers pass.
        let db = UserDb::load(&root).unwrap();
        assert!(db.resolve_chown("root").is_err());
        assert_eq!(db.resolve_chown("5:6").unwrap(), (5, 6));
        // /etc is a symlink to "/etc": resolved inside the root it points at itself, a loop,
        // never at the host's files.
        std::os::unix::fs::symlink("/etc", dir.path().join("etc")).unwrap();
        let err = UserDb::load(&root).unwrap_err().to_string();
        assert!(err.contains("/etc/passwd"), "{err}");
        // An absolute link elsewhere resolves inside the root too.
        std::fs::remove_file(dir.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/data", dir.path().join("etc")).unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/passwd"), "builder:x:7:8::/:/bin/sh\n").unwrap();
        let db = UserDb::load(&root).unwrap();
        assert_eq!(db.resolve_chown("builder").unwrap(), (7, 8));
        assert!(db.resolve_chown("root").is_err());
    }
}
