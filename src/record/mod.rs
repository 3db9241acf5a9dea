//! Holder records: who holds a lock, since when, with which fencing token.
//!
//! A record is a small text file (or the start of a lock file) in a
//! versioned, line-based format whose first line is the holder's PID, so
//! `cat` answers "who?" at once:
//!
//! ```text
//! 4242
//! lockyard-holder 1
//! kind strict
//! state held
//! mode exclusive
//! host build-3
//! boot 6f0c2a1e-8b1d-4c55-9d0e-2f1f8e6c1a77
//! start 1234567
//! acquired 1763870000.123456789
//! renewed 1763870000.123456789
//! ttl -
//! owner indexer
//! token 17
//! check 5d1e0c3a9b7f2e41
//! ```
//!
//! Values never contain spaces or line breaks: bytes outside printable
//! ASCII, and `%`, are written as `%XX`; `-` stands for "none". The last
//! line is an FNV-1a checksum of everything before it, so a record read
//! while it is being rewritten in place is recognised as torn instead of
//! being misread. Records are untrusted input: parsing reads at most
//! [`MAX_RECORD`] bytes and reports every defect as a [`RecordError`].

use std::fmt;
use std::fs::File;
use std::io::{self, Write as _};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::mode::LockMode;

mod stale;

pub use stale::{StaleLock, StaleReason};

/// The format version this crate writes.
pub(crate) const VERSION: u32 = 1;
const MAGIC: &str = "lockyard-holder";

/// Records are far smaller; anything larger is not one of ours.
pub(crate) const MAX_RECORD: usize = 4096;

/// Which kind of lock a record belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LockKind {
    /// An OS lock (`flock`/`LockFileEx`); the kernel releases it when the
    /// holder dies, so it is never broken by age or PID.
    Strict,
    /// A sidecar lock file created with `O_EXCL`, held for as long as it
    /// exists; a left-behind one is recovered when its holder is proven dead
    /// or it is older than the `stale_after` limit.
    Soft,
    /// A soft lock with a time to live that the holder renews; once it
    /// lapses, another process may take over.
    Lease,
}

impl fmt::Display for LockKind {
    /// `strict`, `soft` or `lease`, as the holder record writes it.
    ///
    /// ```
    /// assert_eq!(lockyard::LockKind::Lease.to_string(), "lease");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl LockKind {
    fn as_str(self) -> &'static str {
        match self {
            LockKind::Strict => "strict",
            LockKind::Soft => "soft",
            LockKind::Lease => "lease",
        }
    }
}

/// Whether the record describes a current holder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecordState {
    /// Written on acquisition.
    Held,
    /// Written on release (strict locks keep the file, and with it the
    /// last fencing token).
    Released,
    /// Written by `clean_stale` just before it deletes a strict lock file,
    /// so a process that opened the file earlier and locks it afterwards
    /// knows to start over.
    Removed,
}

/// Who holds (or last held) a lock: read from the lock's holder record.
///
/// Every exclusive acquisition writes one (unless
/// [`LockOptions::metadata`](crate::LockOptions::metadata) is off). The
/// content comes from another process and is treated as untrusted: a
/// malformed record reads as "holder unknown", never as an error that
/// breaks the lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HolderRecord {
    pub(crate) pid: u32,
    pub(crate) kind: LockKind,
    pub(crate) state: RecordState,
    pub(crate) mode: LockMode,
    pub(crate) host: String,
    pub(crate) boot_id: Option<String>,
    pub(crate) start_time: Option<u64>,
    pub(crate) acquired: SystemTime,
    pub(crate) renewed: SystemTime,
    pub(crate) ttl: Option<Duration>,
    pub(crate) owner: Option<String>,
    pub(crate) token: u64,
    /// A random number a soft lock or lease's record carries: what tells
    /// one publication of the sidecar from every other, where inode numbers
    /// cannot (a network filesystem may show a hard link under another
    /// one). Strict records have none.
    pub(crate) nonce: Option<u128>,
}

impl HolderRecord {
    /// The holder's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The host name of the holder's machine.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The holder machine's boot id (Linux), which tells a holder from
    /// before a reboot from a live one.
    pub fn boot_id(&self) -> Option<&str> {
        self.boot_id.as_deref()
    }

    /// The holder process's start time in clock ticks since boot (Linux),
    /// which tells the holder from a later process that reused its PID.
    pub fn process_start(&self) -> Option<u64> {
        self.start_time
    }

    /// The kind of lock.
    pub fn kind(&self) -> LockKind {
        self.kind
    }

    /// The mode the lock is held in.
    pub fn mode(&self) -> LockMode {
        self.mode
    }

    /// When the lock was acquired (the holder's wall clock).
    pub fn acquired_at(&self) -> SystemTime {
        self.acquired
    }

    /// When a lease was last renewed (the acquisition time if never).
    pub fn renewed_at(&self) -> SystemTime {
        self.renewed
    }

