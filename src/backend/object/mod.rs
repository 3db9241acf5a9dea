//! Locks in object storage: one lock object per name, changed only by
//! conditional writes (`If-None-Match: *`, `If-Match: <version>`).
//!
//! # The protocol
//! - The object is never deleted. Its body is a holder record (see
//!   `record`): `state held` with the holder's token, nonce, lease TTL and
//!   renewal time, or `state free` once released. Every body differs from
//!   every earlier one (a new token or nonce on each acquisition, a later
//!   renewal time on each renewal, a new state on release), so a store
//!   whose versions are hashes of the content (S3's ETags) never sees one
//!   come back (no ABA).
//! - **Acquire**: read the object. None: create it, with token 1 or the
//!   clock's (see `next_token`). Free: write a held body with the next
//!   token, if still at the version read. Held: busy, unless this process
//!   has seen that same version unchanged for the holder's TTL on its own
//!   monotonic clock (no clocks compared across machines); then it takes
//!   over the same way. Tokens only go up: each is the last one plus at
//!   least one, written by a write that only lands on the version it read.
//!   Right after this process's own release, the version and token that
//!   release wrote are known: the held body is written at that version
//!   with no read first, and only if that write is refused (someone wrote
//!   since) is the object read as above.
//! - **Renew** (`refresh`): write the held body again with a later renewal
//!   time, at the version this process wrote last. Refused: another process
//!   took over; the hold is lost.
//! - **Release**: write `state free` at the version this process wrote
//!   last: on the caller's thread for an explicit unlock, which waits for
//!   it anyway; in the background for a dropped guard (a round trip must
//!   not block `Drop`), and the next acquisition in this process waits
//!   for it first.
//! - **Ambiguous outcomes**: a write that failed without an answer (a
//!   timeout, a reset, a server error) may have landed. The object is read
//!   again, and the write counts as landed only if it shows this
//!   acquisition's own nonce, token and renewal time. Nothing retries a
//!   write on its own.
//! - **Server errors** (5xx) end an attempt, and a try, with an error;
//!   a wait tries again on its usual schedule until its deadline.
//! - **This process's own view of its lease**: a hold counts as still held
//!   only until its last successful write was sent plus the TTL, by this
//!   process's clock. A waiter elsewhere starts counting no earlier than
//!   the write landed, so it cannot take over before then.

#[cfg(feature = "azure")]
pub(crate) mod azure;
mod codec;
#[cfg(feature = "gcs")]
pub(crate) mod gcs;
mod http;
#[cfg(feature = "s3")]
pub(crate) mod s3;
pub(crate) mod store;

use std::any::Any;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use futures_lite::FutureExt;

use crate::engine::{
    Abandon, Attempted, BlockingWait, FireOnDrop, Hint, Holders, Key, Opener, Params, Resource,
    Waited,
};
use crate::error::Error;
use crate::mode::LockMode;
use crate::options::LockOptions;
use crate::record::{HolderRecord, LockKind, RecordState};
use store::{Condition, Put, Store, Version};

/// How long a hold lasts without renewal unless the user says otherwise.
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(30);

/// How soon a wait reads the lock object again, first and at most
/// (doubling in between, with jitter).
const POLL_FIRST: Duration = Duration::from_millis(10);
const POLL_LAST: Duration = Duration::from_millis(500);

/// How soon a renewal the store did not answer is tried again.
const RENEW_PAUSE: Duration = Duration::from_millis(200);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One store and prefix, shared by every lock of an `ObjectLocks`.
#[derive(Debug)]
pub(crate) struct Space {
    pub(crate) store: Arc<dyn Store>,
    /// What errors name: `s3://bucket/prefix`, no credentials.
    pub(crate) label: String,
    /// The keys' common prefix, ending in `/` unless empty.
    pub(crate) prefix: String,
    pub(crate) ttl: Duration,
}

impl Space {
    /// The object key of the lock `name`: the prefix, the name with every
    /// byte but letters, digits, `-`, `_` and `/` percent-encoded (so no
    /// `.` or `..` segment reaches a URL), and `.lock`.
    pub(crate) fn key_of(&self, name: &str) -> String {
        let mut key = self.prefix.clone();
        codec::encode_name(name, &mut key);
        key.push_str(".lock");
        key
    }

