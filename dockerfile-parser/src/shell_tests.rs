use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "A" => Some("a".into()),
        "EMPTY" => Some(String::new()),
        "PATHV" => Some("/usr/local/bin/tool.tar.gz".into()),
        "SP" => Some("x y  z".into()),
        "UNI" => Some("héllo wörld".into()),
        _ => None,
    }
}

fn ex_with(e: Expander, word: &str) -> String {
    match e.expand(word, &env) {
        Ok(e) => e.value,
        Err(e) => format!("ERR {e}"),
    }
}

fn ex(word: &str) -> String {
    ex_with(Expander::new('\\'), word)
}

fn words(word: &str) -> Vec<String> {
    match Expander::new('\\').expand_words(word, &env) {
        Ok(w) => w.words,
        Err(e) => vec![format!("ERR {e}")],
    }
}

#[test]
fn plain_references() {
    let cases = [
        ("$A", "a"),
        ("${A}", "a"),
        ("${A}b", "ab"),
        ("$Ab", ""),
        ("${NOPE}", ""),
        ("$", "$"),
        ("a$", "a$"),
        ("$1", ""),
        ("$$", ""),
        ("$-x", "x"),
        ("${UNI}", "héllo wörld"),
        ("pre-$A-post", "pre-a-post"),
        ("$A.$A", "a.a"),
    ];
    for (input, want) in cases {
        assert_eq!(ex(input), want, "{input}");
    }
}

#[test]
fn default_alternative_and_required() {
    let cases = [
        ("${NOPE:-def}", "def"),
        ("${EMPTY:-def}", "def"),
        ("${EMPTY-def}", ""),
        ("${NOPE-def}", "def"),
        ("${A:-def}", "a"),
        ("${A-def}", "a"),
        ("${A:+alt}", "alt"),
        ("${A+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${NOPE+alt}", ""),
        ("${NOPE:+alt}", ""),
        ("${NOPE:?must be set}", "ERR NOPE: must be set"),
        ("${NOPE?}", "ERR NOPE: is not allowed to be unset"),
        ("${NOPE:?}", "ERR NOPE: is not allowed to be unset"),
        ("${EMPTY:?}", "ERR EMPTY: is not allowed to be empty"),
        ("${EMPTY?x}", ""),
        ("${A:?x}", "a"),
        ("${NOPE:-a b}", "a b"),
        ("${NOPE:-'}'}", "}"),
        ("${NOPE:-\"q\"}", "q"),
        ("${NOPE:-\\}}", "}"),
    ];
    for (input, want) in cases {
        assert_eq!(ex(input), want, "{input}");
    }
}

#[test]
fn pattern_modifiers() {
    let cases = [
        ("${PATHV#*/}", "usr/local/bin/tool.tar.gz"),
        ("${PATHV##*/}", "tool.tar.gz"),
        ("${PATHV%.*}", "/usr/local/bin/tool.tar"),
        ("${PATHV%%.*}", "/usr/local/bin/tool"),
        ("${PATHV%/*}", "/usr/local/bin"),
        ("${PATHV%%/*}", ""),
        ("${PATHV#/usr}", "/local/bin/tool.tar.gz"),
        ("${PATHV#\\/usr}", "/local/bin/tool.tar.gz"),
        ("${PATHV#nomatch}", "/usr/local/bin/tool.tar.gz"),
        ("${PATHV#?}", "usr/local/bin/tool.tar.gz"),
        ("${PATHV/o/0}", "/usr/l0cal/bin/tool.tar.gz"),
        ("${PATHV//o/0}", "/usr/l0cal/bin/t00l.tar.gz"),
        ("${PATHV//\\//:}", ":usr:local:bin:tool.tar.gz"),
        ("${PATHV/l*l/L}", "/usr/L.tar.gz"),
        ("${PATHV/.tar.gz/}", "/usr/local/bin/tool"),
        ("${A/?/X}", "X"),
        ("${A//*/X}", "X"),
        ("${NOPE/a/b}", ""),
        (
            "${A#\\a}",
            "ERR invalid pattern (\\a) in substitution: invalid escape '\\a'",
        ),
        ("${UNI#h?}", "llo wörld"),
        ("${UNI%ö*}", "héllo w"),
    ];
    for (input, want) in cases {
        assert_eq!(ex(input), want, "{input}");
    }
}

