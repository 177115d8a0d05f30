//! Deterministic tar headers, built by hand: USTAR when the entry fits, a PAX extended header
//! only for what does not (names and link targets over USTAR's limits, large ids, sizes or times,
//! xattrs). Numeric fields are written as Go's `archive/tar` writes them (zero-padded octal with a
//! NUL terminator), user and group names are left empty, and PAX records are sorted by key, so the
//! same entry always gives the same bytes.

use std::io::{self, Write};

pub(crate) const BLOCK: usize = 512;

/// The kind of a tar entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    HardLink,
    Symlink,
    Char,
    Block,
    Dir,
    Fifo,
}

impl Kind {
    fn flag(self) -> u8 {
        match self {
            Kind::File => b'0',
            Kind::HardLink => b'1',
            Kind::Symlink => b'2',
            Kind::Char => b'3',
            Kind::Block => b'4',
            Kind::Dir => b'5',
            Kind::Fifo => b'6',
        }
    }
}

/// Everything a layer tar records about one entry.
#[derive(Debug, Clone)]
pub(crate) struct EntryHeader {
    /// The name in the archive: relative, `/`-separated, directories end with `/`.
    pub name: Vec<u8>,
    pub kind: Kind,
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: i64,
    /// Symlink target or hard link target name.
    pub link: Vec<u8>,
    pub dev_major: u32,
    pub dev_minor: u32,
    /// Extended attributes, sorted by name.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

const NAME_LEN: usize = 100;
const PREFIX_LEN: usize = 155;
const MAX_OCTAL_7: u64 = 0o7_777_777;
const MAX_OCTAL_11: u64 = 0o77_777_777_777;

impl EntryHeader {
    /// Writes the header (and a PAX header before it if needed) to `out`. Content and padding
    /// are the caller's.
    pub(crate) fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        let (name, prefix) = match split_ustar_path(&self.name) {
            Some(split) => split,
            None => {
                pax.push(("path".into(), self.name.clone()));
                (truncate(&self.name, NAME_LEN), &[][..])
            }
        };
        let link: &[u8] = if self.link.len() > NAME_LEN {
            pax.push(("linkpath".into(), self.link.clone()));
            truncate(&self.link, NAME_LEN)
        } else {
            &self.link
        };
        let uid = fit(self.uid, MAX_OCTAL_7, "uid", &mut pax);
        let gid = fit(self.gid, MAX_OCTAL_7, "gid", &mut pax);
        let size = fit(self.size, MAX_OCTAL_11, "size", &mut pax);
        let mtime = match u64::try_from(self.mtime) {
            Ok(t) => fit(t, MAX_OCTAL_11, "mtime", &mut pax),
            Err(_) => {
                pax.push(("mtime".into(), self.mtime.to_string().into_bytes()));
                0
            }
        };
        for (k, v) in &self.xattrs {
            pax.push((format!("SCHILY.xattr.{k}"), v.clone()));
        }
        if !pax.is_empty() {
            pax.sort_by(|a, b| a.0.cmp(&b.0));
            let body = pax_records(&pax);
            let pax_name = pax_header_name(&self.name);
            let mut h = [0u8; BLOCK];
            fill_ustar(
                &mut h,
                &Fields {
                    name: truncate(&pax_name, NAME_LEN),
                    prefix: &[],
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                    size: body.len() as u64,
                    mtime: 0,
                    flag: b'x',
                    link: &[],
                    dev: (0, 0),
                },
            );
            out.write_all(&h)?;
            out.write_all(&body)?;
            out.write_all(&[0u8; BLOCK][..padding(body.len() as u64)])?;
        }
        let mut h = [0u8; BLOCK];
        fill_ustar(
            &mut h,
            &Fields {
                name,
                prefix,
                mode: self.mode & 0o7777,
                uid,
                gid,
                size,
                mtime,
                flag: self.kind.flag(),
                link,
                dev: (self.dev_major, self.dev_minor),
            },
        );
        out.write_all(&h)
    }
}

