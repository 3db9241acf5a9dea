//! The record's text format: writing it (with a cached head, so a holder
//! re-stamping its lock file formats little) and parsing it, which accepts
//! exactly what lockyard writes and never panics on anything else.

use std::fmt;
use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{HolderRecord, LockKind, RecordState, MAGIC, MAX_RECORD, VERSION};
use crate::mode::LockMode;

impl HolderRecord {
    /// Formats the record. The inverse of [`parse`].
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(320);
        self.write_head(&mut out);
        self.write_tail(&mut out);
        let sum = fnv1a(FNV_START, &out);
        seal(&mut out, sum);
        out
    }

    /// The lines from the PID to the process start time: the same in every
    /// record one process writes for one lock, except for the state word.
    /// Returns the offset of the state word (four letters).
    pub(crate) fn write_head(&self, out: &mut Vec<u8>) -> usize {
        let mode = match self.mode {
            LockMode::Exclusive => "exclusive",
            LockMode::Shared => "shared",
        };
        // Writing to a Vec cannot fail.
        let _ = write!(
            out,
            "{}\n{MAGIC} {VERSION}\nkind {}\nstate ",
            self.pid,
            self.kind.as_str()
        );
        let state_at = out.len();
        out.extend_from_slice(state_word(self.state));
        let _ = write!(out, "\nmode {mode}\nhost ");
        escape_into(out, &self.host);
        out.extend_from_slice(b"\nboot ");
        match &self.boot_id {
            Some(b) => escape_into(out, b),
            None => out.push(b'-'),
        }
        out.extend_from_slice(b"\nstart ");
        match self.start_time {
            Some(t) => {
                let _ = write!(out, "{t}");
            }
            None => out.push(b'-'),
        }
        out.push(b'\n');
        state_at
    }

    /// The lines from the acquisition time to the token.
    pub(crate) fn write_tail(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"acquired ");
        let at = out.len();
        push_time(out, self.acquired);
        out.extend_from_slice(b"\nrenewed ");
        if self.renewed == self.acquired {
            // A new record's two times are one clock reading.
            out.extend_from_within(at..at + (out.len() - at - b"\nrenewed ".len()));
        } else {
            push_time(out, self.renewed);
        }
        out.extend_from_slice(b"\nttl ");
        match self.ttl {
            Some(t) => push_duration(out, t),
            None => out.push(b'-'),
        }
        out.extend_from_slice(b"\nowner ");
        match &self.owner {
            Some(o) => escape_into(out, o),
            None => out.push(b'-'),
        }
        out.extend_from_slice(b"\ntoken ");
        push_decimal(out, self.token);
        out.push(b'\n');
        if let Some(nonce) = self.nonce {
            out.extend_from_slice(b"nonce ");
            push_hex(out, nonce, 32);
            out.push(b'\n');
        }
    }

    /// Whether `other` has the same head lines (see [`write_head`](Self::write_head))
    /// apart from the state word.
    pub(crate) fn same_head(&self, other: &HolderRecord) -> bool {
        self.pid == other.pid
            && self.kind == other.kind
            && self.mode == other.mode
            && self.start_time == other.start_time
            && self.host == other.host
            && self.boot_id == other.boot_id
    }
}

/// The state word: all four letters long, so a release rewrites the record
/// in place without changing its length and the file never needs
/// truncating.
pub(crate) fn state_word(state: RecordState) -> &'static [u8; 4] {
    match state {
        RecordState::Held => b"held",
        RecordState::Released => b"free",
        RecordState::Removed => b"gone",
    }
}

/// The length of the last line, `check <16 hex digits>\n`.
pub(crate) const SEAL_LEN: usize = 23;

/// Appends the checksum line for a record whose other lines hash to `sum`.
pub(crate) fn seal(out: &mut Vec<u8>, sum: u64) {
    out.extend_from_slice(b"check ");
    push_hex(out, u128::from(sum), 16);
    out.push(b'\n');
}

impl fmt::Display for HolderRecord {
    /// `pid 4242 on build-3 (owner "indexer") for 12.3 s`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} on {}", self.pid, self.host)?;
        if let Some(owner) = &self.owner {
            write!(f, " (owner {owner:?})")?;
        }
        write!(f, " for {:.1} s", self.age().as_secs_f64())
    }
}

