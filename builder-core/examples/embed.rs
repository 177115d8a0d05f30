//! Embedding kiln: build an image from a context directory into a store, printing progress.
//!
//! ```sh
//! cargo run -p kiln-builder-core --example embed -- CONTEXT_DIR STORE_DIR [TAG]
//! ```
//!
//! The context must hold a Dockerfile. Building needs root (namespaces, overlayfs).

use std::error::Error;
use std::path::PathBuf;

use kiln_builder_core::progress::BuildEvent;
use kiln_builder_core::{BuildRequest, Builder, BuilderOptions};

fn main() -> Result<(), Box<dyn Error>> {
    // RUN steps execute in a helper that re-executes this very program: the hook must run first,
    // before any thread exists (so before the tokio runtime is built).
    kiln_builder_core::exec::sandbox_main_if_requested();

    let mut args = std::env::args().skip(1);
    let (Some(context), Some(store)) = (args.next(), args.next()) else {
        eprintln!("usage: embed CONTEXT_DIR STORE_DIR [TAG]");
        std::process::exit(2);
    };
    let tag = args.next().unwrap_or_else(|| "embedded:latest".to_string());
    let context = PathBuf::from(context);
    let dockerfile_path = context.join("Dockerfile");
    let dockerfile = std::fs::read_to_string(&dockerfile_path)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let builder = Builder::new(BuilderOptions::new(store))?;
    let output = runtime.block_on(async {
        // A bounded channel: the printer must drain it while the build runs.
        let (sink, mut rx) = kiln_builder_core::progress::channel();
        let printer = tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                match event {
                    BuildEvent::StepStarted { name, .. } => eprintln!("{name}"),
                    BuildEvent::StepCached { .. } => eprintln!("  cached"),
                    BuildEvent::Log { data, .. } => {
                        eprint!("  | {}", String::from_utf8_lossy(&data))
                    }
                    BuildEvent::StepFinished { duration, .. } => {
                        eprintln!("  done in {duration:.2?}")
                    }
                    BuildEvent::CacheMiss { reasons, .. } => {
                        for r in reasons {
                            eprintln!("  cache miss: {r}");
                        }
                    }
                    BuildEvent::Warning { message } => eprintln!("warning: {message}"),
                    // Events added in later versions.
                    _ => {}
                }
            }
        });
        let request = {
            let mut v = BuildRequest::default();
            v.dockerfile = dockerfile;
            v.dockerfile_path = Some(dockerfile_path);
            v.context = Some(context);
            v.tags = vec![tag];
            v
        };
        let result = builder.build(request, sink).await;
        let _ = printer.await;
        result
    })?;
    println!("{}", output.manifest.digest);
    Ok(())
}
