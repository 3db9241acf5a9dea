//! Azure Blob Storage: conditional `Put Blob` (`If-None-Match: *`,
//! `If-Match: <ETag>`), signed with the account key (SharedKey) and sent
//! by `ureq` on the calling thread (the engine calls a remote resource
//! from its blocking pool). ETags are opaque and new on every write.
//!
//! Where things come from: `AZURE_STORAGE_CONNECTION_STRING`
//! (`AccountName`, `AccountKey`, `BlobEndpoint` or
//! `DefaultEndpointsProtocol` and `EndpointSuffix`;
//! `UseDevelopmentStorage=true` for Azurite), else `AZURE_STORAGE_ACCOUNT`
//! and `AZURE_STORAGE_KEY`, with the endpoint
//! `https://<account>.blob.core.windows.net`. The account must be the one
//! the URL names. Secrets stay out of errors and `Debug`.

use std::fmt;
use std::io;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::http;
use super::store::{Condition, Object, Put, Store, Version};

/// The REST API version lockyard speaks.
const API_VERSION: &str = "2021-10-04";

/// Azurite's well-known development account and key (published by
/// Microsoft for the emulator; it opens nothing else).
const DEV_ACCOUNT: &str = "devstoreaccount1";
const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Where the account's blobs are, and its key.
pub(crate) struct AzureConfig {
    /// The blob service's base URL (for Azurite, with the account as the
    /// first path segment).
    endpoint: String,
    account: String,
    key: Vec<u8>,
    timeout: Duration,
}

impl fmt::Debug for AzureConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureConfig")
            .field("endpoint", &self.endpoint)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl AzureConfig {
    /// The configuration of `account` the environment gives; `Err` says
    /// what is missing or wrong (never the key).
    pub(crate) fn from_env(account: &str) -> Result<AzureConfig, String> {
        let timeout = Duration::from_secs(20);
        if let Some(text) = std::env::var("AZURE_STORAGE_CONNECTION_STRING")
            .ok()
            .filter(|t| !t.is_empty())
        {
            return from_connection_string(&text, account, timeout);
        }
        let named = std::env::var("AZURE_STORAGE_ACCOUNT").ok();
        if named.as_deref().is_some_and(|n| n != account) {
            return Err(format!(
                "AZURE_STORAGE_ACCOUNT names another account than {account:?}"
            ));
        }
        let key = std::env::var("AZURE_STORAGE_KEY").map_err(|_| {
            "no credentials: set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_KEY".to_owned()
        })?;
        Ok(AzureConfig {
            endpoint: format!("https://{account}.blob.core.windows.net"),
            account: account.to_owned(),
            key: decode_key(&key)?,
            timeout,
        })
    }
}

fn decode_key(key: &str) -> Result<Vec<u8>, String> {
    STANDARD
        .decode(key.trim())
        .map_err(|_| "the account key is not base64".to_owned())
}

/// A connection string's account, key and blob endpoint.
fn from_connection_string(
    text: &str,
    account: &str,
    timeout: Duration,
) -> Result<AzureConfig, String> {
    let mut fields = std::collections::HashMap::new();
    for part in text.split(';').filter(|p| !p.trim().is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or("the connection string has a part without `=`")?;
        fields.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    let dev = fields
        .get("usedevelopmentstorage")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let name = match fields.get("accountname") {
        Some(n) => n.clone(),
        None if dev => DEV_ACCOUNT.to_owned(),
        None => return Err("the connection string has no AccountName".to_owned()),
    };
    if name != account {
        return Err(format!(
            "the connection string is for the account {name:?}, not {account:?}"
        ));
    }
    let key = match fields.get("accountkey") {
        Some(k) => decode_key(k)?,
        None if dev => decode_key(DEV_KEY)?,
        None => return Err("the connection string has no AccountKey".to_owned()),
    };
    let endpoint = match fields.get("blobendpoint") {
        Some(e) => e.trim_end_matches('/').to_owned(),
        None if dev => format!("http://127.0.0.1:10000/{DEV_ACCOUNT}"),
        None => {
            let scheme = fields
                .get("defaultendpointsprotocol")
                .map_or("https", String::as_str);
            let suffix = fields
                .get("endpointsuffix")
                .map_or("core.windows.net", String::as_str);
            format!("{scheme}://{name}.blob.{suffix}")
        }
    };
    Ok(AzureConfig {
        endpoint,
        account: name,
        key,
        timeout,
    })
}

/// One container.
pub(crate) struct AzureStore {
    config: AzureConfig,
    agent: ureq::Agent,
    /// The URL path of the container (the endpoint's path included).
    path: String,
    /// `endpoint/container`, for errors.
    label: String,
}

impl fmt::Debug for AzureStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureStore")
            .field("container", &self.label)
            .finish_non_exhaustive()
    }
}

