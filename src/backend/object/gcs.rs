//! Google Cloud Storage, through its JSON API: conditional multipart
//! uploads (`ifGenerationMatch=0` to create, `=<generation>` to swap), sent
//! by `ureq` on the calling thread (the engine calls a remote resource from
//! its blocking pool). Multipart, not simple media uploads: an emulator
//! that ignores preconditions on the latter is known, and the API's
//! contract is the same for both. The generation is the version the
//! protocol compares, never a token: Google promises generations unique,
//! not increasing.
//!
//! Where things come from:
//! - the endpoint: `STORAGE_EMULATOR_HOST` (an emulator, no credentials),
//!   else `https://storage.googleapis.com`;
//! - the credentials: the service account key file
//!   `GOOGLE_APPLICATION_CREDENTIALS` names (an RS256-signed JWT exchanged
//!   for an access token, renewed before it expires), else the metadata
//!   server of the machine (Compute Engine, GKE, Cloud Run).
//!
//! Secrets stay out of errors and `Debug`.

use std::fmt;
use std::io;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::Value;

use super::http::{self, MAX_MESSAGE};
use super::store::{Condition, Object, Put, Store, Version};

/// The OAuth scope lockyard asks for: objects, read and write.
const SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_write";

/// How a token is had.
enum Auth {
    /// An emulator: no credentials.
    None,
    /// A service account's key: a signed JWT, exchanged at `token_uri`.
    ServiceAccount {
        email: String,
        key: Box<ring::signature::RsaKeyPair>,
        token_uri: String,
    },
    /// The metadata server of the machine.
    Metadata,
}

/// A bearer token and when to stop using it.
struct Token {
    value: String,
    until: Instant,
}

/// Where the store is, and how to authenticate to it.
pub(crate) struct GcsConfig {
    base: String,
    auth: Auth,
    timeout: Duration,
}

impl fmt::Debug for GcsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.auth {
            Auth::None => "none",
            Auth::ServiceAccount { .. } => "service account",
            Auth::Metadata => "metadata server",
        };
        f.debug_struct("GcsConfig")
            .field("endpoint", &self.base)
            .field("auth", &auth)
            .finish_non_exhaustive()
    }
}

impl GcsConfig {
    /// The configuration the environment gives (see the module docs);
    /// `Err` says what is wrong with the key file.
    pub(crate) fn from_env() -> Result<GcsConfig, String> {
        let timeout = Duration::from_secs(20);
        if let Some(host) = std::env::var("STORAGE_EMULATOR_HOST")
            .ok()
            .filter(|h| !h.is_empty())
        {
            let base = if host.contains("://") {
                host
            } else {
                format!("http://{host}")
            };
            return Ok(GcsConfig {
                base: base.trim_end_matches('/').to_owned(),
                auth: Auth::None,
                timeout,
            });
        }
        let auth = match std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS") {
            Some(path) => {
                let shown = std::path::Path::new(&path).display().to_string();
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read the key file {shown}: {e}"))?;
                service_account(&text).map_err(|why| format!("the key file {shown}: {why}"))?
            }
            None => Auth::Metadata,
        };
        Ok(GcsConfig {
            base: "https://storage.googleapis.com".to_owned(),
            auth,
            timeout,
        })
    }
}

/// A service account key file's account, key and token address.
fn service_account(text: &str) -> Result<Auth, String> {
    let json: Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON ({})", e.classify_name()))?;
    let field = |name: &str| {
        json.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("no {name}"))
    };
    if field("type")? != "service_account" {
        return Err("not a service account key (type is not service_account)".to_owned());
    }
    let pem = field("private_key")?;
    let der = pem_body(pem).ok_or("its private_key is not a PEM private key")?;
    let key = ring::signature::RsaKeyPair::from_pkcs8(&der)
        .map_err(|_| "its private_key is not an RSA key in PKCS#8".to_owned())?;
    let token_uri = json
        .get("token_uri")
        .and_then(Value::as_str)
        .unwrap_or("https://oauth2.googleapis.com/token");
    Ok(Auth::ServiceAccount {
        email: field("client_email")?.to_owned(),
        key: Box::new(key),
        token_uri: token_uri.to_owned(),
    })
}

/// The bytes of a `-----BEGIN PRIVATE KEY-----` block.
fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN PRIVATE KEY-----")? + "-----BEGIN PRIVATE KEY-----".len();
    let end = start + pem[start..].find("-----END PRIVATE KEY-----")?;
    let b64: String = pem[start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(b64).ok()
}

trait JsonErrorName {
    fn classify_name(&self) -> &'static str;
}

impl JsonErrorName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax => "a syntax error",
            serde_json::error::Category::Data => "unexpected data",
            serde_json::error::Category::Eof => "cut short",
        }
    }
}

/// One bucket.
pub(crate) struct GcsStore {
    config: GcsConfig,
    bucket: String,
    agent: ureq::Agent,
    token: Mutex<Option<Token>>,
    /// `endpoint/bucket`, for errors.
    label: String,
}

