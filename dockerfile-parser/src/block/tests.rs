use super::*;
use crate::ast::{CommandForm, Healthcheck, Instruction, Word};

use crate::differential_tests::testdata_dockerfiles;

fn same_word(w: WordView<'_>, expected: &Word, what: &str) {
    assert_eq!(w.text, expected.as_str(), "{what}");
    assert_eq!(w.span, expected.span, "{what} {}", w.text);
}

fn same_command(c: &CommandView<'_>, expected: &CommandForm) {
    match (c, expected) {
        (CommandView::Shell(w), CommandForm::Shell(e)) => same_word(*w, e, "shell form"),
        (CommandView::Exec(words), CommandForm::Exec(e)) => {
            let got: Vec<&str> = words.clone().map(|w| w.text).collect();
            let want: Vec<&str> = e.iter().map(|t| t.as_str()).collect();
            assert_eq!(got, want);
        }
        other => panic!("different forms: {other:?}"),
    }
}

/// Every block reads as the AST of [`crate::parse`] reads: positions, raw words, typed fields.
pub(crate) fn assert_same(src: &str) {
    let source = Text::from(src);
    let expected = crate::parse_typed_shared(&source);
    let got = parse_blocks(&source);
    let (df, file) = match (expected, got) {
        (Err(e), Err(g)) => {
            assert_eq!(e, g);
            return;
        }
        (Ok(df), Ok(file)) => (df, file),
        (e, g) => panic!("{e:?}\n{g:?}"),
    };
    assert_eq!(df.warnings, file.warnings);
    assert_eq!(df.directives, file.directives);
    assert_eq!(df.escape, file.escape);
    assert_eq!(df.global_args.len(), file.global_args().len());
    assert_eq!(df.stages.len(), file.stages().len());
    for (s, v) in df.stages.iter().zip(file.stages()) {
        assert_eq!(s.name.as_deref(), v.name());
        assert_eq!(s.instructions.len(), v.instructions().len());
    }
    assert_eq!(df.instructions().count(), file.instructions().len());
    for (node, block) in df.instructions().zip(file.instructions()) {
        let raw = &node.raw;
        assert_eq!(block.span(), raw.span);
        assert_eq!(block.start_line(), node.start_line());
        assert_eq!(block.end_line(), node.end_line());
        assert_eq!(block.original(), node.original());
        same_word(block.keyword(), &raw.keyword, "keyword");
        assert_eq!(block.to_raw(), *raw, "{}", node.original());
        assert_eq!(block.to_node().as_ref(), Some(node), "{}", node.original());
        assert_eq!(block.heredocs(), &raw.heredocs[..]);
        assert_eq!(block.flags().len(), raw.flags.len());
        for (f, e) in block.flags().zip(raw.flags.iter()) {
            assert_eq!(f.text, e.text.as_str());
            assert_eq!(f.name, e.name.as_str());
            assert_eq!(f.value, e.value.as_deref());
            assert_eq!(f.span, e.span);
        }
        assert_eq!(block.args().len(), raw.args.len(), "{}", node.original());
        for (w, e) in block.args().zip(raw.args.iter()) {
            same_word(w, e, "argument");
        }
        match (block.view(), &node.instruction) {
            (View::From { image, alias }, Instruction::From(f)) => {
                same_word(image, &f.image, "image");
                let platform = block.flag_value("platform");
                assert_eq!(
                    platform.map(|w| w.text),
                    f.platform.as_ref().map(|w| w.as_str())
                );
                assert_eq!(
                    platform.map(|w| w.span),
                    f.platform.as_ref().map(|w| w.span)
                );
                assert_eq!(alias.map(|a| a.text), f.alias.as_ref().map(|a| a.as_str()));
            }
            (View::Run(c), Instruction::Run(r)) => {
                same_command(&c, &r.command);
                assert_eq!(block.mounts().collect::<Vec<_>>(), &r.mounts[..]);
                let network = block.flag_value("network").map(|w| w.text);
                assert_eq!(network.is_some(), r.network.is_some());
            }
            (View::Cmd(c), Instruction::Cmd(e))
            | (View::Entrypoint(c), Instruction::Entrypoint(e)) => same_command(&c, e),
            (
                View::Copy {
                    add,
                    sources,
                    dest,
                    json,
                },
                Instruction::Copy(c) | Instruction::Add(c),
            ) => {
                assert_eq!(add, matches!(node.instruction, Instruction::Add(_)));
                assert_eq!(json, c.json_form);
                assert_eq!(sources.clone().count(), c.sources.len());
                for (w, e) in sources.zip(c.sources.iter()) {
                    same_word(w, e, "source");
                }
                same_word(dest, &c.dest, "dest");
                for (name, e) in [("from", &c.from), ("chown", &c.chown), ("chmod", &c.chmod)] {
                    let got = block.flag_value(name);
                    assert_eq!(
                        got.map(|w| (w.text, w.span)),
                        e.as_ref().map(|w| (w.as_str(), w.span))
                    );
                }
                assert_eq!(block.flag_on("link"), c.link);
                assert_eq!(
                    block.inline_files().cloned().collect::<Vec<_>>(),
                    &c.heredocs[..]
                );
            }
            (
                View::Pairs { pairs, .. },
                Instruction::Env { pairs: e } | Instruction::Label { pairs: e },
            ) => {
                let got: Vec<_> = pairs.collect();
                assert_eq!(got.len(), e.len());
                for ((k, v), (ek, ev)) in got.into_iter().zip(e.iter()) {
                    same_word(k, ek, "key");
                    same_word(v, ev, "value");
                }
            }
            (View::Arg(words), Instruction::Arg { args }) => assert_eq!(words.len(), args.len()),
            (View::Expose(w), Instruction::Expose(e))
            | (View::Volume(w), Instruction::Volume(e)) => {
                assert_eq!(w.len(), e.len());
            }
            (View::User(w), Instruction::User(e))
            | (View::Workdir(w), Instruction::Workdir(e))
            | (View::Stopsignal(w), Instruction::Stopsignal(e)) => same_word(w, e, "word"),
            (View::Shell(w), Instruction::Shell(e)) => {
                let got: Vec<&str> = w.map(|w| w.text).collect();
                let want: Vec<&str> = e.iter().map(|t| t.as_str()).collect();
                assert_eq!(got, want);
            }
            (View::Maintainer(w), Instruction::Maintainer(e)) => assert_eq!(w.text, e),
            (View::Healthcheck(None), Instruction::Healthcheck(Healthcheck::None)) => {}
            (View::Healthcheck(Some(c)), Instruction::Healthcheck(Healthcheck::Cmd(h))) => {
                same_command(&c, &h.command);
                assert_eq!(block.healthcheck_duration("interval"), h.interval);
                assert_eq!(block.healthcheck_duration("timeout"), h.timeout);
                assert_eq!(block.healthcheck_duration("start-period"), h.start_period);
                assert_eq!(
                    block.healthcheck_duration("start-interval"),
                    h.start_interval
                );
                assert_eq!(block.healthcheck_retries(), h.retries);
            }
            (View::Onbuild(t), Instruction::Onbuild(o)) => {
                assert_eq!(block.onbuild_expression(), o.expression);
                assert_eq!(t.is_some(), o.trigger.is_some());
                let trigger = block.trigger().expect("an ONBUILD has a trigger");
                assert_eq!(Some(&trigger.to_raw()), raw.sub.as_deref());
                if let (Some(t), Some(e)) = (t, &o.trigger) {
                    assert_eq!(t.to_node().map(|n| n.instruction).as_ref(), Some(&**e));
                }
            }
            (v, i) => panic!("{v:?} read as {i:?}"),
        }
    }
}

