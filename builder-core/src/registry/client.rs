//! One registry's HTTP API (distribution spec v2) with authentication: anonymous, HTTP basic and
//! bearer tokens obtained through the `WWW-Authenticate` challenge, scoped per repository and
//! cached until they expire.
//!
//! Plain HTTP is used for loopback registries and for those named with `--insecure-registry`, as
//! Docker does: HTTPS is tried first and HTTP is the fallback when the TLS connection fails.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};

use super::auth::{Credentials, Secret};
use super::{RegistryError, RegistryOptions};

/// Whether `registry` (`host[:port]`) is on the loopback interface.
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.rsplit_once(':').map_or(registry, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// How the registry asked to be authenticated.
#[derive(Debug, Clone)]
enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header: `Bearer realm="...",service="...",scope="..."` or
/// `Basic realm="..."`.
fn parse_challenge(value: &str) -> Option<Challenge> {
    let (scheme, params) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    let mut map = HashMap::new();
    let mut rest = params.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (val, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            (&q[..end], q.get(end + 1..).unwrap_or(""))
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim(), &after[end..])
        };
        map.insert(key, val.to_string());
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: map.remove("realm")?,
            service: map.remove("service"),
        }),
        _ => None,
    }
}

struct Token {
    value: Secret,
    expires: Instant,
}

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    /// Bearer tokens by their space-joined, sorted scopes.
    tokens: HashMap<String, Token>,
    credentials: Option<Option<Credentials>>,
}

/// A client for one registry. Cheap to clone; clones share the token cache.
#[derive(Clone)]
pub struct Client {
    registry: String,
    api_host: String,
    http: reqwest::Client,
    base: Arc<Mutex<Option<String>>>,
    plain_http_allowed: bool,
    state: Arc<Mutex<AuthState>>,
    config_dir: std::path::PathBuf,
    fixed_credentials: Option<Credentials>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

/// Attempts for requests that fail on the way (connection errors, 5xx, 429).
pub(crate) const ATTEMPTS: u32 = 4;

/// The backoff before attempt `n` (1-based): 200 ms, 400 ms, 800 ms.
pub(crate) fn backoff(n: u32) -> Duration {
    Duration::from_millis(200u64 << n.saturating_sub(1).min(6))
}

/// Text of an error and its causes, for messages that must say why a connection failed.
pub(crate) use crate::report::chain;

fn scope_key(scopes: &[String]) -> String {
    let mut s = scopes.to_vec();
    s.sort();
    s.dedup();
    s.join(" ")
}

/// `repository:<repo>:pull`.
pub fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

/// `repository:<repo>:pull,push`.
pub fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

impl Client {
    /// A client for `registry` (as named in references) reached at `api_host`.
    pub fn new(
        registry: &str,
        api_host: &str,
        opts: &RegistryOptions,
    ) -> Result<Self, RegistryError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::limited(10));
        for path in &opts.ca_files {
            let pem = std::fs::read(path).map_err(|source| {
                RegistryError::Io(crate::report::IoError {
                    op: "read CA file",
                    path: path.clone(),
                    source,
                })
            })?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| RegistryError::Tls {
                    path: path.clone(),
                    reason: chain(&e.without_url()),
                })?;
            if certs.is_empty() {
                return Err(RegistryError::Tls {
                    path: path.clone(),
                    reason: "no PEM certificate in it".into(),
                });
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder.build().map_err(|e| RegistryError::Connect {
            registry: registry.to_string(),
            reason: chain(&e.without_url()),
        })?;
        let plain_http_allowed = is_loopback(registry)
            || opts
                .insecure_registries
                .iter()
                .any(|r| r == registry || r == api_host);
        Ok(Self {
            registry: registry.to_string(),
            api_host: api_host.to_string(),
            http,
            base: Arc::new(Mutex::new(None)),
            plain_http_allowed,
            state: Arc::new(Mutex::new(AuthState::default())),
            config_dir: opts
                .docker_config
                .clone()
                .unwrap_or_else(super::auth::default_config_dir),
            fixed_credentials: opts.credentials.clone(),
        })
    }