/// `s` with every byte but unreserved ones and `/` percent-encoded: a
/// blob name as URL path segments.
fn encode_path(s: &str) -> String {
    encode(s, true)
}

fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An answer: status, `ETag`, `x-ms-error-code` and body.
type Answer = (u16, Option<String>, Option<String>, Vec<u8>);

/// What a request is, for signing and sending.
struct Request<'a> {
    verb: &'a str,
    /// The URL path, encoded, from the first `/`.
    path: String,
    /// Query parameters, unencoded.
    query: Vec<(&'a str, String)>,
    /// Headers besides the date and version, lower-case names.
    headers: Vec<(&'a str, String)>,
    body: &'a [u8],
}

impl AzureStore {
    pub(crate) fn new(container: &str, config: AzureConfig) -> Result<AzureStore, String> {
        let valid = (3..=63).contains(&container.len())
            && container
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(format!(
                "{container:?} is not a container name (3 to 63 lower-case letters, digits, -)"
            ));
        }
        let url: url::Url = config
            .endpoint
            .parse()
            .map_err(|e| format!("the blob endpoint {:?} is not a URL: {e}", config.endpoint))?;
        let path = format!("{}/{container}", url.path().trim_end_matches('/'));
        let agent = http::agent(config.timeout, &config.endpoint);
        let label = format!("{}/{container}", config.endpoint);
        Ok(AzureStore {
            config,
            agent,
            path,
            label,
        })
    }

    /// The `Authorization` header of `request`, sent at `date`.
    fn authorization(&self, request: &Request<'_>, date: &str) -> String {
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|(n, _)| *n == name)
                .map_or("", |(_, v)| v.as_str())
        };
        let mut text = format!("{}\n", request.verb);
        for name in [
            "content-encoding",
            "content-language",
            "content-length",
            "content-md5",
            "content-type",
            "date",
            "if-modified-since",
            "if-match",
            "if-none-match",
            "if-unmodified-since",
            "range",
        ] {
            let value = header(name);
            // Since version 2015-02-21 an empty body's length is signed empty.
            text.push_str(if name == "content-length" && value == "0" {
                ""
            } else {
                value
            });
            text.push('\n');
        }
        let mut ms: Vec<(String, String)> = request
            .headers
            .iter()
            .filter(|(n, _)| n.starts_with("x-ms-"))
            .map(|(n, v)| ((*n).to_owned(), v.clone()))
            .collect();
        ms.push(("x-ms-date".to_owned(), date.to_owned()));
        ms.push(("x-ms-version".to_owned(), API_VERSION.to_owned()));
        ms.sort();
        for (n, v) in ms {
            text.push_str(&format!("{n}:{v}\n"));
        }
        text.push_str(&format!("/{}{}", self.config.account, request.path));
        let mut query = request.query.clone();
        query.sort();
        for (n, v) in query {
            text.push_str(&format!("\n{}:{v}", n.to_ascii_lowercase()));
        }
        // An HMAC takes a key of any length: this cannot fail.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.config.key)
            .unwrap_or_else(|_| unreachable!("HMAC keys have no length limit"));
        mac.update(text.as_bytes());
        let signature = STANDARD.encode(mac.finalize().into_bytes());
        format!("SharedKey {}:{signature}", self.config.account)
    }

    /// Sends `request`: its status, `ETag`, `x-ms-error-code` and body.
    fn send(&self, what: &str, key: &str, request: &Request<'_>) -> io::Result<Answer> {
        let date = httpdate::fmt_http_date(SystemTime::now());
        let authorization = self.authorization(request, &date);
        let origin = self
            .config
            .endpoint
            .parse::<url::Url>()
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default();
        let mut url = format!("{origin}{}", request.path);
        for (i, (n, v)) in request.query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&format!("{n}={}", encode(v, false)));
        }
        let transport = |e| self.transport(what, key, e);
        let mut response = match request.verb {
            "PUT" => {
                let mut builder = self.agent.put(&url);
                for (n, v) in &request.headers {
                    if *n != "content-length" {
                        builder = builder.header(*n, v);
                    }
                }
                builder
                    .header("x-ms-date", &date)
                    .header("x-ms-version", API_VERSION)
                    .header("authorization", &authorization)
                    .send(request.body)
                    .map_err(transport)?
            }
            _ => {
                let mut builder = self.agent.get(&url);
                for (n, v) in &request.headers {
                    builder = builder.header(*n, v);
                }
                builder
                    .header("x-ms-date", &date)
                    .header("x-ms-version", API_VERSION)
                    .header("authorization", &authorization)
                    .call()
                    .map_err(transport)?
            }
        };
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (etag, code) = (header("etag"), header("x-ms-error-code"));
        let body = http::body(&mut response).map_err(|e| self.transport(what, key, e))?;
        Ok((status, etag, code, body))
    }

    fn transport(&self, what: &str, key: &str, e: ureq::Error) -> io::Error {
        http::unanswered(&format!("{what} {}/{key}", self.label), &e)
    }

    fn refused(
        &self,
        what: &str,
        key: &str,
        status: u16,
        code: Option<&str>,
        body: &[u8],
    ) -> io::Error {
        let message = http::xml_field(body, "Message").unwrap_or_default();
        let doing = format!("{what} {}/{key}", self.label);
        http::refused(
            &doing,
            status,
            &format!("{} {message}", code.unwrap_or_default()),
        )
    }

    fn blob_path(&self, key: &str) -> String {
        format!("{}/{}", self.path, encode_path(key))
    }
}

