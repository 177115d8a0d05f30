//! The `kiln` command line: a daemonless Dockerfile image builder.
//!
//! stdout carries only results (digests, JSON, tables) so scripts can pipe them; diagnostics and
//! progress go to stderr. Exit codes: 0 success, 1 build or command failure, 2 usage error, 130
//! interrupted (Ctrl-C); `kiln run` passes its command's exit code through.

mod commands;
mod interrupt;
mod progress;
mod render;
mod rootless;
mod tty_progress;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// kiln builds OCI images from Dockerfiles, without a daemon.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about, max_term_width = 100)]
struct Cli {
    /// Directory of kiln's store (an OCI image layout plus kiln's state).
    /// Default: $XDG_DATA_HOME/kiln, else ~/.local/share/kiln.
    #[arg(long, global = true, env = "KILN_ROOT", value_name = "DIR")]
    root: Option<PathBuf>,

    /// Colors in messages and progress: auto (when stderr is a terminal and NO_COLOR is unset),
    /// always or never.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "auto",
        value_name = "WHEN"
    )]
    color: render::ColorChoice,

    /// Which snapshotter the store uses: auto (the kernel's overlayfs where it mounts, else in
    /// rootless mode fuse-overlayfs where installed, else copy), overlay, fuse-overlayfs
    /// (rootless only) or copy. A store keeps the one it was made with and refuses another.
    #[arg(
        long,
        global = true,
        env = "KILN_STORAGE_DRIVER",
        value_parser = ["auto", "overlay", "fuse-overlayfs", "copy"],
        default_value = "auto",
        value_name = "DRIVER"
    )]
    storage_driver: String,

    /// Show the library's debug log on stderr (as `RUST_LOG=debug` would; `RUST_LOG` picks
    /// targets and levels, e.g. `RUST_LOG=kiln_builder_core::registry=trace`).
    #[arg(long, global = true)]
    debug: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build an image from a Dockerfile and a context directory.
    Build(Box<commands::build::BuildArgs>),
    /// Explain cache misses of past builds; list, measure and prune the build cache.
    Cache(commands::cache::CacheArgs),
    /// Remove unreferenced blobs and old build cache (tagged images are kept).
    Prune(commands::cache::PruneArgs),
    /// Parse a Dockerfile and print its instructions (or, with --json, the stable JSON form).
    Parse(commands::parse::ParseArgs),
    /// Show this machine and the store: store size, snapshotter, rootless, network, seccomp,
    /// emulated platforms.
    Info(commands::info::InfoArgs),
    /// List the images in the store.
    Images(commands::images::ImagesArgs),
    /// Give an image another name.
    Tag(commands::tag::TagArgs),
    /// Remove image names (blobs stay until garbage collection).
    Rmi(commands::rmi::RmiArgs),
    /// Print an image's manifest and config as JSON.
    Inspect(commands::inspect::InspectArgs),
    /// Show an image's history: one row per Dockerfile instruction, with layer sizes.
    History(commands::history::HistoryArgs),
    /// Write images to a docker-archive (for `docker load`) or an OCI archive.
    Save(commands::save::SaveArgs),
    /// Read images from a docker-archive or an OCI archive into the store.
    Load(commands::load::LoadArgs),
    /// Run a command in a new container from an image, isolated like a RUN step.
    Run(commands::run::RunArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(commands::completions::CompletionsArgs),
    /// Print kiln's man page (roff) on stdout.
    Man(commands::completions::ManArgs),
    /// Pull an image from a registry into the store.
    Pull(commands::pull::PullArgs),
    /// Push an image from the store to a registry.
    Push(commands::push::PushArgs),
    /// Save credentials for a registry in Docker's config.json.
    Login(commands::login::LoginArgs),
    /// Remove the credentials for a registry.
    Logout(commands::login::LogoutArgs),
    /// Run a command in kiln's user namespace (rootless mode), where the store's files have the
    /// owners they have in the images: e.g. `kiln unshare rm -rf ~/.local/share/kiln`.
    Unshare(commands::unshare::UnshareArgs),
}

/// glibc gives each thread that allocates its own arena (up to 8 per core), and memory freed in
/// one is not reused by another: a build hands large buffers between the runtime's threads, so
/// peak memory grew with the number of threads that happened to touch them (a 100,000-file
/// context: 171 MB with the default, 127 MB with two arenas, the same speed).
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: called before any thread starts; mallopt only tunes the allocator and reports
    // failure by its return value, which changes nothing if the option is not supported.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// The library's `tracing` events on stderr (never stdout, which carries results): with
/// `--debug` every debug event, else what `RUST_LOG` asks for, else nothing.
fn setup_logs(debug: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::new(v),
        _ if debug => EnvFilter::new("debug"),
        _ => return,
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(render::colors())
        .try_init();
}

fn main() -> ExitCode {
    // When this process was started as the RUN sandbox's helper, this runs the helper and never
    // returns. It must come before anything starts a thread.
    kiln_builder_core::exec::sandbox_main_if_requested();
    let cli = Cli::parse();
    // Not root: the same command again as root of a user namespace of its own.
    if let Some(code) = rootless::enter(&cli.command) {
        return code;
    }
    // Also before any thread: the build's mounts then live and die with this process.
    kiln_builder_core::exec::isolate_mounts();
    if let Some(d) = kiln_builder_core::builder::StorageDriver::from_name(&cli.storage_driver) {
        kiln_builder_core::builder::set_storage_driver(d);
    }
    limit_malloc_arenas();
    render::setup_colors(cli.color);
    setup_logs(cli.debug);
    let root = cli
        .root
        .clone()
        .unwrap_or_else(kiln_builder_core::builder::default_root);
    // Paths under the store reach other processes (an OCI runtime's bundle), which run elsewhere.
    let root = std::path::absolute(&root).unwrap_or(root);
    let result = match cli.command {
        Command::Build(args) => commands::build::run(&args, &root),
        Command::Parse(args) => commands::parse::run(&args),
        Command::Images(args) => commands::images::run(&args, &root),
        Command::Info(args) => commands::info::run(&args, &root),
        Command::Tag(args) => commands::tag::run(&args, &root),
        Command::Rmi(args) => commands::rmi::run(&args, &root),
        Command::Inspect(args) => commands::inspect::run(&args, &root),
        Command::History(args) => commands::history::run(&args, &root),
        Command::Save(args) => commands::save::run(&args, &root),
        Command::Load(args) => commands::load::run(&args, &root),
        Command::Run(args) => commands::run::run(&args, &root),
        Command::Completions(args) => commands::completions::run(&args, Cli::command()),
        Command::Man(args) => commands::completions::man(&args, Cli::command()),
        Command::Pull(args) => commands::pull::run(&args, &root),
        Command::Push(args) => commands::push::run(&args, &root),
        Command::Login(args) => commands::login::login(&args),
        Command::Logout(args) => commands::login::logout(&args),
        Command::Unshare(args) => commands::unshare::run(&args, &root),
        Command::Cache(args) => commands::cache::run(&args, &root),
        Command::Prune(args) => commands::prune::run(&args, &root),
    };
    match result {
        Ok(code) => code,
        Err(report) => {
            render::print_report(&report);
            ExitCode::from(1)
        }
    }
}