    /// The registry's name.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AuthState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn credentials(&self) -> Result<Option<Credentials>, RegistryError> {
        if let Some(c) = &self.fixed_credentials {
            return Ok(Some(c.clone()));
        }
        if let Some(c) = &self.lock().credentials {
            return Ok(c.clone());
        }
        // Loading may run a credential helper: do it outside the lock.
        let creds = super::auth_files::find_credentials(&self.config_dir, &self.registry)?;
        self.lock().credentials = Some(creds.clone());
        Ok(creds)
    }

    /// `https://host` or, where allowed and HTTPS does not answer, `http://host`.
    async fn base(&self) -> Result<String, RegistryError> {
        if let Some(b) = self
            .base
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
        {
            return Ok(b);
        }
        let https = format!("https://{}", self.api_host);
        let chosen = if self.plain_http_allowed {
            match self.http.get(format!("{https}/v2/")).send().await {
                Ok(_) => https,
                Err(e) if e.is_connect() || e.is_request() => {
                    let tls = chain(&e.without_url());
                    let http = format!("http://{}", self.api_host);
                    // Only fall back to an API that answers over HTTP; otherwise the HTTPS error
                    // (often an untrusted certificate) is the useful one.
                    match self.http.get(format!("{http}/v2/")).send().await {
                        Ok(r)
                            if r.status() != StatusCode::BAD_REQUEST
                                && !r.status().is_server_error() =>
                        {
                            tracing::debug!(registry = %self.registry, "HTTPS failed, using HTTP: {tls}");
                            http
                        }
                        Ok(r) => {
                            return Err(RegistryError::Connect {
                                registry: self.registry.clone(),
                                reason: format!(
                                    "HTTPS failed ({tls}) and plain HTTP answered {}",
                                    r.status()
                                ),
                            });
                        }
                        Err(e2) => {
                            return Err(RegistryError::Connect {
                                registry: self.registry.clone(),
                                reason: format!(
                                    "HTTPS failed ({tls}); plain HTTP failed too ({})",
                                    chain(&e2.without_url())
                                ),
                            });
                        }
                    }
                }
                Err(e) => {
                    return Err(RegistryError::Connect {
                        registry: self.registry.clone(),
                        reason: chain(&e.without_url()),
                    });
                }
            }
        } else {
            https
        };
        *self
            .base
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(chosen.clone());
        Ok(chosen)
    }

    /// The full URL of an API path (`/v2/...`).
    pub async fn url(&self, path: &str) -> Result<String, RegistryError> {
        Ok(format!("{}{path}", self.base().await?))
    }

    /// The `Authorization` value for `scopes` from what is cached, if any.
    fn cached_auth(&self, scopes: &[String]) -> Result<Option<String>, RegistryError> {
        let challenge = self.lock().challenge.clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.credentials()?.map(|c| c.basic_header())),
            Some(Challenge::Bearer { .. }) => {
                let st = self.lock();
                Ok(st
                    .tokens
                    .get(&scope_key(scopes))
                    .filter(|t| t.expires > Instant::now())
                    .map(|t| format!("Bearer {}", t.value.expose())))
            }
        }
    }

    /// Answers a 401: remembers the challenge and gets what it asks for.
    async fn authenticate(
        &self,
        headers: &HeaderMap,
        scopes: &[String],
    ) -> Result<String, RegistryError> {
        let challenge = headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(parse_challenge)
            .ok_or_else(|| RegistryError::Unauthorized {
                registry: self.registry.clone(),
                reason: "it answered 401 without a usable WWW-Authenticate challenge".into(),
            })?;
        self.lock().challenge = Some(challenge.clone());
        let creds = self.credentials()?;
        match challenge {
            Challenge::Basic => match creds {
                Some(c) => Ok(c.basic_header()),
                None => Err(self.no_credentials()),
            },
            Challenge::Bearer { realm, service } => {
                let token = self
                    .fetch_token(&realm, service.as_deref(), scopes, creds.as_ref())
                    .await?;
                let header = format!("Bearer {}", token.value.expose());
                self.lock().tokens.insert(scope_key(scopes), token);
                Ok(header)
            }
        }
    }

    fn no_credentials(&self) -> RegistryError {
        RegistryError::Unauthorized {
            registry: self.registry.clone(),
            reason: format!(
                "authentication required and no credentials found (run `kiln login {}`)",
                self.registry
            ),
        }
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        creds: Option<&Credentials>,
    ) -> Result<Token, RegistryError> {
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = service {
            query.push(("service", s));
        }
        for s in scopes {
            query.push(("scope", s));
        }
        let req = match creds {
            // An OAuth2 refresh token is exchanged with a POST, as Docker does.
            Some(c) if c.is_identity_token() => {
                let mut form: Vec<(&str, &str)> = vec![
                    ("grant_type", "refresh_token"),
                    ("client_id", "kiln"),
                    ("refresh_token", c.password.expose()),
                ];
                form.extend(query.iter().copied());
                self.http.post(realm).form(&form)
            }
            Some(c) => self
                .http
                .get(realm)
                .query(&query)
                .header(AUTHORIZATION, c.basic_header()),
            None => self.http.get(realm).query(&query),
        };
        let resp = req.send().await.map_err(|e| RegistryError::Connect {
            registry: self.registry.clone(),
            reason: format!("token server {realm}: {}", chain(&e.without_url())),
        })?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(RegistryError::Unauthorized {
                registry: self.registry.clone(),
                reason: if creds.is_some() {
                    format!("the token server {realm} rejected the credentials ({status})")
                } else {
                    format!(
                        "the token server {realm} refused anonymous access ({status}); run `kiln login {}`",
                        self.registry
                    )
                },
            });
        }
        if !status.is_success() {
            return Err(RegistryError::Status {
                registry: self.registry.clone(),
                what: format!("token from {realm}"),
                status: status.as_u16(),
                detail: String::new(),
            });
        }
        #[derive(serde::Deserialize)]
        struct Reply {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let bytes = resp.bytes().await.map_err(|e| RegistryError::Connect {
            registry: self.registry.clone(),
            reason: format!("token server {realm}: {}", chain(&e.without_url())),
        })?;
        let reply: Reply = serde_json::from_slice(&bytes).map_err(|e| RegistryError::Status {
            registry: self.registry.clone(),
            what: format!("token from {realm}"),
            status: status.as_u16(),
            detail: format!("invalid JSON: {e}", e = crate::report::chain(&e)),
        })?;
        let value = reply
            .token
            .or(reply.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| RegistryError::Status {
                registry: self.registry.clone(),
                what: format!("token from {realm}"),
                status: status.as_u16(),
                detail: "no token in the reply".into(),
            })?;
        // The spec's default lifetime is 60 s; renew a little early.
        let life = reply.expires_in.unwrap_or(60).max(10);
        Ok(Token {
            value: Secret::new(value),
            expires: Instant::now() + Duration::from_secs(life - 5),
        })
    }

    /// Sends a request built by `build` (called again for each attempt) with authentication for
    /// `scopes`, answering one 401 challenge. Idempotent requests (GET, HEAD) are retried with
    /// backoff on connection errors, 429 and 5xx.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        scopes: &[String],
        build: &(dyn Fn(RequestBuilder) -> Result<RequestBuilder, RegistryError> + Sync),
    ) -> Result<Response, RegistryError> {
        let idempotent = method == Method::GET || method == Method::HEAD;
        let mut attempt = 0;
        let mut auth = self.cached_auth(scopes)?;
        let mut answered = false;
        loop {
            attempt += 1;
            let mut req = build(self.http.request(method.clone(), url))?;
            if let Some(a) = &auth {
                let mut v = HeaderValue::from_str(a).map_err(|_| RegistryError::Unauthorized {
                    registry: self.registry.clone(),
                    reason: "the credentials contain characters HTTP headers cannot carry".into(),
                })?;
                v.set_sensitive(true);
                req = req.header(AUTHORIZATION, v);
            }
            let result = req.send().await;
            let resp = match result {
                Ok(r) => r,
                Err(e) if idempotent && attempt < ATTEMPTS && !e.is_builder() => {
                    tracing::debug!(registry = %self.registry, attempt, "retrying {method} {url}: {}", chain(&e.without_url()));
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
                Err(e) => {
                    return Err(RegistryError::Connect {
                        registry: self.registry.clone(),
                        reason: chain(&e.without_url()),
                    });
                }
            };
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && !answered {
                answered = true;
                auth = Some(self.authenticate(resp.headers(), scopes).await?);
                attempt -= 1;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED {
                let has_creds = self.credentials()?.is_some();
                return Err(if has_creds {
                    RegistryError::Unauthorized {
                        registry: self.registry.clone(),
                        reason: "the credentials were rejected".into(),
                    }
                } else {
                    self.no_credentials()
                });
            }
            let transient = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
            if transient && idempotent && attempt < ATTEMPTS {
                tokio::time::sleep(backoff(attempt)).await;
                continue;
            }
            return Ok(resp);
        }
    }

    /// Checks that the registry answers and accepts our credentials for `scopes`.
    pub async fn ping(&self, scopes: &[String]) -> Result<(), RegistryError> {
        let url = self.url("/v2/").await?;
        let resp = self.send(Method::GET, &url, scopes, &Ok).await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.status_error("API version check", resp).await)
        }
    }

    /// An error for an unexpected status, with the registry's error message when it sent one.
    pub async fn status_error(&self, what: &str, resp: Response) -> RegistryError {
        let status = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        let detail = registry_error_text(&body);
        if status == StatusCode::FORBIDDEN {
            return RegistryError::Unauthorized {
                registry: self.registry.clone(),
                reason: format!("access to {what} is denied: {detail}"),
            };
        }
        RegistryError::Status {
            registry: self.registry.clone(),
            what: what.to_string(),
            status: status.as_u16(),
            detail,
        }
    }
}

/// The `errors[].message` of a registry's JSON error body, or a short prefix of the body.
fn registry_error_text(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        code: Option<String>,
        message: Option<String>,
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(body) {
        return e
            .errors
            .iter()
            .map(|x| {
                format!(
                    "{}: {}",
                    x.code.as_deref().unwrap_or("ERROR"),
                    x.message.as_deref().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    text.trim().to_string()
}

/// The `Accept` header for manifests: every manifest and index type kiln reads.
pub fn manifest_accept() -> HeaderValue {
    HeaderValue::from_static(
        "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
    )
}

/// Adds the manifest `Accept` header.
pub fn accept_manifests(req: RequestBuilder) -> Result<RequestBuilder, RegistryError> {
    Ok(req.header(ACCEPT, manifest_accept()))
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
