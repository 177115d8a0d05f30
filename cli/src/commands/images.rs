//! `kiln images`: the tagged images of the store as a table, JSON lines or ids.

use std::path::Path;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Args;
use kiln_builder_core::content::ContentStore;
use kiln_builder_core::image::parse_rfc3339;
use kiln_builder_core::images;
use miette::IntoDiagnostic;

/// Arguments of `kiln images`.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only list images of this repository (`app`, `docker.io/library/app`).
    #[arg(value_name = "REPOSITORY")]
    repository: Option<String>,

    /// Print only image ids, one per line.
    #[arg(short, long)]
    quiet: bool,

    /// Show the manifest digest too.
    #[arg(long)]
    digests: bool,

    /// Show full ids instead of 12 hex digits.
    #[arg(long)]
    no_trunc: bool,

    /// `table` (default) or `json` (one object per line, full names and digests).
    #[arg(long, value_name = "FORMAT", default_value = "table")]
    format: ListFormat,
}

/// How a list is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    /// Aligned columns for people.
    Table,
    /// One JSON object per line for scripts.
    Json,
}

/// Opens the store at `root`.
pub(crate) fn open_store(root: &Path) -> miette::Result<ContentStore> {
    ContentStore::open(root).into_diagnostic()
}

/// Docker's familiar form of a name: `docker.io/library/app` → `app`.
pub(crate) fn familiar(name: &str) -> &str {
    name.strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(name)
}

/// `1.5MB`, in decimal units as Docker prints them.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        return format!("{bytes}B");
    }
    // Three significant digits, as Docker prints sizes.
    let text = if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    text + UNITS[unit]
}

/// `5 minutes ago` for an RFC 3339 time.
pub(crate) fn ago(created: Option<&str>) -> String {
    let Some(secs) = created.and_then(parse_rfc3339) else {
        return "N/A".into();
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let d = now - secs;
    let (n, unit) = match d {
        i64::MIN..=0 => return "less than a second ago".into(),
        1..=59 => (d, "second"),
        60..=3599 => (d / 60, "minute"),
        3600..=86_399 => (d / 3600, "hour"),
        86_400..=1_209_599 => (d / 86_400, "day"),
        1_209_600..=5_183_999 => (d / 604_800, "week"),
        5_184_000..=63_071_999 => (d / 2_592_000, "month"),
        _ => (d / 31_536_000, "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// The 12 hex digits Docker shows for an id, or the full digest.
pub(crate) fn short_id(digest: &str, full: bool) -> String {
    if full {
        digest.to_string()
    } else {
        digest
            .strip_prefix("sha256:")
            .unwrap_or(digest)
            .chars()
            .take(12)
            .collect()
    }
}

/// Prints rows as columns separated by three spaces (the last column unpadded).
pub(crate) fn print_table(rows: &[Vec<String>]) {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == cols {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = widths[c]));
            }
        }
        println!("{}", line.trim_end());
    }
}

/// Runs `kiln images`.
pub fn run(args: &ImagesArgs, root: &Path) -> miette::Result<ExitCode> {
    let store = open_store(root)?;
    let mut list = images::list(&store).into_diagnostic()?;
    if let Some(repo) = &args.repository {
        let full = kiln_builder_core::registry::normalize_reference(repo);
        let (full_repo, _) = images::split_reference(&full);
        list.retain(|i| i.repository == *repo || i.repository == full_repo);
    }
    if args.quiet {
        let mut seen = Vec::new();
        for i in &list {
            let id = short_id(&i.id.to_string(), args.no_trunc);
            if !seen.contains(&id) {
                println!("{id}");
                seen.push(id);
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    match args.format {
        ListFormat::Json => {
            for i in &list {
                let v = serde_json::json!({
                    "name": i.name,
                    "repository": i.repository,
                    "tag": i.tag,
                    "id": i.id.to_string(),
                    "digest": i.manifest.digest.to_string(),
                    "created": i.created,
                    "size": i.size,
                    "platform": i.platform.to_string(),
                });
                println!("{v}");
            }
        }
        ListFormat::Table => {
            let mut header = vec!["REPOSITORY".to_string(), "TAG".into()];
            if args.digests {
                header.push("DIGEST".into());
            }
            header.extend([
                "IMAGE ID".into(),
                "CREATED".into(),
                "SIZE".into(),
                "PLATFORM".into(),
            ]);
            let mut rows = vec![header];
            for i in &list {
                let mut row = vec![familiar(&i.repository).to_string(), i.tag.clone()];
                if args.digests {
                    row.push(i.manifest.digest.to_string());
                }
                row.push(short_id(&i.id.to_string(), args.no_trunc));
                row.push(ago(i.created.as_deref()));
                row.push(human_size(i.size));
                row.push(i.platform.to_string());
                rows.push(row);
            }
            print_table(&rows);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_500_000), "1.5MB");
        assert_eq!(human_size(2_000), "2kB");
        assert_eq!(human_size(138_752), "139kB");
        assert_eq!(human_size(1_985_000), "1.99MB");
    }

    #[test]
    fn familiar_names() {
        assert_eq!(familiar("docker.io/library/app"), "app");
        assert_eq!(familiar("docker.io/me/app"), "me/app");
        assert_eq!(familiar("ghcr.io/me/app"), "ghcr.io/me/app");
    }

    #[test]
    fn relative_times() {
        assert_eq!(ago(None), "N/A");
        assert!(ago(Some("1970-01-01T00:00:00Z")).ends_with("years ago"));
    }
}
