//! CMD, ENTRYPOINT, SHELL and HEALTHCHECK.

use super::{Ctx, FlagKind, Flags, command_form};
use crate::ast::{
    CommandForm, DurationFlag, Healthcheck, HealthcheckCmd, Instruction, RawInstruction,
};
use crate::error::{ParseError, ParseErrorKind};
use crate::values::parse_go_duration;

fn json_recommended(raw: &RawInstruction, ctx: &mut Ctx<'_>, form: &CommandForm) {
    if !form.is_exec() && !raw.rest.text.is_empty() {
        let kw = raw.keyword.text.to_ascii_uppercase();
        ctx.warn(
            "JSONArgsRecommended",
            format!(
                "JSON arguments recommended for {kw} to prevent unintended behavior related to \
                 OS signals"
            ),
            raw.rest.span,
            raw.start_line,
        );
    }
}

pub(super) fn cmd(raw: &RawInstruction, ctx: &mut Ctx<'_>) -> Result<CommandForm, ParseError> {
    Flags::parse(raw, &[], ctx.src)?;
    let form = command_form(raw, &raw.args);
    json_recommended(raw, ctx, &form);
    Ok(form)
}

pub(super) fn entrypoint(
    raw: &RawInstruction,
    ctx: &mut Ctx<'_>,
) -> Result<CommandForm, ParseError> {
    cmd(raw, ctx)
}

pub(super) fn shell(raw: &RawInstruction, ctx: &mut Ctx<'_>) -> Result<Instruction, ParseError> {
    Flags::parse(raw, &[], ctx.src)?;
    if raw.args.is_empty() {
        return Err(ctx
            .arg_error(
                raw,
                "SHELL requires at least one argument".into(),
                "expected a JSON array",
            )
            .with_help("write e.g. SHELL [\"/bin/bash\", \"-c\"]"));
    }
    if !raw.json {
        return Err(ctx
            .error(
                ParseErrorKind::ShellNotJson,
                raw.rest.span,
                "expected a JSON array of strings, found shell form",
            )
            .with_help(format!(
                "write it as JSON: SHELL [{}]",
                raw.rest
                    .text
                    .split_whitespace()
                    .map(|w| format!("\"{}\"", w.replace('"', "\\\"")))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
    }
    Ok(Instruction::Shell(
        raw.args.iter().map(|w| w.text.clone()).collect(),
    ))
}

fn duration(
    flags: &Flags<'_>,
    name: &str,
    ctx: &Ctx<'_>,
) -> Result<Option<DurationFlag>, ParseError> {
    let Some(word) = flags.string(name) else {
        return Ok(None);
    };
    let value = parse_go_duration(&word.text).map_err(|message| {
        ctx.error(
            ParseErrorKind::Healthcheck(format!("invalid --{name}: {message}")),
            word.span,
            format!(
                "expected a duration such as 30s or 1m30s, found `{}`",
                word.text
            ),
        )
        .with_help("units are ns, us, ms, s, m, h")
    })?;
    if !value.is_zero() && value.as_nanos() < 1_000_000 {
        return Err(ctx.error(
            ParseErrorKind::Healthcheck(format!("interval \"{name}\" cannot be less than 1ms")),
            word.span,
            "expected at least 1ms",
        ));
    }
    Ok(Some(DurationFlag { raw: word, value }))
}

pub(super) fn healthcheck(
    raw: &RawInstruction,
    ctx: &mut Ctx<'_>,
) -> Result<Instruction, ParseError> {
    let Some(typ) = raw.args.first() else {
        return Err(ctx
            .arg_error(
                raw,
                "HEALTHCHECK requires at least one argument".into(),
                "expected `NONE` or `CMD <command>`, found nothing",
            )
            .with_help("write `HEALTHCHECK CMD <command>` or `HEALTHCHECK NONE`"));
    };
    let rest = &raw.args[1..];
    match typ.text.to_ascii_uppercase().as_str() {
        "NONE" => {
            if let Some(extra) = rest.first() {
                return Err(ctx.error(
                    ParseErrorKind::Arguments("HEALTHCHECK NONE takes no arguments".into()),
                    extra.span,
                    "expected nothing after NONE",
                ));
            }
            Ok(Instruction::Healthcheck(Healthcheck::None))
        }
        "CMD" => {
            let flags = Flags::parse(
                raw,
                &[
                    ("interval", FlagKind::Str),
                    ("timeout", FlagKind::Str),
                    ("start-period", FlagKind::Str),
                    ("start-interval", FlagKind::Str),
                    ("retries", FlagKind::Str),
                ],
                ctx.src,
            )?;
            if rest.is_empty() || (!raw.json && rest[0].text.is_empty()) {
                return Err(ctx.error(
                    ParseErrorKind::Healthcheck("missing command after HEALTHCHECK CMD".into()),
                    typ.span,
                    "expected a command after CMD",
                ));
            }
            let retries = match flags.string("retries") {
                None => None,
                Some(w) => Some(w.text.parse::<u32>().map_err(|_| {
                    ctx.error(
                        ParseErrorKind::Healthcheck(format!("invalid --retries: {}", w.text)),
                        w.span,
                        format!("expected a non-negative whole number, found `{}`", w.text),
                    )
                })?),
            };
            Ok(Instruction::Healthcheck(Healthcheck::Cmd(Box::new(
                HealthcheckCmd {
                    interval: duration(&flags, "interval", ctx)?,
                    timeout: duration(&flags, "timeout", ctx)?,
                    start_period: duration(&flags, "start-period", ctx)?,
                    start_interval: duration(&flags, "start-interval", ctx)?,
                    retries,
                    command: command_form(raw, rest),
                },
            ))))
        }
        other => Err(ctx
            .error(
                ParseErrorKind::Healthcheck(format!("unknown type \"{other}\" in HEALTHCHECK")),
                typ.span,
                format!("expected `CMD` or `NONE`, found `{}`", typ.text),
            )
            .with_help("try `HEALTHCHECK CMD <command>`")),
    }
}