/// Bytes of zero padding after `size` bytes of content.
pub(crate) fn padding(size: u64) -> usize {
    let rem = (size % BLOCK as u64) as usize;
    if rem == 0 { 0 } else { BLOCK - rem }
}

fn fit(v: u64, max: u64, key: &str, pax: &mut Vec<(String, Vec<u8>)>) -> u64 {
    if v > max {
        pax.push((key.to_string(), v.to_string().into_bytes()));
        0
    } else {
        v
    }
}

fn truncate(b: &[u8], n: usize) -> &[u8] {
    &b[..b.len().min(n)]
}

/// Splits a long name into USTAR's prefix and name fields as Go's `splitUSTARPath` does;
/// `None` when it cannot be stored without PAX.
fn split_ustar_path(name: &[u8]) -> Option<(&[u8], &[u8])> {
    if name.len() <= NAME_LEN {
        return Some((name, &[]));
    }
    if !name.is_ascii() {
        return None;
    }
    let mut length = name.len();
    if length > PREFIX_LEN + 1 {
        length = PREFIX_LEN + 1;
    } else if name[length - 1] == b'/' {
        length -= 1;
    }
    let i = name[..length].iter().rposition(|&b| b == b'/')?;
    let nlen = name.len() - i - 1;
    if i == 0 || nlen > NAME_LEN || nlen == 0 || i > PREFIX_LEN {
        return None;
    }
    Some((&name[i + 1..], &name[..i]))
}

/// The name of a PAX header entry: `<dir>/PaxHeaders.0/<base>`, as Go writes it.
fn pax_header_name(name: &[u8]) -> Vec<u8> {
    let trimmed = name.strip_suffix(b"/").unwrap_or(name);
    let (dir, base) = match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => (&trimmed[..=i], &trimmed[i + 1..]),
        None => (&b""[..], trimmed),
    };
    let mut out = dir.to_vec();
    out.extend_from_slice(b"PaxHeaders.0/");
    out.extend_from_slice(base);
    out
}

/// PAX records: `<len> <key>=<value>\n`, where `len` counts the whole record including itself.
fn pax_records(records: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in records {
        let body = k.len() + v.len() + 3; // space, '=', newline
        let mut len = body + 1;
        while len != body + len.to_string().len() {
            len = body + len.to_string().len();
        }
        out.extend_from_slice(len.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v);
        out.push(b'\n');
    }
    out
}

struct Fields<'a> {
    name: &'a [u8],
    prefix: &'a [u8],
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    flag: u8,
    link: &'a [u8],
    dev: (u32, u32),
}

fn octal(field: &mut [u8], v: u64) {
    // Zero-padded to the field's width minus the terminating NUL.
    let width = field.len() - 1;
    let s = format!("{v:0width$o}");
    field[..width].copy_from_slice(&s.as_bytes()[s.len() - width..]);
    field[width] = 0;
}

