//! No file-event source on this platform (targets without Unix or
//! Windows locks): waiters rely on backoff.

use std::fs::File;
use std::path::Path;
use std::task::{Context, Poll};

/// Never constructed here.
#[derive(Debug)]
pub(crate) struct Watch(std::convert::Infallible);

impl Watch {
    pub(crate) fn file(_file: &File, _path: &Path) -> Option<Watch> {
        None
    }

    pub(crate) fn dir_entry(_path: &Path) -> Option<Watch> {
        None
    }

    pub(crate) fn join(&self) -> Option<Watch> {
        match self.0 {}
    }

    pub(crate) fn generation(&self) -> u64 {
        match self.0 {}
    }

    pub(crate) fn poll_changed(
        &mut self,
        _cx: &mut Context<'_>,
        _since: u64,
        _clock: crate::rt::Clock,
    ) -> Poll<()> {
        match self.0 {}
    }
}
