//! `COPY --chmod` / `ADD --chmod` modes, parsed and applied as BuildKit does.
//!
//! A value that parses as an octal number (`755`, `0644`) must be at most `07777` and replaces
//! the permission bits, setuid, setgid and sticky included. Anything else is a symbolic mode in
//! the syntax of BSD `chmod(1)` (BuildKit uses a Go port of BSD's `setmode(3)`), applied with a
//! umask of 0: clauses separated by `,`, each `[ugoa]*` followed by one or more operators `+`,
//! `-`, `=` with permissions from `rwxXst` or a class to copy (`u`, `g`, `o`). `X` adds execute
//! only to directories and to files that had an execute bit before the change; `s` and `t` are
//! ignored for `o` alone. Quirks of BSD's algorithm are kept (e.g. `+t` combined with other
//! permissions in one clause sets only the sticky bit).
//!
//! Pure: no I/O.

/// An invalid `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChmodError {
    /// An octal value above `07777`, or digits that are not octal.
    #[error("invalid chmod parameter: '{0}'. it should be octal string and between 0 and 07777")]
    Octal(String),
    /// A symbolic mode that does not parse.
    #[error("invalid chmod parameter: '{0}'")]
    Symbolic(String),
}

const S_ISUID: u32 = 0o4000;
const S_ISGID: u32 = 0o2000;
const S_ISVTX: u32 = 0o1000;
const RWXU: u32 = 0o700;
const RWXG: u32 = 0o070;
const RWXO: u32 = 0o007;
const STANDARD: u32 = S_ISUID | S_ISGID | RWXU | RWXG | RWXO;
const READ: u32 = 0o444;
const WRITE: u32 = 0o222;
const EXEC: u32 = 0o111;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Set(u32),
    Clear(u32),
    /// Execute bits added when the original mode had one or the entry is a directory.
    SetX(u32),
    /// Copy the permissions of a class (`u`, `g`, `o`) to the target classes.
    Copy {
        from: u8,
        to_user: bool,
        to_group: bool,
        to_other: bool,
        clear: bool,
        set: bool,
        bits: u32,
    },
}

/// A parsed `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChmodSpec {
    /// An octal mode (permission bits plus setuid, setgid, sticky).
    Octal(u32),
    /// A symbolic mode and the text it came from.
    Symbolic {
        /// The original text, kept for cache keys and messages.
        text: String,
        /// The compiled operations.
        cmds: Vec<CmdRepr>,
    },
}

/// The compiled form of a symbolic mode (opaque).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CmdRepr(Cmd);

impl ChmodSpec {
    /// Parses a `--chmod` value.
    pub fn parse(s: &str) -> Result<Self, ChmodError> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            let v = u32::from_str_radix(s, 8).map_err(|_| ChmodError::Octal(s.to_string()))?;
            if v > 0o7777 {
                return Err(ChmodError::Octal(s.to_string()));
            }
            return Ok(Self::Octal(v));
        }
        if s.as_bytes().first().is_some_and(u8::is_ascii_digit) {
            return Err(ChmodError::Octal(s.to_string()));
        }
        let cmds = parse_symbolic(s).ok_or_else(|| ChmodError::Symbolic(s.to_string()))?;
        Ok(Self::Symbolic {
            text: s.to_string(),
            cmds: compress(cmds).into_iter().map(CmdRepr).collect(),
        })
    }

    /// The mode bits (`& 0o7777`) an entry with `mode` gets.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        match self {
            Self::Octal(v) => *v & 0o7777,
            Self::Symbolic { cmds, .. } => apply_cmds(cmds, mode & 0o7777, is_dir),
        }
    }

    /// The text form, for cache keys.
    pub fn text(&self) -> String {
        match self {
            Self::Octal(v) => format!("{v:o}"),
            Self::Symbolic { text, .. } => text.clone(),
        }
    }
}

