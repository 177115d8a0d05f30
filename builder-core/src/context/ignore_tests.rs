//! Cases ported from moby `patternmatcher` and `ignorefile` tests (as facts: pattern, path and
//! expected result), plus kiln's own edge cases.

use super::*;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Want {
    /// The pattern matches the path itself.
    Exact,
    /// The pattern matches only a parent directory of the path.
    Parent,
    /// No match.
    No,
}
use Want::*;

const SINGLE: &[(&str, &str, Want)] = &[
    ("**", "file", Exact),
    ("**", "file/", Exact),
    ("**/", "file", Exact),
    ("**/", "file/", Exact),
    ("**", "/", Exact),
    ("**/", "/", Exact),
    ("**", "dir/file", Exact),
    ("**/", "dir/file", Exact),
    ("**", "dir/file/", Exact),
    ("**/", "dir/file/", Exact),
    ("**/**", "dir/file", Exact),
    ("**/**", "dir/file/", Exact),
    ("dir/**", "dir/file", Exact),
    ("dir/**", "dir/file/", Exact),
    ("dir/**", "dir/dir2/file", Exact),
    ("dir/**", "dir/dir2/file/", Exact),
    ("**/dir", "dir", Exact),
    ("**/dir", "dir/file", Parent),
    ("**/dir2/*", "dir/dir2/file", Exact),
    ("**/dir2/*", "dir/dir2/file/", Parent),
    ("**/dir2/**", "dir/dir2/dir3/file", Exact),
    ("**/dir2/**", "dir/dir2/dir3/file/", Exact),
    ("**file", "file", Exact),
    ("**file", "dir/file", Exact),
    ("**/file", "dir/file", Exact),
    ("**file", "dir/dir/file", Exact),
    ("**/file", "dir/dir/file", Exact),
    ("**/file*", "dir/dir/file", Exact),
    ("**/file*", "dir/dir/file.txt", Exact),
    ("**/file*txt", "dir/dir/file.txt", Exact),
    ("**/file*.txt", "dir/dir/file.txt", Exact),
    ("**/file*.txt*", "dir/dir/file.txt", Exact),
    ("**/**/*.txt", "dir/dir/file.txt", Exact),
    ("**/**/*.txt2", "dir/dir/file.txt", No),
    ("**/*.txt", "file.txt", Exact),
    ("**/**/*.txt", "file.txt", Exact),
    ("a**/*.txt", "a/file.txt", Exact),
    ("a**/*.txt", "a/dir/file.txt", Exact),
    ("a**/*.txt", "a/dir/dir/file.txt", Exact),
    ("a/*.txt", "a/dir/file.txt", No),
    ("a/*.txt", "a/file.txt", Exact),
    ("a/*.txt**", "a/file.txt", Exact),
    ("a[b-d]e", "ae", No),
    ("a[b-d]e", "ace", Exact),
    ("a[b-d]e", "aae", No),
    ("a[^b-d]e", "aze", Exact),
    (".*", ".foo", Exact),
    (".*", "foo", No),
    ("abc.def", "abcdef", No),
    ("abc.def", "abc.def", Exact),
    ("abc.def", "abcZdef", No),
    ("abc?def", "abcZdef", Exact),
    ("abc?def", "abcdef", No),
    ("**/foo/bar", "foo/bar", Exact),
    ("**/foo/bar", "dir/foo/bar", Exact),
    ("**/foo/bar", "dir/dir2/foo/bar", Exact),
    ("abc/**", "abc", No),
    ("abc/**", "abc/def", Exact),
    ("abc/**", "abc/def/ghi", Exact),
    ("**/.foo", ".foo", Exact),
    ("**/.foo", "bar.foo", No),
    ("a(b)c/def", "a(b)c/def", Exact),
    ("a(b)c/def", "a(b)c/xyz", No),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", Exact),
    (
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        Exact,
    ),
    (
        "dist/*.whl",
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        Exact,
    ),
    ("a\\\\", "a\\", Exact),
    ("a\\*b", "a*b", Exact),
    // Go's filepath.Match cases, as moby runs them through its matcher (with parent matching).
    ("abc", "abc", Exact),
    ("*", "abc", Exact),
    ("*c", "abc", Exact),
    ("a*", "a", Exact),
    ("a*", "abc", Exact),
    ("a*", "ab/c", Parent),
    ("a*/b", "abc/b", Exact),
    ("a*/b", "a/c/b", No),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", Exact),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Exact),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", No),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", No),
    ("a*b?c*x", "abxbbxdbxebxczzx", Exact),
    ("a*b?c*x", "abxbbxdbxebxczzy", No),
    ("ab[c]", "abc", Exact),
    ("ab[b-d]", "abc", Exact),
    ("ab[e-g]", "abc", No),
    ("ab[^c]", "abc", No),
    ("ab[^b-d]", "abc", No),
    ("ab[^e-g]", "abc", Exact),
    ("a\\*b", "ab", No),
    ("a?b", "a☺b", Exact),
    ("a[^a]b", "a☺b", Exact),
    ("a???b", "a☺b", No),
    ("a[^a][^a][^a]b", "a☺b", No),
    ("[a-ζ]*", "α", Exact),
    ("*[a-ζ]", "A", No),
    ("a?b", "a/b", No),
    ("a*b", "a/b", No),
    ("[\\]a]", "]", Exact),
    ("[\\-]", "-", Exact),
    ("[x\\-]", "x", Exact),
    ("[x\\-]", "-", Exact),
    ("[x\\-]", "z", No),
    ("[\\-x]", "x", Exact),
    ("[\\-x]", "-", Exact),
    ("[\\-x]", "a", No),
    ("*x", "xxx", Exact),
    // kiln's own edge cases.
    ("[!a]", "b", No),
    ("[!a]", "!", Exact),
    ("a**b", "ab", Exact),
    ("a**b", "ax/b", Exact),
    ("a**b", "axb", No),
    ("**.txt", "dir/x.txt", Exact),
    ("**foo", "barfoo", Exact),
    ("docs", "docs/README.md", Parent),
    ("docs/", "docs/README.md", Parent),
    // Only `.dockerignore` files drop a leading `/`; a bare pattern keeps it (as `patternmatcher.New`).
    ("/docs", "docs/README.md", No),
    ("./docs", "docs/README.md", Parent),
    ("docs/*", "docs/README.md", Exact),
    ("*/temp*", "somedir/temporary.txt", Exact),
    ("*/*/temp*", "somedir/subdir/temporary.txt", Exact),
    ("temp?", "tempa", Exact),
    ("temp?", "dir/tempa", No),
    ("**/*.go", "a/b/c.go", Exact),
    ("a/**/b", "a/b", Exact),
    ("a/**/b", "a/x/y/b", Exact),
    ("a/**/b", "a/xb", No),
    ("*", "a\nb", Exact),
    ("a/**/c", "a/x\ny/c", No),
];