#[test]
fn nesting_and_quotes() {
    let cases = [
        ("${NOPE:-${A}-x}", "a-x"),
        ("${NOPE:-${NOPE2:-deep}}", "deep"),
        ("${A:+${PATHV##*/}}", "tool.tar.gz"),
        ("'$A'", "$A"),
        ("\"$A\"", "a"),
        ("\"a b\"", "a b"),
        ("\\$A", "$A"),
        ("a\\ b", "a b"),
        ("\"\\$A\"", "$A"),
        ("\"\\x\"", "\\x"),
        ("\"\\\"\"", "\""),
        ("'a\\b'", "a\\b"),
        ("\"it's\"", "it's"),
        ("trailing\\", "trailing"),
    ];
    for (input, want) in cases {
        assert_eq!(ex(input), want, "{input}");
    }
}

#[test]
fn errors_carry_positions() {
    let cases = [
        ("${", "ERR syntax error: missing '}'"),
        ("${}", "ERR syntax error: bad substitution"),
        ("${:-x}", "ERR syntax error: bad substitution"),
        ("${A", "ERR syntax error: missing '}'"),
        ("${A:-x", "ERR syntax error: missing '}'"),
        ("${A/x", "ERR syntax error: missing '/' in ${}"),
        ("${A/x/y", "ERR syntax error: missing '}'"),
        (
            "'abc",
            "ERR unexpected end of statement while looking for matching single-quote",
        ),
        (
            "\"abc",
            "ERR unexpected end of statement while looking for matching double-quote",
        ),
        ("${A!x}", "ERR unsupported modifier (!) in substitution"),
        ("${A:x}", "ERR unsupported modifier (:x) in substitution"),
    ];
    for (input, want) in cases {
        assert_eq!(ex(input), want, "{input}");
    }
    let e = Expander::new('\\')
        .expand("ok ${X:?need X}", &env)
        .expect_err("must fail");
    assert_eq!(e.offset, 3);
    assert_eq!(e.variable(), Some("X"));
}

/// BuildKit has no `${A:#x}`, `${A:##x}`, `${A:%x}` or `${A:%%x}`: they fail, set or not.
#[test]
fn colon_before_trim_operators_is_unsupported() {
    for op in [":#", ":##", ":%", ":%%"] {
        for name in ["A", "NOPE"] {
            for word in ["", "a*"] {
                let input = format!("${{{name}{op}{word}}}");
                let want = format!("ERR unsupported modifier ({}) in substitution", &op[..2]);
                assert_eq!(ex(&input), want, "{input}");
            }
        }
    }
}

#[test]
fn backtick_escape() {
    let bt = Expander::new('`');
    assert_eq!(ex_with(bt, "`$A"), "$A");
    assert_eq!(ex_with(bt, "C:\\dir\\$A"), "C:\\dir\\a");
    assert_eq!(ex_with(bt, "\"`\"q`\"\""), "\"q\"");
    assert_eq!(ex_with(bt, "a` b"), "a b");
}

#[test]
fn skip_unset_keeps_references() {
    let e = Expander::new('\\').skip_unset(true);
    assert_eq!(
        ex_with(e, "$NOPE ${NOPE} ${NOPE:-x} ${NOPE/a/b} $A"),
        "$NOPE ${NOPE} ${NOPE:-x} ${NOPE/a/b} a"
    );
}

