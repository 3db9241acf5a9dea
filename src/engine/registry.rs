//! The process-wide registry: one live [`Entry`] per resource key, so that
//! every handle of this process on one resource (a lock file reached
//! through two paths, two `FileLock`s for one name) shares one queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use super::entry::Entry;
use super::resource::{Key, Resource};

fn registry() -> MutexGuard<'static, HashMap<Key, Weak<Entry>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<Key, Weak<Entry>>>> = OnceLock::new();
    REGISTRY
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// The live entry for `key`, creating it around `resource` if this process
/// has none. A surplus `resource` is dropped (closing what it opened).
pub(crate) fn entry_for(key: Key, resource: Box<dyn Resource>) -> Arc<Entry> {
    let mut map = registry();
    let existing = map.get(&key).and_then(Weak::upgrade);
    if let Some(entry) = &existing {
        if !entry.is_retired() {
            let entry = Arc::clone(entry);
            drop(map);
            drop(resource);
            return entry;
        }
    }
    let entry = Arc::new(Entry::new(key.clone(), resource));
    map.insert(key, Arc::downgrade(&entry));
    drop(map);
    // A retired entry found above is dropped only now: its `Drop` takes the
    // registry lock.
    drop(existing);
    entry
}

/// Removes `entry` from the registry, if it is still the one there for
/// `key`.
pub(crate) fn forget(key: &Key, entry: *const Entry) {
    let mut map = registry();
    if map
        .get(key)
        .is_some_and(|w| std::ptr::eq(w.as_ptr(), entry))
    {
        map.remove(key);
    }
}
