//! Planning COPY and ADD: the source (`--from`), the expanded sources and destination, inline
//! files from heredocs, and the flags as the worker takes them.

use kiln_dockerfile_parser::block::{BlockRef, Sources, WordView};

use super::PlanError;
use super::stage::{StageState, clean_abs};
use crate::graph::{CopyOp, InlineFile, Op, SourceRef};

impl StageState<'_> {
    pub(super) fn dispatch_copy(
        &mut self,
        block: BlockRef<'_>,
        add: bool,
        source_words: Sources<'_>,
        dest_word: WordView<'_>,
        json: bool,
    ) -> Result<(), PlanError> {
        let kw = if add { "ADD" } else { "COPY" };
        let from = match block.flag_value("from") {
            Some(w) => {
                let v = self.expand(w, "--from")?;
                self.source_ref(&v, w.span)?
            }
            None => SourceRef::Context,
        };
        let mut sources = Vec::new();
        for w in source_words {
            if json {
                sources.push(self.expand(w, kw)?);
            } else {
                sources.extend(self.expand_words(w, kw)?);
            }
        }
        let mut inline = Vec::new();
        for h in block.inline_files() {
            let body = h.body().into_owned();
            let content = if h.expand {
                let word = WordView {
                    text: &body,
                    span: h.body_span,
                };
                self.expand(word, "heredoc")?
            } else {
                body
            };
            inline.push(InlineFile {
                name: h.name.to_string(),
                content,
            });
        }
        let dest_raw = self.expand(dest_word, &format!("{kw} destination"))?;
        if dest_raw.is_empty() {
            return Err(PlanError::Invalid {
                message: format!("{kw} requires a destination"),
                span: dest_word.span,
            });
        }
        let trailing = dest_raw.ends_with('/') || dest_raw == "." || dest_raw.ends_with("/.");
        let mut dest = clean_abs(&self.abs_path(&dest_raw));
        if trailing && dest != "/" {
            dest.push('/');
        }
        let opt = |s: &Self, name: &str| -> Result<Option<String>, PlanError> {
            block
                .flag_value(name)
                .map(|w| s.expand(w, &format!("--{name}")))
                .transpose()
        };
        // A boolean flag as given (`--unpack`, `--unpack=false`), `None` when it is not.
        let boolean = |name: &str| {
            block
                .flags()
                .find(|f| f.name == name)
                .map(|f| f.value.is_none_or(|v| v.eq_ignore_ascii_case("true")))
        };
        let op = CopyOp {
            add,
            from,
            sources,
            inline,
            dest,
            chown: opt(self, "chown")?,
            chmod: opt(self, "chmod")?,
            exclude: block
                .flags()
                .filter(|f| f.name == "exclude")
                .map(|f| self.expand(f.value_word(), "--exclude"))
                .collect::<Result<_, _>>()?,
            parents: block.flag_on("parents"),
            link: block.flag_on("link"),
            checksum: opt(self, "checksum")?,
            unpack: boolean("unpack"),
            keep_git_dir: boolean("keep-git-dir").unwrap_or(false),
        };
        self.push(block, Op::Copy(op), block.original().to_string());
        Ok(())
    }
}