impl Store for AzureStore {
    fn get(&self, key: &str) -> io::Result<Option<Object>> {
        let request = Request {
            verb: "GET",
            path: self.blob_path(key),
            query: Vec::new(),
            headers: Vec::new(),
            body: &[],
        };
        let (status, etag, code, body) = self.send("reading", key, &request)?;
        match (status, code.as_deref()) {
            (200, _) => {
                let version = etag.filter(|e| !e.is_empty()).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("reading {}/{key}: the answer has no ETag", self.label),
                    )
                })?;
                Ok(Some(Object {
                    body,
                    version: Version(version),
                }))
            }
            (404, Some("BlobNotFound")) => Ok(None),
            _ => Err(self.refused("reading", key, status, code.as_deref(), &body)),
        }
    }

    fn put(&self, key: &str, body: &[u8], condition: Condition<'_>) -> io::Result<Put> {
        let mut headers = vec![
            ("content-length", body.len().to_string()),
            ("content-type", "application/octet-stream".to_owned()),
            ("x-ms-blob-type", "BlockBlob".to_owned()),
        ];
        match condition {
            Condition::Absent => headers.push(("if-none-match", "*".to_owned())),
            Condition::At(version) => headers.push(("if-match", version.0.clone())),
        }
        let request = Request {
            verb: "PUT",
            path: self.blob_path(key),
            query: Vec::new(),
            headers,
            body,
        };
        let (status, etag, code, answer) = self.send("writing", key, &request)?;
        match (status, code.as_deref()) {
            (200 | 201, _) => etag
                .filter(|e| !e.is_empty())
                .map(|e| Put::Written(Version(e)))
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("writing {}/{key}: the answer has no ETag", self.label),
                    )
                }),
            // 409 BlobAlreadyExists: `If-None-Match: *` on an existing blob.
            (412, _) | (409, Some("BlobAlreadyExists")) | (404, Some("BlobNotFound")) => {
                Ok(Put::Conflict)
            }
            _ => Err(self.refused("writing", key, status, code.as_deref(), &answer)),
        }
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut query = vec![
                ("comp", "list".to_owned()),
                ("prefix", prefix.to_owned()),
                ("restype", "container".to_owned()),
            ];
            if let Some(m) = &marker {
                query.push(("marker", m.clone()));
            }
            let request = Request {
                verb: "GET",
                path: self.path.clone(),
                query,
                headers: Vec::new(),
                body: &[],
            };
            let (status, _, code, body) = self.send("listing", prefix, &request)?;
            if status != 200 {
                return Err(self.refused("listing", prefix, status, code.as_deref(), &body));
            }
            let text = String::from_utf8_lossy(&body);
            keys.extend(http::xml_fields(&text, "Name"));
            marker = http::xml_fields(&text, "NextMarker")
                .into_iter()
                .next()
                .filter(|m| !m.is_empty());
            if marker.is_none() {
                return Ok(keys);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> AzureConfig {
        from_connection_string(
            "UseDevelopmentStorage=true",
            DEV_ACCOUNT,
            Duration::from_secs(1),
        )
        .unwrap()
    }

    #[test]
    fn connection_strings_are_read_and_checked() {
        let config = dev();
        assert_eq!(config.endpoint, "http://127.0.0.1:10000/devstoreaccount1");
        let text = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0;EndpointSuffix=core.windows.net";
        let config = from_connection_string(text, "acct", Duration::from_secs(1)).unwrap();
        assert_eq!(config.endpoint, "https://acct.blob.core.windows.net");
        assert_eq!(config.key, b"secret");
        assert!(!format!("{config:?}").contains("c2VjcmV0"));
        let e = from_connection_string(text, "other", Duration::from_secs(1)).unwrap_err();
        assert!(e.contains("not \"other\""), "{e}");
        for bad in ["AccountName=a", "AccountName=a;AccountKey=%%%", "junk"] {
            let e = from_connection_string(bad, "a", Duration::from_secs(1)).unwrap_err();
            assert!(!e.contains("%%%"), "{e}");
        }
    }

    /// The string to sign of a request, as the service documents it
    /// ("Authorize with Shared Key"), for a path-style emulator URL.
    #[test]
    fn shared_key_signs_the_documented_string() {
        let store = AzureStore::new("locks", dev()).unwrap();
        let request = Request {
            verb: "PUT",
            path: store.blob_path("p/a%2E.lock"),
            query: vec![("comp", "list".to_owned())],
            headers: vec![
                ("content-length", "5".to_owned()),
                ("if-match", "\"0x1\"".to_owned()),
                ("x-ms-blob-type", "BlockBlob".to_owned()),
            ],
            body: b"hello",
        };
        let date = "Sun, 06 Dec 2026 10:00:00 GMT";
        let expected = "PUT\n\n\n5\n\n\n\n\n\"0x1\"\n\n\n\n\
            x-ms-blob-type:BlockBlob\nx-ms-date:Sun, 06 Dec 2026 10:00:00 GMT\nx-ms-version:2021-10-04\n\
            /devstoreaccount1/devstoreaccount1/locks/p/a%252E.lock\ncomp:list";
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&STANDARD.decode(DEV_KEY).unwrap()).unwrap();
        mac.update(expected.as_bytes());
        let want = format!(
            "SharedKey devstoreaccount1:{}",
            STANDARD.encode(mac.finalize().into_bytes())
        );
        assert_eq!(store.authorization(&request, date), want);
    }

    #[test]
    fn names_and_answers_are_checked() {
        assert!(AzureStore::new("Bad_Name", dev()).is_err());
        assert!(AzureStore::new("ab", dev()).is_err());
        assert_eq!(encode_path("a/b c%"), "a/b%20c%25");
    }
}
