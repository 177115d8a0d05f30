//! The provenance kiln attaches (`--provenance=mode=min|max`): a SLSA v0.2 provenance predicate,
//! the version BuildKit attaches by default, naming the builder, the build's inputs (the
//! Dockerfile's digest, the base images' digests) and, in `max` mode, its parameters (build
//! args, target, the ids of secrets and SSH agents; never a secret's value, and URLs in build
//! args without their user info).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::image::Platform;

/// The in-toto predicate type of SLSA v0.2 provenance.
pub const SLSA_PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v0.2";

/// How much the provenance says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProvenanceMode {
    /// The builder, the materials and the Dockerfile.
    #[default]
    Min,
    /// Also the invocation's parameters.
    Max,
}

/// What a build's provenance records.
#[derive(Debug, Clone)]
pub struct ProvenanceInputs {
    /// `min` or `max`.
    pub mode: ProvenanceMode,
    /// The Dockerfile's name as given (`Dockerfile`, `-`).
    pub dockerfile_name: String,
    /// The sha256 of the Dockerfile's bytes.
    pub dockerfile_digest: String,
    /// The platform the image is for.
    pub platform: Platform,
    /// Base images: reference (normalised), the digest it resolved to, and the platform it
    /// was resolved for.
    pub materials: Vec<(String, String, Platform)>,
    /// Build args as given.
    pub build_args: BTreeMap<String, String>,
    /// The target stage, when one was named.
    pub target: Option<String>,
    /// The ids of the secrets offered to the build.
    pub secret_ids: Vec<String>,
    /// The ids of the SSH agents offered to the build.
    pub ssh_ids: Vec<String>,
    /// The build's id.
    pub build_id: String,
    /// When it started and finished (RFC 3339).
    pub started: String,
    /// When it finished (RFC 3339).
    pub finished: String,
}

/// The builder's id: the CI job that ran it when it says so (GitHub Actions, GitLab CI), else
/// kiln on this host.
fn builder_id(env: &dyn Fn(&str) -> Option<String>) -> String {
    if let (Some(server), Some(repo), Some(run)) = (
        env("GITHUB_SERVER_URL"),
        env("GITHUB_REPOSITORY"),
        env("GITHUB_RUN_ID"),
    ) {
        return format!("{server}/{repo}/actions/runs/{run}");
    }
    if let Some(job) = env("CI_JOB_URL") {
        return job;
    }
    format!("kiln/{}", env!("CARGO_PKG_VERSION"))
}

/// `pkg:docker/NAME@TAG?platform=linux%2Famd64` for an image reference and its platform, as
/// BuildKit names images in provenance materials and statement subjects.
pub fn image_purl(reference: &str, platform: &Platform) -> String {
    let (name, tag) = match reference.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, t),
        _ => (reference, "latest"),
    };
    let platform = platform.normalized().to_string().replace('/', "%2F");
    format!("pkg:docker/{name}@{tag}?platform={platform}")
}

/// The SLSA v0.2 predicate.
pub fn predicate(inputs: &ProvenanceInputs) -> Value {
    predicate_with_env(inputs, &|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

fn predicate_with_env(inputs: &ProvenanceInputs, env: &dyn Fn(&str) -> Option<String>) -> Value {
    let materials: Vec<Value> = inputs
        .materials
        .iter()
        .map(|(r, d, p)| {
            json!({
                "uri": image_purl(r, p),
                "digest": {"sha256": d.trim_start_matches("sha256:")},
            })
        })
        .collect();
    let mut invocation = json!({
        "configSource": {
            "entryPoint": inputs.dockerfile_name,
            "digest": {"sha256": inputs.dockerfile_digest.trim_start_matches("sha256:")},
        },
        "parameters": {"frontend": "dockerfile.v0"},
        "environment": {"platform": inputs.platform.normalized().to_string()},
    });
    if inputs.mode == ProvenanceMode::Max {
        let mut args = serde_json::Map::new();
        for (k, v) in &inputs.build_args {
            args.insert(
                format!("build-arg:{k}"),
                Value::String(crate::secret::redact_userinfo(v).into_owned()),
            );
        }
        if let Some(t) = &inputs.target {
            args.insert("target".into(), Value::String(t.clone()));
        }
        invocation["parameters"]["args"] = Value::Object(args);
        invocation["parameters"]["secrets"] = inputs
            .secret_ids
            .iter()
            .map(|id| json!({"id": id}))
            .collect();
        invocation["parameters"]["ssh"] =
            inputs.ssh_ids.iter().map(|id| json!({"id": id})).collect();
    }
    json!({
        "builder": {"id": builder_id(env)},
        "buildType": "https://mobyproject.org/buildkit@v1",
        "materials": materials,
        "invocation": invocation,
        "metadata": {
            "buildInvocationID": inputs.build_id,
            "buildStartedOn": inputs.started,
            "buildFinishedOn": inputs.finished,
            "completeness": {
                "parameters": inputs.mode == ProvenanceMode::Max,
                "environment": true,
                "materials": false,
            },
            "reproducible": false,
        },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn max_lists_parameters_min_does_not_and_no_credentials_leak() {
        let mut inputs = ProvenanceInputs {
            dockerfile_name: "Dockerfile".into(),
            dockerfile_digest: "sha256:ab".into(),
            platform: Platform::new("linux", "arm64", None),
            materials: vec![(
                "docker.io/library/debian:12".into(),
                "sha256:cd".into(),
                Platform::new("linux", "amd64", None),
            )],
            secret_ids: vec!["token".into()],
            mode: ProvenanceMode::Min,
            build_args: BTreeMap::new(),
            target: None,
            ssh_ids: Vec::new(),
            build_id: "b".into(),
            started: "2026-01-01T00:00:00Z".into(),
            finished: "2026-01-01T00:00:01Z".into(),
        };
        inputs
            .build_args
            .insert("PROXY".into(), "http://user:pw@proxy:3128".into());
        let env = |k: &str| (k == "CI_JOB_URL").then(|| "https://gitlab.example/j/1".to_string());
        let min = predicate_with_env(&inputs, &env);
        assert_eq!(min["builder"]["id"], "https://gitlab.example/j/1");
        assert_eq!(
            min["materials"][0]["uri"],
            "pkg:docker/docker.io/library/debian@12?platform=linux%2Famd64"
        );
        assert_eq!(min["materials"][0]["digest"]["sha256"], "cd");
        assert_eq!(min["invocation"]["environment"]["platform"], "linux/arm64");
        assert!(min["invocation"]["parameters"].get("args").is_none());
        inputs.mode = ProvenanceMode::Max;
        let max = predicate_with_env(&inputs, &env);
        let text = max.to_string();
        assert!(
            text.contains("build-arg:PROXY") && !text.contains("pw@"),
            "{text}"
        );
        assert_eq!(max["invocation"]["parameters"]["secrets"][0]["id"], "token");
    }
}