    /// The lock name of a key under the prefix (`None`: not a lock object).
    pub(crate) fn name_of(&self, key: &str) -> Option<String> {
        let rest = key.strip_prefix(&self.prefix)?.strip_suffix(".lock")?;
        codec::decode_name(rest)
    }

    /// The record in the lock object at `key`, if there is one and it is
    /// lockyard's.
    pub(crate) fn record_at(&self, key: &str) -> io::Result<Option<HolderRecord>> {
        match self.store.get(key)? {
            None => Ok(None),
            Some(object) => codec::parse(&object.body).map(Some),
        }
    }
}

/// What a lock handle opens: one name in a space.
#[derive(Debug)]
pub(crate) struct ObjectOpener {
    pub(crate) space: Arc<Space>,
    pub(crate) name: String,
    pub(crate) options: LockOptions,
}

impl Opener for ObjectOpener {
    fn open(&self, _abandon: &Abandon) -> Result<(Key, Box<dyn Resource>), Error> {
        // Nothing to connect to: each request makes (or reuses) its own.
        let key = self.space.key_of(&self.name);
        let mut identity = self.space.label.clone().into_bytes();
        identity.push(0);
        identity.extend_from_slice(key.as_bytes());
        let inner = Arc::new(Inner {
            space: Arc::clone(&self.space),
            key,
            state: Mutex::new(State::default()),
            writing: Mutex::new(()),
        });
        Ok((
            Key {
                space: "object",
                id: identity.into_boxed_slice(),
            },
            Box::new(ObjectLock { inner }),
        ))
    }
}

/// This process's hold: the version its last write made, and the record
/// it wrote.
#[derive(Clone, Debug)]
struct Held {
    version: Version,
    record: HolderRecord,
    /// When the write that made `version` was sent (this process's clock).
    sent: Instant,
}

impl Held {
    /// Whether the lease may have lapsed by this process's clock.
    fn lapsed(&self) -> bool {
        let ttl = self.record.ttl.unwrap_or(DEFAULT_TTL);
        self.sent.elapsed() >= ttl
    }
}

#[derive(Default)]
struct State {
    held: Option<Held>,
    /// Another process's hold as last read: its version, and since when
    /// (this process's clock) it has been seen unchanged.
    seen: Option<(Version, Instant)>,
    /// The last release, in flight or made.
    releasing: Option<Releasing>,
    /// The hold was found lost (a refused renewal) before its release.
    lost: bool,
    /// This process's last release as it landed: the version its write
    /// made and the token it carried. The next acquisition here writes at
    /// that version without reading the object first (one round trip
    /// instead of two); refused, the object changed since, and it reads.
    freed: Option<(Version, u64)>,
}

struct Inner {
    space: Arc<Space>,
    key: String,
    state: Mutex<State>,
    /// Held by this process's write in flight (renewal, release), so two
    /// never race each other's versions.
    writing: Mutex<()>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectLock")
            .field("space", &self.space.label)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// This process's last release of the lock.
enum Releasing {
    /// Being written on the pool (a guard dropped).
    Task(blocking::Task<io::Result<()>>),
    /// Written on the caller's thread (an explicit unlock), and how it
    /// went, for `finish_release` to tell.
    Made(io::Result<()>),
}

impl Releasing {
    /// Waits for it to be written, and says how it went.
    fn finish(self) -> io::Result<()> {
        match self {
            Releasing::Task(task) => async_io::block_on(task),
            Releasing::Made(outcome) => outcome,
        }
    }
}

/// How one conditional write of a held body went.
#[allow(
    clippy::large_enum_variant,
    reason = "one lives on the stack for the length of an attempt"
)]
enum Claim {
    Held(Held),
    /// The object was not as the condition said.
    Refused,
    /// Failed without an answer, and a read did not show it landed.
    Unknown,
}

/// How one attempt went.
#[allow(
    clippy::large_enum_variant,
    reason = "one lives on the stack for the length of an attempt"
)]
enum Outcome {
    Locked(Held),
    Busy,
}

