//! The GCS client's own parts: the service account's signed token request
//! (checked by OpenSSL, an implementation of its own), the token exchange
//! against a local token server, and answers read as untrusted input.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use super::*;

/// A throwaway RSA key made for these tests (`openssl genpkey -algorithm
/// RSA`); it signs nothing anywhere else.
const TEST_KEY: &str = include_str!("test-key.pem");

fn key_file(token_uri: &str) -> String {
    serde_json::json!({
        "type": "service_account",
        "client_email": "locks@example.iam.gserviceaccount.com",
        "private_key": TEST_KEY,
        "token_uri": token_uri,
    })
    .to_string()
}

#[test]
fn the_token_request_is_a_jwt_openssl_verifies() {
    let Auth::ServiceAccount { email, key, .. } = service_account(&key_file("https://t")).unwrap()
    else {
        panic!("not a service account");
    };
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let jwt = signed_jwt(&email, &key, "https://t", now).unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["iss"], "locks@example.iam.gserviceaccount.com");
    assert_eq!(claims["scope"], SCOPE);
    assert_eq!(claims["aud"], "https://t");
    assert_eq!(claims["iat"], 1_800_000_000u64);
    assert_eq!(claims["exp"], 1_800_003_600u64);
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (input, sig, pem) = (
        dir.path().join("input"),
        dir.path().join("sig"),
        dir.path().join("key.pem"),
    );
    std::fs::write(&input, format!("{}.{}", parts[0], parts[1])).unwrap();
    std::fs::write(&sig, &signature).unwrap();
    std::fs::write(&pem, TEST_KEY).unwrap();
    let verified = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-prverify"])
        .arg(&pem)
        .arg("-signature")
        .arg(&sig)
        .arg(&input)
        .output();
    match verified {
        Ok(out) => assert!(
            out.status.success(),
            "openssl: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("skipped the OpenSSL check: cannot run openssl ({e})"),
    }
}

#[test]
fn bad_key_files_say_what_is_wrong_and_show_no_key() {
    for (text, want) in [
        ("not json", "not JSON"),
        (r#"{"type": "authorized_user"}"#, "not a service account"),
        (
            r#"{"type": "service_account", "client_email": "x"}"#,
            "no private_key",
        ),
        (
            r#"{"type": "service_account", "client_email": "x", "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"}"#,
            "not an RSA key",
        ),
    ] {
        let Err(why) = service_account(text) else {
            panic!("{text}: accepted");
        };
        assert!(why.contains(want), "{text}: {why}");
        assert!(!why.contains("BEGIN"), "{why}");
    }
}

/// A token server on 127.0.0.1 that answers one request: the form it was
/// sent, and its answer.
fn token_server(answer: &'static str) -> (String, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    let served = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut form = vec![0; length];
        reader.read_exact(&mut form).unwrap();
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        )
        .unwrap();
        String::from_utf8(form).unwrap()
    });
    (url, served)
}

#[test]
fn a_service_account_token_is_fetched_once_and_reused() {
    let (url, served) = token_server(r#"{"access_token":"tok-123","expires_in":3600}"#);
    let config = GcsConfig {
        base: "http://127.0.0.1:9".to_owned(),
        auth: service_account(&key_file(&url)).unwrap(),
        timeout: Duration::from_secs(5),
    };
    let store = GcsStore::new("bucket", config).unwrap();
    assert_eq!(
        store.authorization().unwrap().as_deref(),
        Some("Bearer tok-123")
    );
    let form = served.join().unwrap();
    assert!(
        form.starts_with(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion="
        ),
        "{form}"
    );
    // Cached: the server is gone, and no request is made.
    assert_eq!(
        store.authorization().unwrap().as_deref(),
        Some("Bearer tok-123")
    );
    assert!(!format!("{store:?}").contains("tok-123"));
}

#[test]
fn a_token_server_that_refuses_is_a_permission_error() {
    let (url, served) = token_server(r#"{"error":"invalid_grant"}"#);
    let config = GcsConfig {
        base: "http://127.0.0.1:9".to_owned(),
        auth: service_account(&key_file(&url)).unwrap(),
        timeout: Duration::from_secs(5),
    };
    let store = GcsStore::new("bucket", config).unwrap();
    let e = store.get("locks/x.lock").unwrap_err();
    served.join().unwrap();
    assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
    assert!(e.to_string().contains("no access_token"), "{e}");
}

#[test]
fn answers_are_read_as_untrusted() {
    assert_eq!(
        message_of(br#"{"error":{"code":403,"message":"no \u0007way"}}"#),
        "no way"
    );
    assert_eq!(message_of(b"Not Found"), "Not Found");
    assert_eq!(message_of(&[0xff; 1000]).chars().count(), MAX_MESSAGE);
    assert_eq!(encode("a/b c%.lock"), "a%2Fb%20c%25.lock");
    assert!(GcsStore::new(
        "bad/bucket",
        GcsConfig {
            base: String::new(),
            auth: Auth::None,
            timeout: Duration::from_secs(1),
        }
    )
    .is_err());
}