impl fmt::Debug for GcsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcsStore")
            .field("bucket", &self.label)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// `s` with every byte but unreserved ones percent-encoded: an object
/// name as one path segment or query value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl GcsStore {
    pub(crate) fn new(bucket: &str, config: GcsConfig) -> Result<GcsStore, String> {
        if bucket.is_empty()
            || !bucket
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(format!("{bucket:?} is not a bucket name"));
        }
        let agent = http::agent(config.timeout, &config.base);
        let label = format!("{}/{bucket}", config.base);
        Ok(GcsStore {
            config,
            bucket: bucket.to_owned(),
            agent,
            token: Mutex::new(None),
            label,
        })
    }

    /// The `Authorization` header's value, if any: a cached token, or a
    /// new one.
    fn authorization(&self) -> io::Result<Option<String>> {
        if matches!(self.config.auth, Auth::None) {
            return Ok(None);
        }
        let mut cached = self.token.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(token) = cached.as_ref().filter(|t| Instant::now() < t.until) {
            return Ok(Some(format!("Bearer {}", token.value)));
        }
        let token = self.fetch_token()?;
        let header = format!("Bearer {}", token.value);
        *cached = Some(token);
        Ok(Some(header))
    }

    fn fetch_token(&self) -> io::Result<Token> {
        let auth_error = |why: String| {
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("authenticating to {}: {why}", self.label),
            )
        };
        let asked = Instant::now();
        let mut response = match &self.config.auth {
            Auth::None => return Err(auth_error("no credentials".to_owned())),
            Auth::ServiceAccount {
                email,
                key,
                token_uri,
            } => {
                let jwt = signed_jwt(email, key, token_uri, SystemTime::now())
                    .map_err(|why| auth_error(why.to_owned()))?;
                let form = format!(
                    "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={jwt}"
                );
                self.agent
                    .post(token_uri)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .send(form.as_bytes())
            }
            Auth::Metadata => self
                .agent
                .get("http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token")
                .header("metadata-flavor", "Google")
                .call(),
        }
        .map_err(|e| auth_error(http::words(&e)))?;
        let status = response.status().as_u16();
        let body = http::body(&mut response).map_err(|e| auth_error(http::words(&e)))?;
        if status != 200 {
            return Err(auth_error(format!(
                "the token server answered {status} {}",
                message_of(&body)
            )));
        }
        let json: Value = serde_json::from_slice(&body)
            .map_err(|_| auth_error("the token answer is not JSON".to_owned()))?;
        let value = json
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| auth_error("the token answer has no access_token".to_owned()))?;
        let lifetime = json
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(300);
        // Renewed a minute early (or halfway, for a short-lived one).
        let keep = Duration::from_secs(lifetime.saturating_sub(60).max(lifetime / 2));
        Ok(Token {
            value: value.to_owned(),
            until: asked + keep,
        })
    }

    fn object_url(&self, key: &str) -> String {
        format!(
            "{}/storage/v1/b/{}/o/{}",
            self.config.base,
            self.bucket,
            encode(key)
        )
    }

    fn transport(&self, what: &str, key: &str, e: ureq::Error) -> io::Error {
        http::unanswered(&format!("{what} {}/{key}", self.label), &e)
    }

    fn refused(&self, what: &str, key: &str, status: u16, body: &[u8]) -> io::Error {
        let doing = format!("{what} {}/{key}", self.label);
        http::refused(&doing, status, &message_of(body))
    }

    /// Whether the bucket exists (asked after a 404, which does not say
    /// whether the object or the bucket is missing).
    fn bucket_exists(&self, key: &str) -> io::Result<bool> {
        let url = format!("{}/storage/v1/b/{}", self.config.base, self.bucket);
        let mut request = self.agent.get(&url);
        if let Some(auth) = self.authorization()? {
            request = request.header("authorization", &auth);
        }
        let mut response = request
            .call()
            .map_err(|e| self.transport("reading", key, e))?;
        let status = response.status().as_u16();
        let _ = http::body(&mut response);
        Ok(status != 404)
    }

    fn no_bucket(&self, what: &str, key: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{what} {}/{key}: the bucket does not exist (NoSuchBucket)",
                self.label
            ),
        )
    }
}

/// A server's error message: the JSON API's `error.message`, else the
/// start of the text; controls dropped, cut to [`MAX_MESSAGE`].
fn message_of(body: &[u8]) -> String {
    let from_json = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        let error = v.get("error")?;
        match error.get("message").and_then(Value::as_str) {
            Some(m) => Some(m.to_owned()),
            None => error.as_str().map(str::to_owned),
        }
    });
    let text = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_MESSAGE)
        .collect()
}

/// A JWT asserting `email` for the storage scope, signed with `key`
/// (RS256), valid for an hour from `now`.
fn signed_jwt(
    email: &str,
    key: &ring::signature::RsaKeyPair,
    audience: &str,
    now: SystemTime,
) -> Result<String, &'static str> {
    let iat = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| "the clock is before 1970")?
        .as_secs();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "iss": email,
        "scope": SCOPE,
        "aud": audience,
        "iat": iat,
        "exp": iat + 3600,
    });
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{claims}");
    let rng = ring::rand::SystemRandom::new();
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &rng,
        signing_input.as_bytes(),
        &mut signature,
    )
    .map_err(|_| "signing the token request failed")?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