impl Inner {
    /// Waits for this process's last release of the lock to be written.
    fn settle_release(&self) {
        let releasing = lock(&self.state).releasing.take();
        if let Some(releasing) = releasing {
            // How it went matters to an explicit unlock only.
            let _ = releasing.finish();
        }
    }

    /// One attempt that does not wait (see the module docs).
    fn attempt(&self, options: &LockOptions) -> io::Result<Outcome> {
        self.settle_release();
        let freed = lock(&self.state).freed.take();
        if let Some((version, token)) = freed {
            // If-Match on this process's own release: nobody has written
            // since, so its token is the last one.
            match self.claim(options, token, Condition::At(&version))? {
                Claim::Held(held) => return Ok(Outcome::Locked(held)),
                // An unanswered write that did not land is not sent again.
                Claim::Unknown => return Ok(Outcome::Busy),
                Claim::Refused => {}
            }
        }
        let current = self.space.store.get(&self.key)?;
        let (condition, last) = match &current {
            None => (Condition::Absent, 0),
            Some(object) => {
                let rec = codec::parse(&object.body)?;
                if rec.state == RecordState::Held && !self.stale(&object.version, &rec) {
                    return Ok(Outcome::Busy);
                }
                (Condition::At(&object.version), rec.token)
            }
        };
        Ok(match self.claim(options, last, condition)? {
            Claim::Held(held) => Outcome::Locked(held),
            Claim::Refused | Claim::Unknown => Outcome::Busy,
        })
    }

    /// Writes a held body with the token after `last`, if the object is as
    /// `condition` says; an unanswered write counts if a read shows it.
    fn claim(
        &self,
        options: &LockOptions,
        last: u64,
        condition: Condition<'_>,
    ) -> io::Result<Claim> {
        let mut record = crate::backend::new_record(
            LockKind::ObjectStore,
            LockMode::Exclusive,
            crate::backend::next_token(last),
            options,
        );
        record.ttl = Some(options.lease_ttl.unwrap_or(self.space.ttl));
        let sent = Instant::now();
        let version = match self
            .space
            .store
            .put(&self.key, &record.to_bytes(), condition)
        {
            Ok(Put::Written(version)) => version,
            Ok(Put::Conflict) => return Ok(Claim::Refused),
            Err(e) => match self.landed(&record, e)? {
                Some(version) => version,
                None => return Ok(Claim::Unknown),
            },
        };
        Ok(Claim::Held(Held {
            version,
            record,
            sent,
        }))
    }

    /// Whether another process's hold at `version` has been seen unchanged
    /// for its TTL (and so may be taken over). Starts counting the first
    /// time a version is seen.
    fn stale(&self, version: &Version, rec: &HolderRecord) -> bool {
        let ttl = rec.ttl.unwrap_or(DEFAULT_TTL);
        let mut state = lock(&self.state);
        match &state.seen {
            Some((seen, since)) if seen == version => since.elapsed() >= ttl,
            _ => {
                state.seen = Some((version.clone(), Instant::now()));
                false
            }
        }
    }

    /// After a write failed without an answer: whether it landed, decided
    /// by reading the object again (its version if it did). An `Err` when
    /// that read fails too: then nobody knows, and the lease decides.
    fn landed(&self, written: &HolderRecord, failed: io::Error) -> io::Result<Option<Version>> {
        match self.space.store.get(&self.key) {
            Ok(Some(object)) => Ok(codec::parse(&object.body)
                .ok()
                .filter(|rec| same_write(rec, written))
                .map(|_| object.version)),
            Ok(None) => Ok(None),
            Err(_) => Err(failed),
        }
    }

    /// Writes `record` (this process's next body) at the held version.
    /// `Ok(false)`: refused, the hold is lost.
    fn rewrite(&self, held: &Held, record: HolderRecord) -> io::Result<Option<Held>> {
        let sent = Instant::now();
        let condition = Condition::At(&held.version);
        match self
            .space
            .store
            .put(&self.key, &record.to_bytes(), condition)
        {
            Ok(Put::Written(version)) => Ok(Some(Held {
                version,
                record,
                sent,
            })),
            Ok(Put::Conflict) => Ok(None),
            Err(e) => Ok(self.landed(&record, e)?.map(|version| Held {
                version,
                record,
                sent,
            })),
        }
    }