/// Why bytes are not a usable record.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecordError {
    /// Nothing was written (yet).
    Empty,
    /// Larger than any record this crate writes.
    TooLarge,
    /// Not UTF-8.
    NotUtf8,
    /// The checksum does not match: a torn read of a record being
    /// rewritten, or a damaged file.
    Checksum,
    /// Written by a newer, unknown format version.
    UnknownVersion(u32),
    /// Not in the record format; names the first defect found.
    Malformed(&'static str),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Empty => f.write_str("empty holder record"),
            RecordError::TooLarge => write!(f, "holder record larger than {MAX_RECORD} bytes"),
            RecordError::NotUtf8 => f.write_str("holder record is not UTF-8"),
            RecordError::Checksum => {
                f.write_str("holder record checksum mismatch (torn or damaged)")
            }
            RecordError::UnknownVersion(v) => {
                write!(f, "holder record format version {v} is unknown")
            }
            RecordError::Malformed(what) => write!(f, "malformed holder record: {what}"),
        }
    }
}

impl std::error::Error for RecordError {}

/// Parses a holder record (the content of a soft lock file, or the start
/// of a strict lock file). Accepts exactly what lockyard writes, plus
/// unknown keys (for later minor additions of format 1); anything else is
/// a [`RecordError`], never a panic. At most 4096 bytes are accepted.
///
/// # Examples
///
/// ```
/// use lockyard::{parse_record, FileLock, RecordError};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("a.lock");
/// let _guard = FileLock::new(&path).try_lock()?;
/// let record = parse_record(&std::fs::read(&path)?)?;
/// assert_eq!(record.pid(), std::process::id());
/// assert_eq!(parse_record(b"garbage"), Err(RecordError::Malformed("first line is not a PID")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse(bytes: &[u8]) -> Result<HolderRecord, RecordError> {
    if bytes.is_empty() || bytes.iter().all(|&b| b == 0) {
        return Err(RecordError::Empty);
    }
    if bytes.len() > MAX_RECORD {
        return Err(RecordError::TooLarge);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| RecordError::NotUtf8)?;
    let mut lines = text.split_inclusive('\n');
    let pid_line = lines.next().ok_or(RecordError::Malformed("no PID line"))?;
    let pid = pid_line
        .trim_end_matches('\n')
        .parse::<u32>()
        .map_err(|_| RecordError::Malformed("first line is not a PID"))?;
    let magic = lines
        .next()
        .ok_or(RecordError::Malformed("no format line"))?;
    let version = magic
        .trim_end_matches('\n')
        .strip_prefix(MAGIC)
        .and_then(|v| v.strip_prefix(' '))
        .ok_or(RecordError::Malformed("not a lockyard holder record"))?
        .parse::<u32>()
        .map_err(|_| RecordError::Malformed("bad format version"))?;
    if version != VERSION {
        return Err(RecordError::UnknownVersion(version));
    }

    let mut rec = Fields::default();
    let mut consumed = pid_line.len() + magic.len();
    let mut checked = false;
    for line in lines {
        let body = line
            .strip_suffix('\n')
            .ok_or(RecordError::Malformed("truncated last line"))?;
        let (key, value) = body
            .split_once(' ')
            .ok_or(RecordError::Malformed("line without a value"))?;
        if key == "check" {
            let want = u64::from_str_radix(value, 16)
                .map_err(|_| RecordError::Malformed("bad checksum"))?;
            if value.len() != 16 || fnv1a(FNV_START, &bytes[..consumed]) != want {
                return Err(RecordError::Checksum);
            }
            checked = true;
            consumed += line.len();
            break;
        }
        rec.set(key, value)?;
        consumed += line.len();
    }
    if !checked {
        return Err(RecordError::Malformed("no checksum line"));
    }
    if consumed != bytes.len() && !bytes[consumed..].iter().all(|&b| b == 0) {
        return Err(RecordError::Malformed("data after the checksum"));
    }
    rec.finish(pid)
}

/// What an acquisition needs from the record it finds in a lock file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Peek {
    pub(crate) kind: LockKind,
    pub(crate) state: RecordState,
    pub(crate) token: u64,
}

