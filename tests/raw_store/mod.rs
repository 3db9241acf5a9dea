//! Raw clients of the object stores the tests run against (S3, GCS,
//! Azure Blob): conditional writes and reads made on each store's own API,
//! with nothing of lockyard's, for the conformance test
//! (`tests/object_storage.rs`) and the mechanism rows of
//! `benches/object.rs`. Each reads the environment a bed prints
//! (`.ci/*-bed`).

use std::time::Duration;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set"))
}

/// The bucket of the store URL in `var` (`s3://bucket/...`).
fn bucket_of(var: &str, scheme: &str) -> String {
    let url = env(var);
    let rest = url.strip_prefix(scheme).unwrap();
    rest.split('/').next().unwrap().to_owned()
}

/// A raw client: conditional writes and reads on the store's own API,
/// nothing of lockyard's.
pub trait Raw: Send + Sync {
    /// Writes `body` at `key` if absent (`None`) or still at `version`:
    /// the version it made if it was written, `None` if refused (`Err`: a
    /// status that is neither yes nor no).
    fn put_versioned(
        &self,
        key: &str,
        body: &[u8],
        version: Option<&str>,
    ) -> Result<Option<String>, u16>;
    /// [`put_versioned`](Raw::put_versioned): whether it was written.
    fn put(&self, key: &str, body: &[u8], version: Option<&str>) -> Result<bool, u16> {
        self.put_versioned(key, body, version).map(|v| v.is_some())
    }
    /// The body and version at `key`.
    fn get(&self, key: &str) -> (Vec<u8>, String);
}

fn header_of<B>(resp: &ureq::http::Response<B>, name: &str) -> String {
    resp.headers()[name].to_str().unwrap().to_owned()
}

/// A read's answer, which must be 200: the body and the version the
/// header `version` gives.
fn read_answer(mut resp: ureq::http::Response<ureq::Body>, version: &str) -> (Vec<u8>, String) {
    assert_eq!(resp.status().as_u16(), 200);
    let version = header_of(&resp, version);
    (resp.body_mut().read_to_vec().unwrap(), version)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
}

/// Signed S3 requests (`If-None-Match: *`, `If-Match`).
pub struct RawS3 {
    bucket: rusty_s3::Bucket,
    creds: rusty_s3::Credentials,
    agent: ureq::Agent,
}

impl RawS3 {
    pub fn new() -> RawS3 {
        use rusty_s3::{Bucket, Credentials, UrlStyle};
        let bucket = bucket_of("LOCKYARD_TEST_S3", "s3://");
        let endpoint = env("AWS_ENDPOINT_URL").parse().unwrap();
        let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
        RawS3 {
            bucket: Bucket::new(endpoint, UrlStyle::Path, bucket, region).unwrap(),
            creds: Credentials::new(env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")),
            agent: agent(),
        }
    }
}

impl Raw for RawS3 {
    fn put_versioned(
        &self,
        key: &str,
        body: &[u8],
        version: Option<&str>,
    ) -> Result<Option<String>, u16> {
        use rusty_s3::S3Action;
        let (header, value) = match version {
            None => ("if-none-match", "*"),
            Some(v) => ("if-match", v),
        };
        let mut action = self.bucket.put_object(Some(&self.creds), key);
        action
            .headers_mut()
            .insert(header.to_owned(), value.to_owned());
        let url = action.sign(Duration::from_secs(60));
        let resp = self
            .agent
            .put(url.as_str())
            .header(header, value)
            .send(body)
            .unwrap();
        match resp.status().as_u16() {
            200 => Ok(Some(header_of(&resp, "etag"))),
            409 | 412 => Ok(None),
            other => Err(other),
        }
    }

