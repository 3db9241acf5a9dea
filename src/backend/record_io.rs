//! Holder records in lock files: reading one back (torn reads retried)
//! and writing one in place.

use std::fs::File;
use std::io;

use crate::record::{parse, HolderRecord, RecordError, MAX_RECORD};
use crate::sys::pio;

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

/// What the first read of a record asks for.
const SMALL_READ: usize = 512;

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
    // Most records fit in a small buffer on the stack: one read, and no
    // 4 KiB buffer to allocate and zero on every acquisition. A record that
    // fills it is read again whole below.
    let mut small = [0u8; SMALL_READ];
    let n = pio::read_start(file, &mut small, false)?;
    if n < SMALL_READ {
        if let Some(answer) = known(&small[..n]) {
            return Ok((Lookup::Known(answer), n));
        }
        match parse(&small[..n]) {
            Ok(r) => return Ok((Lookup::Read(Read::Record(r)), n)),
            // Torn: the retries below read it again.
            Err(e) if looks_torn(&e) => std::thread::yield_now(),
            Err(e) => return Ok((Lookup::Read(Read::Invalid(e)), n)),
        }
    }
    let mut buf = vec![0u8; MAX_RECORD + 1];
    let mut last = RecordError::Empty;
    for attempt in 0..3 {
        // A short read of a regular file is its end: one `pread` in the
        // common case. Only a retry insists on reading until zero, in case
        // a network filesystem returned less than there was.
        let n = pio::read_start(file, &mut buf, attempt > 0)?;
        if let Some(answer) = known(&buf[..n]) {
            return Ok((Lookup::Known(answer), n));
        }
        match parse(&buf[..n]) {
            Ok(r) => return Ok((Lookup::Read(Read::Record(r)), n)),
            Err(e) if looks_torn(&e) => {
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

/// Whether a record that did not parse may be one read while its writer
/// was rewriting it: cut short, its checksum not matching, or followed by
/// the tail of a longer record not cut off yet (as an older version of
/// lockyard, and [`write()`], leave it for a moment).
fn looks_torn(e: &RecordError) -> bool {
    matches!(
        e,
        RecordError::Checksum
            | RecordError::Malformed("truncated last line" | "data after the checksum")
    )
}

/// Replaces the record at the start of `file`.
pub(crate) fn write(file: &File, record: &HolderRecord) -> io::Result<()> {
    let bytes = record.to_bytes();
    pio::write_start(file, &bytes)?;
    file.set_len(bytes.len() as u64)
}

/// Replaces a record of `old_len` bytes with `bytes`, truncating only if
/// the new one is shorter (rewrites of the same record keep their length).
///
/// A shorter record goes out with zeros over the rest of the old one, in
/// the same write, and the file is cut to length after: a process that
/// reads without the lock (one deciding whether the file is a lock file at
/// all) may read between the two, and must then find a record followed by
/// zeros, which it accepts, not the old record's tail after the checksum,
/// which would make it take a lock file for someone's data.
pub(crate) fn rewrite(file: &File, bytes: &[u8], old_len: usize) -> io::Result<usize> {
    let old_len = old_len.min(MAX_RECORD + 1);
    write_over(file, bytes, old_len)?;
    if bytes.len() < old_len {
        file.set_len(bytes.len() as u64)?;
    }
    Ok(bytes.len())
}

/// The write of [`rewrite`]: `bytes`, then zeros to `old_len`.
fn write_over(file: &File, bytes: &[u8], old_len: usize) -> io::Result<()> {
    if bytes.len() >= old_len {
        return pio::write_start(file, bytes);
    }
    let mut padded = Vec::with_capacity(old_len);
    padded.extend_from_slice(bytes);
    padded.resize(old_len, 0);
    pio::write_start(file, &padded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::new_record;
    use crate::mode::LockMode;
    use crate::options::LockOptions;
    use crate::record::LockKind;

    fn record_bytes(owner: &str) -> Vec<u8> {
        let opts = LockOptions::new().owner(owner);
        new_record(LockKind::Strict, LockMode::Exclusive, 7, &opts).to_bytes()
    }

    /// A reader between a shorter record's write and the cut that follows
    /// finds the new record, not a file that is no record at all.
    #[test]
    fn a_shorter_record_reads_whole_before_the_file_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.path().join("a.lock"))
            .unwrap();
        let long = record_bytes("an owner with a long name, longer than the next one");
        let short = record_bytes("short");
        assert!(short.len() < long.len());
        pio::write_start(&file, &long).unwrap();

        // The write of a rewrite, without its cut: what a reader that does
        // not hold the lock can see in between.
        write_over(&file, &short, long.len()).unwrap();
        let found = read(&file)
            .unwrap()
            .record()
            .expect("a record, mid-rewrite");
        assert_eq!(found.owner.as_deref(), Some("short"));

        // And the whole rewrite leaves the short record alone in the file.
        pio::write_start(&file, &long).unwrap();
        assert_eq!(rewrite(&file, &short, long.len()).unwrap(), short.len());
        assert_eq!(std::fs::read(dir.path().join("a.lock")).unwrap(), short);
    }

    /// The same moment where the shorter record was written alone (an
    /// older version of lockyard, [`write()`]): the old record's tail follows
    /// the checksum. That is no record, and it is read again, as a torn
    /// read is.
    #[test]
    fn the_old_tail_after_a_checksum_counts_as_torn() {
        let long = record_bytes("an owner with a long name, longer than the next one");
        let short = record_bytes("short");
        let mut mixed = short.clone();
        mixed.extend_from_slice(&long[short.len()..]);
        let e = parse(&mixed).unwrap_err();
        assert!(looks_torn(&e), "{e:?}");
        assert!(!looks_torn(&parse(b"not a record").unwrap_err()));
    }
}
