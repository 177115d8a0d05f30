//! ENV, LABEL, ARG, EXPOSE, VOLUME, USER, WORKDIR, STOPSIGNAL, MAINTAINER and ONBUILD.

use super::{Ctx, Flags, lower};
use crate::ast::{Instruction, OnbuildInstruction, RawInstruction, Word};
use crate::error::{ParseError, ParseErrorKind};
use crate::span::Span;

pub(super) fn key_values(
    raw: &RawInstruction,
    ctx: &mut Ctx<'_>,
    kw: &str,
) -> Result<Box<[(Word, Word)]>, ParseError> {
    Flags::parse(raw, &[], ctx.src)?;
    if raw.args.is_empty() {
        return Err(ctx
            .arg_error(
                raw,
                format!("{kw} requires at least one argument"),
                "expected `name=value`, found nothing",
            )
            .with_help(format!("write `{kw} name=value`")));
    }
    let mut pairs = Vec::with_capacity(raw.args.len() / 3);
    for triple in raw.args.chunks(3) {
        let [key, value, sep] = triple else { continue };
        if key.text.is_empty() {
            return Err(ctx.error(
                ParseErrorKind::Arguments(format!("{kw} names can not be blank")),
                Span::new(key.span.start(), value.span.end()),
                "expected a name before `=`",
            ));
        }
        if sep.text.is_empty() {
            ctx.warn(
                "LegacyKeyValueFormat",
                format!(
                    "\"{kw} key=value\" should be used instead of legacy \"{kw} key value\" format"
                ),
                raw.rest.span,
                raw.start_line,
            );
        }
        pairs.push((key.clone(), value.clone()));
    }
    Ok(pairs.into_boxed_slice())
}

pub(super) fn arg(raw: &RawInstruction, ctx: &mut Ctx<'_>) -> Result<Instruction, ParseError> {
    Flags::parse(raw, &[], ctx.src)?;
    if raw.args.is_empty() {
        return Err(ctx
            .arg_error(
                raw,
                "ARG requires at least one argument".into(),
                "expected a name",
            )
            .with_help("write `ARG NAME` or `ARG NAME=default`"));
    }
    let mut args = Vec::with_capacity(raw.args.len());
    for w in &raw.args {
        match w.text.split_once('=') {
            Some(("", _)) => {
                return Err(ctx.error(
                    ParseErrorKind::Arguments("ARG names can not be blank".into()),
                    w.span,
                    "expected a name before `=`",
                ));
            }
            Some((name, value)) => {
                let eq = w.span.start() + name.len();
                args.push((
                    Word::new(w.text.slice_ref(name), Span::new(w.span.start(), eq)),
                    Some(Word::new(
                        w.text.slice_ref(value),
                        Span::new((eq + 1).min(w.span.end()), w.span.end()),
                    )),
                ));
            }
            None => args.push((w.clone(), None)),
        }
    }
    Ok(Instruction::Arg {
        args: args.into_boxed_slice(),
    })
}

pub(super) fn expose(raw: &RawInstruction, ctx: &mut Ctx<'_>) -> Result<Instruction, ParseError> {
    Flags::parse(raw, &[], ctx.src)?;
    if raw.args.is_empty() {
        return Err(ctx
            .arg_error(
                raw,
                "EXPOSE requires at least one argument".into(),
                "expected a port",
            )
            .with_help("write e.g. `EXPOSE 80/tcp`"));
    }
    Ok(Instruction::Expose(raw.args.clone()))
}

pub(super) fn volume(raw: &RawInstruction, ctx: &mut Ctx<'_>) -> Result<Instruction, ParseError> {
    Flags::parse(raw, &[], ctx.src)?;
    if raw.args.is_empty() {
        return Err(ctx
            .arg_error(
                raw,
                "VOLUME requires at least one argument".into(),
                "expected a path",
            )
            .with_help("write e.g. `VOLUME /data`"));
    }
    for w in &raw.args {
        if w.text.trim().is_empty() {
            return Err(ctx.error(
                ParseErrorKind::Arguments("VOLUME specified can not be an empty string".into()),
                w.span,
                "expected a path, found an empty string",
            ));
        }
    }
    Ok(Instruction::Volume(raw.args.clone()))
}

pub(super) fn one_word(
    raw: &RawInstruction,
    ctx: &mut Ctx<'_>,
    kw: &str,
) -> Result<Word, ParseError> {
    if kw == "STOPSIGNAL" {
        // BuildKit never checks STOPSIGNAL's flags; keep accepting them, but say so.
        if let Some(f) = raw.flags.first() {
            ctx.warn(
                "IgnoredFlag",
                format!("flag --{} is ignored on STOPSIGNAL", f.name),
                f.span,
                raw.start_line,
            );
        }
    } else {
        Flags::parse(raw, &[], ctx.src)?;
    }
    match &raw.args[..] {
        [one] => Ok(one.clone()),
        _ => Err(ctx
            .arg_error(
                raw,
                format!("{kw} requires exactly one argument"),
                "expected one argument, found nothing",
            )
            .with_help(format!("write `{kw} <value>`"))),
    }
}

pub(super) fn maintainer(
    raw: &RawInstruction,
    ctx: &mut Ctx<'_>,
) -> Result<Instruction, ParseError> {
    let w = one_word(raw, ctx, "MAINTAINER")?;
    ctx.warn(
        "MaintainerDeprecated",
        "the MAINTAINER instruction is deprecated, use a label instead to define an image author"
            .into(),
        raw.keyword.span,
        raw.start_line,
    );
    Ok(Instruction::Maintainer(w.text.to_string()))
}

pub(super) fn onbuild(raw: &RawInstruction, ctx: &mut Ctx<'_>) -> Result<Instruction, ParseError> {
    Flags::parse(raw, &[], ctx.src)?;
    let Some(sub) = &raw.sub else {
        return Err(ctx
            .arg_error(
                raw,
                "ONBUILD requires at least one argument".into(),
                "expected a trigger instruction, found nothing",
            )
            .with_help("write e.g. `ONBUILD COPY . /app`"));
    };
    let trigger_kw = sub.keyword.text.as_str().to_ascii_uppercase();
    if trigger_kw == "FROM" || trigger_kw == "MAINTAINER" {
        return Err(ctx
            .error(
                ParseErrorKind::OnbuildTrigger(format!(
                    "{trigger_kw} isn't allowed as an ONBUILD trigger"
                )),
                sub.keyword.span,
                format!("expected an instruction other than {trigger_kw}"),
            )
            .with_help("ONBUILD cannot trigger FROM, MAINTAINER or ONBUILD"));
    }
    let mut sub = (**sub).clone();
    sub.heredocs = raw.heredocs.clone();
    // BuildKit stores the trigger's text and only parses it when a child build runs it, so an
    // invalid trigger is a warning here, not an error.
    let trigger = match lower(&sub, ctx) {
        Ok(t) => Some(Box::new(t)),
        Err(e) => {
            ctx.warn(
                "InvalidOnbuildTrigger",
                format!("ONBUILD trigger is invalid and will fail in any build that uses this image: {e}"),
                sub.span,
                sub.start_line,
            );
            None
        }
    };
    let mut expression = raw.original.trim_start().to_string();
    let kw_len = raw.keyword.text.len();
    expression = expression
        .get(kw_len..)
        .unwrap_or("")
        .trim_start()
        .to_string();
    for h in &raw.heredocs {
        expression.push('\n');
        expression.push_str(&h.content);
        expression.push_str(&h.name);
    }
    Ok(Instruction::Onbuild(OnbuildInstruction {
        trigger,
        expression,
    }))
}
