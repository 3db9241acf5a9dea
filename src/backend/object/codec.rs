//! What goes into object keys and bodies: lock names made safe for keys
//! and URLs, and lock objects' bodies read as untrusted input.

use std::io;

use crate::record::HolderRecord;

/// Appends `name` to `out`, percent-encoding every byte that is not an
/// ASCII letter, digit, `-`, `_` or `/`.
pub(super) fn encode_name(name: &str, out: &mut String) {
    for &b in name.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// The inverse of [`encode_name`]; `None` for anything it cannot have
/// written.
pub(super) fn decode_name(encoded: &str) -> Option<String> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = encoded.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/') => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// The holder record a lock object's body holds: an error of kind
/// `InvalidData` (naming what is wrong) for a body lockyard did not write,
/// which is then never overwritten.
pub(super) fn parse(body: &[u8]) -> io::Result<HolderRecord> {
    crate::record::parse(body).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the lock object is not a lockyard lock object ({e}); it is left as it is"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_never_make_dot_segments() {
        for name in [
            "jobs/nightly",
            "..",
            "../x",
            "a b",
            "ünï",
            "%2E",
            "x.lock",
            "",
        ] {
            let mut key = String::new();
            encode_name(name, &mut key);
            assert!(!key.contains('.'), "{key}");
            assert_eq!(decode_name(&key).as_deref(), Some(name));
        }
        assert_eq!(decode_name("%zz"), None);
        assert_eq!(decode_name("a.b"), None);
        assert_eq!(decode_name("%"), None);
    }

    #[test]
    fn foreign_bodies_are_invalid_data() {
        for body in [&b""[..], b"hello", &[0xff, 0xfe][..], &[b'7'; 5000][..]] {
            let e = parse(body).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        }
    }
}
