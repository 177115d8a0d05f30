//! `# syntax=` and `BUILDKIT_SYNTAX`: which Dockerfile frontend the file asks for.
//!
//! BuildKit pulls the frontend image a Dockerfile names and runs it. kiln runs only its own
//! frontend, which follows BuildKit's Dockerfile syntax 1.x: `docker/dockerfile:<any 1.x tag>`
//! means this frontend (the build says so once), any other image is an error naming the line,
//! and `--ignore-syntax` builds with kiln's frontend anyway. As in BuildKit, the
//! `BUILDKIT_SYNTAX` build arg takes precedence over the directive.

use kiln_dockerfile_parser::Dockerfile;

use super::{PlanError, PlanOptions};

/// The build arg that names a frontend, before the directive.
pub const SYNTAX_ARG: &str = "BUILDKIT_SYNTAX";

/// Whether `reference` (the first word of a `# syntax=` value) names BuildKit's official
/// Dockerfile frontend at a 1.x version, which kiln's own frontend stands in for:
/// `[docker.io/]docker/dockerfile[-upstream][:1[.x[.y]][-labs]][@sha256:...]`.
pub fn is_dockerfile_v1(reference: &str) -> bool {
    let without_digest = match reference.split_once('@') {
        Some((r, digest)) => {
            let hex = digest.strip_prefix("sha256:").unwrap_or("");
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return false;
            }
            r
        }
        None => reference,
    };
    let name_tag = ["docker.io/", "index.docker.io/", "registry-1.docker.io/"]
        .iter()
        .find_map(|p| without_digest.strip_prefix(p))
        .unwrap_or(without_digest);
    let (name, tag) = match name_tag.split_once(':') {
        Some((n, t)) => (n, Some(t)),
        None => (name_tag, None),
    };
    let name = name.strip_prefix("library/").unwrap_or(name);
    if name != "docker/dockerfile" && name != "docker/dockerfile-upstream" {
        return false;
    }
    let Some(tag) = tag else {
        // No tag: `latest`, which is a 1.x release.
        return true;
    };
    let version = tag.strip_suffix("-labs").unwrap_or(tag);
    let mut parts = version.split('.');
    parts.next() == Some("1")
        && parts.clone().count() <= 2
        && parts.all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Checks the frontend the Dockerfile asks for. `Ok(Some(notice))` when it names one, to show
/// once in the progress output; an error when it names a frontend kiln cannot run.
pub(super) fn check(df: &Dockerfile, opts: &PlanOptions) -> Result<Option<String>, PlanError> {
    let (value, origin, span) = match opts.build_args.get(SYNTAX_ARG) {
        Some(v) => (v.as_str(), format!("--build-arg {SYNTAX_ARG}"), None),
        None => match df.syntax() {
            Some(d) => (
                d.value.as_str(),
                format!("# syntax= (line {})", d.line),
                Some(d.span),
            ),
            None => return Ok(None),
        },
    };
    let reference = value.split_whitespace().next().unwrap_or("");
    if is_dockerfile_v1(reference) {
        return Ok(Some(format!(
            "{origin} names {reference}: kiln builds with its own Dockerfile frontend \
             (BuildKit's syntax 1.x); no frontend image is pulled"
        )));
    }
    if opts.ignore_syntax {
        return Ok(Some(format!(
            "{origin} names frontend {reference}, ignored (--ignore-syntax): kiln builds with \
             its own Dockerfile frontend"
        )));
    }
    Err(PlanError::Frontend {
        reference: reference.to_string(),
        origin,
        span,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerfile_v1_references() {
        let digest = format!("@sha256:{}", "a".repeat(64));
        for r in [
            "docker/dockerfile:1".to_string(),
            "docker/dockerfile:1.4".into(),
            "docker/dockerfile:1.7.1".into(),
            "docker/dockerfile:1-labs".into(),
            "docker/dockerfile:1.6-labs".into(),
            "docker/dockerfile".into(),
            "docker.io/docker/dockerfile:1".into(),
            "docker/dockerfile-upstream:1.9".into(),
            format!("docker/dockerfile:1.4{digest}"),
        ] {
            assert!(is_dockerfile_v1(&r), "{r}");
        }
        for r in [
            "docker/dockerfile:0.1".to_string(),
            "docker/dockerfile:2".into(),
            "docker/dockerfile:1.x".into(),
            "docker/dockerfile:1.2.3.4".into(),
            "docker/dockerfile:experimental".into(),
            "docker/dockerfile:1@sha256:zz".into(),
            "example.com/docker/dockerfile:1".into(),
            "tonistiigi/dockerfile:1".into(),
            "ghcr.io/made/up:1".into(),
            "".into(),
        ] {
            assert!(!is_dockerfile_v1(&r), "{r}");
        }
    }
}
