//! `RUN --mount=...` option parsing (BuildKit's `parseMount`).

use std::borrow::Cow;

use thiserror::Error;

use crate::ast::{MountSharing, MountSpec, MountType, Word};
use crate::error::suggest;
use crate::values::parse_size;

/// A problem with a `--mount` value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct MountError {
    /// What is wrong, in plain words.
    pub message: String,
    /// A suggestion, such as the closest valid option name.
    pub help: Option<String>,
}

fn merr(message: impl Into<String>) -> MountError {
    MountError {
        message: message.into(),
        help: None,
    }
}

const KEYS: &[&str] = &[
    "type",
    "from",
    "source",
    "src",
    "target",
    "dst",
    "destination",
    "readonly",
    "ro",
    "readwrite",
    "rw",
    "required",
    "size",
    "id",
    "sharing",
    "mode",
    "uid",
    "gid",
    "env",
];

/// Splits one CSV record as Go's `encoding/csv` does (RFC 4180 quoting, no lazy quotes).
fn csv_fields(s: &str) -> Result<Vec<Cow<'_, str>>, MountError> {
    if s.is_empty() {
        return Err(merr("empty mount specification"));
    }
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        if let Some(q) = rest.strip_prefix('"') {
            let mut field = String::new();
            let mut it = q.char_indices();
            let mut closed = None;
            while let Some((i, c)) = it.next() {
                if c == '"' {
                    if q[i + 1..].starts_with('"') {
                        field.push('"');
                        it.next();
                    } else {
                        closed = Some(i + 1);
                        break;
                    }
                } else {
                    field.push(c);
                }
            }
            let Some(after) = closed else {
                return Err(merr("extraneous or missing \" in quoted-field"));
            };
            out.push(Cow::Owned(field));
            rest = &q[after..];
            if rest.is_empty() {
                return Ok(out);
            }
            match rest.strip_prefix(',') {
                Some(r) => rest = r,
                None => return Err(merr("extraneous or missing \" in quoted-field")),
            }
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            let field = &rest[..end];
            if field.contains('"') {
                return Err(merr("bare \" in non-quoted-field"));
            }
            out.push(Cow::Borrowed(field));
            if end == rest.len() {
                return Ok(out);
            }
            rest = &rest[end + 1..];
        }
    }
}

/// Whether `s` is a well-formed CSV record (what BuildKit checks of a mount at parse time).
pub(crate) fn is_csv_record(s: &str) -> bool {
    csv_fields(s).is_ok()
}

/// `s` in ASCII lower case, allocating only when it has upper-case letters.
fn lower(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

fn parse_bool(key: &str, v: &str) -> Result<bool, MountError> {
    match lower(v).as_ref() {
        "1" | "t" | "true" => Ok(true),
        "0" | "f" | "false" => Ok(false),
        _ => Err(merr(format!("invalid value for {key}: {v}"))),
    }
}

fn kind_name(k: MountType) -> &'static str {
    match k {
        MountType::Bind => "bind",
        MountType::Cache => "cache",
        MountType::Tmpfs => "tmpfs",
        MountType::Secret => "secret",
        MountType::Ssh => "ssh",
    }
}

impl MountSpec {
    /// Parses a `--mount` value such as `type=cache,target=/root/.cache,sharing=locked`.
    ///
    /// Use this on the expanded value when [`MountSpec::raw`] contains variables.
    pub fn parse(value: &str) -> Result<MountSpec, MountError> {
        Self::parse_word(&Word::new(value, Default::default()), false)
    }