    /// Renews this process's hold. A store that does not answer is asked
    /// again (after [`RENEW_PAUSE`]) until the lease lapses: each attempt
    /// is a conditional write at the held version, and a refusal is
    /// checked against the earlier attempts, one of which may have landed
    /// unseen.
    fn renew(&self) -> io::Result<HolderRecord> {
        let _writing = lock(&self.writing);
        let Some(held) = lock(&self.state).held.clone() else {
            return Err(crate::error::lost());
        };
        // Attempts whose outcome is unknown, and when each was sent.
        let mut unknown: Vec<(HolderRecord, Instant)> = Vec::new();
        loop {
            if held.lapsed() {
                return self.lose();
            }
            let mut record = held.record.clone();
            let last = unknown.last().map_or(record.renewed, |(r, _)| r.renewed);
            record.renewed = later_than(last);
            let sent = Instant::now();
            match self.rewrite(&held, record.clone()) {
                Ok(Some(renewed)) => {
                    let record = renewed.record.clone();
                    lock(&self.state).held = Some(renewed);
                    return Ok(record);
                }
                Ok(None) => {
                    // Refused: someone else wrote, or an earlier attempt did.
                    if let Some(renewed) = self.landed_earlier(&unknown) {
                        let record = renewed.record.clone();
                        lock(&self.state).held = Some(renewed);
                        return Ok(record);
                    }
                    return self.lose();
                }
                Err(e) => {
                    log::debug!(
                        "lockyard: renewing {}/{}: {e}; again",
                        self.space.label,
                        self.key
                    );
                    unknown.push((record, sent));
                    std::thread::sleep(RENEW_PAUSE);
                }
            }
        }
    }

    /// The hold as one of `attempts` left it, if the object shows that
    /// attempt's write.
    fn landed_earlier(&self, attempts: &[(HolderRecord, Instant)]) -> Option<Held> {
        let object = self.space.store.get(&self.key).ok()??;
        let now = codec::parse(&object.body).ok()?;
        attempts
            .iter()
            .find(|(record, _)| same_write(&now, record))
            .map(|(record, sent)| Held {
                version: object.version,
                record: record.clone(),
                sent: *sent,
            })
    }

    fn lose<T>(&self) -> io::Result<T> {
        let mut state = lock(&self.state);
        state.held = None;
        state.lost = true;
        Err(crate::error::lost())
    }

    /// Takes `held` as this process's hold.
    fn keep(&self, held: Held) {
        let mut state = lock(&self.state);
        state.held = Some(held);
        state.lost = false;
    }

    /// Writes `state free` over `held` (see the module docs). A refusal
    /// means the hold was lost already (`Lost`); an error, that nobody
    /// knows whether it was freed (then its lease frees it).
    fn release_now(&self, held: Held) -> io::Result<()> {
        let _writing = lock(&self.writing);
        self.free(held)
    }

    /// Releases this process's hold whose record is `released`, as it is
    /// by the time no other write is in flight: a renewal that was under
    /// way when the release was asked for has moved the hold to a newer
    /// version, which is the one to free.
    fn release_latest(&self, released: &HolderRecord) -> io::Result<()> {
        let _writing = lock(&self.writing);
        let held = {
            let mut state = lock(&self.state);
            match state.held.take() {
                Some(held) if same_hold(&held.record, released) => held,
                // Another hold since (never while this one was held).
                Some(other) => {
                    state.held = Some(other);
                    return Ok(());
                }
                // Found lost by a renewal meanwhile.
                None if std::mem::take(&mut state.lost) => return Err(crate::error::lost()),
                None => return Ok(()),
            }
        };
        self.free(held)
    }

