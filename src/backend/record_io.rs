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
            Err(RecordError::Checksum | RecordError::Malformed("truncated last line")) => {
                std::thread::yield_now();
            }
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
    pio::write_start(file, &bytes)?;
    file.set_len(bytes.len() as u64)
}

/// Replaces a record of `old_len` bytes with `bytes`, truncating only if
/// the new one is shorter (rewrites of the same record keep their length).
pub(crate) fn rewrite(file: &File, bytes: &[u8], old_len: usize) -> io::Result<usize> {
    pio::write_start(file, bytes)?;
    if bytes.len() < old_len {
        file.set_len(bytes.len() as u64)?;
    }
    Ok(bytes.len())
}