/// Reads the kind, state and token of a record lockyard wrote, without
/// building the whole record: what every acquisition that follows another
/// process's needs, at a fraction of [`parse`]'s cost (no strings, no
/// times). Only a record exactly as lockyard writes it is recognised: a
/// PID line, this format's line, a checksum that matches, nothing after it.
/// Its other fields are not checked. Anything else is `None`, for
/// [`parse`] to judge.
pub(crate) fn peek(bytes: &[u8]) -> Option<Peek> {
    if bytes.len() > MAX_RECORD {
        return None;
    }
    let body_end = bytes.len().checked_sub(SEAL_LEN)?;
    let (body, seal) = bytes.split_at(body_end);
    let hex = seal.strip_prefix(b"check ")?.strip_suffix(b"\n")?;
    let want = u64::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
    if fnv1a(FNV_START, body) != want {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?;
    let mut lines = text.strip_suffix('\n')?.split('\n');
    lines.next()?.parse::<u32>().ok()?;
    let version = lines.next()?.strip_prefix(MAGIC)?.strip_prefix(' ')?;
    if version.parse::<u32>().ok()? != VERSION {
        return None;
    }
    let mut fields = Fields::default();
    for line in lines {
        let (key, value) = line.split_once(' ')?;
        match key {
            "kind" | "state" | "token" => fields.set(key, value).ok()?,
            // A second checksum line: not what lockyard writes.
            "check" => return None,
            _ => {}
        }
    }
    Some(Peek {
        kind: fields.kind?,
        state: fields.state?,
        token: fields.token?,
    })
}

#[derive(Default)]
struct Fields {
    kind: Option<LockKind>,
    state: Option<RecordState>,
    mode: Option<LockMode>,
    host: Option<String>,
    boot: Option<Option<String>>,
    start: Option<Option<u64>>,
    acquired: Option<SystemTime>,
    renewed: Option<SystemTime>,
    ttl: Option<Option<Duration>>,
    owner: Option<Option<String>>,
    token: Option<u64>,
    nonce: Option<u128>,
}

impl Fields {
    fn set(&mut self, key: &str, value: &str) -> Result<(), RecordError> {
        let dup = RecordError::Malformed("repeated key");
        macro_rules! once {
            ($field:ident, $v:expr) => {{
                if self.$field.is_some() {
                    return Err(dup);
                }
                self.$field = Some($v);
            }};
        }
        match key {
            "kind" => once!(
                kind,
                match value {
                    "strict" => LockKind::Strict,
                    "soft" => LockKind::Soft,
                    "lease" => LockKind::Lease,
                    "postgres" => LockKind::Postgres,
                    "object" => LockKind::ObjectStore,
                    _ => return Err(RecordError::Malformed("unknown kind")),
                }
            ),
            "state" => once!(
                state,
                match value {
                    "held" => RecordState::Held,
                    "free" => RecordState::Released,
                    "gone" => RecordState::Removed,
                    _ => return Err(RecordError::Malformed("unknown state")),
                }
            ),
            "mode" => once!(
                mode,
                match value {
                    "exclusive" => LockMode::Exclusive,
                    "shared" => LockMode::Shared,
                    _ => return Err(RecordError::Malformed("unknown mode")),
                }
            ),
            "host" => once!(host, unescape(value)?),
            "boot" => once!(boot, optional(value, unescape)?),
            "start" => once!(
                start,
                optional(value, |v| v.parse().map_err(|_| bad("start")))?
            ),
            "acquired" => once!(acquired, parse_time(value)?),
            "renewed" => once!(renewed, parse_time(value)?),
            "ttl" => once!(ttl, optional(value, parse_duration)?),
            "owner" => once!(owner, optional(value, unescape)?),
            "token" => once!(token, value.parse().map_err(|_| bad("token"))?),
            "nonce" if value.len() == 32 => once!(
                nonce,
                u128::from_str_radix(value, 16).map_err(|_| bad("nonce"))?
            ),
            "nonce" => return Err(bad("nonce")),
            // Unknown keys: later versions of format 1 may add some.
            _ => {}
        }
        Ok(())
    }

    fn finish(self, pid: u32) -> Result<HolderRecord, RecordError> {
        let missing = RecordError::Malformed("missing key");
        let acquired = self.acquired.ok_or(missing.clone())?;
        Ok(HolderRecord {
            pid,
            kind: self.kind.ok_or(missing.clone())?,
            state: self.state.ok_or(missing.clone())?,
            mode: self.mode.ok_or(missing.clone())?,
            host: self.host.ok_or(missing.clone())?.into(),
            boot_id: self.boot.unwrap_or(None).map(Into::into),
            start_time: self.start.unwrap_or(None),
            acquired,
            renewed: self.renewed.unwrap_or(acquired),
            ttl: self.ttl.unwrap_or(None),
            owner: self.owner.unwrap_or(None).map(Into::into),
            token: self.token.ok_or(missing)?,
            nonce: self.nonce,
        })
    }
}

fn bad(_what: &'static str) -> RecordError {
    RecordError::Malformed("bad number")
}

fn optional<T>(
    value: &str,
    f: impl FnOnce(&str) -> Result<T, RecordError>,
) -> Result<Option<T>, RecordError> {
    if value == "-" {
        Ok(None)
    } else {
        f(value).map(Some)
    }
}

// The writers below run on every acquisition that writes a record: they
// format by hand what `write!` would, at a fraction of its cost.

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Appends the low `width` hex digits of `n`, lower case, zero-padded.
fn push_hex(out: &mut Vec<u8>, n: u128, width: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..width).rev() {
        out.push(HEX[((n >> (4 * i)) & 0xf) as usize]);
    }
}