    /// Writes `state free` over `held`; the caller holds `writing`.
    fn free(&self, held: Held) -> io::Result<()> {
        let mut record = held.record.clone();
        record.state = RecordState::Released;
        record.renewed = later_than(record.renewed);
        let token = record.token;
        match self.rewrite(&held, record) {
            Ok(Some(freed)) => {
                lock(&self.state).freed = Some((freed.version, token));
                Ok(())
            }
            Ok(None) => Err(crate::error::lost()),
            Err(e) => {
                log::warn!(
                    "lockyard: releasing {}/{} failed ({e}); it is free once its lease lapses",
                    self.space.label,
                    self.key
                );
                Err(e)
            }
        }
    }

    /// Whether this process's hold is still the lock object's, and its
    /// lease has not lapsed.
    fn still_mine(&self) -> io::Result<bool> {
        let Some(held) = lock(&self.state).held.clone() else {
            return Ok(false);
        };
        if held.lapsed() {
            return Ok(false);
        }
        Ok(match self.space.store.get(&self.key)? {
            Some(object) => codec::parse(&object.body)
                .is_ok_and(|rec| rec.state == RecordState::Held && same_hold(&rec, &held.record)),
            None => false,
        })
    }
}

/// Whether two records are one acquisition's (any renewal of it).
fn same_hold(a: &HolderRecord, b: &HolderRecord) -> bool {
    a.nonce == b.nonce && a.token == b.token
}

/// Whether two records are one write's.
fn same_write(a: &HolderRecord, b: &HolderRecord) -> bool {
    same_hold(a, b) && a.renewed == b.renewed && a.state == b.state
}

/// Now, or a microsecond after `previous` if the clock says otherwise: a
/// renewal's body always differs from the last one.
fn later_than(previous: SystemTime) -> SystemTime {
    let now = SystemTime::now();
    let next = previous + Duration::from_micros(1);
    now.max(next)
}

/// A hold taken by a wait on the pool, on its way to the engine: dropped
/// uncommitted, it is released in the background.
struct Hold {
    inner: Arc<Inner>,
    held: Option<Held>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            let inner = Arc::clone(&self.inner);
            blocking::unblock(move || inner.release_now(held)).detach();
        }
    }
}

/// The lock of one name, as this process holds it.
#[derive(Debug)]
struct ObjectLock {
    inner: Arc<Inner>,
}

/// The handle's options (owner name, lease), for the record.
fn options_of(p: Params<'_>) -> LockOptions {
    p.downcast_ref::<ObjectOpener>()
        .map(|o| o.options.clone())
        .unwrap_or_default()
}

fn abandoned() -> io::Error {
    io::Error::other("the wait was abandoned")
}

/// A pause around `base`, from three quarters of it to all of it, so that
/// waiters started together do not read together.
fn jittered(base: Duration) -> Duration {
    base.mul_f64(0.75 + fastrand::f64() / 4.0)
}

impl ObjectLock {
    /// Writes `state free` over this process's hold: on this thread for a
    /// caller that waits for it (`here`), else on the pool, since a guard
    /// dropped must not block on a round trip.
    fn release_here_or_on_pool(&self, here: bool) -> io::Result<bool> {
        let mut state = lock(&self.inner.state);
        let Some(held) = &state.held else {
            // Known lost already: say so (to an explicit unlock).
            return match std::mem::take(&mut state.lost) {
                true => Err(crate::error::lost()),
                false => Ok(false),
            };
        };
        // The hold stays in the state until the release takes it there: a
        // renewal in flight may still move it to a newer version.
        let released = held.record.clone();
        let releasing = if here {
            drop(state);
            let made = Releasing::Made(self.inner.release_latest(&released));
            state = lock(&self.inner.state);
            made
        } else {
            let inner = Arc::clone(&self.inner);
            Releasing::Task(blocking::unblock(move || inner.release_latest(&released)))
        };
        // An older release still in flight finishes on its own.
        if let Some(Releasing::Task(older)) = state.releasing.replace(releasing) {
            older.detach();
        }
        Ok(false)
    }
}

impl Resource for ObjectLock {
    fn try_acquire(&self, mode: LockMode, p: Params<'_>) -> io::Result<Attempted> {
        if mode == LockMode::Shared {
            return Err(crate::error::exclusive_only());
        }
        match self.inner.attempt(&options_of(p))? {
            Outcome::Locked(held) => {
                let record = Arc::new(held.record.clone());
                self.inner.keep(held);
                Ok(Attempted::Locked(Some(record)))
            }
            Outcome::Busy => Ok(Attempted::Busy),
        }
    }

