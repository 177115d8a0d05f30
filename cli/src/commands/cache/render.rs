//! How `kiln cache` prints: tables for people, JSON for scripts.

use std::io::Write;

use kiln_builder_core::builder::BuildExplanation;
use kiln_builder_core::gc::{PruneReport, Usage};
use miette::IntoDiagnostic;

/// `1.5GB`-style size for humans.
pub(crate) fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

/// The one line a prune prints.
pub(crate) fn print_report(r: &PruneReport) {
    println!(
        "removed {} cache records, {} blobs ({}), {} snapshots, {} cache mounts ({})",
        r.records,
        r.blobs,
        human(r.blob_bytes),
        r.snapshots,
        r.mounts,
        human(r.mount_bytes)
    );
}

fn ago(now: i64, t: i64) -> String {
    let d = (now - t).max(0);
    match d {
        d if d < 120 => format!("{d}s ago"),
        d if d < 7200 => format!("{}m ago", d / 60),
        d if d < 172_800 => format!("{}h ago", d / 3600),
        d => format!("{}d ago", d / 86400),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Writes a build's explanation in plain words: one line per step, its reasons indented below.
pub fn print_explanation(out: &mut dyn Write, b: &BuildExplanation) -> std::io::Result<()> {
    writeln!(out, "build {}", b.id)?;
    for s in &b.steps {
        if s.cached {
            writeln!(out, "  {}: cached", s.name)?;
        } else {
            writeln!(out, "  {}: ran", s.name)?;
            for r in &s.reasons {
                writeln!(out, "    - {r}")?;
            }
        }
    }
    Ok(())
}

/// `kiln cache ls`: the records (or the cache mounts).
pub(super) fn print_ls(usage: &Usage, mounts: bool, json: bool) -> miette::Result<()> {
    let now = now();
    if mounts {
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&usage.mounts).into_diagnostic()?
            );
        } else {
            println!("{:<66} {:>10} LAST USED", "DIRECTORY", "SIZE");
            for m in &usage.mounts {
                println!(
                    "{:<66} {:>10} {}",
                    m.path.display(),
                    human(m.size),
                    ago(now, m.last_used)
                );
            }
        }
        return Ok(());
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&usage.records).into_diagnostic()?
        );
    } else {
        println!(
            "{:<16} {:>10} {:>10}  INSTRUCTION",
            "KEY", "SIZE", "LAST USED"
        );
        for r in &usage.records {
            println!(
                "{:<16} {:>10} {:>10}  {}",
                &r.key[..16],
                human(r.size),
                ago(now, r.last_used),
                r.instruction.as_deref().unwrap_or("")
            );
        }
    }
    Ok(())
}

/// `kiln cache du`: the space each part takes.
pub(super) fn print_du(u: &Usage, json: bool) -> miette::Result<()> {
    let mounts: u64 = u.mounts.iter().map(|m| m.size).sum();
    if json {
        let v = serde_json::json!({
            "blobs": u.blobs,
            "blob_bytes": u.blob_bytes,
            "tagged_bytes": u.tagged_bytes,
            "cache_bytes": u.cache_bytes,
            "unreferenced_bytes": u.unreferenced_bytes,
            "cache_records": u.records.len(),
            "snapshots": u.snapshots,
            "cache_mounts": u.mounts.len(),
            "cache_mount_bytes": mounts,
        });
        println!("{}", serde_json::to_string_pretty(&v).into_diagnostic()?);
    } else {
        println!(
            "blobs:            {} in {} blobs",
            human(u.blob_bytes),
            u.blobs
        );
        println!("  tagged images:  {}", human(u.tagged_bytes));
        println!(
            "  build cache:    {} ({} records)",
            human(u.cache_bytes),
            u.records.len()
        );
        println!("  unreferenced:   {}", human(u.unreferenced_bytes));
        println!("snapshots:        {}", u.snapshots);
        println!(
            "cache mounts:     {} in {} directories",
            human(mounts),
            u.mounts.len()
        );
    }
    Ok(())
}
