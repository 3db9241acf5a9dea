//! A strict lock file's holder record as this process last wrote it, kept
//! between acquisitions so that taking and releasing the lock costs little
//! more than its system calls.
//!
//! The lines that never change for one process and one lock (PID to
//! process start) are formatted and hashed once; a release patches the
//! state word and the checksum in place; and the next acquisition that
//! reads back exactly the bytes this process left needs no parsing to
//! learn the last fencing token.

use std::fs::File;
use std::sync::Arc;

use crate::backend::record_io;
use crate::record::{self, HolderRecord, RecordState};

/// The record this process last wrote to one lock file.
#[derive(Debug, Default)]
pub(crate) struct Stamp {
    /// The record as this process left it in the file: empty until the
    /// first write.
    bytes: Vec<u8>,
    head: Option<Head>,
    /// The length of the file's record as last read or written.
    file_len: usize,
}

#[derive(Debug)]
struct Head {
    /// The record the head lines were formatted from.
    of: Arc<HolderRecord>,
    len: usize,
    state_at: usize,
    /// The checksum state after the head lines, with "held" and with
    /// "free" as the state word.
    sum_held: u64,
    sum_free: u64,
}

impl Stamp {
    /// The last token, if `found` (read from the file) is exactly what this
    /// process left there.
    pub(crate) fn token_if_unchanged(&self, found: &[u8]) -> Option<u64> {
        let head = self.head.as_ref()?;
        (!self.bytes.is_empty() && found == self.bytes).then_some(head.of.token)
    }

    /// The bytes of `rec`, a record this process is about to write on
    /// acquiring the lock.
    pub(crate) fn held(&mut self, rec: Arc<HolderRecord>) -> &[u8] {
        let reuse = self
            .head
            .as_ref()
            .is_some_and(|h| h.of.same_head(&rec) && self.bytes.len() >= h.len);
        let head = match self.head.take() {
            Some(mut head) if reuse => {
                self.bytes.truncate(head.len);
                self.bytes[head.state_at..head.state_at + 4]
                    .copy_from_slice(record::state_word(RecordState::Held));
                head.of = Arc::clone(&rec);
                head
            }
            _ => {
                self.bytes.clear();
                let state_at = rec.write_head(&mut self.bytes);
                let word = state_at..state_at + 4;
                self.bytes[word.clone()].copy_from_slice(record::state_word(RecordState::Released));
                let sum_free = record::fnv1a(record::FNV_START, &self.bytes);
                self.bytes[word].copy_from_slice(record::state_word(RecordState::Held));
                Head {
                    sum_held: record::fnv1a(record::FNV_START, &self.bytes),
                    sum_free,
                    len: self.bytes.len(),
                    state_at,
                    of: Arc::clone(&rec),
                }
            }
        };
        rec.write_tail(&mut self.bytes);
        let sum = record::fnv1a(head.sum_held, &self.bytes[head.len..]);
        record::seal(&mut self.bytes, sum);
        self.head = Some(head);
        &self.bytes
    }

    /// The bytes of the record last written, marked released; `None` if
    /// none was written.
    pub(crate) fn released(&mut self) -> Option<&[u8]> {
        let head = self.head.as_ref()?;
        let sealed_at = self.bytes.len().checked_sub(record::SEAL_LEN)?;
        if sealed_at < head.len {
            return None;
        }
        self.bytes[head.state_at..head.state_at + 4]
            .copy_from_slice(record::state_word(RecordState::Released));
        self.bytes.truncate(sealed_at);
        let sum = record::fnv1a(head.sum_free, &self.bytes[head.len..]);
        record::seal(&mut self.bytes, sum);
        Some(&self.bytes)
    }

    /// Whether the record last written still says "held" (no release or
    /// downgrade marked it since).
    pub(crate) fn left_held(&self) -> bool {
        self.head.as_ref().is_some_and(|h| {
            self.bytes.get(h.state_at..h.state_at + 4)
                == Some(record::state_word(RecordState::Held).as_slice())
        })
    }

    /// Forgets what was written: the file no longer holds it.
    pub(crate) fn forget(&mut self) {
        self.bytes.clear();
        self.head = None;
    }

    /// The length of the record just read from the file.
    pub(crate) fn set_len(&mut self, len: usize) {
        self.file_len = len;
    }

    /// Writes `rec` over the file's record. Best effort: a read-only lock
    /// file (another user's) cannot carry a record, and that must not stop
    /// the lock.
    pub(crate) fn write(&mut self, file: &File, rec: Arc<HolderRecord>) {
        let old_len = self.file_len;
        let written = record_io::rewrite(file, self.held(rec), old_len);
        match written {
            Ok(n) => self.file_len = n,
            Err(_) => self.forget(),
        }
    }

    /// Marks the record last written released, in the file. Best effort,
    /// like the record itself.
    pub(crate) fn mark_released(&mut self, file: &File) {
        let old_len = self.file_len;
        let Some(bytes) = self.released() else {
            return;
        };
        match record_io::rewrite(file, bytes, old_len) {
            Ok(n) => self.file_len = n,
            Err(_) => self.forget(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(token: u64) -> Arc<HolderRecord> {
        let mut rec = record::tests::sample();
        rec.token = token;
        rec.state = RecordState::Held;
        Arc::new(rec)
    }

    /// The cached path writes exactly what formatting from scratch writes,
    /// held and released, first time and again.
    #[test]
    fn same_bytes_as_formatting_from_scratch() {
        let mut stamp = Stamp::default();
        for token in [7, 8, 1_000_000] {
            let rec = sample(token);
            assert_eq!(stamp.held(Arc::clone(&rec)), rec.to_bytes().as_slice());
            let mut free = HolderRecord::clone(&rec);
            free.state = RecordState::Released;
            assert_eq!(stamp.released(), Some(free.to_bytes().as_slice()));
            assert_eq!(record::parse(&free.to_bytes()), Ok(free));
        }
    }

    #[test]
    fn a_new_head_is_formatted_anew() {
        let mut stamp = Stamp::default();
        stamp.held(sample(1));
        let mut other = HolderRecord::clone(&sample(2));
        other.pid += 1;
        other.host = "elsewhere".into();
        assert_eq!(
            stamp.held(Arc::new(other.clone())),
            other.to_bytes().as_slice()
        );
    }

    #[test]
    fn only_its_own_bytes_give_the_token() {
        let mut stamp = Stamp::default();
        assert_eq!(stamp.token_if_unchanged(b""), None);
        stamp.held(sample(42));
        let left = stamp.released().map(<[u8]>::to_vec);
        let left = left.as_deref().unwrap_or_default();
        assert_eq!(stamp.token_if_unchanged(left), Some(42));
        let mut tampered = left.to_vec();
        tampered[0] ^= 1;
        assert_eq!(stamp.token_if_unchanged(&tampered), None);
        stamp.forget();
        assert_eq!(stamp.token_if_unchanged(left), None);
        assert_eq!(stamp.released(), None, "nothing written since");
    }

    /// A failed write is forgotten (`forget`); the next acquisition formats
    /// its record from scratch.
    #[test]
    fn formats_again_after_forgetting() {
        let mut stamp = Stamp::default();
        stamp.held(sample(1));
        stamp.forget();
        let rec = sample(2);
        assert_eq!(stamp.held(Arc::clone(&rec)), rec.to_bytes().as_slice());
    }
}