    fn blocking_wait(&self, mode: LockMode, p: Params<'_>) -> Option<BlockingWait> {
        if mode == LockMode::Shared {
            return None;
        }
        let inner = Arc::clone(&self.inner);
        let options = options_of(p);
        let abandon = Abandon::new();
        let signal = abandon.clone();
        let wait = BlockingWait::new(move || {
            let mut pause = POLL_FIRST;
            loop {
                if signal.is_fired() {
                    return Err(abandoned());
                }
                match inner.attempt(&options) {
                    Ok(Outcome::Locked(held)) => {
                        let hold = Hold {
                            inner,
                            held: Some(held),
                        };
                        return Ok(Waited::Locked(Box::new(hold)));
                    }
                    Ok(Outcome::Busy) => {}
                    // The server's own passing trouble (a 5xx): a wait
                    // rides it out, to its deadline if need be.
                    Err(e) if http::is_transient(&e) => {
                        log::debug!("lockyard: waiting for {}: {e}; again", inner.key);
                    }
                    Err(e) => return Err(e),
                }
                async_io::block_on(signal.fired().or(async {
                    async_io::Timer::after(jittered(pause)).await;
                }));
                pause = (pause * 2).min(POLL_LAST);
            }
        });
        Some(wait.abandoned_by(FireOnDrop(abandon)))
    }

    fn commit_wait(
        &self,
        _mode: LockMode,
        lock_held: Box<dyn Any + Send>,
        _p: Params<'_>,
    ) -> io::Result<Attempted> {
        let Ok(mut hold) = lock_held.downcast::<Hold>() else {
            return Err(io::Error::other("a blocking wait returned a foreign lock"));
        };
        let Some(held) = hold.held.take() else {
            return Err(io::Error::other("a blocking wait returned an empty hold"));
        };
        let record = Arc::new(held.record.clone());
        self.inner.keep(held);
        Ok(Attempted::Locked(Some(record)))
    }

    fn release(
        &self,
        _mode: LockMode,
        _last: bool,
        _record: Option<Arc<HolderRecord>>,
        _p: Params<'_>,
    ) -> io::Result<bool> {
        self.release_here_or_on_pool(false)
    }

    fn release_waited(
        &self,
        _mode: LockMode,
        _last: bool,
        _record: Option<Arc<HolderRecord>>,
        _p: Params<'_>,
    ) -> io::Result<bool> {
        self.release_here_or_on_pool(true)
    }

    fn finish_release(&self) -> io::Result<()> {
        let releasing = lock(&self.inner.state).releasing.take();
        releasing.map_or(Ok(()), Releasing::finish)
    }

    fn supports_shared(&self) -> bool {
        false
    }

    fn remote(&self) -> bool {
        true
    }

    fn wake_hint(&self, _p: Params<'_>) -> Option<Box<dyn Hint>> {
        None
    }

    fn holders(&self, _p: Params<'_>) -> Holders {
        let record = self
            .inner
            .space
            .record_at(&self.inner.key)
            .ok()
            .flatten()
            .filter(|rec| rec.state == RecordState::Held);
        let breakable_in = record.as_ref().map(|rec| {
            let ttl = rec.ttl.unwrap_or(DEFAULT_TTL);
            let seen = lock(&self.inner.state)
                .seen
                .as_ref()
                .map(|(_, since)| *since);
            seen.map_or(ttl, |since| ttl.saturating_sub(since.elapsed()))
        });
        Holders {
            record,
            breakable_in,
            ..Holders::default()
        }
    }

    fn refresh(&self, _p: Params<'_>) -> io::Result<Option<Arc<HolderRecord>>> {
        self.inner.renew().map(|rec| Some(Arc::new(rec)))
    }

    fn still_held(&self, held: bool, _p: Params<'_>) -> io::Result<bool> {
        if !held {
            return Ok(false);
        }
        self.inner.still_mine()
    }
}

#[cfg(test)]
mod tests;
