//! Cancellation: an export stops at its next write, blob or layer once cancelled, and a dropped
//! delivery cancels its export.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::export::{
    DockerArchiveExporter, Exporter, LocalExporter, OciArchiveExporter, OciLayoutExporter,
    TarExporter,
};

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_cancelled_export_leaves_no_file() {
    let (dir, store, img) = crate::export::tests::setup();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let archives: Vec<Box<dyn Exporter>> = vec![
        Box::new(OciArchiveExporter::new(out.join("oci.tar"))),
        Box::new(DockerArchiveExporter::new(out.join("docker.tar"))),
        Box::new(TarExporter::new(out.join("rootfs.tar"))),
    ];
    for exporter in archives {
        // Cancelled as soon as the first bytes went out.
        let opts = ExportOptions::default();
        let cancel = opts.cancel.clone();
        let opts = ExportOptions {
            progress: Some(ByteProgress(Arc::new(move |_| cancel.cancel()))),
            ..opts
        };
        let err = exporter.export(&store, &img, &opts).unwrap_err();
        assert!(
            matches!(err, ExportError::Cancelled),
            "{exporter:?}: {err:?}"
        );
        assert_eq!(entries(&out), Vec::<String>::new(), "{exporter:?}");
    }
    // Directory outputs stop before their first blob or layer.
    let opts = ExportOptions::default();
    opts.cancel.cancel();
    for exporter in [
        Box::new(OciLayoutExporter::new(out.join("layout"))) as Box<dyn Exporter>,
        Box::new(LocalExporter::new(out.join("rootfs"))),
    ] {
        let err = exporter.export(&store, &img, &opts).unwrap_err();
        assert!(
            matches!(err, ExportError::Cancelled),
            "{exporter:?}: {err:?}"
        );
    }
    assert!(!out.join("layout/index.json").exists());
    assert!(!out.join("rootfs").exists() || entries(&out.join("rootfs")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_delivery_stops_its_export() {
    let dir = tempfile::tempdir().unwrap();
    let builder = Builder::new(crate::BuilderOptions::new(dir.path().join("root"))).unwrap();
    let img = crate::export::tests::test_image(builder.store());
    let built = BuildOutput {
        manifest: img.clone(),
        config_digest: img.digest,
        images: vec![img],
        tags: Vec::new(),
        steps: Vec::new(),
        warnings: Vec::new(),
        cache_exports: Vec::new(),
        provenance: Vec::new(),
        build_id: String::new(),
        explanations: Vec::new(),
    };
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let dest = out.join("app.tar");
    let delivery = Delivery::new(vec![
        format!("type=oci,dest={}", dest.display()).parse().unwrap(),
    ]);
    // The first bytes written tell the test, then hold the export until the future is gone.
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let started_tx = Mutex::new(Some(started_tx));
    let first = AtomicBool::new(true);
    let progress = DeliveryProgress(Arc::new(move |e| {
        if matches!(e, DeliveryEvent::Exported(_)) && first.swap(false, Ordering::SeqCst) {
            if let Some(tx) = started_tx.lock().unwrap().take() {
                let _ = tx.send(());
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }));
    tokio::select! {
        r = deliver(&builder, &built, &delivery, Some(progress)) => panic!("delivered: {r:?}"),
        _ = started_rx => {}
    }
    // The future is dropped; the export stops on its blocking thread and removes its file.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !entries(&out).is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(entries(&out), Vec::<String>::new());
    assert!(!dest.exists());
}