    /// The time to live the holder declared (leases only).
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    /// When the lease lapses unless renewed (leases only).
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.ttl.and_then(|ttl| self.renewed.checked_add(ttl))
    }

    /// The owner id the holder gave, e.g. `ingestion-service-1`.
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// The fencing token: it increases with every exclusive acquisition of
    /// this lock, so a protected resource can refuse a writer whose token is
    /// lower than one it has already seen.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// How long ago the lock was acquired, by this machine's clock (zero if
    /// the holder's clock is ahead).
    pub fn age(&self) -> Duration {
        SystemTime::now()
            .duration_since(self.acquired)
            .unwrap_or_default()
    }

    pub(crate) fn is_held(&self) -> bool {
        self.state == RecordState::Held
    }

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
        push_time(out, self.acquired);
        out.extend_from_slice(b"\nrenewed ");
        push_time(out, self.renewed);
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
        let _ = writeln!(out, "\ntoken {}", self.token);
        if let Some(nonce) = self.nonce {
            let _ = writeln!(out, "nonce {nonce:032x}");
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
    let _ = writeln!(out, "check {sum:016x}");
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
#[derive(Clone, Debug, PartialEq, Eq)]
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
            host: self.host.ok_or(missing.clone())?,
            boot_id: self.boot.unwrap_or(None),
            start_time: self.start.unwrap_or(None),
            acquired,
            renewed: self.renewed.unwrap_or(acquired),
            ttl: self.ttl.unwrap_or(None),
            owner: self.owner.unwrap_or(None),
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

fn push_duration(out: &mut Vec<u8>, d: Duration) {
    let _ = write!(out, "{}.{:09}", d.as_secs(), d.subsec_nanos());
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

/// What reading a record found.
#[derive(Debug)]
pub(crate) enum Read {
    Record(HolderRecord),
    Invalid(#[allow(dead_code)] RecordError),
}

impl Read {
    pub(crate) fn record(self) -> Option<HolderRecord> {
        match self {
            Read::Record(r) => Some(r),
            Read::Invalid(_) => None,
        }
    }
}

/// Reads the record at the start of `file`: at most `MAX_RECORD + 1`
/// bytes, retried a few times when it looks torn (a writer rewriting it).
pub(crate) fn read(file: &File) -> io::Result<Read> {
    read_sized(file).map(|(r, _)| r)
}

/// Like [`read`], also returning how many bytes the file had (up to the
/// bound), so a rewrite knows whether it must truncate.
pub(crate) fn read_sized(file: &File) -> io::Result<(Read, usize)> {
    match read_sized_or_known(file, |_| None::<std::convert::Infallible>)? {
        (Lookup::Read(read), n) => Ok((read, n)),
        (Lookup::Known(never), _) => match never {},
    }
}

/// What [`read_sized_or_known`] found.
#[derive(Debug)]
pub(crate) enum Lookup<T> {
    /// The bytes were recognised without parsing.
    Known(T),
    Read(Read),
}

/// Like [`read_sized`], but first shows the bytes read to `known`, which
/// may recognise them (its own last write, say) and spare the parse.
pub(crate) fn read_sized_or_known<T>(
    file: &File,
    known: impl Fn(&[u8]) -> Option<T>,
) -> io::Result<(Lookup<T>, usize)> {
    let mut buf = vec![0u8; MAX_RECORD + 1];
    let mut last = RecordError::Empty;
    for attempt in 0..3 {
        // A short read of a regular file is its end: one `pread` in the
        // common case. Only a retry insists on reading until zero, in case
        // a network filesystem returned less than there was.
        let n = read_at(file, &mut buf, attempt > 0)?;
        if let Some(answer) = known(&buf[..n]) {
            return Ok((Lookup::Known(answer), n));
        }
        match parse(&buf[..n]) {
            Ok(r) => return Ok((Lookup::Read(Read::Record(r)), n)),
            Err(e @ (RecordError::Checksum | RecordError::Malformed("truncated last line"))) => {
                last = e;
                if attempt < 2 {
                    std::thread::yield_now();
                }
            }
            Err(e) => return Ok((Lookup::Read(Read::Invalid(e)), n)),
        }
    }
    Ok((Lookup::Read(Read::Invalid(last)), MAX_RECORD + 1))
}

/// Replaces the record at the start of `file`.
pub(crate) fn write(file: &File, record: &HolderRecord) -> io::Result<()> {
    let bytes = record.to_bytes();
    write_at(file, &bytes)?;
    file.set_len(bytes.len() as u64)
}

/// Replaces a record of `old_len` bytes with `bytes`, truncating only if
/// the new one is shorter (rewrites of the same record keep their length).
pub(crate) fn rewrite(file: &File, bytes: &[u8], old_len: usize) -> io::Result<usize> {
    write_at(file, bytes)?;
    if bytes.len() < old_len {
        file.set_len(bytes.len() as u64)?;
    }
    Ok(bytes.len())
}

fn read_at(file: &File, buf: &mut [u8], until_zero: bool) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(file, &mut buf[filled..], filled as u64);
        #[cfg(windows)]
        let n = std::os::windows::fs::FileExt::seek_read(file, &mut buf[filled..], filled as u64);
        #[cfg(not(any(unix, windows)))]
        let n: io::Result<usize> = Err(io::Error::from(io::ErrorKind::Unsupported));
        match n {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                if !until_zero {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn write_at(file: &File, bytes: &[u8]) -> io::Result<()> {
    #[cfg(unix)]
    return std::os::unix::fs::FileExt::write_all_at(file, bytes, 0);
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < bytes.len() {
            match std::os::windows::fs::FileExt::seek_write(file, &bytes[done..], done as u64) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = (file, bytes);
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::strategy::Strategy;

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
            acquired in 0u64..(1 << 40),
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
                host,
                boot_id: boot,
                start_time: start,
                acquired: UNIX_EPOCH + Duration::new(acquired, nanos),
                renewed: UNIX_EPOCH + Duration::new(acquired + renew_delta, nanos),
                ttl: ttl.map(|(s, n)| Duration::new(s, n)),
                owner,
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