    /// Parses `word`; with `defer_vars`, values containing `$` are not validated (they are
    /// checked again after expansion), except `from`, which BuildKit never expands.
    pub(crate) fn parse_word(word: &Word, defer_vars: bool) -> Result<MountSpec, MountError> {
        let fields = csv_fields(&word.text)?;
        let mut m = MountSpec {
            raw: word.clone(),
            ..MountSpec::default()
        };
        let mut explicit_secret_source = false;
        for field in fields {
            let (key, value) = match field.split_once('=') {
                Some((k, v)) => (lower(k), Some(v)),
                None => (lower(&field), None),
            };
            let Some(value) = value else {
                match key.as_ref() {
                    "readonly" | "ro" => m.readonly = Some(true),
                    "readwrite" | "rw" => m.readonly = Some(false),
                    "required" if matches!(m.kind, MountType::Secret | MountType::Ssh) => {
                        m.required = Some(true)
                    }
                    "required" => {
                        return Err(merr(format!(
                            "unexpected key 'required' for mount type '{}'",
                            kind_name(m.kind)
                        )));
                    }
                    _ => {
                        return Err(merr(format!(
                            "invalid field '{field}' must be a key=value pair"
                        )));
                    }
                }
                continue;
            };
            if key == "from"
                && value.contains('$')
                && value.len() > value.find('$').unwrap_or(0) + 1
            {
                return Err(MountError {
                    message:
                        "'from' doesn't support variable expansion, define alias stage instead"
                            .into(),
                    help: Some("add `FROM image AS alias` and use `from=alias`".into()),
                });
            }
            let deferred = defer_vars && value.contains('$');
            match key.as_ref() {
                "type" => {
                    if deferred {
                        continue;
                    }
                    m.kind = match lower(value).as_ref() {
                        "bind" => MountType::Bind,
                        "cache" => MountType::Cache,
                        "tmpfs" => MountType::Tmpfs,
                        "secret" => MountType::Secret,
                        "ssh" => MountType::Ssh,
                        _ => {
                            let types = ["bind", "cache", "tmpfs", "secret", "ssh"];
                            return Err(MountError {
                                message: format!("unsupported mount type \"{value}\""),
                                help: Some(match suggest(value, &types) {
                                    Some(s) => format!("did you mean `type={s}`?"),
                                    None => "use one of bind, cache, tmpfs, secret, ssh".into(),
                                }),
                            });
                        }
                    };
                }
                "from" => m.from = Some(value.to_string()),
                "source" | "src" => {
                    explicit_secret_source = true;
                    m.source = Some(value.to_string())
                }
                "target" | "dst" | "destination" => m.target = Some(value.to_string()),
                "id" => m.id = Some(value.to_string()),
                "env" => m.env = Some(value.to_string()),
                _ if deferred => {}
                "readonly" | "ro" => m.readonly = Some(parse_bool(&key, value)?),
                "readwrite" | "rw" => m.readonly = Some(!parse_bool(&key, value)?),
                "required" => {
                    if !matches!(m.kind, MountType::Secret | MountType::Ssh) {
                        return Err(merr(format!(
                            "unexpected key 'required' for mount type '{}'",
                            kind_name(m.kind)
                        )));
                    }
                    m.required = Some(parse_bool(&key, value)?);
                }
                "size" => {
                    if m.kind != MountType::Tmpfs {
                        return Err(merr(format!(
                            "unexpected key 'size' for mount type '{}'",
                            kind_name(m.kind)
                        )));
                    }
                    m.size = Some(
                        parse_size(value)
                            .map_err(|_| merr(format!("invalid value for size: {value}")))?,
                    );
                }
                "sharing" => {
                    m.sharing = Some(match lower(value).as_ref() {
                        "shared" => MountSharing::Shared,
                        "private" => MountSharing::Private,
                        "locked" => MountSharing::Locked,
                        _ => {
                            return Err(MountError {
                                message: format!("unsupported sharing value \"{value}\""),
                                help: Some("use one of shared, private, locked".into()),
                            });
                        }
                    })
                }
                "mode" => {
                    m.mode = Some(
                        u32::from_str_radix(value, 8)
                            .map_err(|_| merr(format!("invalid value {value} for mode")))?,
                    )
                }
                "uid" => {
                    m.uid = Some(
                        value
                            .parse()
                            .map_err(|_| merr(format!("invalid value {value} for uid")))?,
                    )
                }
                "gid" => {
                    m.gid = Some(
                        value
                            .parse()
                            .map_err(|_| merr(format!("invalid value {value} for gid")))?,
                    )
                }
                _ => {
                    return Err(MountError {
                        message: format!("unexpected key '{key}' in '{field}'"),
                        help: suggest(&key, KEYS).map(|s| format!("did you mean `{s}`?")),
                    });
                }
            }
        }
        validate(&m, explicit_secret_source)?;
        Ok(m)
    }
}