/// A multipart/related upload body: the object's metadata, then `body`.
fn multipart(key: &str, body: &[u8]) -> (String, Vec<u8>) {
    // A boundary no body holds but by a 1 in 2^128 chance.
    let boundary = format!("lockyard_{:032x}", fastrand::u128(..));
    let metadata = serde_json::json!({ "name": key }).to_string();
    let mut out = Vec::with_capacity(body.len() + 256);
    out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
    out.extend_from_slice(b"content-type: application/json; charset=UTF-8\r\n\r\n");
    out.extend_from_slice(metadata.as_bytes());
    out.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
    out.extend_from_slice(b"content-type: application/octet-stream\r\n\r\n");
    out.extend_from_slice(body);
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/related; boundary={boundary}"), out)
}

impl Store for GcsStore {
    fn get(&self, key: &str) -> io::Result<Option<Object>> {
        let url = format!("{}?alt=media", self.object_url(key));
        let mut request = self.agent.get(&url);
        if let Some(auth) = self.authorization()? {
            request = request.header("authorization", &auth);
        }
        let mut response = request
            .call()
            .map_err(|e| self.transport("reading", key, e))?;
        let status = response.status().as_u16();
        let generation = response
            .headers()
            .get("x-goog-generation")
            .and_then(|v| v.to_str().ok())
            .filter(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()))
            .map(|g| Version(g.to_owned()));
        let body = http::body(&mut response).map_err(|e| self.transport("reading", key, e))?;
        match status {
            200 => {
                let version = generation.ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("reading {}/{key}: the answer has no generation", self.label),
                    )
                })?;
                Ok(Some(Object { body, version }))
            }
            404 if self.bucket_exists(key)? => Ok(None),
            404 => Err(self.no_bucket("reading", key)),
            _ => Err(self.refused("reading", key, status, &body)),
        }
    }

    fn put(&self, key: &str, body: &[u8], condition: Condition<'_>) -> io::Result<Put> {
        let generation = match condition {
            Condition::Absent => "0",
            Condition::At(version) => version.0.as_str(),
        };
        let url = format!(
            "{}/upload/storage/v1/b/{}/o?uploadType=multipart&ifGenerationMatch={}",
            self.config.base,
            self.bucket,
            encode(generation)
        );
        let (content_type, payload) = multipart(key, body);
        let mut request = self.agent.post(&url).header("content-type", &content_type);
        if let Some(auth) = self.authorization()? {
            request = request.header("authorization", &auth);
        }
        let mut response = request
            .send(&payload[..])
            .map_err(|e| self.transport("writing", key, e))?;
        let status = response.status().as_u16();
        let answer = http::body(&mut response).map_err(|e| self.transport("writing", key, e))?;
        match status {
            200 | 201 => {
                let json: Value = serde_json::from_slice(&answer).map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("writing {}/{key}: the answer is not JSON", self.label),
                    )
                })?;
                let generation = match json.get("generation") {
                    Some(Value::String(g)) => Some(g.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                }
                .filter(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()));
                generation.map(|g| Put::Written(Version(g))).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("writing {}/{key}: the answer has no generation", self.label),
                    )
                })
            }
            // The precondition failed; 409: a concurrent change.
            412 | 409 => Ok(Put::Conflict),
            404 if self.bucket_exists(key)? => Ok(Put::Conflict),
            404 => Err(self.no_bucket("writing", key)),
            _ => Err(self.refused("writing", key, status, &answer)),
        }
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut url = format!(
                "{}/storage/v1/b/{}/o?prefix={}&fields=items(name),nextPageToken",
                self.config.base,
                self.bucket,
                encode(prefix)
            );
            if let Some(p) = &page {
                url.push_str(&format!("&pageToken={}", encode(p)));
            }
            let mut request = self.agent.get(&url);
            if let Some(auth) = self.authorization()? {
                request = request.header("authorization", &auth);
            }
            let mut response = request
                .call()
                .map_err(|e| self.transport("listing", prefix, e))?;
            let status = response.status().as_u16();
            let body =
                http::body(&mut response).map_err(|e| self.transport("listing", prefix, e))?;
            if status == 404 {
                return Err(self.no_bucket("listing", prefix));
            }
            if status != 200 {
                return Err(self.refused("listing", prefix, status, &body));
            }
            let json: Value = serde_json::from_slice(&body).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("listing {}/{prefix}: the answer is not JSON", self.label),
                )
            })?;
            if let Some(items) = json.get("items").and_then(Value::as_array) {
                keys.extend(
                    items
                        .iter()
                        .filter_map(|i| i.get("name").and_then(Value::as_str))
                        .map(str::to_owned),
                );
            }
            page = json
                .get("nextPageToken")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if page.is_none() {
                return Ok(keys);
            }
        }
    }
}

#[cfg(test)]
mod tests;
