//! FROM and RUN.

use super::{Ctx, FlagKind, Flags, command_form};
use crate::ast::{
    FromInstruction, Instruction, MountSpec, NetworkMode, RawInstruction, RunInstruction,
    SecurityMode,
};
use crate::error::{ParseError, ParseErrorKind};

fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

pub(super) fn from(raw: &RawInstruction, ctx: &mut Ctx<'_>) -> Result<Instruction, ParseError> {
    let flags = Flags::parse(raw, &[("platform", FlagKind::Str)], ctx.src)?;
    let args = &raw.args;
    let alias = match args.len() {
        1 => None,
        3 if args[1].text.eq_ignore_ascii_case("as") => Some(args[2].clone()),
        _ => {
            let label = match args.len() {
                0 => "expected an image name, found nothing".to_string(),
                3 => format!("expected `AS name`, found `{}`", args[1].text),
                n => format!("expected `image` or `image AS name`, found {n} words"),
            };
            return Err(ctx
                .arg_error(
                    raw,
                    "FROM requires either one or three arguments".into(),
                    &label,
                )
                .with_help("write `FROM image` or `FROM image AS name`"));
        }
    };
    if let Some(alias) = &alias {
        let lower = alias.text.to_ascii_lowercase();
        if !valid_stage_name(&lower) {
            return Err(ctx
                .error(
                    ParseErrorKind::InvalidStageName(alias.text.to_string()),
                    alias.span,
                    "expected a letter followed by letters, digits, `-`, `_` or `.`",
                )
                .with_help("stage names start with a letter, e.g. `build` or `stage-1`"));
        }
        if lower != alias.text {
            ctx.warn(
                "StageNameCasing",
                format!("stage name '{}' should be lowercase", alias.text),
                alias.span,
                raw.start_line,
            );
        }
        let kw = &raw.keyword.text;
        let as_word = &args[1].text;
        let kw_upper = kw.chars().all(|c| c.is_ascii_uppercase());
        let as_upper = as_word.chars().all(|c| c.is_ascii_uppercase());
        let kw_lower = kw.chars().all(|c| c.is_ascii_lowercase());
        let as_lower = as_word.chars().all(|c| c.is_ascii_lowercase());
        if (kw_upper && !as_upper) || (kw_lower && !as_lower) {
            ctx.warn(
                "FromAsCasing",
                format!("'{as_word}' and '{kw}' keywords' casing do not match"),
                args[1].span,
                raw.start_line,
            );
        }
    }
    Ok(Instruction::From(Box::new(FromInstruction {
        platform: flags.string("platform"),
        image: args[0].clone(),
        alias,
    })))
}

/// The flags RUN takes.
pub(crate) const RUN_FLAGS: &[(&str, FlagKind)] = &[
    ("mount", FlagKind::Strs),
    ("network", FlagKind::Str),
    ("security", FlagKind::Str),
];

pub(super) fn run(raw: &RawInstruction, ctx: &mut Ctx<'_>) -> Result<Instruction, ParseError> {
    let flags = Flags::parse(raw, RUN_FLAGS, ctx.src)?;
    let mut mounts = Vec::with_capacity(raw.flags.iter().filter(|f| f.name == "mount").count());
    for word in flags.strings("mount") {
        match MountSpec::parse_word(&word, true) {
            Ok(m) => mounts.push(m),
            // BuildKit reads only the CSV record at parse time and checks the options when it
            // runs the stage: a bad option in a stage the build skips is no error.
            Err(e) if crate::mount::is_csv_record(&word.text) => mounts.push(MountSpec {
                raw: word,
                invalid: Some(e.message),
                ..MountSpec::default()
            }),
            Err(e) => {
                let err = ctx.error(
                    ParseErrorKind::InvalidMount(e.message.clone()),
                    word.span,
                    format!("this mount is invalid: {}", e.message),
                );
                return Err(match e.help {
                    Some(h) => err.with_help(h),
                    None => err,
                });
            }
        }
    }
    let network = match flags.flag("network") {
        None => None,
        Some(f) => Some(match f.value.as_deref().unwrap_or("") {
            "default" => NetworkMode::Default,
            "none" => NetworkMode::None,
            "host" => NetworkMode::Host,
            v => {
                return Err(ctx
                    .error(
                        ParseErrorKind::InvalidFlagValue {
                            flag: "network".into(),
                            message: format!("unsupported network mode \"{v}\""),
                        },
                        f.span,
                        format!("expected `default`, `none` or `host`, found `{v}`"),
                    )
                    .with_help("use --network=default, --network=none or --network=host"));
            }
        }),
    };
    let security = match flags.flag("security") {
        None => None,
        Some(f) => Some(match f.value.as_deref().unwrap_or("") {
            "sandbox" => SecurityMode::Sandbox,
            "insecure" => SecurityMode::Insecure,
            v => {
                return Err(ctx
                    .error(
                        ParseErrorKind::InvalidFlagValue {
                            flag: "security".into(),
                            message: format!("security mode \"{v}\" not supported"),
                        },
                        f.span,
                        format!("expected `sandbox` or `insecure`, found `{v}`"),
                    )
                    .with_help("use --security=sandbox or --security=insecure"));
            }
        }),
    };
    Ok(Instruction::Run(Box::new(RunInstruction {
        mounts: mounts.into_boxed_slice(),
        network,
        security,
        command: command_form(raw, &raw.args),
        heredocs: raw.heredocs.clone(),
    })))
}