#[test]
fn word_splitting() {
    assert_eq!(words("a b  c"), ["a", "b", "c"]);
    assert_eq!(words("$SP"), ["x", "y", "z"]);
    assert_eq!(words("\"$SP\""), ["x y  z"]);
    assert_eq!(words("'a b' c"), ["a b", "c"]);
    assert_eq!(words("a\\ b"), ["a b"]);
    assert!(words("\"\"").is_empty());
    assert_eq!(words("${NOPE:-one two}"), ["one", "two"]);
    assert_eq!(words("pre$SP"), ["prex", "y", "z"]);
    assert_eq!(words("80/tcp ${NOPE:-443}/udp"), ["80/tcp", "443/udp"]);
}

#[test]
fn reports_used_and_unset_in_order() {
    let r = Expander::new('\\')
        .expand("${A} $NOPE ${A} ${NOPE:-$EMPTY} ${Z-x}", &env)
        .expect("expands");
    assert_eq!(r.used, ["A", "EMPTY"]);
    assert_eq!(r.unset, ["NOPE", "Z"]);
    let w = Expander::new('\\')
        .expand_words("$SP $Q", &env)
        .expect("expands");
    assert_eq!(w.used, ["SP"]);
    assert_eq!(w.unset, ["Q"]);
}

#[test]
fn nesting_depth_is_bounded() {
    let nest = |n: usize| format!("{}x{}", "${a:-".repeat(n), "}".repeat(n));
    assert_eq!(ex(&nest(MAX_DEPTH)), "x");
    let e = Expander::new('\\')
        .expand(&nest(100_000), &env)
        .expect_err("too deep");
    assert_eq!(e.kind, ExpandErrorKind::TooDeep);
}

#[test]
fn expanded_words_are_bounded_and_substitutions_stay_linear() {
    let big = "x".repeat(MAX_WORD_BYTES / 2);
    let lookup = |name: &str| (name == "B").then(|| big.clone());
    let e = Expander::new('\\');
    // Exactly at the limit is fine; one more expansion is not, however it is spelled.
    assert_eq!(
        e.expand("$B$B", &lookup).expect("at the limit").value.len(),
        MAX_WORD_BYTES
    );
    for word in [
        "$B$B$B",
        "$B$B-",
        "\"$B$B$B\"",
        "${B}${B}${B:+y}",
        "${B//x/xxx}",
        "$B$B$B$B$B$B$B$B$B$B",
    ] {
        let kind = e.expand(word, &lookup).map(|_| ()).map_err(|e| e.kind);
        let limit = MAX_WORD_BYTES;
        assert_eq!(kind, Err(ExpandErrorKind::TooLong { limit }), "{word}");
        let kind = e
            .expand_words(word, &lookup)
            .map(|_| ())
            .map_err(|e| e.kind);
        assert_eq!(kind, Err(ExpandErrorKind::TooLong { limit }), "{word}");
    }
    // Substitutions without `*` on a value at the limit finish at once.
    let started = std::time::Instant::now();
    assert_eq!(
        ex_with_lookup(e, "${B//x/y}", &lookup).len(),
        MAX_WORD_BYTES / 2
    );
    assert_eq!(
        ex_with_lookup(e, "${B#x?}", &lookup).len(),
        MAX_WORD_BYTES / 2 - 2
    );
    assert_eq!(
        ex_with_lookup(e, "${B%%?x}", &lookup).len(),
        MAX_WORD_BYTES / 2 - 2
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(
        err_text(e.max_word_bytes(4).expand("abcde", &env)).contains("limit of 4 bytes per word")
    );
    assert_eq!(ex_with(e.max_word_bytes(4), "${A}bcd"), "abcd");
}

fn ex_with_lookup(e: Expander, word: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    e.expand(word, lookup).expect("expands").value
}

fn err_text(r: Result<Expansion, ExpandError>) -> String {
    r.map(|e| e.value).unwrap_or_else(|e| e.to_string())
}
