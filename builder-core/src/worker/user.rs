//! `USER` resolution for RUN, with Docker's rules, from the rootfs's own `/etc/passwd` and
//! `/etc/group` (never the host's user database).
//!
//! - empty: root (0:0);
//! - a name: its uid and primary gid from `/etc/passwd`, an error when it is not there;
//! - a number: that uid, with the primary gid of a passwd entry that has it, else gid 0;
//! - `user:group`: the group by name or number replaces the primary gid;
//! - supplementary groups: every group in `/etc/group` that lists the user's name, unless a group
//!   was given explicitly.

use crate::exec::User;
use crate::fsroot::Root;
use crate::userdb::{UserDb, UserDbError};

fn parse_id(s: &str) -> Option<u32> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Resolves a USER value inside `root`.
pub fn resolve_user(root: &Root, spec: &str) -> Result<User, UserDbError> {
    if spec.is_empty() {
        return Ok(User::default());
    }
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() || group == Some("") {
        return Err(UserDbError::Invalid(spec.to_string()));
    }
    let needs_db = parse_id(user).is_none() || group.is_some_and(|g| parse_id(g).is_none());
    // A missing /etc/passwd only matters when a name must be looked up.
    let db = match UserDb::load(root) {
        Ok(db) => db,
        Err(e) if needs_db => return Err(e),
        Err(_) => UserDb::default(),
    };
    let (uid, mut gid, name) = match parse_id(user) {
        Some(uid) => {
            let entry = db.users.iter().find(|u| u.uid == uid);
            (
                uid,
                entry.map_or(0, |u| u.gid),
                entry.map(|u| u.name.clone()),
            )
        }
        None => {
            let u = db.user(user).ok_or_else(|| UserDbError::UnknownUser {
                name: user.to_string(),
                file: crate::userdb::PASSWD,
            })?;
            (u.uid, u.gid, Some(u.name.clone()))
        }
    };
    let mut additional_gids = Vec::new();
    match group {
        Some(g) => {
            gid = match parse_id(g) {
                Some(id) => id,
                None => {
                    db.group(g)
                        .ok_or_else(|| UserDbError::UnknownGroup {
                            name: g.to_string(),
                            file: crate::userdb::GROUP,
                        })?
                        .gid
                }
            };
        }
        None => {
            if let Some(name) = name {
                for grp in &db.groups {
                    if grp.members.iter().any(|m| m == &name)
                        && grp.gid != gid
                        && !additional_gids.contains(&grp.gid)
                    {
                        additional_gids.push(grp.gid);
                    }
                }
            }
        }
    }
    Ok(User {
        uid,
        gid,
        additional_gids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with(passwd: &str, group: &str) -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/passwd"), passwd).unwrap();
        std::fs::write(dir.path().join("etc/group"), group).unwrap();
        let root = Root::open(dir.path()).unwrap();
        (dir, root)
    }

    #[test]
    fn docker_user_rules() {
        let (_d, root) = root_with(
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
            "root:x:0:\napp:x:1001:\nwheel:x:10:app,other\n",
        );
        assert_eq!(resolve_user(&root, "").unwrap(), User::default());
        assert_eq!(
            resolve_user(&root, "app").unwrap(),
            User {
                uid: 1000,
                gid: 1001,
                additional_gids: vec![10]
            }
        );
        assert_eq!(
            resolve_user(&root, "1000").unwrap(),
            User {
                uid: 1000,
                gid: 1001,
                additional_gids: vec![10]
            }
        );
        assert_eq!(
            resolve_user(&root, "4242").unwrap(),
            User {
                uid: 4242,
                gid: 0,
                additional_gids: vec![]
            }
        );
        assert_eq!(
            resolve_user(&root, "app:wheel").unwrap(),
            User {
                uid: 1000,
                gid: 10,
                additional_gids: vec![]
            }
        );
        assert_eq!(
            resolve_user(&root, "1:2").unwrap(),
            User {
                uid: 1,
                gid: 2,
                additional_gids: vec![]
            }
        );
        let err = resolve_user(&root, "nobody").unwrap_err();
        assert!(err.to_string().contains("nobody"), "{err}");
        assert!(resolve_user(&root, "app:nogroup").is_err());
    }

    #[test]
    fn numeric_user_needs_no_passwd_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        assert_eq!(
            resolve_user(&root, "7:8").unwrap(),
            User {
                uid: 7,
                gid: 8,
                additional_gids: vec![]
            }
        );
        assert!(resolve_user(&root, "app").is_err());
    }
}
