//! Options shared by the commands that talk to registries, and rendering of their errors.

use std::path::PathBuf;

use clap::Args;
use kiln_builder_core::registry::{RegistryError, RegistryOptions};
use miette::miette;

/// How registries are reached.
#[derive(Debug, Clone, Default, Args)]
pub struct RegistryArgs {
    /// Allow plain HTTP (and HTTPS without a trusted certificate chain falls back to HTTP) for
    /// this registry `host:port`; repeatable. Loopback registries always may use HTTP.
    #[arg(
        long = "insecure-registry",
        value_name = "HOST:PORT",
        env = "KILN_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    pub insecure_registries: Vec<String>,

    /// Trust the CA certificates in this PEM file for registries; repeatable.
    #[arg(long = "registry-ca", value_name = "FILE")]
    pub ca_files: Vec<PathBuf>,
}

impl RegistryArgs {
    /// The library's options.
    pub fn options(&self) -> RegistryOptions {
        let mut opts = RegistryOptions::default();
        opts.insecure_registries = self.insecure_registries.clone();
        opts.ca_files = self.ca_files.clone();
        opts
    }
}

/// A registry error as a report, with its causes.
pub fn report(e: &RegistryError) -> miette::Report {
    miette!("{}", kiln_builder_core::error::chain(e))
}

/// The store under `root`, for pulls and pushes.
pub fn open_store(
    root: &std::path::Path,
) -> miette::Result<std::sync::Arc<kiln_builder_core::content::ContentStore>> {
    let store = kiln_builder_core::content::ContentStore::open(root).map_err(|e| {
        miette!(
            "cannot open the store {}: {}",
            root.display(),
            kiln_builder_core::error::chain(&e)
        )
    })?;
    Ok(std::sync::Arc::new(store))
}

/// A tokio runtime for one command.
pub fn runtime() -> miette::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            miette!(
                "cannot start the async runtime: {e}",
                e = kiln_builder_core::error::chain(&e)
            )
        })
}
