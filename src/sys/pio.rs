//! Positional I/O at the start of a file, which leaves the file offset
//! alone (several readers may share a descriptor): `pread`/`pwrite` on
//! Unix, `seek_read`/`seek_write` on Windows.
//!
//! On Unix these are rustix's raw system calls rather than libc's
//! wrappers: a record's read and write are on every acquisition's path,
//! and the wrappers' cancellation-point bookkeeping is a measurable part
//! of an uncontended cycle.

use std::fs::File;
use std::io;

/// One positional read into `buf` at `offset`.
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    #[cfg(unix)]
    return Ok(rustix::io::pread(file, buf, offset)?);
    #[cfg(windows)]
    return std::os::windows::fs::FileExt::seek_read(file, buf, offset);
    #[cfg(not(any(unix, windows)))]
    {
        let _ = (file, buf, offset);
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

/// One positional write of `bytes` at `offset`.
fn write_at(file: &File, bytes: &[u8], offset: u64) -> io::Result<usize> {
    #[cfg(unix)]
    return Ok(rustix::io::pwrite(file, bytes, offset)?);
    #[cfg(windows)]
    return std::os::windows::fs::FileExt::seek_write(file, bytes, offset);
    #[cfg(not(any(unix, windows)))]
    {
        let _ = (file, bytes, offset);
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

/// Reads from offset 0 into `buf`: one successful read, or (`fill`) until
/// `buf` is full or the file ends. Returns the bytes read.
pub(crate) fn read_start(file: &File, buf: &mut [u8], fill: bool) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match read_at(file, &mut buf[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                if !fill {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Writes all of `bytes` at offset 0.
pub(crate) fn write_start(file: &File, bytes: &[u8]) -> io::Result<()> {
    let mut done = 0;
    while done < bytes.len() {
        match write_at(file, &bytes[done..], done as u64) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
