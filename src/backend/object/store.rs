//! What the lock protocol needs from an object store: read an object with
//! its version, and write one only if it is absent or still at a version.
//! Each provider (S3, ...) implements it over its REST API; the memory
//! store here is the reference the protocol's unit tests run against.

#[cfg(test)]
use std::collections::HashMap;
use std::fmt;
use std::io;
#[cfg(test)]
use std::sync::Mutex;

/// An object's version as its store names it (an S3 ETag): opaque, and
/// only ever compared by the store itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Version(pub(crate) String);

/// An object as read.
#[derive(Clone, Debug)]
pub(crate) struct Object {
    pub(crate) body: Vec<u8>,
    pub(crate) version: Version,
}

/// When a write may happen.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Condition<'a> {
    /// Only if no object has the key.
    Absent,
    /// Only if the object is still at this version.
    At(&'a Version),
}

/// How a conditional write went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Put {
    /// Written: the object's new version.
    Written(Version),
    /// Refused: the condition did not hold (someone else wrote first).
    Conflict,
}

/// One store (a bucket and prefix), shared by every lock it holds.
///
/// An `Err` from [`put`](Store::put) is ambiguous: the write may have
/// landed (a timeout or reset after the request went out, a server error
/// after it was applied). The protocol then reads again and decides; a
/// store never retries a write on its own.
pub(crate) trait Store: Send + Sync + fmt::Debug {
    /// The object at `key`, or `None` if there is none.
    fn get(&self, key: &str) -> io::Result<Option<Object>>;

    /// Writes `body` at `key` if `condition` holds.
    fn put(&self, key: &str, body: &[u8], condition: Condition<'_>) -> io::Result<Put>;

    /// The keys under `prefix`.
    fn list(&self, prefix: &str) -> io::Result<Vec<String>>;
}

/// A store in this process's memory, with versions that never repeat.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct MemoryStore {
    objects: Mutex<(HashMap<String, Object>, u64)>,
}

#[cfg(test)]
impl Store for MemoryStore {
    fn get(&self, key: &str) -> io::Result<Option<Object>> {
        let objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        Ok(objects.0.get(key).cloned())
    }

    fn put(&self, key: &str, body: &[u8], condition: Condition<'_>) -> io::Result<Put> {
        let mut guard = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        let (objects, next) = &mut *guard;
        let holds = match (condition, objects.get(key)) {
            (Condition::Absent, None) => true,
            (Condition::At(v), Some(o)) => o.version == *v,
            _ => false,
        };
        if !holds {
            return Ok(Put::Conflict);
        }
        *next += 1;
        let version = Version(format!("v{next}"));
        let object = Object {
            body: body.to_vec(),
            version: version.clone(),
        };
        objects.insert(key.to_owned(), object);
        Ok(Put::Written(version))
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        let objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        let mut keys: Vec<String> = objects
            .0
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        keys.sort();
        Ok(keys)
    }
}
