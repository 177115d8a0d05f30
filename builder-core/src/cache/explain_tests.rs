//! Tests of `explain`.

use super::*;
use crate::cache::KeyBuilder;

fn key(s: &str) -> CacheKey {
    let mut b = KeyBuilder::new("t", None);
    b.field(s.as_bytes());
    b.finish()
}

fn manifest() -> KeyManifest {
    KeyManifest {
        instruction: "RUN make".into(),
        parent: "p".into(),
        parent_from: "`COPY . /src`".into(),
        env: [("VERSION".to_string(), value_digest(b"1"))].into(),
        files: [("a.txt", "1")].into_iter().collect(),
        ..Default::default()
    }
}

#[test]
fn first_build_no_cache_and_same_key() {
    let m = manifest();
    assert_eq!(
        explain(None, &key("a"), &m, false),
        vec![MissReason::FirstBuild]
    );
    assert_eq!(
        explain(Some((&key("a"), Some(&m))), &key("a"), &m, true),
        vec![MissReason::NoCache]
    );
    assert_eq!(
        explain(Some((&key("a"), Some(&m))), &key("a"), &m, false),
        vec![MissReason::RecordUnusable]
    );
}

#[test]
fn names_env_files_instruction_and_parent() {
    let old = manifest();
    let mut new = manifest();
    new.env.insert("VERSION".into(), value_digest(b"2"));
    new.files.insert("a.txt", "2");
    new.files.insert("b.txt", "3");
    new.parent = "q".into();
    let r = explain(Some((&key("a"), Some(&old))), &key("b"), &new, false);
    assert_eq!(
        r,
        vec![
            MissReason::EnvChanged {
                name: "VERSION".into(),
                old: Some(value_digest(b"1")),
                new: Some(value_digest(b"2")),
            },
            MissReason::FileChanged {
                path: "a.txt".into(),
                change: FileChange::Modified
            },
            MissReason::FileChanged {
                path: "b.txt".into(),
                change: FileChange::Added
            },
            MissReason::ParentChanged {
                from: "`COPY . /src`".into()
            },
        ]
    );
    let text = r[0].to_string();
    assert!(text.contains("VERSION") && !text.contains(" 2 "), "{text}");
    new = manifest();
    new.instruction = "RUN make all".into();
    let r = explain(Some((&key("a"), Some(&old))), &key("b"), &new, false);
    assert!(matches!(&r[..], [MissReason::InstructionChanged { .. }]));
}

#[test]
fn base_image_re_resolved() {
    let mut old = manifest();
    old.base = Some(BaseImage {
        reference: "alpine".into(),
        digest: "sha256:1".into(),
    });
    let mut new = old.clone();
    new.parent = "other".into();
    new.base = Some(BaseImage {
        reference: "alpine".into(),
        digest: "sha256:2".into(),
    });
    let r = explain(Some((&key("a"), Some(&old))), &key("b"), &new, false);
    assert_eq!(
        r,
        vec![MissReason::BaseImageChanged {
            reference: "alpine".into(),
            old: "sha256:1".into(),
            new: "sha256:2".into()
        }]
    );
}

#[test]
fn many_files_are_counted_and_builds_are_kept() {
    let old = manifest();
    let mut new = manifest();
    for i in 0..30 {
        new.files.insert(format!("f{i:02}"), "x");
    }
    let r = explain(Some((&key("a"), Some(&old))), &key("b"), &new, false);
    assert_eq!(r.len(), MAX_FILES_NAMED + 1);
    assert_eq!(r.last(), Some(&MissReason::MoreFilesChanged { count: 10 }));

    let dir = tempfile::tempdir().unwrap();
    let store = ExplainStore::new(dir.path());
    assert!(store.previous_keys("s").is_empty());
    for i in 0..(KEEP_BUILDS + 3) {
        let b = BuildExplanation {
            id: format!("{i:05}"),
            time: i as i64,
            dockerfile: None,
            steps: vec![StepExplanation {
                stage: 0,
                index: 0,
                position: "stage-0#1".into(),
                name: "RUN x".into(),
                key: key(&i.to_string()).to_hex(),
                cached: false,
                reasons: vec![MissReason::FirstBuild],
            }],
        };
        store.record("s", &b).unwrap();
    }
    assert_eq!(store.build_ids().unwrap().len(), KEEP_BUILDS);
    let last = store.build(None).unwrap();
    assert_eq!(last.id, format!("{:05}", KEEP_BUILDS + 2));
    assert_eq!(
        store.previous_keys("s").get("stage-0#1"),
        Some(&key(&(KEEP_BUILDS + 2).to_string()))
    );
    assert!(store.build(Some("00000")).is_err(), "oldest was dropped");
    assert_eq!(store.build(Some("00004")).unwrap().time, 4);
}
