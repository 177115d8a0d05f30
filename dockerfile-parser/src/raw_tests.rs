use super::*;
use proptest::prelude::*;

type Ranges = (Vec<(usize, usize)>, usize);

fn pest_ranges(text: &str) -> Option<Ranges> {
    let head = DockerfileGrammar::parse(Rule::head, text).ok()?.next()?;
    let end = head.as_span().end();
    let ranges = head
        .into_inner()
        .filter(|p| matches!(p.as_rule(), Rule::keyword | Rule::flag))
        .map(|p| (p.as_span().start(), p.as_span().end()))
        .collect();
    Some((ranges, end))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]
    /// The fast path finds the same keyword, flags and end as the grammar whenever it applies.
    #[test]
    fn fast_head_agrees_with_grammar(text in "[ \t\u{0B}a-zA-Z\"'=,\\\\-]{0,32}") {
        if let Some(fast) = fast_head(&text) {
            let mut ranges = vec![fast.keyword];
            ranges.extend(fast.flags.as_slice());
            prop_assert_eq!(Some((ranges, fast.end)), pest_ranges(&text));
        }
    }

    #[test]
    fn fast_head_agrees_on_flag_lines(
        kw in "[A-Z]{1,6}",
        flags in proptest::collection::vec("--[a-z=,/-]{0,8}", 0..4),
        gap in "[ \t]{1,3}",
        rest in "[a-z -]{0,8}",
    ) {
        let text = format!("{kw}{gap}{}{gap}{rest}", flags.join(&gap));
        if let Some(fast) = fast_head(&text) {
            let mut ranges = vec![fast.keyword];
            ranges.extend(fast.flags.as_slice());
            prop_assert_eq!(Some((ranges, fast.end)), pest_ranges(&text));
        }
    }
}

#[test]
fn json_args() {
    assert!(matches!(parse_json_args("[\"a\", \"b\"]"), JsonArgs::Strings(v) if v.len() == 2));
    assert!(matches!(
        parse_json_args("[\"a\", 1]"),
        JsonArgs::NotStrings
    ));
    assert!(matches!(parse_json_args("['a']"), JsonArgs::NotJson));
    assert!(matches!(parse_json_args("[\"a\"] x"), JsonArgs::NotJson));
    assert!(matches!(parse_json_args("[]"), JsonArgs::Strings(v) if v.is_empty()));
}

#[test]
fn words_keep_quotes() {
    let src = "a=\"1 2\" b='x y' c\\ d e\\";
    let w: Vec<&str> = parse_words(src, '\\')
        .into_iter()
        .map(|(a, _, t)| &src[a..t])
        .collect();
    assert_eq!(w, ["a=\"1 2\"", "b='x y'", "c\\ d", "e"]);
}

#[test]
fn blanks_after_heredoc_marker_as_buildkit() {
    let names = |src: &str| -> Vec<(String, u32, bool)> {
        crate::parse_raw(src)
            .expect("parses")
            .instructions
            .iter()
            .flat_map(|i| {
                i.heredocs
                    .iter()
                    .map(|h| (h.name.to_string(), h.fd, h.chomp))
            })
            .collect()
    };
    assert_eq!(names("RUN << EOF\nx\nEOF\n"), [("EOF".into(), 0, false)]);
    assert_eq!(names("RUN << -EOF\nx\n-EOF\n"), [("-EOF".into(), 0, false)]);
    assert_eq!(
        names("RUN 3<< EOF cat\nx\nEOF\n"),
        [("EOF".into(), 3, false)]
    );
    assert_eq!(names("RUN <<\t 'Q'\nx\nQ\n"), [("Q".into(), 0, false)]);
    // `<<-` then a blank is two words for BuildKit: no heredoc.
    assert!(names("RUN cat <<- EOF\n").is_empty());
    // A quoted or escaped `<<` is no marker, nor is one ending the line.
    assert!(names("RUN echo \"<<\" EOF\n").is_empty());
    assert!(names("RUN echo a<< EOF\n").is_empty());
    assert!(names("RUN echo <<\n").is_empty());
}