fn fill_ustar(h: &mut [u8; BLOCK], f: &Fields<'_>) {
    h[..f.name.len()].copy_from_slice(f.name);
    octal(&mut h[100..108], u64::from(f.mode));
    octal(&mut h[108..116], f.uid);
    octal(&mut h[116..124], f.gid);
    octal(&mut h[124..136], f.size);
    octal(&mut h[136..148], f.mtime);
    h[156] = f.flag;
    h[157..157 + f.link.len()].copy_from_slice(f.link);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    octal(&mut h[329..337], u64::from(f.dev.0));
    octal(&mut h[337..345], u64::from(f.dev.1));
    h[345..345 + f.prefix.len()].copy_from_slice(f.prefix);
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    octal(&mut h[148..155], sum);
    h[155] = b' ';
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str) -> EntryHeader {
        EntryHeader {
            name: name.as_bytes().to_vec(),
            kind: Kind::File,
            mode: 0o4755,
            uid: 0,
            gid: 0,
            size: 3,
            mtime: 1_700_000_000,
            link: Vec::new(),
            dev_major: 0,
            dev_minor: 0,
            xattrs: Vec::new(),
        }
    }

    type Xattrs = Vec<(String, Vec<u8>)>;

    /// Path, link, mode, uid, mtime and xattrs as the tar crate reads them back.
    fn read_back(h: &EntryHeader) -> (Vec<u8>, Vec<u8>, u32, u64, u64, Xattrs) {
        let mut buf = Vec::new();
        h.write_to(&mut buf).unwrap();
        buf.extend_from_slice(&[b'x'; 3]);
        buf.extend_from_slice(&[0u8; BLOCK - 3]);
        buf.extend_from_slice(&[0u8; 2 * BLOCK]);
        let mut ar = tar::Archive::new(&buf[..]);
        let mut entries = ar.entries().unwrap();
        let mut e = entries.next().unwrap().unwrap();
        let xattrs = e
            .pax_extensions()
            .unwrap()
            .map(|exts| {
                exts.filter_map(|x| {
                    let x = x.unwrap();
                    let k = x.key().unwrap().strip_prefix("SCHILY.xattr.")?.to_string();
                    Some((k, x.value_bytes().to_vec()))
                })
                .collect()
            })
            .unwrap_or_default();
        let hdr = e.header().clone();
        let link = e.link_name_bytes().map(|l| l.to_vec()).unwrap_or_default();
        let path = e.path_bytes().to_vec();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut body).unwrap();
        assert_eq!(body, b"xxx");
        (
            path,
            link,
            hdr.mode().unwrap(),
            hdr.uid().unwrap(),
            hdr.mtime().unwrap(),
            xattrs,
        )
    }

    #[test]
    fn short_entry_has_no_pax() {
        let h = header("usr/bin/su");
        let mut buf = Vec::new();
        h.write_to(&mut buf).unwrap();
        assert_eq!(buf.len(), BLOCK);
        // Go's layout: zero-padded octal with NUL, checksum with NUL and space.
        assert_eq!(&buf[100..108], b"0004755\0");
        assert_eq!(&buf[257..265], b"ustar\x0000");
        assert_eq!(buf[155], b' ');
        let (path, _, mode, _, mtime, _) = read_back(&h);
        assert_eq!(path, b"usr/bin/su");
        assert_eq!((mode, mtime), (0o4755, 1_700_000_000));
    }

    #[test]
    fn long_names_use_prefix_then_pax() {
        let dir = "d".repeat(120);
        let h = header(&format!("{dir}/file"));
        let mut buf = Vec::new();
        h.write_to(&mut buf).unwrap();
        assert_eq!(buf.len(), BLOCK, "USTAR prefix split, no PAX");
        assert_eq!(read_back(&h).0, format!("{dir}/file").as_bytes());

        let long = format!("{}/{}", "a".repeat(200), "b".repeat(150));
        let mut h = header(&long);
        h.kind = Kind::Symlink;
        h.link = "t".repeat(300).into_bytes();
        h.uid = 5_000_000;
        h.xattrs = vec![("security.capability".into(), vec![1, 0, 0, 2])];
        let (path, link, _, uid, _, xattrs) = read_back(&h);
        assert_eq!(path, long.as_bytes());
        assert_eq!(link, "t".repeat(300).as_bytes());
        assert_eq!(uid, 5_000_000);
        assert_eq!(
            xattrs,
            vec![("security.capability".into(), vec![1, 0, 0, 2])]
        );
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        let r = pax_records(&[("path".into(), vec![b'a'; 3])]);
        assert_eq!(r, b"12 path=aaa\n");
        let r = pax_records(&[("k".into(), vec![b'v'; 94])]);
        // 94 + "k=" + " " + "\n" = 98, plus "100" = 101? No: 98 + 2 digits = 100, needs 3 digits.
        assert_eq!(&r[..4], b"101 ");
        assert_eq!(r.len(), 101);
    }
}
