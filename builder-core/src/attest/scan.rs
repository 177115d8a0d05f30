//! Finding the package databases in an image's layers without unpacking it: the layers are read
//! base first as tar streams, the files that can be package databases are kept (bounded in
//! size and number), and whiteouts of later layers remove what they delete. Nothing is written
//! to disk and no path from a layer is ever opened.

use std::collections::BTreeMap;
use std::io::Read;

use crate::content::{ContentStore, Digest};

/// A package found in the image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Package {
    /// `deb`, `apk`, `pypi` or `npm` (the purl type).
    pub kind: &'static str,
    /// The name.
    pub name: String,
    /// The version.
    pub version: String,
    /// The architecture (dpkg, apk), if given.
    pub arch: Option<String>,
    /// Where its record lives in the image.
    pub source: String,
}

/// Files larger than this are not package databases kiln reads.
const MAX_FILE: u64 = 64 << 20;
/// At most this many candidate files are kept (a tree of node_modules can be large).
const MAX_FILES: usize = 100_000;

/// Whether a path (relative, no leading `./` or `/`) is a package database kiln reads.
fn wanted(path: &str) -> bool {
    if path == "var/lib/dpkg/status" || path == "lib/apk/db/installed" {
        return true;
    }
    let parts: Vec<&str> = path.split('/').collect();
    let n = parts.len();
    // .../site-packages/NAME.dist-info/METADATA (and dist-packages).
    if n >= 3
        && parts[n - 1] == "METADATA"
        && parts[n - 2].ends_with(".dist-info")
        && matches!(parts[n - 3], "site-packages" | "dist-packages")
    {
        return true;
    }
    // .../node_modules/NAME/package.json and .../node_modules/@SCOPE/NAME/package.json.
    if n >= 3 && parts[n - 1] == "package.json" {
        if parts[n - 3] == "node_modules" && !parts[n - 2].starts_with('@') {
            return true;
        }
        if n >= 4 && parts[n - 4] == "node_modules" && parts[n - 3].starts_with('@') {
            return true;
        }
    }
    false
}

