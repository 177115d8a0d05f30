//! Registry credentials from Docker's `config.json` (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`): `credHelpers` and `credsStore` through `docker-credential-*`
//! programs, then `auths` entries. Podman's and skopeo's auth files, which have the same format,
//! are read too (see `auth_files`). `kiln login` and `kiln logout` write the same file, keeping
//! every field they do not own, atomically and with mode 0600.
//!
//! Secrets live in [`Secret`], whose `Debug` and `Display` print `<redacted>`, so no log line,
//! error or debug dump can carry one.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};

use super::RegistryError;
use super::reference::DOCKER_HUB;

/// The key Docker uses for Docker Hub in `config.json`.
pub(crate) const DOCKER_HUB_CONFIG_KEY: &str = "https://index.docker.io/v1/";

/// The user name that marks an OAuth2 refresh token (Docker's `identitytoken`, and what
/// credential helpers return for one): it is exchanged at the token server, never sent as a
/// password.
pub(crate) const IDENTITY_TOKEN_USER: &str = "<token>";

/// A password or token: printed only as `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or access token.
    pub password: Secret,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

impl Credentials {
    /// Credentials from a user name and password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: Secret::new(password),
        }
    }

    /// Whether the password is an OAuth2 refresh token.
    pub fn is_identity_token(&self) -> bool {
        self.username == IDENTITY_TOKEN_USER
    }

    /// The value of an HTTP `Authorization: Basic` header.
    pub(crate) fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            BASE64.encode(format!("{}:{}", self.username, self.password.expose()))
        )
    }
}

/// Where Docker's client configuration lives: `$DOCKER_CONFIG`, else `~/.docker`.
pub fn default_config_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    Path::new(&home).join(".docker")
}

/// Docker's `config.json`, kept as JSON so that fields kiln does not know survive a rewrite.
/// Its `Debug` shows the path and the top-level keys only: `auths` holds passwords and tokens.
#[derive(Clone)]
pub struct DockerConfig {
    path: PathBuf,
    doc: Map<String, Value>,
    /// Where `docker-credential-*` programs are looked up instead of `$PATH` (tests).
    helper_path: Option<std::ffi::OsString>,
}