fn push_duration(out: &mut Vec<u8>, d: Duration) {
    push_decimal(out, d.as_secs());
    out.push(b'.');
    let mut nanos = [0u8; 9];
    let mut n = d.subsec_nanos();
    for digit in nanos.iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&nanos);
}

fn push_time(out: &mut Vec<u8>, t: SystemTime) {
    push_duration(out, t.duration_since(UNIX_EPOCH).unwrap_or_default());
}

fn parse_duration(value: &str) -> Result<Duration, RecordError> {
    let err = RecordError::Malformed("bad time");
    let (secs, nanos) = value.split_once('.').ok_or(err.clone())?;
    if nanos.len() != 9 || !nanos.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err);
    }
    let secs: u64 = secs.parse().map_err(|_| err.clone())?;
    let nanos: u32 = nanos.parse().map_err(|_| err.clone())?;
    Ok(Duration::new(secs, nanos))
}

fn parse_time(value: &str) -> Result<SystemTime, RecordError> {
    UNIX_EPOCH
        .checked_add(parse_duration(value)?)
        .ok_or(RecordError::Malformed("time out of range"))
}

/// Printable ASCII except `%` passes through; everything else is `%XX`.
fn escape_into(out: &mut Vec<u8>, s: &str) {
    if s == "-" {
        // "-" alone means "none".
        out.extend_from_slice(b"%2D");
        return;
    }
    for &b in s.as_bytes() {
        if b.is_ascii_graphic() && b != b'%' {
            out.push(b);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

fn unescape(s: &str) -> Result<String, RecordError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or(RecordError::Malformed("bad escape"))?;
            let b =
                u8::from_str_radix(hex, 16).map_err(|_| RecordError::Malformed("bad escape"))?;
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| RecordError::Malformed("escaped text is not UTF-8"))
}

/// The FNV-1a offset basis: the hash of nothing.
pub(crate) const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a of `bytes`, continuing from the hash `h` of what came before.
pub(crate) fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::record::MAX_RECORD;
    use proptest::strategy::Strategy;
    use std::time::UNIX_EPOCH;

    pub(crate) fn sample() -> HolderRecord {
        HolderRecord {
            pid: 4242,
            kind: LockKind::Lease,
            state: RecordState::Held,
            mode: LockMode::Exclusive,
            host: "build-3".into(),
            boot_id: Some("6f0c2a1e-8b1d".into()),
            start_time: Some(1234567),
            acquired: UNIX_EPOCH + Duration::new(1_763_870_000, 123_456_789),
            renewed: UNIX_EPOCH + Duration::new(1_763_870_010, 5),
            ttl: Some(Duration::from_millis(30_500)),
            owner: Some("indexer %1 \n-x".into()),
            token: 17,
            nonce: Some(0x0123_4567_89ab_cdef_0011_2233_4455_6677),
        }
    }

    #[test]
    fn round_trip_and_pid_first() {
        let r = sample();
        let bytes = r.to_bytes();
        assert!(bytes.starts_with(b"4242\n"));
        assert_eq!(parse(&bytes).unwrap(), r);
        // Trailing NULs (a file shrunk by another writer) are tolerated.
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0, 0]);
        assert_eq!(parse(&padded).unwrap(), r);
    }

    fn arb_text() -> impl proptest::strategy::Strategy<Value = String> {
        proptest::collection::vec(proptest::char::any(), 0..40)
            .prop_map(|c| c.into_iter().collect())
    }

    proptest::proptest! {
        /// The hand-written number formatting writes what `write!` does.
        #[test]
        fn numbers_as_write_formats_them(n: u64, wide: u128, secs: u64, nanos in 0u32..1_000_000_000) {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            proptest::prop_assert_eq!(&out, &n.to_string().into_bytes());
            out.clear();
            push_hex(&mut out, wide, 32);
            proptest::prop_assert_eq!(&out, &format!("{wide:032x}").into_bytes());
            out.clear();
            push_hex(&mut out, u128::from(n), 16);
            proptest::prop_assert_eq!(&out, &format!("{n:016x}").into_bytes());
            out.clear();
            push_duration(&mut out, Duration::new(secs, nanos));
            proptest::prop_assert_eq!(&out, &format!("{secs}.{nanos:09}").into_bytes());
        }

        /// `peek` reads what `parse` reads, from any record lockyard
        /// writes; and from damaged bytes, either nothing or what `parse`
        /// reads too.
        #[test]
        fn peek_agrees_with_parse(
            token: u64,
            kind in 0u8..4,
            state in 0u8..3,
            owner in proptest::option::of(arb_text()),
            flip in proptest::option::of((0usize..400, 1u8..=255)),
        ) {
            let mut r = sample();
            r.token = token;
            r.kind = [LockKind::Strict, LockKind::Soft, LockKind::Lease, LockKind::Postgres][kind as usize];
            r.state = [RecordState::Held, RecordState::Released, RecordState::Removed][state as usize];
            r.owner = owner.map(Into::into);
            let mut bytes = r.to_bytes();
            let whole = Peek { kind: r.kind, state: r.state, token };
            proptest::prop_assert_eq!(peek(&bytes), Some(whole));
            if let Some((at, x)) = flip {
                let at = at % bytes.len();
                bytes[at] ^= x;
                if let Some(p) = peek(&bytes) {
                    let parsed = parse(&bytes);
                    proptest::prop_assert!(parsed.is_ok(), "{:?}", parsed);
                    let parsed = parsed.unwrap();
                    proptest::prop_assert_eq!(p, Peek { kind: parsed.kind, state: parsed.state, token: parsed.token });
                }
            }
            proptest::prop_assert_eq!(peek(b""), None);
            proptest::prop_assert_eq!(peek(b"4242\nlockyard-holder 1\n"), None);
        }

        /// Whatever the fields, formatting then parsing gives them back.
        #[test]
        fn format_parse_round_trip(
            pid: u32,
            kind in 0u8..3,
            state in 0u8..3,
            shared: bool,
            host in arb_text(),
            boot in proptest::option::of(arb_text()),
            start: Option<u64>,
            // Seconds after 1970 that every platform's `SystemTime` holds:
            // Windows' ends in the year 30828 (2^40 s is past it).
            acquired in 0u64..(1 << 39),
            nanos in 0u32..1_000_000_000,
            renew_delta in 0u64..(1 << 20),
            ttl in proptest::option::of((0u64..(1 << 40), 0u32..1_000_000_000)),
            owner in proptest::option::of(arb_text()),
            token: u64,
            nonce: Option<u128>,
        ) {
            let r = HolderRecord {
                pid,
                kind: [LockKind::Strict, LockKind::Soft, LockKind::Lease][kind as usize],
                state: [RecordState::Held, RecordState::Released, RecordState::Removed][state as usize],
                mode: if shared { LockMode::Shared } else { LockMode::Exclusive },
                host: host.into(),
                boot_id: boot.map(Into::into),
                start_time: start,
                acquired: UNIX_EPOCH + Duration::new(acquired, nanos),
                renewed: UNIX_EPOCH + Duration::new(acquired + renew_delta, nanos),
                ttl: ttl.map(|(s, n)| Duration::new(s, n)),
                owner: owner.map(Into::into),
                token,
                nonce,
            };
            let bytes = r.to_bytes();
            let first_line = format!("{}\n", pid);
            proptest::prop_assert!(bytes.starts_with(first_line.as_bytes()));
            proptest::prop_assert_eq!(parse(&bytes), Ok(r));
        }

        /// Arbitrary bytes never panic the parser.
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = parse(&bytes);
        }
    }

    #[test]
    fn dash_owner_is_not_none() {
        let mut r = sample();
        r.owner = Some("-".into());
        assert_eq!(parse(&r.to_bytes()).unwrap().owner(), Some("-"));
    }

    #[test]
    fn defects_are_typed() {
        let good = sample().to_bytes();
        assert_eq!(parse(b""), Err(RecordError::Empty));
        assert_eq!(parse(&[0; 10]), Err(RecordError::Empty));
        assert_eq!(
            parse(&vec![b'1'; MAX_RECORD + 1]),
            Err(RecordError::TooLarge)
        );
        assert_eq!(parse(&[0xff, 0xfe, b'\n']), Err(RecordError::NotUtf8));
        for cut in 1..good.len() {
            assert!(parse(&good[..cut]).is_err(), "truncated at {cut} parsed");
        }
        let mut flipped = good.clone();
        let i = good.len() / 2;
        flipped[i] = if flipped[i] == b'1' { b'2' } else { b'1' };
        assert!(parse(&flipped).is_err());
        let future = String::from_utf8(good.clone())
            .unwrap()
            .replace("lockyard-holder 1", "lockyard-holder 9");
        assert_eq!(
            parse(future.as_bytes()),
            Err(RecordError::UnknownVersion(9))
        );
        assert!(matches!(
            parse(b"hello\nworld\n"),
            Err(RecordError::Malformed(_))
        ));
    }
}