#[test]
fn keyword_names_ignore_ascii_case_only() {
    for k in crate::lower::KEYWORDS {
        assert_eq!(keyword_name(k), Some(*k));
        assert_eq!(keyword_name(&k.to_ascii_uppercase()), Some(*k));
        let mixed: String = k
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        assert_eq!(keyword_name(&mixed), Some(*k));
    }
    for other in [
        "",
        "ru",
        "runn",
        "RUN ",
        "ſtopsignal",
        "healthcheckk",
        "frοm",
        "COPY\u{0}",
    ] {
        assert_eq!(keyword_name(other), None, "{other:?}");
    }
}

#[test]
fn blank_splitting() {
    fn pieces(s: &str) -> Vec<&str> {
        split_blanks(s).map(|(a, b)| &s[a..b]).collect()
    }
    assert_eq!(
        pieces(" a\tb\u{0B}c\u{0C}d\re\nf  "),
        ["a", "b", "c", "d", "e", "f"]
    );
    assert_eq!(pieces("é\u{a0}x y"), ["é\u{a0}x", "y"]);
    assert!(pieces(" \t ").is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]
    /// The decoder-free JSON path agrees with the decoder whenever it answers.
    #[test]
    fn simple_json_agrees_with_decoder(text in r#"\[[ \t\r\n\u{0B}\u{0C}",\\\]\[a-zé0-9:{}\u{1}]{0,24}"#) {
        check_json(&text)?;
    }

    #[test]
    fn simple_json_agrees_on_arrays(
        items in proptest::collection::vec(r#"[a-z é"\\/\t\u{1}]{0,6}"#, 0..5),
        gaps in proptest::collection::vec("[ \t\r\n\u{0C}]{0,2}", 4),
        tail in r#"[\] ,x"]{0,2}"#,
    ) {
        let quoted: Vec<String> = items.iter().map(|i| format!("\"{i}\"")).collect();
        let text = format!("[{}{}{}]{}{tail}", gaps[0], quoted.join(&format!("{},{}", gaps[1], gaps[2])), gaps[3], gaps[0]);
        check_json(&text)?;
    }
}

fn check_json(text: &str) -> Result<(), TestCaseError> {
    if let Some(fast) = simple_json_strings(text) {
        let JsonArgs::Strings(slow) = parse_json_args_decoder(text) else {
            return Err(TestCaseError::fail(format!("decoder refuses {text:?}")));
        };
        prop_assert_eq!(fast.len(), slow.len());
        for ((_, a, b), (decoded, c, d)) in fast.iter().zip(&slow) {
            prop_assert_eq!((a, b), (c, d));
            prop_assert_eq!(Some(&text[a + 1..b - 1]), decoded.as_deref());
        }
    }
    Ok(())
}

#[test]
fn simple_json_cases() {
    for ok in [
        r#"["a"]"#,
        r#"[ "a" , "b" ]"#,
        "[]",
        "[ ]",
        "[\"\"]",
        "[\"é\"] \n",
    ] {
        assert!(simple_json_strings(ok).is_some(), "{ok}");
        assert!(
            matches!(parse_json_args_decoder(ok), JsonArgs::Strings(_)),
            "{ok}"
        );
    }
    for other in [
        r#"["a\"b"]"#,
        r#"["a",]"#,
        r#"["a" "b"]"#,
        "[1]",
        "[\"a\"] x",
        "[\"\u{1}\"]",
        "[",
        "[\u{0B}]",
    ] {
        assert!(simple_json_strings(other).is_none(), "{other}");
    }
}

/// The char-by-char `parse_words` that the byte-wise one replaced, kept as the reference.
fn parse_words_reference(rest: &str, escape: char) -> Vec<(usize, usize, usize)> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut blank_ok = false;
    let mut start = 0;
    let mut it = rest.char_indices().peekable();
    while let Some((pos, ch)) = it.next() {
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                continue;
            }
            phase = Phase::Word;
            start = pos;
        }
        match phase {
            Phase::Word => {
                if ch.is_whitespace() {
                    if blank_ok || pos > start {
                        words.push((start, pos, pos));
                    }
                    blank_ok = false;
                    phase = Phase::Spaces;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    phase = Phase::Quote(ch);
                    blank_ok = true;
                }
                if ch == escape {
                    if it.peek().is_none() {
                        // Escape at the very end: dropped.
                        if blank_ok || pos > start {
                            words.push((start, rest.len(), pos));
                        }
                        return words;
                    }
                    it.next();
                }
            }
            Phase::Quote(q) => {
                if ch == q {
                    phase = Phase::Word;
                } else if ch == escape && q != '\'' {
                    if it.peek().is_none() {
                        words.push((start, rest.len(), pos));
                        return words;
                    }
                    it.next();
                }
            }
            Phase::Spaces => {}
        }
    }
    if phase != Phase::Spaces && (blank_ok || rest.len() > start) {
        words.push((start, rest.len(), rest.len()));
    }
    words
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]
    #[test]
    fn byte_wise_words_agree_with_the_reference(
        text in "[a-z =\"'\\\\`\t\r\n\u{b}\u{c}\u{8}\u{e}\u{a0}\u{2003}é\u{85}]{0,48}",
        backtick in any::<bool>(),
    ) {
        let escape = if backtick { '`' } else { '\\' };
        prop_assert_eq!(parse_words(&text, escape), parse_words_reference(&text, escape));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]
    /// The plain-marker shortcut gives what the grammar and the word splitter give.
    #[test]
    fn plain_heredoc_markers_agree_with_the_grammar(
        word in "[0-9]{0,2}<<-{0,2}[\"' ]?[A-Za-z0-9_$\"' .;&|(){}<>\\`~\t-]{0,6}[\"']?",
    ) {
        let fast = parse_heredoc_marker(&word);
        crate::REFERENCE.with(|r| r.set(true));
        let reference = parse_heredoc_marker(&word);
        crate::REFERENCE.with(|r| r.set(false));
        prop_assert_eq!(fast, reference);
    }
}

