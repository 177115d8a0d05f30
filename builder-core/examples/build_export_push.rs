//! Build an image, write it as an OCI archive and push it, as `kiln build -t REF -o
//! type=oci,dest=FILE --push CONTEXT` does, from a program of your own.
//!
//! ```text
//! cargo run -p kiln-builder-core --example build_export_push -- CONTEXT REF FILE
//! ```
//!
//! The program must call `sandbox_main_if_requested` first: RUN steps run in a re-executed copy
//! of it. Progress events are printed as they come; errors are rendered with their causes.

use std::path::PathBuf;

use kiln_builder_core::deliver::{Delivery, Output, deliver};
use kiln_builder_core::registry::PushOptions;
use kiln_builder_core::{BuildRequest, Builder, BuilderOptions};

fn main() -> miette::Result<()> {
    kiln_builder_core::exec::sandbox_main_if_requested();
    let mut args = std::env::args().skip(1);
    let (Some(context), Some(reference), Some(file)) = (args.next(), args.next(), args.next())
    else {
        eprintln!("usage: build_export_push CONTEXT REF FILE");
        std::process::exit(2);
    };
    let context = PathBuf::from(context);
    let dockerfile = std::fs::read_to_string(context.join("Dockerfile"))
        .map_err(|e| miette::miette!("cannot read {}/Dockerfile: {e}", context.display()))?;

    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| miette::miette!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let builder = Builder::new(BuilderOptions::new(
            kiln_builder_core::builder::default_root(),
        ))?;
        let (events, mut rx) = kiln_builder_core::progress::channel();
        let printer = tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                eprintln!("{event:?}");
            }
        });
        let request = {
            let mut v = BuildRequest::default();
            v.dockerfile = dockerfile;
            v.context = Some(context);
            v.tags = vec![reference];
            v
        };
        let built = builder.build(request, events).await?;
        let _ = printer.await;

        let output: Output = format!("type=oci,dest={file}")
            .parse()
            .map_err(|e: String| miette::miette!("{e}"))?;
        let mut delivery = Delivery::new(vec![output]);
        delivery.push = Some(PushOptions::default());
        let delivered = deliver(&builder, &built, &delivery, None).await?;
        println!("image {}", built.config_digest);
        if let Some(pushed) = delivered.pushed {
            println!("pushed {}", pushed.digest);
        }
        Ok(())
    })
}
