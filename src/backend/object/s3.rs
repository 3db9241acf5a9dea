//! Amazon S3 and S3-compatible servers: conditional `PUT`s
//! (`If-None-Match: *`, `If-Match: <ETag>`), signed with SigV4 by
//! `rusty-s3` and sent by `ureq` on the calling thread (the engine calls a
//! remote resource from its blocking pool, never from an executor).
//!
//! Where things come from, as the AWS tools look for them:
//! - the endpoint: `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL` (path
//!   style: `http://host:port/bucket/key`), else AWS itself
//!   (`https://bucket.s3.region.amazonaws.com/key`);
//! - the region: `AWS_REGION`, else `AWS_DEFAULT_REGION`, else `us-east-1`;
//! - the credentials: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
//!   `AWS_SESSION_TOKEN`, else the profile `AWS_PROFILE` (or `default`) in
//!   `AWS_SHARED_CREDENTIALS_FILE` (or `~/.aws/credentials`); with none,
//!   requests go unsigned.
//!
//! Secrets stay out of errors and `Debug`: errors name the endpoint,
//! bucket and key, never a signed URL.

use std::fmt;
use std::io;
use std::time::Duration;

use rusty_s3::actions::S3Action;
use rusty_s3::{Bucket, Credentials, UrlStyle};

use super::http;
use super::store::{Condition, Object, Put, Store, Version};

/// How long a signed request stays valid: long enough for a slow network,
/// short enough that a leaked URL is soon worthless.
const SIGNED_FOR: Duration = Duration::from_secs(300);

/// Where the store is, and how to sign for it.
#[derive(Clone)]
pub(crate) struct S3Config {
    pub(crate) endpoint: String,
    pub(crate) path_style: bool,
    pub(crate) region: String,
    pub(crate) credentials: Option<(String, String, Option<String>)>,
    /// Bounds each request, connecting included.
    pub(crate) timeout: Duration,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("signed", &self.credentials.is_some())
            .finish_non_exhaustive()
    }
}

impl S3Config {
    /// The configuration the environment gives (see the module docs).
    pub(crate) fn from_env() -> S3Config {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_owned());
        let (endpoint, path_style) =
            match var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL")) {
                Some(url) => (url, true),
                None => (format!("https://s3.{region}.amazonaws.com"), false),
            };
        let credentials = match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(key), Some(secret)) => Some((key, secret, var("AWS_SESSION_TOKEN"))),
            _ => profile_credentials(),
        };
        S3Config {
            endpoint,
            path_style,
            region,
            credentials,
            timeout: Duration::from_secs(20),
        }
    }
}

/// The credentials of the profile the environment names, from the shared
/// credentials file, if it has them.
fn profile_credentials() -> Option<(String, String, Option<String>)> {
    let path = match std::env::var_os("AWS_SHARED_CREDENTIALS_FILE") {
        Some(p) => std::path::PathBuf::from(p),
        None => std::path::PathBuf::from(std::env::var_os("HOME")?).join(".aws/credentials"),
    };
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".to_owned());
    let text = std::fs::read_to_string(path).ok()?;
    let (mut key, mut secret, mut token) = (None, None, None);
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = section.trim() == profile;
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if inside {
            let v = Some(v.trim().to_owned());
            match k.trim() {
                "aws_access_key_id" => key = v,
                "aws_secret_access_key" => secret = v,
                "aws_session_token" => token = v,
                _ => {}
            }
        }
    }
    Some((key?, secret?, token))
}

/// One bucket.
pub(crate) struct S3Store {
    bucket: Bucket,
    credentials: Option<Credentials>,
    agent: ureq::Agent,
    /// `endpoint/bucket`, for errors.
    label: String,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.label)
            .field("signed", &self.credentials.is_some())
            .finish_non_exhaustive()
    }
}

impl S3Store {
    /// The store of `bucket` as `config` says; `Err` names what is wrong
    /// with the endpoint or bucket name.
    pub(crate) fn new(bucket: &str, config: &S3Config) -> Result<S3Store, String> {
        let endpoint: url::Url = config
            .endpoint
            .parse()
            .map_err(|e| format!("the endpoint {:?} is not a URL: {e}", config.endpoint))?;
        let style = if config.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(endpoint, style, bucket.to_owned(), config.region.clone())
            .map_err(|e| format!("no bucket {bucket:?} at {}: {e}", config.endpoint))?;
        let credentials = config
            .credentials
            .as_ref()
            .map(|(key, secret, token)| match token {
                Some(token) => Credentials::new_with_token(key, secret, token),
                None => Credentials::new(key, secret),
            });
        let agent = http::agent(config.timeout, &config.endpoint);
        let label = format!(
            "{}/{}",
            config.endpoint.trim_end_matches('/'),
            bucket.name()
        );
        Ok(S3Store {
            bucket,
            credentials,
            agent,
            label,
        })
    }

