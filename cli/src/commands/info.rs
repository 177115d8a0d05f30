//! `kiln info`: this machine and the store, as `docker info` shows them.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use miette::IntoDiagnostic;

/// Arguments of `kiln info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// `text` (default) or `json`.
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    format: String,
}

/// Runs `kiln info`.
pub fn run(args: &InfoArgs, root: &Path) -> miette::Result<ExitCode> {
    let info = kiln_builder_core::info::SystemInfo::gather(root).into_diagnostic()?;
    if args.format == "json" {
        println!("{}", serde_json::to_string_pretty(&info).into_diagnostic()?);
        return Ok(ExitCode::SUCCESS);
    }
    let emulated = if info.emulated_platforms.is_empty() {
        "none (install qemu-user-static for other platforms)".to_owned()
    } else {
        info.emulated_platforms.join(", ")
    };
    println!("Version:            {}", info.version);
    println!("Store:              {}", info.store.display());
    println!(
        "Store size:         {}",
        super::images::human_size(info.store_size)
    );
    println!(
        "Snapshotter:        {} (storage driver setting: {})",
        info.snapshotter, info.storage_driver
    );
    println!("Executor:           {}", info.executor);
    println!(
        "Rootless:           {} (uid {}, gid {})",
        if info.rootless { "yes" } else { "no" },
        info.uid,
        info.gid
    );
    if info.rootless {
        let ranges = |map: &[kiln_builder_core::rootless::IdRange]| {
            if map.is_empty() {
                return "none".to_owned();
            }
            map.iter()
                .map(|r| {
                    format!(
                        "{}-{} -> {}",
                        r.inside,
                        u64::from(r.inside) + u64::from(r.count) - 1,
                        r.outside
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("Uid map:            {}", ranges(&info.uid_map));
        println!("Gid map:            {}", ranges(&info.gid_map));
    }
    println!("Network:            {}", info.network);
    println!("Cgroup version:     {}", info.cgroup_version);
    println!(
        "Seccomp:            {}",
        if info.seccomp {
            "on (Docker's default profile)"
        } else {
            "not supported by this kernel"
        }
    );
    println!("Platform:           {}", info.platform);
    println!("Emulated platforms: {emulated}");
    Ok(ExitCode::SUCCESS)
}
