//! The sandbox helper as a standalone binary, for embedders that cannot call
//! `kiln_builder_core::exec::sandbox_main_if_requested()` at the start of their own `main()` (and for
//! this crate's integration tests): point `SandboxConfig::helper` at it.

fn main() {
    kiln_builder_core::exec::sandbox_main_if_requested();
    eprintln!(
        "kiln-sandbox: this program is started by kiln's sandbox executor ({} is not set)",
        kiln_builder_core::exec::HELPER_ENV
    );
    std::process::exit(2);
}