fn clean(path: &str) -> String {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// The candidate files of the image whose uncompressed layers (diff_ids, base first) are in
/// `store`, as the final filesystem has them.
pub fn candidate_files(
    store: &ContentStore,
    layers: &[Digest],
) -> Result<BTreeMap<String, Vec<u8>>, super::AttestError> {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for layer in layers {
        let reader = store.open_verified(layer)?;
        let mut archive = tar::Archive::new(reader);
        let entries = archive
            .entries()
            .map_err(|e| super::AttestError::Layer(*layer, crate::report::chain(&e)))?;
        for entry in entries {
            let mut entry =
                entry.map_err(|e| super::AttestError::Layer(*layer, crate::report::chain(&e)))?;
            let raw = entry
                .path()
                .map_err(|e| super::AttestError::Layer(*layer, crate::report::chain(&e)))?
                .to_string_lossy()
                .into_owned();
            let path = clean(&raw);
            let (dir, name) = match path.rsplit_once('/') {
                Some((d, n)) => (d.to_string(), n.to_string()),
                None => (String::new(), path.clone()),
            };
            let under = |d: &str| {
                let d = d.to_string();
                move |k: &String| d.is_empty() || *k == d || k.starts_with(&format!("{d}/"))
            };
            if name == ".wh..wh..opq" {
                let inside = under(&dir);
                files.retain(|k, _| !(inside(k) && *k != dir));
                continue;
            }
            if let Some(gone) = name.strip_prefix(".wh.") {
                let target = if dir.is_empty() {
                    gone.to_string()
                } else {
                    format!("{dir}/{gone}")
                };
                let inside = under(&target);
                files.retain(|k, _| !inside(k));
                continue;
            }
            // Anything else at a path replaces what was there (a directory replaces a file).
            let replaced = under(&path);
            files.retain(|k, _| !replaced(k));
            if entry.header().entry_type().is_file()
                && entry.size() <= MAX_FILE
                && files.len() < MAX_FILES
                && wanted(&path)
            {
                let mut bytes = Vec::new();
                (&mut entry)
                    .take(MAX_FILE)
                    .read_to_end(&mut bytes)
                    .map_err(|e| super::AttestError::Layer(*layer, crate::report::chain(&e)))?;
                files.insert(path, bytes);
            }
        }
    }
    Ok(files)
}

/// Paragraphs of `Key: value` lines (dpkg's status, continuation lines start with a space).
fn paragraphs(text: &str, sep: char) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    let mut cur = BTreeMap::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            continue;
        }
        if let Some((k, v)) = line.split_once(sep) {
            cur.entry(k.to_string())
                .or_insert_with(|| v.trim().to_string());
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The packages the database files record.
pub fn packages(files: &BTreeMap<String, Vec<u8>>) -> Vec<Package> {
    let mut out = Vec::new();
    for (path, bytes) in files {
        let text = String::from_utf8_lossy(bytes);
        if path == "var/lib/dpkg/status" {
            for p in paragraphs(&text, ':') {
                // dpkg-query -W lists every package the database knows that is not purged.
                let status = p.get("Status").map(String::as_str).unwrap_or("");
                if status.ends_with("not-installed") {
                    continue;
                }
                if let (Some(name), Some(version)) = (p.get("Package"), p.get("Version")) {
                    out.push(Package {
                        kind: "deb",
                        name: name.clone(),
                        version: version.clone(),
                        arch: p.get("Architecture").cloned(),
                        source: path.clone(),
                    });
                }
            }
        } else if path == "lib/apk/db/installed" {
            for p in paragraphs(&text, ':') {
                if let (Some(name), Some(version)) = (p.get("P"), p.get("V")) {
                    out.push(Package {
                        kind: "apk",
                        name: name.clone(),
                        version: version.clone(),
                        arch: p.get("A").cloned(),
                        source: path.clone(),
                    });
                }
            }
        } else if path.ends_with("/METADATA") {
            // Email-style headers up to the first blank line.
            let head = text.split("\n\n").next().unwrap_or("");
            let p = paragraphs(head, ':').into_iter().next().unwrap_or_default();
            if let (Some(name), Some(version)) = (p.get("Name"), p.get("Version")) {
                out.push(Package {
                    kind: "pypi",
                    name: name.clone(),
                    version: version.clone(),
                    arch: None,
                    source: path.clone(),
                });
            }
        } else if path.ends_with("/package.json") {
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
                continue;
            };
            if let (Some(name), Some(version)) = (
                v.get("name").and_then(|n| n.as_str()),
                v.get("version").and_then(|n| n.as_str()),
            ) {
                out.push(Package {
                    kind: "npm",
                    name: name.to_string(),
                    version: version.to_string(),
                    arch: None,
                    source: path.clone(),
                });
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn database_paths_are_recognised() {
        for yes in [
            "var/lib/dpkg/status",
            "lib/apk/db/installed",
            "usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA",
            "usr/local/lib/python3.11/site-packages/pip-23.0.dist-info/METADATA",
            "app/node_modules/left-pad/package.json",
            "app/node_modules/@types/node/package.json",
        ] {
            assert!(wanted(yes), "{yes}");
        }
        for no in [
            "var/lib/dpkg/status-old",
            "app/package.json",
            "app/node_modules/@types/package.json",
            "x/METADATA",
        ] {
            assert!(!wanted(no), "{no}");
        }
    }

    #[test]
    fn databases_parse() {
        let mut files = BTreeMap::new();
        files.insert(
            "var/lib/dpkg/status".to_string(),
            b"Package: a\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0-1\nDescription: x\n more\n\nPackage: gone\nStatus: purge ok not-installed\nVersion: 2\n\nPackage: b\nStatus: deinstall ok config-files\nVersion: 3:2.1\n".to_vec(),
        );
        files.insert(
            "lib/apk/db/installed".to_string(),
            b"C:Q1x\nP:musl\nV:1.2.4-r2\nA:x86_64\n\nP:busybox\nV:1.36.1-r5\n".to_vec(),
        );
        files.insert(
            "usr/lib/python3/site-packages/six-1.16.0.dist-info/METADATA".to_string(),
            b"Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\n\nName: not-this\n".to_vec(),
        );
        files.insert(
            "a/node_modules/x/package.json".to_string(),
            br#"{"name":"x","version":"0.1.0"}"#.to_vec(),
        );
        let got: Vec<(&str, String, String)> = packages(&files)
            .into_iter()
            .map(|p| (p.kind, p.name, p.version))
            .collect();
        assert_eq!(
            got,
            vec![
                ("apk", "busybox".into(), "1.36.1-r5".into()),
                ("apk", "musl".into(), "1.2.4-r2".into()),
                ("deb", "a".into(), "1.0-1".into()),
                ("deb", "b".into(), "3:2.1".into()),
                ("npm", "x".into(), "0.1.0".into()),
                ("pypi", "six".into(), "1.16.0".into()),
            ]
        );
    }
}
