//! `kiln login` and `kiln logout`: credentials in Docker's `config.json` (or its credential
//! store), checked against the registry before they are saved.

use std::io::Read;
use std::process::ExitCode;

use clap::Args;
use kiln_builder_core::registry::auth::default_config_dir;
use kiln_builder_core::registry::{Client, Credentials, DOCKER_HUB, DockerConfig};
use miette::{IntoDiagnostic, miette};

use super::registry::{RegistryArgs, report, runtime};

/// Arguments of `kiln login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry `host[:port]` (default: Docker Hub).
    #[arg(value_name = "REGISTRY")]
    registry: Option<String>,

    /// The user name.
    #[arg(short, long)]
    username: String,

    /// Read the password (or token) from standard input.
    #[arg(long)]
    password_stdin: bool,

    #[command(flatten)]
    options: RegistryArgs,
}

/// Arguments of `kiln logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry `host[:port]` (default: Docker Hub).
    #[arg(value_name = "REGISTRY")]
    registry: Option<String>,
}

/// `docker.io` for Docker Hub's aliases; `host[:port]` from a URL.
fn registry_name(arg: Option<&str>) -> String {
    let Some(a) = arg else {
        return DOCKER_HUB.to_string();
    };
    let rest = a
        .strip_prefix("https://")
        .or_else(|| a.strip_prefix("http://"))
        .unwrap_or(a);
    let host = rest.split('/').next().unwrap_or(rest);
    match host {
        "" | "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
        h => h.to_string(),
    }
}

fn api_host(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        "registry-1.docker.io"
    } else {
        registry
    }
}

/// Runs `kiln login`.
pub fn login(args: &LoginArgs) -> miette::Result<ExitCode> {
    let registry = registry_name(args.registry.as_deref());
    if !args.password_stdin {
        return Err(miette!(
            "pass the password on standard input with --password-stdin (it is never taken from the command line)"
        ));
    }
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .into_diagnostic()?;
    let password = password.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        return Err(miette!("the password on standard input is empty"));
    }
    let creds = Credentials::new(args.username.clone(), password);
    let mut opts = args.options.options();
    opts.credentials = Some(creds.clone());
    let client = Client::new(&registry, api_host(&registry), &opts).map_err(|e| report(&e))?;
    runtime()?
        .block_on(client.ping(&[]))
        .map_err(|e| report(&e))?;
    let dir = default_config_dir();
    let mut cfg = DockerConfig::load(&dir).map_err(|e| report(&e))?;
    let place = cfg.store(&registry, &creds).map_err(|e| report(&e))?;
    eprintln!("login succeeded for {registry}; credentials saved in {place}");
    Ok(ExitCode::SUCCESS)
}

/// Runs `kiln logout`.
pub fn logout(args: &LogoutArgs) -> miette::Result<ExitCode> {
    let registry = registry_name(args.registry.as_deref());
    let dir = default_config_dir();
    let mut cfg = DockerConfig::load(&dir).map_err(|e| report(&e))?;
    if cfg.erase(&registry).map_err(|e| report(&e))? {
        eprintln!("removed the credentials for {registry}");
    } else {
        eprintln!("no credentials for {registry}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names_normalise() {
        assert_eq!(registry_name(None), "docker.io");
        assert_eq!(
            registry_name(Some("https://index.docker.io/v1/")),
            "docker.io"
        );
        assert_eq!(registry_name(Some("127.0.0.1:5000")), "127.0.0.1:5000");
        assert_eq!(
            registry_name(Some("http://127.0.0.1:5000/")),
            "127.0.0.1:5000"
        );
    }
}