fn validate(m: &MountSpec, _explicit_source: bool) -> Result<(), MountError> {
    let kind = kind_name(m.kind);
    let file_info = matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    );
    if !file_info {
        for (name, set) in [
            ("mode", m.mode.is_some()),
            ("uid", m.uid.is_some()),
            ("gid", m.gid.is_some()),
        ] {
            if set {
                return Err(merr(format!(
                    "{name} not allowed for \"{kind}\" type mounts"
                )));
            }
        }
    }
    if m.kind == MountType::Secret {
        if m.from.is_some() {
            return Err(merr("secret mount should not have a from"));
        }
        if m.sharing.is_some() {
            return Err(merr("secret mount should not define sharing"));
        }
        if m.source.is_none() && m.target.is_none() && m.id.is_none() && m.env.is_none() {
            return Err(MountError {
                message: "invalid secret mount. one of source, target required".into(),
                help: Some("add `id=<secret>` or `target=/run/secrets/<name>`".into()),
            });
        }
        if m.source.is_some() && m.id.is_some() {
            return Err(merr("both source and id can't be set"));
        }
    }
    if m.env.is_some() && m.kind != MountType::Secret {
        return Err(merr(format!(
            "unexpected key 'env' for mount type '{kind}'"
        )));
    }
    if m.sharing.is_some() && m.kind != MountType::Cache {
        return Err(merr(format!("invalid cache sharing set for {kind} mount")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_mount() {
        let m =
            MountSpec::parse("type=cache,target=/root/.cache,sharing=locked,id=x,mode=0755,uid=1")
                .expect("valid");
        assert_eq!(m.kind, MountType::Cache);
        assert_eq!(m.target.as_deref(), Some("/root/.cache"));
        assert_eq!(m.sharing, Some(MountSharing::Locked));
        assert_eq!(m.mode, Some(0o755));
        assert!(!m.is_readonly());
    }

    #[test]
    fn errors() {
        assert!(MountSpec::parse("type=cahce").is_err());
        assert!(MountSpec::parse("type=bind,mode=755").is_err());
        assert!(MountSpec::parse("type=secret").is_err());
        assert!(MountSpec::parse("type=bind,size=1m").is_err());
        assert!(MountSpec::parse("type=bind,foo=bar").is_err());
        assert!(MountSpec::parse("type=bind,target").is_err());
        assert!(MountSpec::parse("type=bind,required").is_err());
        assert!(MountSpec::parse("target=/x,from=$STAGE").is_err());
        assert!(MountSpec::parse("\"type=bind").is_err());
        assert!(MountSpec::parse("").is_err());
    }

    #[test]
    fn csv_quoting() {
        let m = MountSpec::parse("type=bind,\"source=a,b\",target=/x,ro").expect("valid");
        assert_eq!(m.source.as_deref(), Some("a,b"));
        assert!(m.is_readonly());
        let s = MountSpec::parse("type=secret,id=aws,env=AWS_KEY,required").expect("valid");
        assert_eq!(s.required, Some(true));
        assert_eq!(s.env.as_deref(), Some("AWS_KEY"));
        let t = MountSpec::parse("type=tmpfs,target=/t,size=64m").expect("valid");
        assert_eq!(t.size, Some(64 << 20));
    }
}