impl std::fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerConfig")
            .field("path", &self.path)
            .field("keys", &self.doc.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The keys a registry may be stored under in `config.json`.
fn config_keys(registry: &str) -> Vec<String> {
    if registry == DOCKER_HUB {
        vec![
            DOCKER_HUB_CONFIG_KEY.to_string(),
            "index.docker.io".to_string(),
            "docker.io".to_string(),
            "registry-1.docker.io".to_string(),
        ]
    } else {
        vec![registry.to_string()]
    }
}

/// The host part of an `auths` key, which may be a URL (`https://host/v1/`).
fn key_host(key: &str) -> &str {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or(rest)
}

fn matches_registry(key: &str, registry: &str) -> bool {
    let host = key_host(key);
    config_keys(registry).iter().any(|k| key_host(k) == host)
}

impl DockerConfig {
    /// Loads `config.json` from `dir` (an absent file is an empty configuration).
    pub fn load(dir: &Path) -> Result<Self, RegistryError> {
        Self::load_file(dir.join("config.json"))
    }

    /// Loads a file in `config.json`'s format, such as podman's `auth.json` (an absent file is
    /// an empty configuration).
    pub fn load_file(path: PathBuf) -> Result<Self, RegistryError> {
        let doc = match std::fs::read(&path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(m)) => m,
                Ok(_) => {
                    return Err(RegistryError::Config {
                        path,
                        reason: "not a JSON object".into(),
                    });
                }
                Err(e) => {
                    return Err(RegistryError::Config {
                        path,
                        reason: crate::content::JsonError::from(e).to_string(),
                    });
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(source) => {
                return Err(RegistryError::Io(crate::report::IoError {
                    op: "read",
                    path,
                    source,
                }));
            }
        };
        Ok(Self {
            path,
            doc,
            helper_path: None,
        })
    }

    /// Looks credential helpers up in `path` instead of `$PATH`.
    pub fn with_helper_path(mut self, path: impl Into<std::ffi::OsString>) -> Self {
        self.helper_path = Some(path.into());
        self
    }

    /// The file this configuration was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn str_field(&self, name: &str) -> Option<&str> {
        self.doc
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    /// The credential helper for `registry`: its `credHelpers` entry, else `credsStore`.
    pub fn helper_for(&self, registry: &str) -> Option<String> {
        if let Some(Value::Object(helpers)) = self.doc.get("credHelpers")
            && let Some(h) = helpers
                .iter()
                .find(|(k, _)| matches_registry(k, registry))
                .and_then(|(_, v)| v.as_str())
        {
            return Some(h.to_string());
        }
        self.str_field("credsStore").map(str::to_string)
    }

    fn auth_entry(&self, registry: &str) -> Option<(&String, &Map<String, Value>)> {
        let Some(Value::Object(auths)) = self.doc.get("auths") else {
            return None;
        };
        // An exact key wins over a URL-shaped one.
        let keys = config_keys(registry);
        keys.iter()
            .find_map(|k| auths.get_key_value(k.as_str()))
            .or_else(|| auths.iter().find(|(k, _)| matches_registry(k, registry)))
            .and_then(|(k, v)| v.as_object().map(|o| (k, o)))
    }

    /// The credentials for `registry`, or `None` for anonymous access.
    pub fn credentials(&self, registry: &str) -> Result<Option<Credentials>, RegistryError> {
        if let Some(helper) = self.helper_for(registry) {
            for key in config_keys(registry) {
                if let Some(c) = helper_get(self.helper_path.as_deref(), &helper, &key)? {
                    return Ok(Some(c));
                }
            }
            // A credsStore may hold nothing for this registry while `auths` does.
        }
        let Some((key, entry)) = self.auth_entry(registry) else {
            return Ok(None);
        };
        if let Some(token) = entry
            .get("identitytoken")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            return Ok(Some(Credentials::new(IDENTITY_TOKEN_USER, token)));
        }
        if let Some(auth) = entry
            .get("auth")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            let bad = || RegistryError::Config {
                path: self.path.clone(),
                reason: format!("auths.{key}.auth is not base64 of user:password"),
            };
            let decoded = BASE64.decode(auth.trim()).map_err(|_| bad())?;
            let text = String::from_utf8(decoded).map_err(|_| bad())?;
            let (user, pass) = text.split_once(':').ok_or_else(bad)?;
            return Ok(Some(Credentials::new(user, pass)));
        }
        let user = entry.get("username").and_then(Value::as_str);
        let pass = entry.get("password").and_then(Value::as_str);
        Ok(match (user, pass) {
            (Some(u), Some(p)) if !u.is_empty() => Some(Credentials::new(u, p)),
            _ => None,
        })
    }

    /// Stores credentials for `registry`: in the credential store if one is configured,
    /// otherwise base64 in `auths`. Returns where they went.
    pub fn store(&mut self, registry: &str, creds: &Credentials) -> Result<String, RegistryError> {
        let key = config_keys(registry)
            .into_iter()
            .next()
            .unwrap_or_else(|| registry.to_string());
        if let Some(helper) = self.helper_for(registry) {
            helper_store(self.helper_path.as_deref(), &helper, &key, creds)?;
            // Docker keeps an empty entry so `docker info` lists the registry.
            self.auths_mut().insert(key, Value::Object(Map::new()));
            self.save()?;
            return Ok(format!("docker-credential-{helper}"));
        }
        let mut entry = Map::new();
        entry.insert(
            "auth".into(),
            Value::String(BASE64.encode(format!("{}:{}", creds.username, creds.password.expose()))),
        );
        self.auths_mut().insert(key, Value::Object(entry));
        self.save()?;
        Ok(self.path.display().to_string())
    }

    /// Removes the credentials for `registry`. Returns whether there were any.
    pub fn erase(&mut self, registry: &str) -> Result<bool, RegistryError> {
        let mut found = false;
        if let Some(helper) = self.helper_for(registry) {
            for key in config_keys(registry) {
                found |= helper_erase(self.helper_path.as_deref(), &helper, &key)?;
            }
        }
        let auths = self.auths_mut();
        let keys: Vec<String> = auths
            .keys()
            .filter(|k| matches_registry(k, registry))
            .cloned()
            .collect();
        for k in keys {
            auths.remove(&k);
            found = true;
        }
        self.save()?;
        Ok(found)
    }

    fn auths_mut(&mut self) -> &mut Map<String, Value> {
        let slot = self
            .doc
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        match slot {
            Value::Object(m) => m,
            _ => unreachable!("just replaced by an object"),
        }
    }

    /// Writes the file atomically with mode 0600.
    pub fn save(&self) -> Result<(), RegistryError> {
        use std::os::unix::fs::PermissionsExt;
        let io = |op: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| RegistryError::Io(crate::report::IoError { op, path, source })
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io("create directory", dir))?;
        let bytes = serde_json::to_vec_pretty(&Value::Object(self.doc.clone())).map_err(|e| {
            RegistryError::Config {
                path: self.path.clone(),
                reason: crate::report::chain(&e),
            }
        })?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".config.json")
            .tempfile_in(dir)
            .map_err(io("create temp file in", dir))?;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io("chmod", tmp.path()))?;
        tmp.write_all(&bytes).map_err(io("write", tmp.path()))?;
        tmp.write_all(b"\n").map_err(io("write", tmp.path()))?;
        tmp.as_file().sync_all().map_err(io("fsync", tmp.path()))?;
        tmp.persist(&self.path).map_err(|e| {
            RegistryError::Io(crate::report::IoError {
                op: "rename into place",
                path: self.path.clone(),
                source: e.error,
            })
        })?;
        crate::content::fsync_dir(dir).map_err(|e| RegistryError::Config {
            path: dir.to_path_buf(),
            reason: crate::report::chain(&e),
        })?;
        Ok(())
    }
}