#[test]
fn plain_heredoc_markers_take_the_shortcut() {
    for (word, want) in [
        ("<<EOF", Some(("EOF", 0, false, true))),
        ("3<<-'E_1'", Some(("E_1", 3, true, false))),
        ("<<\"EOF\"", Some(("EOF", 0, false, false))),
        ("<<'EOF\"", None),
        ("<<\"\"", None),
        ("<<-", None),
        ("<<E$X", None),
    ] {
        let got =
            words::plain_heredoc_marker(word, word.bytes().take_while(u8::is_ascii_digit).count());
        let got = got.as_ref().map(|(n, fd, c, e)| (n.as_str(), *fd, *c, *e));
        assert_eq!(got, want, "{word}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]
    /// The packed comparison is `eq_ignore_ascii_case` against every keyword.
    #[test]
    fn keyword_names_agree_with_a_search(
        word in "(add|arg|cmd|copy|entrypoint|env|expose|from|healthcheck|label|maintainer|onbuild|run|shell|stopsignal|user|volume|workdir|[a-zA-Z@`\\[{\u{0}\u{c1}é ]{0,12})",
        flips in any::<u16>(),
    ) {
        let word: String = word
            .chars()
            .enumerate()
            .map(|(i, c)| if flips >> (i % 16) & 1 == 1 { c.to_ascii_uppercase() } else { c })
            .collect();
        let slow = crate::lower::KEYWORDS.iter().find(|k| k.eq_ignore_ascii_case(&word)).copied();
        prop_assert_eq!(keyword_name(&word), slow);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]
    /// Long runs of plain bytes (the sixteen-byte scan) between the bytes that end them.
    #[test]
    fn words_with_long_plain_runs_agree_with_the_reference(
        parts in proptest::collection::vec(("[a-z0-9=._/-]{0,40}", "[ \"'\\\\`\t\r\u{b}\u{c}é\u{2003}]"), 0..6),
        backtick in any::<bool>(),
    ) {
        let text: String = parts.iter().flat_map(|(a, b)| [a.as_str(), b.as_str()]).collect();
        let escape = if backtick { '`' } else { '\\' };
        prop_assert_eq!(parse_words(&text, escape), parse_words_reference(&text, escape));
    }
}