fn add(cmds: &mut Vec<Cmd>, op: u8, who: u32, perm: u32) {
    let bits = |who: u32| if who != 0 { who & perm } else { perm };
    match op {
        b'=' => {
            cmds.push(Cmd::Clear(if who != 0 { who } else { STANDARD }));
            cmds.push(Cmd::Set(bits(who)));
        }
        b'+' => cmds.push(Cmd::Set(bits(who))),
        b'-' => cmds.push(Cmd::Clear(bits(who))),
        _ => cmds.push(Cmd::SetX(bits(who))),
    }
}

fn add_copy(cmds: &mut Vec<Cmd>, from: u8, who: u32, op: u8) {
    let (to_user, to_group, to_other, bits) = if who != 0 {
        (
            who & 0o400 != 0,
            who & 0o040 != 0,
            who & 0o004 != 0,
            u32::MAX,
        )
    } else {
        (true, true, true, u32::MAX)
    };
    cmds.push(Cmd::Copy {
        from,
        to_user,
        to_group,
        to_other,
        clear: op != b'+',
        set: op != b'-',
        bits,
    });
}

fn parse_symbolic(s: &str) -> Option<Vec<Cmd>> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut cmds = Vec::new();
    let mut equal_done = false;
    loop {
        let mut who = 0u32;
        while let Some(&c) = b.get(i) {
            match c {
                b'a' => who |= STANDARD,
                b'u' => who |= S_ISUID | RWXU,
                b'g' => who |= S_ISGID | RWXG,
                b'o' => who |= RWXO,
                _ => break,
            }
            i += 1;
        }
        loop {
            let op = *b.get(i)?;
            i += 1;
            match op {
                b'+' | b'-' => {}
                b'=' => equal_done = false,
                _ => return None,
            }
            who &= !S_ISVTX;
            let (mut perm, mut perm_x) = (0u32, 0u32);
            loop {
                let c = b.get(i).copied();
                match c {
                    Some(b'r') => perm |= READ,
                    Some(b'w') => perm |= WRITE,
                    Some(b'x') => perm |= EXEC,
                    Some(b'X') => {
                        if op == b'+' {
                            perm_x = EXEC;
                        }
                    }
                    Some(b's') => {
                        if who == 0 || who & !RWXO != 0 {
                            perm |= S_ISUID | S_ISGID;
                        }
                    }
                    Some(b't') => {
                        if who == 0 || who & !RWXO != 0 {
                            who |= S_ISVTX;
                            perm |= S_ISVTX;
                        }
                    }
                    Some(from @ (b'u' | b'g' | b'o')) => {
                        if perm != 0 {
                            add(&mut cmds, op, who, perm);
                            perm = 0;
                        }
                        if op == b'=' {
                            equal_done = true;
                        }
                        if perm_x != 0 {
                            add(&mut cmds, b'X', who, perm_x);
                            perm_x = 0;
                        }
                        add_copy(&mut cmds, from, who, op);
                    }
                    _ => {
                        if perm != 0 || (op == b'=' && !equal_done) {
                            if op == b'=' {
                                equal_done = true;
                            }
                            add(&mut cmds, op, who, perm);
                        }
                        if perm_x != 0 {
                            add(&mut cmds, b'X', who, perm_x);
                        }
                        break;
                    }
                }
                i += 1;
            }
            match b.get(i) {
                None => return Some(cmds),
                Some(b',') => {
                    i += 1;
                    break;
                }
                Some(_) => continue,
            }
        }
    }
}

/// Merges runs of set/clear/X commands as BSD's `setmode` does; this fixes how later commands in
/// a run override earlier ones.
fn compress(cmds: Vec<Cmd>) -> Vec<Cmd> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < cmds.len() {
        if matches!(cmds[i], Cmd::Copy { .. }) {
            out.push(cmds[i]);
            i += 1;
            continue;
        }
        let (mut set, mut clr, mut x) = (0u32, 0u32, 0u32);
        while i < cmds.len() {
            match cmds[i] {
                Cmd::Clear(b) => {
                    clr |= b;
                    set &= !b;
                    x &= !b;
                }
                Cmd::Set(b) => {
                    set |= b;
                    clr &= !b;
                    x &= !b;
                }
                Cmd::SetX(b) => x |= b & !set,
                Cmd::Copy { .. } => break,
            }
            i += 1;
        }
        if clr != 0 {
            out.push(Cmd::Clear(clr));
        }
        if set != 0 {
            out.push(Cmd::Set(set));
        }
        if x != 0 {
            out.push(Cmd::SetX(x));
        }
    }
    out
}

