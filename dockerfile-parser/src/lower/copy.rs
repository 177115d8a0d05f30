//! COPY and ADD.

use super::{Ctx, FlagKind, Flags};
use crate::ast::{CopyInstruction, RawInstruction};
use crate::error::{ParseError, ParseErrorKind};
use crate::raw::parse_heredoc_marker;
use crate::values::parse_chmod;

pub(crate) const COPY_FLAGS: &[(&str, FlagKind)] = &[
    ("chown", FlagKind::Str),
    ("from", FlagKind::Str),
    ("chmod", FlagKind::Str),
    ("link", FlagKind::Bool),
    ("parents", FlagKind::Bool),
    ("exclude", FlagKind::Strs),
];

pub(crate) const ADD_FLAGS: &[(&str, FlagKind)] = &[
    ("chown", FlagKind::Str),
    ("chmod", FlagKind::Str),
    ("link", FlagKind::Bool),
    ("keep-git-dir", FlagKind::Bool),
    ("checksum", FlagKind::Str),
    ("exclude", FlagKind::Strs),
    ("unpack", FlagKind::Bool),
];

pub(super) fn copy(
    raw: &RawInstruction,
    ctx: &mut Ctx<'_>,
    is_add: bool,
) -> Result<CopyInstruction, ParseError> {
    let kw = if is_add { "ADD" } else { "COPY" };
    let flags = Flags::parse(raw, if is_add { ADD_FLAGS } else { COPY_FLAGS }, ctx.src)?;
    let split = raw.args.split_last().filter(|(_, s)| !s.is_empty());
    let Some((dest, sources)) = split else {
        let label = if raw.args.is_empty() {
            "expected a source and a destination, found nothing"
        } else {
            "expected a source and a destination, found only one path"
        };
        return Err(ctx
            .arg_error(
                raw,
                format!(
                    "{kw} requires at least two arguments, but only one was provided. \
                     Destination could not be determined"
                ),
                label,
            )
            .with_help(format!("write `{kw} <src>... <dest>`")));
    };
    let dest = dest.clone();
    let is_marker = |text: &str| matches!(parse_heredoc_marker(text), Ok(Some(_)));
    if !raw.json && is_marker(&dest.text) {
        return Err(ctx
            .error(
                ParseErrorKind::BadHeredoc(format!(
                    "{kw} cannot accept a heredoc as a destination"
                )),
                dest.span,
                "expected a destination path, found a heredoc",
            )
            .with_help(format!("write `{kw} <<EOF /path/to/file`")));
    }
    let mut out = CopyInstruction {
        from: flags.string("from"),
        chown: flags.string("chown"),
        chmod: flags.string("chmod"),
        link: flags.boolean("link").unwrap_or(false),
        parents: flags.boolean("parents").unwrap_or(false),
        exclude: flags.strings("exclude").into_boxed_slice(),
        checksum: flags.string("checksum"),
        keep_git_dir: flags.boolean("keep-git-dir"),
        unpack: flags.boolean("unpack"),
        dest,
        json_form: raw.json,
        ..CopyInstruction::default()
    };
    if let Some(chmod) = &out.chmod
        && !chmod.has_variables()
        && let Err(message) = parse_chmod(&chmod.text)
    {
        return Err(ctx
            .error(
                ParseErrorKind::InvalidFlagValue {
                    flag: "chmod".into(),
                    message,
                },
                chmod.span,
                format!("expected an octal or symbolic mode, found `{}`", chmod.text),
            )
            .with_help("use e.g. --chmod=0755 or --chmod=u+x,g-w"));
    }
    if raw.heredocs.is_empty() {
        // No body was read, so no source is an inline file (the common case).
        out.sources = sources.into();
        return Ok(out);
    }
    let mut files = Vec::with_capacity(raw.heredocs.len());
    let mut paths = Vec::with_capacity(sources.len());
    for src in sources {
        let marker = if raw.json {
            Ok(None)
        } else {
            parse_heredoc_marker(&src.text)
        };
        match marker {
            Ok(Some((name, ..))) => {
                let found = raw.heredocs.iter().find(|h| h.name == name).cloned();
                match found {
                    Some(h) => files.push(h),
                    None => paths.push(src.clone()),
                }
            }
            _ => paths.push(src.clone()),
        }
    }
    out.sources = paths.into_boxed_slice();
    out.heredocs = files.into_boxed_slice();
    Ok(out)
}
