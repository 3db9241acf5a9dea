//! What the stores' HTTP clients share: one `ureq` agent setup, answers
//! read with a size limit, errors that name the object and never a URL
//! (a signed URL carries its signature), and the small XML answers of S3
//! and Azure read as untrusted input.

use std::io;
use std::time::Duration;

/// The longest answer read (lock objects and error documents are small;
/// a list page is up to 1,000 keys).
const MAX_ANSWER: u64 = 8 << 20;

/// The most of a server's message an error repeats.
pub(super) const MAX_MESSAGE: usize = 200;

/// An agent for `endpoint` that leaves statuses to the caller, follows no
/// redirect and bounds each request, connecting included, by `timeout`.
///
/// An endpoint named by its IP address has no name to look up, and its
/// requests are bounded phase by phase (connecting, sending, receiving the
/// answer, reading its body), each by `timeout`: ureq looks a name up
/// before every request, pooled connection or not, and under a bound on
/// the whole request it does so on a thread of its own, one per request
/// (about 100 µs each on the reference VM, half of a lock cycle against a
/// local GCS emulator: `benches/object.rs`).
pub(super) fn agent(timeout: Duration, endpoint: &str) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0);
    let config = if names_an_address(endpoint) {
        let t = Some(timeout);
        config
            .timeout_connect(t)
            .timeout_send_request(t)
            .timeout_send_body(t)
            .timeout_recv_response(t)
            .timeout_recv_body(t)
    } else {
        config.timeout_global(Some(timeout))
    };
    config.build().new_agent()
}

/// Whether the URL `endpoint`'s host is an IP address (`http://10.0.0.5:9000`,
/// `http://[::1]:9000`), not a name.
fn names_an_address(endpoint: &str) -> bool {
    let rest = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if let Some(bracketed) = host.strip_prefix('[') {
        return bracketed
            .split_once(']')
            .is_some_and(|(v6, _)| v6.parse::<std::net::Ipv6Addr>().is_ok());
    }
    let host = host.split_once(':').map_or(host, |(host, _)| host);
    host.parse::<std::net::Ipv4Addr>().is_ok()
}

/// An answer's body, up to [`MAX_ANSWER`] bytes.
pub(super) fn body(
    response: &mut ureq::http::Response<ureq::Body>,
) -> Result<Vec<u8>, ureq::Error> {
    response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER)
        .read_to_vec()
}

/// A request that got no answer, as an error saying `doing` (e.g.
/// `reading s3://bucket/key`) and the cause, never a URL.
pub(super) fn unanswered(doing: &str, e: &ureq::Error) -> io::Error {
    let kind = match e {
        ureq::Error::Timeout(_) => io::ErrorKind::TimedOut,
        ureq::Error::Io(io) => io.kind(),
        ureq::Error::HostNotFound => io::ErrorKind::NotFound,
        ureq::Error::ConnectionFailed => io::ErrorKind::ConnectionRefused,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("{doing}: {}", words(e)))
}

/// A transport error in words, cut before anything that looks like a URL
/// (ureq's messages name none; this holds if one ever does).
pub(super) fn words(e: &ureq::Error) -> String {
    let said = e.to_string();
    said.split("http")
        .next()
        .unwrap_or_default()
        .trim_end()
        .to_owned()
}

/// An answer that is none of the expected ones, as an error saying
/// `doing`, the status and what the server said of it. A server error
/// (5xx: overloaded, throttling, failing over) is [`Transient`].
pub(super) fn refused(doing: &str, status: u16, said: &str) -> io::Error {
    let kind = match status {
        401 | 403 => io::ErrorKind::PermissionDenied,
        404 => io::ErrorKind::NotFound,
        400 => io::ErrorKind::InvalidInput,
        _ => io::ErrorKind::Other,
    };
    let message = format!("{doing}: the server answered {status} {said}")
        .trim_end()
        .to_owned();
    if (500..600).contains(&status) {
        return io::Error::new(kind, Transient(message));
    }
    io::Error::new(kind, message)
}

/// An error the server said is its own and passing: worth asking again
/// later, where a caller is waiting anyway.
#[derive(Debug)]
pub(super) struct Transient(String);

impl std::fmt::Display for Transient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Transient {}

/// Whether `e` is [`Transient`].
pub(super) fn is_transient(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Transient>())
}

/// The first line of the first `<name>` element of an XML answer,
/// unescaped, controls dropped, cut to [`MAX_MESSAGE`] characters.
#[cfg(any(feature = "s3", feature = "azure"))]
pub(super) fn xml_field(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let first = xml_fields(text, name).into_iter().next()?;
    let line = first.lines().next().unwrap_or_default();
    Some(
        line.chars()
            .filter(|c| !c.is_control())
            .take(MAX_MESSAGE)
            .collect(),
    )
}

/// Every `<name>` element's text, unescaped.
#[cfg(any(feature = "s3", feature = "azure"))]
pub(super) fn xml_fields(text: &str, name: &str) -> Vec<String> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(&open) {
        let after = &rest[at + open.len()..];
        let Some(end) = after.find(&close) else {
            break;
        };
        out.push(
            after[..end]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = &after[end + close.len()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_named_by_address_are_told_from_names() {
        for address in [
            "http://127.0.0.1:9000",
            "https://10.0.0.5",
            "http://user@192.168.1.2:80/path?q#f",
            "http://[::1]:10000/devstoreaccount1",
            "[fe80::1]",
        ] {
            assert!(names_an_address(address), "{address}");
        }
        for name in [
            "https://s3.amazonaws.com",
            "http://localhost:9000",
            "https://storage.googleapis.com",
            "http://127.0.0.1.nip.io",
            "http://[not-v6]:1",
            "",
        ] {
            assert!(!names_an_address(name), "{name}");
        }
    }

    #[cfg(any(feature = "s3", feature = "azure"))]
    #[test]
    fn xml_answers_are_read_as_untrusted() {
        let doc = b"<Error><Code>NoSuchBucket</Code><Message>a &amp; b\x07\nRequestId: 1</Message></Error>";
        assert_eq!(xml_field(doc, "Code").as_deref(), Some("NoSuchBucket"));
        assert_eq!(xml_field(doc, "Message").as_deref(), Some("a & b"));
        assert_eq!(xml_field(b"<Code>unclosed", "Code"), None);
        assert_eq!(xml_field(&[0xff, 0xfe], "Code"), None);
        let long = format!("<Message>{}</Message>", "x".repeat(10_000));
        assert_eq!(
            xml_field(long.as_bytes(), "Message").unwrap().len(),
            MAX_MESSAGE
        );
        let list = "<Key>a</Key><Key>b&amp;c</Key><Key>open";
        assert_eq!(xml_fields(list, "Key"), ["a", "b&c"]);
    }

    #[test]
    fn statuses_have_kinds() {
        assert_eq!(
            refused("x", 403, "").kind(),
            io::ErrorKind::PermissionDenied
        );
        assert_eq!(refused("x", 404, "").kind(), io::ErrorKind::NotFound);
        assert_eq!(
            refused("x", 503, "slow").to_string(),
            "x: the server answered 503 slow"
        );
        assert!(is_transient(&refused("x", 503, "slow")));
        assert!(!is_transient(&refused("x", 403, "no")));
    }
}