const MULTI: &[(&[&str], &str, bool)] = &[
    (&["**", "!util/docker/web"], "util/docker/web/foo", false),
    (
        &["**", "!util/docker/web", "util/docker/web/foo"],
        "util/docker/web/foo",
        true,
    ),
    (
        &[
            "**",
            "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        ],
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        false,
    ),
    (
        &["**", "!dist/*.whl"],
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        false,
    ),
    (&["*.go"], "fileutils.go", true),
    (&["!fileutils.go", "*.go"], "fileutils.go", true),
    (&["*.go", "!fileutils.go"], "fileutils.go", false),
    (&["docs", "!docs/README.md"], "docs/README.md", false),
    (&["docs/", "!docs/README.md"], "docs/README.md", false),
    (&["docs/*", "!docs/README.md"], "docs/README.md", false),
    (&["docs", "!docs/README.md"], "docs/other.md", true),
    (
        &["*.md", "!README*.md", "README-secret.md"],
        "README-secret.md",
        true,
    ),
    (
        &["*.md", "!README*.md", "README-secret.md"],
        "README-public.md",
        false,
    ),
    (&["*.go"], ".", false),
    (&[], "any/path/there", false),
    (&["Dockerfile", ".dockerignore"], "Dockerfile", true),
];

fn matcher(patterns: &[&str]) -> IgnoreMatcher {
    IgnoreMatcher::from_strings(Path::new("test"), patterns).expect("valid patterns")
}

/// The walker's way: carry each pattern's result down from the parents.
fn walk_matches(m: &IgnoreMatcher, path: &str) -> bool {
    let comps: Vec<&str> = path.split('/').collect();
    let mut state = MatchState::default();
    let mut result = false;
    for i in 0..comps.len() {
        let prefix = comps[..=i].join("/");
        let (hit, next) = m.matches_with_parent(&prefix, &state);
        result = hit;
        state = next;
    }
    result
}

fn exact_only(m: &IgnoreMatcher, path: &str) -> bool {
    let mut matched = false;
    for p in m.patterns() {
        if p.is_exclusion() != matched {
            continue;
        }
        if p.matches(path) {
            matched = !p.is_exclusion();
        }
    }
    matched
}

#[test]
fn single_pattern_table() {
    for &(pattern, path, want) in SINGLE {
        let m = matcher(&[pattern]);
        let ctx = format!("pattern {pattern:?} path {path:?}");
        assert_eq!(exact_only(&m, path), want == Exact, "exact: {ctx}");
        assert_eq!(m.matches(path), want != No, "with parents: {ctx}");
        assert_eq!(walk_matches(&m, path), want != No, "walk: {ctx}");
        let (no_ctx, _) = m.matches_with_parent(path, &MatchState::default());
        assert_eq!(no_ctx, want != No, "no parent state: {ctx}");
    }
}

#[test]
fn multi_pattern_table() {
    for &(patterns, path, want) in MULTI {
        let m = matcher(patterns);
        let ctx = format!("patterns {patterns:?} path {path:?}");
        assert_eq!(m.matches(path), want, "with parents: {ctx}");
        if path != "." {
            assert_eq!(walk_matches(&m, path), want, "walk: {ctx}");
        }
    }
}

#[test]
fn malformed_patterns_name_file_and_line() {
    for bad in [
        "[", "!", "a[", "\\", "[]a]", "[-]", "[x-]", "[a-b-c]", "[^", "[^bc", "[z-a]",
    ] {
        let contents = format!("ok\n# comment\n{bad}\n");
        let file = IgnoreFile {
            path: PathBuf::from("ctx/.dockerignore"),
            contents: contents.into_bytes(),
        };
        let err = file.matcher().expect_err(bad);
        let msg = err.to_string();
        assert!(
            msg.starts_with("ctx/.dockerignore:3: invalid pattern"),
            "{msg}"
        );
    }
}

#[test]
fn read_all_normalises_like_ignorefile() {
    let content = "\u{feff}test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! \n  # not a comment\r\n./x/../y/\r\n";
    let got: Vec<String> = read_patterns(content.as_bytes())
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(
        got,
        [
            "test1",
            "test2",
            "a/file/here",
            "lastfile",
            "!inverted/abs/path",
            "!",
            "!",
            "# not a comment",
            "y"
        ]
    );
    let lines: Vec<usize> = read_patterns(content.as_bytes())
        .into_iter()
        .map(|(l, _)| l)
        .collect();
    assert_eq!(lines, [1, 2, 3, 5, 7, 8, 9, 10, 11]);
}

#[test]
fn exclusion_flags_and_pruning() {
    let m = matcher(&["docs", "  !docs/README.md  "]);
    assert!(m.has_exclusions());
    assert!(!m.can_skip_excluded_dir("docs"));
    assert!(m.can_skip_excluded_dir("other"));
    let m = matcher(&["node_modules"]);
    assert!(m.can_skip_excluded_dir("node_modules"));
    let m = matcher(&["*", "!src/**"]);
    assert!(!m.can_skip_excluded_dir("src"));
    assert!(m.can_skip_excluded_dir("target"));
    let m = matcher(&["*", "!**/keep"]);
    assert!(!m.can_skip_excluded_dir("target"));
}

#[test]
fn pattern_files_from_testdata() {
    // Each case file: lines of `pattern` until a line `---`, then `path<TAB>expected` lines.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/dockerignore");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("testdata/dockerignore exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("case") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable case");
        let (patterns, checks) = text.split_once("\n---\n").expect("case has ---");
        let file = IgnoreFile {
            path: path.clone(),
            contents: patterns.as_bytes().to_vec(),
        };
        let m = file.matcher().expect("valid case patterns");
        for line in checks.lines().filter(|l| !l.trim().is_empty()) {
            let (p, want) = line.split_once('\t').expect("path<TAB>expected");
            let want = match want.trim() {
                "excluded" => true,
                "included" => false,
                other => panic!("bad expectation {other:?} in {}", path.display()),
            };
            assert_eq!(m.matches(p), want, "{}: {p}", path.display());
            assert_eq!(walk_matches(&m, p), want, "{} (walk): {p}", path.display());
            count += 1;
        }
    }
    assert!(count > 0, "no cases found in {}", dir.display());
}

mod no_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_pattern_and_path(pattern in "[a-c*?\\[\\]\\\\!^/.-]{0,12}", path in "[a-c/.\n-]{0,12}") {
            if let Ok(m) = IgnoreMatcher::from_strings(Path::new("p"), &[pattern.as_str()]) {
                let _ = m.matches(&path);
                let _ = m.matches_with_parent(&path, &MatchState::default());
                let _ = m.can_skip_excluded_dir(&path);
            }
            let _ = crate::context::glob::matches(&pattern, &path);
            let _ = read_patterns(pattern.as_bytes());
        }

        #[test]
        fn any_chmod_text(text in "[0-9ugoarwxXst+=,-]{0,10}") {
            if let Ok(spec) = crate::chmod::ChmodSpec::parse(&text) {
                prop_assert!(spec.apply(0o7777, true) <= 0o7777);
            }
        }
    }
}