    fn get(&self, key: &str) -> (Vec<u8>, String) {
        use rusty_s3::S3Action;
        let url = self
            .bucket
            .get_object(Some(&self.creds), key)
            .sign(Duration::from_secs(60));
        read_answer(self.agent.get(url.as_str()).call().unwrap(), "etag")
    }
}

/// GCS JSON API multipart uploads with `ifGenerationMatch`.
pub struct RawGcs {
    base: String,
    bucket: String,
    agent: ureq::Agent,
}

impl RawGcs {
    pub fn new() -> RawGcs {
        let bucket = bucket_of("LOCKYARD_TEST_GCS", "gs://");
        RawGcs {
            base: env("STORAGE_EMULATOR_HOST"),
            bucket,
            agent: agent(),
        }
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Raw for RawGcs {
    fn put_versioned(
        &self,
        key: &str,
        body: &[u8],
        version: Option<&str>,
    ) -> Result<Option<String>, u16> {
        let url = format!(
            "{}/upload/storage/v1/b/{}/o?uploadType=multipart&ifGenerationMatch={}",
            self.base,
            self.bucket,
            version.unwrap_or("0")
        );
        let mut payload = Vec::new();
        payload.extend_from_slice(b"--b0undary\r\ncontent-type: application/json\r\n\r\n");
        payload.extend_from_slice(serde_json::json!({ "name": key }).to_string().as_bytes());
        payload
            .extend_from_slice(b"\r\n--b0undary\r\ncontent-type: application/octet-stream\r\n\r\n");
        payload.extend_from_slice(body);
        payload.extend_from_slice(b"\r\n--b0undary--\r\n");
        let mut resp = self
            .agent
            .post(&url)
            .header("content-type", "multipart/related; boundary=b0undary")
            .send(&payload[..])
            .unwrap();
        match resp.status().as_u16() {
            200 => {
                let object: serde_json::Value =
                    serde_json::from_slice(&resp.body_mut().read_to_vec().unwrap()).unwrap();
                Ok(Some(object["generation"].as_str().unwrap().to_owned()))
            }
            409 | 412 => Ok(None),
            other => Err(other),
        }
    }

    fn get(&self, key: &str) -> (Vec<u8>, String) {
        let url = format!(
            "{}/storage/v1/b/{}/o/{}?alt=media",
            self.base,
            self.bucket,
            encode(key)
        );
        read_answer(self.agent.get(&url).call().unwrap(), "x-goog-generation")
    }
}

/// Azure `Put Blob` with `If-None-Match: *` / `If-Match`, SharedKey-signed
/// as the service documents it (written here apart from lockyard's).
pub struct RawAzure {
    endpoint: String,
    account: String,
    key: Vec<u8>,
    container: String,
    agent: ureq::Agent,
}

impl RawAzure {
    pub fn new() -> RawAzure {
        use base64::Engine;
        let text = env("AZURE_STORAGE_CONNECTION_STRING");
        let field = |name: &str| {
            text.split(';')
                .find_map(|p| p.strip_prefix(&format!("{name}=")))
                .unwrap()
                .to_owned()
        };
        let url = env("LOCKYARD_TEST_AZURE");
        RawAzure {
            endpoint: field("BlobEndpoint"),
            account: field("AccountName"),
            key: base64::engine::general_purpose::STANDARD
                .decode(field("AccountKey"))
                .unwrap(),
            container: url.rsplit('/').next().unwrap().to_owned(),
            agent: agent(),
        }
    }

    /// The `Authorization` header for `verb` on `path` with these
    /// standard headers (Content-Length, Content-Type, If-Match,
    /// If-None-Match) and `x-ms-` headers.
    fn sign(&self, verb: &str, path: &str, standard: [&str; 4], ms: &[(&str, &str)]) -> String {
        use base64::Engine;
        use hmac::{KeyInit, Mac};
        let [length, content_type, if_match, if_none_match] = standard;
        let mut text = format!(
            "{verb}\n\n\n{length}\n\n{content_type}\n\n\n{if_match}\n{if_none_match}\n\n\n"
        );
        let mut ms = ms.to_vec();
        ms.sort();
        for (n, v) in ms {
            text.push_str(&format!("{n}:{v}\n"));
        }
        text.push_str(&format!("/{}{path}", self.account));
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key).unwrap();
        mac.update(text.as_bytes());
        let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        format!("SharedKey {}:{sig}", self.account)
    }

    fn url_and_path(&self, key: &str) -> (String, String) {
        let url = format!(
            "{}/{}/{}",
            self.endpoint,
            self.container,
            encode(key).replace("%2F", "/")
        );
        let path = format!("/{}", url.splitn(4, '/').nth(3).unwrap());
        (url, path)
    }
}

impl Raw for RawAzure {
    fn put_versioned(
        &self,
        key: &str,
        body: &[u8],
        version: Option<&str>,
    ) -> Result<Option<String>, u16> {
        let (url, path) = self.url_and_path(key);
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        let ms = [
            ("x-ms-blob-type", "BlockBlob"),
            ("x-ms-date", date.as_str()),
            ("x-ms-version", "2021-10-04"),
        ];
        let length = body.len().to_string();
        let (if_match, if_none_match) = match version {
            None => ("", "*"),
            Some(v) => (v, ""),
        };
        let auth = self.sign(
            "PUT",
            &path,
            [&length, "application/octet-stream", if_match, if_none_match],
            &ms,
        );
        let mut request = self
            .agent
            .put(&url)
            .header("content-type", "application/octet-stream")
            .header("authorization", &auth);
        for (n, v) in ms {
            request = request.header(n, v);
        }
        if !if_match.is_empty() {
            request = request.header("if-match", if_match);
        }
        if !if_none_match.is_empty() {
            request = request.header("if-none-match", if_none_match);
        }
        let resp = request.send(body).unwrap();
        match resp.status().as_u16() {
            201 => Ok(Some(header_of(&resp, "etag"))),
            409 | 412 => Ok(None),
            other => Err(other),
        }
    }

    fn get(&self, key: &str) -> (Vec<u8>, String) {
        let (url, path) = self.url_and_path(key);
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        let ms = [("x-ms-date", date.as_str()), ("x-ms-version", "2021-10-04")];
        let auth = self.sign("GET", &path, ["", "", "", ""], &ms);
        let mut request = self.agent.get(&url).header("authorization", &auth);
        for (n, v) in ms {
            request = request.header(n, v);
        }
        read_answer(request.call().unwrap(), "etag")
    }
}
