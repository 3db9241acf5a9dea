//! Positional I/O at the start of a file, which leaves the file offset
//! alone (several readers may share a descriptor): `pread`/`pwrite` on
//! Unix, `seek_read`/`seek_write` on Windows.

use std::fs::File;
use std::io;

/// Reads from offset 0 into `buf`: one successful read, or (`fill`) until
/// `buf` is full or the file ends. Returns the bytes read.
pub(crate) fn read_start(file: &File, buf: &mut [u8], fill: bool) -> io::Result<usize> {
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
