//! Values that must never be printed: build secrets (`--secret`) and the userinfo of URLs in
//! build args (`HTTP_PROXY=http://user:pass@proxy`). Their `Debug` shows at most a length, so a
//! `{:?}` of a request, a `tracing` field or a progress event cannot carry them.

use std::borrow::Cow;
use std::fmt;

/// Secret bytes: `Debug` prints `[redacted N bytes]`; [`Secret::expose`] is the one way in.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<Vec<u8>>) -> Self {
        Self(value.into())
    }

    /// The value, for the places that hand it to a build step.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The value's length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[redacted {} bytes]", self.0.len())
    }
}

impl From<Vec<u8>> for Secret {
    fn from(v: Vec<u8>) -> Self {
        Self(v)
    }
}

impl From<&str> for Secret {
    fn from(v: &str) -> Self {
        Self(v.as_bytes().to_vec())
    }
}

/// `value` with the password (or, without one, the user name) of every `scheme://user:pass@host`
/// in it replaced by `[redacted]`; borrowed unchanged when there is none.
pub fn redact_userinfo(value: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut rest = value;
    let mut changed = false;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let authority_end = tail.find(['/', '?', '#', ' ']).unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.split_once(':') {
                    Some((user, _)) => {
                        out.push_str(user);
                        out.push_str(":[redacted]");
                    }
                    None => out.push_str("[redacted]"),
                }
                out.push_str(&authority[at..]);
                changed = true;
            }
            None => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    if !changed {
        return Cow::Borrowed(value);
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// A string map printed by `Debug` with the userinfo of URLs in its values redacted (build args:
/// the proxy ones carry credentials).
pub struct RedactedMap<'a>(pub &'a std::collections::BTreeMap<String, String>);

impl fmt::Debug for RedactedMap<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, redact_userinfo(v))))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_print_only_their_length() {
        let s = Secret::from("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted 7 bytes]");
        assert_eq!(s.expose(), b"hunter2");
    }

    #[test]
    fn build_requests_print_no_secret() {
        let mut req = crate::BuildRequest::default();
        req.secrets
            .insert("token".into(), Secret::from("s3cr3t-value"));
        req.plan.build_args.insert(
            "HTTPS_PROXY".into(),
            "http://proxyuser:pr0xy-pass@proxy:3128".into(),
        );
        let dbg = format!("{req:?} {req:#?}");
        assert!(!dbg.contains("s3cr3t-value"), "{dbg}");
        assert!(!dbg.contains("pr0xy-pass"), "{dbg}");
        assert!(
            dbg.contains("token") && dbg.contains("[redacted 12 bytes]"),
            "{dbg}"
        );
        assert!(dbg.contains("proxyuser:[redacted]@proxy:3128"), "{dbg}");
    }

    #[test]
    fn userinfo_is_redacted() {
        assert_eq!(
            redact_userinfo("http://u:pw@proxy:3128/x"),
            "http://u:[redacted]@proxy:3128/x"
        );
        assert_eq!(
            redact_userinfo("a https://tok@h b http://h2"),
            "a https://[redacted]@h b http://h2"
        );
        assert!(matches!(redact_userinfo("http://h/x@y"), Cow::Borrowed(_)));
        assert!(matches!(redact_userinfo("plain"), Cow::Borrowed(_)));
    }
}