fn apply_cmds(cmds: &[CmdRepr], orig: u32, is_dir: bool) -> u32 {
    let mut m = orig;
    for CmdRepr(c) in cmds {
        match *c {
            Cmd::Set(b) => m |= b,
            Cmd::Clear(b) => m &= !b,
            Cmd::SetX(b) => {
                if orig & EXEC != 0 || is_dir {
                    m |= b;
                }
            }
            Cmd::Copy {
                from,
                to_user,
                to_group,
                to_other,
                clear,
                set,
                bits,
            } => {
                let value = match from {
                    b'u' => (m & RWXU) >> 6,
                    b'g' => (m & RWXG) >> 3,
                    _ => m & RWXO,
                };
                let targets = [(to_user, 6), (to_group, 3), (to_other, 0)];
                if clear {
                    let clr = if set { 0o7 } else { value };
                    for (on, shift) in targets {
                        if on {
                            m &= !((clr << shift) & bits);
                        }
                    }
                }
                if set {
                    for (on, shift) in targets {
                        if on {
                            m |= (value << shift) & bits;
                        }
                    }
                }
            }
        }
    }
    m & 0o7777
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (mode text, original mode, is directory, expected mode)
    const CASES: &[(&str, u32, bool, u32)] = &[
        ("755", 0o600, false, 0o755),
        ("0644", 0o777, true, 0o644),
        ("4755", 0o644, false, 0o4755),
        ("7777", 0, false, 0o7777),
        ("0", 0o777, false, 0),
        ("+x", 0o644, false, 0o755),
        ("u+x", 0o644, false, 0o744),
        ("a=r", 0o777, false, 0o444),
        ("u=rw,go=r", 0o700, false, 0o644),
        ("go-w", 0o666, false, 0o644),
        ("g-w,o-rwx", 0o777, false, 0o750),
        ("u+x,g-w", 0o664, false, 0o744),
        ("+X", 0o644, false, 0o644),
        ("+X", 0o744, false, 0o755),
        ("+X", 0o644, true, 0o755),
        ("a-x,a+X", 0o755, false, 0o755),
        ("=rw,+X", 0o711, false, 0o777),
        ("=rw,+X", 0o600, false, 0o666),
        ("go=", 0o755, false, 0o700),
        ("go=u-w", 0o755, false, 0o755),
        ("u=rwx,go=u-w", 0o000, false, 0o755),
        ("g=u", 0o640, false, 0o660),
        ("o=g", 0o751, false, 0o755),
        ("u+s", 0o755, false, 0o4755),
        ("g+s", 0o755, true, 0o2755),
        ("+s", 0o755, false, 0o6755),
        ("o+s", 0o755, false, 0o755),
        ("+t", 0o755, true, 0o1755),
        ("+tx", 0o644, true, 0o1644),
        ("u+r-w", 0o600, false, 0o400),
        ("a+rwx", 0, false, 0o777),
        ("u-s", 0o4755, false, 0o755),
        ("=", 0o4755, false, 0),
        ("u=", 0o4755, false, 0o055),
    ];

    #[test]
    fn modes_apply_like_bsd_setmode() {
        for &(text, orig, dir, want) in CASES {
            let spec = ChmodSpec::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                spec.apply(orig, dir),
                want,
                "{text} on {orig:o} (dir {dir}) gave {:o}",
                spec.apply(orig, dir)
            );
        }
    }

    #[test]
    fn invalid_modes() {
        for text in [
            "", "10000", "8", "0o755", "9x", "u", "u+z", "z+x", "u+x,", ",u+x", "+x;",
        ] {
            assert!(
                ChmodSpec::parse(text).is_err(),
                "{text:?} should be rejected"
            );
        }
        assert_eq!(
            ChmodSpec::parse("10000").unwrap_err().to_string(),
            "invalid chmod parameter: '10000'. it should be octal string and between 0 and 07777"
        );
    }
}
