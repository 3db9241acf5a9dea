//! Lock names as file names: any string, encoded so that it is one safe
//! file name on every platform, and decoded back.

use std::fmt::{self, Write as _};

/// Longest encoded name accepted (leaves room for `.lock` and a soft
/// lock's `.ctl` within 255 bytes).
pub const MAX_ENCODED_NAME: usize = 240;

const WINDOWS_RESERVED: [&str; 22] = [
    "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8",
    "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
];

/// Encodes a lock name into the file name stem (without `.lock`).
///
/// ```
/// use lockyard::{decode_lock_name, encode_lock_name};
///
/// assert_eq!(encode_lock_name("registry").unwrap(), "registry");
/// assert_eq!(encode_lock_name("toolchain llvm-18.1.8").unwrap(), "toolchain%20llvm-18.1.8");
/// assert_eq!(encode_lock_name("project /src/app").unwrap(), "project%20%2Fsrc%2Fapp");
/// assert_eq!(encode_lock_name("..").unwrap(), "%2E.");
/// assert_eq!(decode_lock_name("project%20%2Fsrc%2Fapp").as_deref(), Some("project /src/app"));
/// assert!(encode_lock_name("").is_err());
/// ```
///
/// # Errors
///
/// [`NameError::Empty`] for an empty name, [`NameError::TooLong`] for one
/// whose encoding is longer than [`MAX_ENCODED_NAME`].
pub fn encode_lock_name(name: &str) -> Result<String, NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    let mut out = String::with_capacity(name.len());
    for (i, &b) in name.as_bytes().iter().enumerate() {
        let keep = b.is_ascii_lowercase()
            || b.is_ascii_digit()
            || b == b'-'
            || b == b'_'
            || (b == b'.' && i > 0);
        if keep {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    let stem = out.split('.').next().unwrap_or_default();
    if WINDOWS_RESERVED.contains(&stem) {
        let first = out.as_bytes()[0];
        out.replace_range(0..1, &format!("%{first:02X}"));
    }
    if out.len() > MAX_ENCODED_NAME {
        return Err(NameError::TooLong { encoded: out.len() });
    }
    Ok(out)
}

/// Why a lock name cannot be encoded into a file name.
///
/// # Examples
///
/// ```
/// use lockyard::{encode_lock_name, NameError, MAX_ENCODED_NAME};
///
/// assert_eq!(encode_lock_name(""), Err(NameError::Empty));
/// let e = encode_lock_name(&"/".repeat(100)).unwrap_err();
/// assert_eq!(e, NameError::TooLong { encoded: 300 });
/// assert!(e.to_string().contains(&MAX_ENCODED_NAME.to_string()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The encoded name would be `encoded` bytes, more than
    /// [`MAX_ENCODED_NAME`].
    TooLong {
        /// The length of the encoding.
        encoded: usize,
    },
}

impl NameError {
    /// The reason in a few words.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            NameError::Empty => "lock names cannot be empty",
            NameError::TooLong { .. } => "lock name too long once encoded",
        }
    }
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::TooLong { encoded } => write!(
                f,
                "{}: {encoded} bytes, at most {MAX_ENCODED_NAME}",
                self.reason()
            ),
            _ => f.write_str(self.reason()),
        }
    }
}

impl std::error::Error for NameError {}

/// Decodes a file name stem made by [`encode_lock_name`]; `None` if it is
/// not one.
///
/// # Examples
///
/// ```
/// use lockyard::{decode_lock_name, encode_lock_name};
///
/// let encoded = encode_lock_name("reports/2026 Q4")?;
/// assert_eq!(decode_lock_name(&encoded).as_deref(), Some("reports/2026 Q4"));
/// assert_eq!(decode_lock_name("bad%zz"), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decode_lock_name(encoded: &str) -> Option<String> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = encoded.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let name = String::from_utf8(out).ok()?;
    // Only canonical encodings decode: this keeps the mapping one-to-one.
    (encode_lock_name(&name).ok()? == encoded).then_some(name)
}