#[test]
fn blocks_read_as_the_ast_over_the_corpus_and_golden_cases() {
    let paths = testdata_dockerfiles();
    let mut whole = String::new();
    for p in &paths {
        let Ok(src) = std::fs::read_to_string(p) else {
            continue;
        };
        assert_same(&src);
        if !src.starts_with("# escape") {
            whole.push_str(&src);
            whole.push('\n');
        }
    }
    assert_same(&whole);
}

#[test]
fn blocks_of_edge_shapes() {
    for body in [
        "ENV A=1 B=2",
        "ENV A 1",
        "ENV =1",
        "ARG a=1 b",
        "ARG =1",
        "COPY a",
        "COPY [\"a\", \"b\"]",
        "COPY a \\\n  b",
        "RUN [\"a\", \"b\\n\"]",
        "RUN echo <<EOF\nx\nEOF",
        "CMD echo",
        "entrypoint echo hi",
        "CMD [\"a\" b",
        "SHELL [\"/bin/sh\", \"-c\"]",
        "SHELL sh -c",
        "SHELL []",
        "MAINTAINER a b",
        "MAINTAINER",
        "VOLUME [\"\"]",
        "USER",
        "LABEL a=\"b c\" d=e",
        "COPY --from=x --chown=1:1 --link a b",
        "COPY --from=x --from=y a b",
        "COPY --chmod=0755 a b",
        "COPY --chmod=9 a b",
        "COPY --chmod=$M a b",
        "COPY --link=false a b",
        "COPY --link=maybe a b",
        "COPY --from a b",
        "COPY --exclude=*.md --exclude=x a b",
        "COPY --checksum=sha256:x a b",
        "ADD --checksum=sha256:x --keep-git-dir a b",
        "COPY --from=x -- a b",
        "RUN --mount=type=cache,target=/x make",
        "RUN --mount=type=cache,target=/x,z make",
        "RUN --mount=type=bogus make",
        "RUN --mount=type=secret,id=a,env=B --network=none --security=insecure make",
        "RUN --network=bogus make",
        "RUN --network make",
        "RUN --security=x make",
        "RUN --network=host --network=none make",
        "ENV A  1 2",
        "LABEL A",
        "ENV A=1 B",
        "COPY a b<c",
        "COPY a<<EOF b",
        "FROM --platform=$BUILDPLATFORM c AS d",
        "FROM --platform c",
        "FROM --platform=x --platform=y c",
        "COPY --chown=\"a b\" x y",
        "COPY --from='st' x y",
        "RUN [\"a\\u0041\", \"b\"]",
        "RUN <<EOF\necho hi\nEOF",
        "RUN <<-EOF cat\n\techo hi\n\tEOF",
        "RUN 3<<A <<'B' cat\na\nA\nb\nB",
        "COPY <<EOF /etc/x\nbody\nEOF",
        "COPY <<EOF a /etc/\nbody\nEOF",
        "ADD --chmod=0644 <<\"A\" <<B /d/\n$x\nA\ny\nB",
        "COPY [\"<<EOF\", \"/x\"]",
        "ONBUILD RUN make",
        "ONBUILD COPY --chown=\"a\" x y",
        "onbuild run <<EOF\nbody\nEOF",
        "ONBUILD COPY one",
        "ONBUILD FROM x",
        "ONBUILD",
        "HEALTHCHECK NONE",
        "HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD curl -f x",
        "HEALTHCHECK --start-period=1m --start-interval=2s CMD [\"a\", \"b\"]",
        "HEALTHCHECK --interval=1ns CMD x",
        "HEALTHCHECK --retries=x CMD x",
        "HEALTHCHECK CMD",
        "HEALTHCHECK NONE x",
        "HEALTHCHECK BOGUS",
        "ENV A=\"x\\\" y\"",
        "RUN --mount=\"type=cache,target=/x\" make",
        "ONBUILD CMD x",
        "ONBUILD ENV A 1",
        "ONBUILD RUN [\"a\", \"b\"]",
        "ONBUILD  COPY --from=x --chown=1 a b  ",
        "onbuild run --mount=type=cache,target=/c make \\\n  all",
        "ONBUILD ONBUILD RUN x",
        "ONBUILD maintainer me",
        "ONBUILD --x RUN y",
        "ONBUILD RUN --network=bogus x",
        "ONBUILD HEALTHCHECK --interval=1m CMD [\"true\"]",
        "ONBUILD SHELL []",
        "HEALTHCHECK --interval=0s CMD x",
        "healthcheck cmd x y",
        "HEALTHCHECK CMD []",
        "HEALTHCHECK CMD [\"a\"",
        "HEALTHCHECK --retries=3 NONE",
        "HEALTHCHECK --retries=-1 CMD x",
        "HEALTHCHECK --timeout=2 CMD x",
        "HEALTHCHECK --interval=1s --interval=2s CMD x",
        "HEALTHCHECK --bogus=1 CMD x",
        "HEALTHCHECK CMD\tcurl",
        "HEALTHCHECK none",
        "HEALTHCHECK \\\n  CMD [\"a\", \"b\"]",
    ] {
        assert_same(&format!("FROM a AS b\n{body}\n"));
        assert_same(&format!("from a As Bad\n{body}\nFROM c as b\n"));
    }
    assert_same("ARG x\nRUN a\n");
    assert_same("ARG x\n");
}

#[test]
fn common_shapes_take_one_block() {
    let src = "ARG v=1\nFROM --platform=$P img:$v AS build\nRUN make \\\n  all\nCOPY --from=x --chown=1:1 --link a b\n\
               ENV A=1 B=\"2 3\"\nENV C 4\nCMD run it\nSHELL [\"sh\", \"-c\"]\nMAINTAINER me\nRUN --mount=type=cache,target=/c --network=none x\nWORKDIR /w\nCMD [\"a\", \"b\"]\nEXPOSE 80 443\nUSER app\n";
    let file = parse_blocks(&Text::from(src)).unwrap();
    assert_eq!(file.instructions().len(), 14);
    assert!(file.triggers.is_empty() && file.heredocs.is_empty());
    assert_same(src);
}

#[test]
fn blocks_and_words_stay_small() {
    assert_eq!(std::mem::size_of::<Block>(), 56);
    assert_eq!(std::mem::size_of::<WordRef>(), 16);
}