    /// An error for an answer that is none of the expected ones.
    fn refused(&self, what: &str, key: &str, status: u16, body: &[u8]) -> io::Error {
        let code = http::xml_field(body, "Code").unwrap_or_default();
        let message = http::xml_field(body, "Message").unwrap_or_default();
        let doing = format!("{what} {}/{key}", self.label);
        http::refused(&doing, status, &format!("{code} {message}"))
    }

    fn transport(&self, what: &str, key: &str, e: ureq::Error) -> io::Error {
        http::unanswered(&format!("{what} {}/{key}", self.label), &e)
    }
}

fn etag(response: &ureq::http::Response<ureq::Body>) -> Option<Version> {
    let tag = response.headers().get("etag")?.to_str().ok()?;
    (!tag.is_empty()).then(|| Version(tag.to_owned()))
}

impl Store for S3Store {
    fn get(&self, key: &str) -> io::Result<Option<Object>> {
        let url = self
            .bucket
            .get_object(self.credentials.as_ref(), key)
            .sign(SIGNED_FOR);
        let mut response = self
            .agent
            .get(url.as_str())
            .call()
            .map_err(|e| self.transport("reading", key, e))?;
        let status = response.status().as_u16();
        let version = etag(&response);
        let body = http::body(&mut response).map_err(|e| self.transport("reading", key, e))?;
        match status {
            200 => {
                let version = version.ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("reading {}/{key}: the answer has no ETag", self.label),
                    )
                })?;
                Ok(Some(Object { body, version }))
            }
            404 if http::xml_field(&body, "Code").as_deref() != Some("NoSuchBucket") => Ok(None),
            _ => Err(self.refused("reading", key, status, &body)),
        }
    }

    fn put(&self, key: &str, body: &[u8], condition: Condition<'_>) -> io::Result<Put> {
        let (header, value) = match condition {
            Condition::Absent => ("if-none-match", "*".to_owned()),
            Condition::At(version) => ("if-match", version.0.clone()),
        };
        let mut action = self.bucket.put_object(self.credentials.as_ref(), key);
        action.headers_mut().insert(header, value.clone());
        let url = action.sign(SIGNED_FOR);
        let mut response = self
            .agent
            .put(url.as_str())
            .header(header, &value)
            .send(body)
            .map_err(|e| self.transport("writing", key, e))?;
        let status = response.status().as_u16();
        let version = etag(&response);
        let answer = http::body(&mut response).map_err(|e| self.transport("writing", key, e))?;
        let code = http::xml_field(&answer, "Code");
        match status {
            200 | 201 => version.map(Put::Written).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("writing {}/{key}: the answer has no ETag", self.label),
                )
            }),
            // The condition failed; 409: a concurrent conditional write
            // (ConditionalRequestConflict); 404 on `If-Match`: the object
            // is gone.
            412 | 409 => Ok(Put::Conflict),
            404 if matches!(condition, Condition::At(_))
                && code.as_deref() != Some("NoSuchBucket") =>
            {
                Ok(Put::Conflict)
            }
            _ => Err(self.refused("writing", key, status, &answer)),
        }
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            // ListObjectsV2 is a GET of the bucket itself.
            let mut action = self.bucket.get_object(self.credentials.as_ref(), "");
            let query = action.query_mut();
            query.insert("list-type", "2");
            query.insert("prefix", prefix.to_owned());
            if let Some(t) = &token {
                query.insert("continuation-token", t.clone());
            }
            let url = action.sign(SIGNED_FOR);
            let mut response = self
                .agent
                .get(url.as_str())
                .call()
                .map_err(|e| self.transport("listing", prefix, e))?;
            let status = response.status().as_u16();
            let body =
                http::body(&mut response).map_err(|e| self.transport("listing", prefix, e))?;
            if status != 200 {
                return Err(self.refused("listing", prefix, status, &body));
            }
            let text = String::from_utf8_lossy(&body);
            keys.extend(http::xml_fields(&text, "Key"));
            let truncated = http::xml_field(&body, "IsTruncated").as_deref() == Some("true");
            token = http::xml_field(&body, "NextContinuationToken");
            if !truncated || token.is_none() {
                return Ok(keys);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_secret() {
        let config = S3Config {
            endpoint: "http://127.0.0.1:9".to_owned(),
            path_style: true,
            region: "us-east-1".to_owned(),
            credentials: Some((
                "AKIDEXAMPLE".to_owned(),
                "s3cr3t-do-not-show".to_owned(),
                None,
            )),
            timeout: Duration::from_secs(1),
        };
        let store = S3Store::new("bucket", &config).unwrap();
        for shown in [format!("{config:?}"), format!("{store:?}")] {
            assert!(!shown.contains("s3cr3t"), "{shown}");
        }
        // Nothing listens on port 9: the error names the bucket and key,
        // and carries no signed URL.
        let e = store.get("locks/x.lock").unwrap_err();
        let said = e.to_string();
        assert!(
            said.contains("http://127.0.0.1:9/bucket/locks/x.lock"),
            "{said}"
        );
        assert!(
            !said.contains("X-Amz") && !said.contains("s3cr3t"),
            "{said}"
        );
    }
}