/// Runs `docker-credential-<helper> <action>` with `input` on stdin.
fn run_helper(
    search: Option<&std::ffi::OsStr>,
    helper: &str,
    action: &str,
    input: &[u8],
) -> Result<(bool, Vec<u8>), RegistryError> {
    let program = format!("docker-credential-{helper}");
    let err = |reason: String| RegistryError::CredentialHelper {
        helper: program.clone(),
        reason,
    };
    let mut cmd = Command::new(&program);
    if let Some(search) = search {
        cmd.env("PATH", search);
    }
    let mut child = cmd
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("cannot run it: {e}", e = crate::report::chain(&e))))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).map_err(|e| {
            err(format!(
                "cannot write to it: {e}",
                e = crate::report::chain(&e)
            ))
        })?;
    }
    let out = child.wait_with_output().map_err(|e| {
        err(format!(
            "cannot wait for it: {e}",
            e = crate::report::chain(&e)
        ))
    })?;
    if out.status.success() {
        return Ok((true, out.stdout));
    }
    // Helpers report errors on stdout (Docker's protocol) or stderr; neither carries secrets.
    let mut msg = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if msg.is_empty() {
        msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
    }
    Ok((false, msg.into_bytes()))
}

fn is_not_found(msg: &[u8]) -> bool {
    String::from_utf8_lossy(msg)
        .to_ascii_lowercase()
        .contains("credentials not found")
}

fn helper_get(
    search: Option<&std::ffi::OsStr>,
    helper: &str,
    server: &str,
) -> Result<Option<Credentials>, RegistryError> {
    let (ok, out) = run_helper(search, helper, "get", server.as_bytes())?;
    if !ok {
        if is_not_found(&out) {
            return Ok(None);
        }
        return Err(RegistryError::CredentialHelper {
            helper: format!("docker-credential-{helper}"),
            reason: format!("get {server}: {}", String::from_utf8_lossy(&out)),
        });
    }
    #[derive(serde::Deserialize)]
    struct Reply {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let reply: Reply =
        serde_json::from_slice(&out).map_err(|e| RegistryError::CredentialHelper {
            helper: format!("docker-credential-{helper}"),
            reason: format!(
                "get {server}: invalid reply: {}",
                crate::content::JsonError::from(e)
            ),
        })?;
    if reply.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials::new(reply.username, reply.secret)))
}

fn helper_store(
    search: Option<&std::ffi::OsStr>,
    helper: &str,
    server: &str,
    creds: &Credentials,
) -> Result<(), RegistryError> {
    let input = serde_json::json!({
        "ServerURL": server,
        "Username": creds.username,
        "Secret": creds.password.expose(),
    });
    let (ok, out) = run_helper(search, helper, "store", input.to_string().as_bytes())?;
    if ok {
        Ok(())
    } else {
        Err(RegistryError::CredentialHelper {
            helper: format!("docker-credential-{helper}"),
            reason: format!("store {server}: {}", String::from_utf8_lossy(&out)),
        })
    }
}

fn helper_erase(
    search: Option<&std::ffi::OsStr>,
    helper: &str,
    server: &str,
) -> Result<bool, RegistryError> {
    let (ok, out) = run_helper(search, helper, "erase", server.as_bytes())?;
    if ok {
        Ok(true)
    } else if is_not_found(&out) {
        Ok(false)
    } else {
        Err(RegistryError::CredentialHelper {
            helper: format!("docker-credential-{helper}"),
            reason: format!("erase {server}: {}", String::from_utf8_lossy(&out)),
        })
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
