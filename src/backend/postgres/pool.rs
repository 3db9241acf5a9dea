//! Where sessions come from. Holds of different names share a few sessions
//! (a session can hold any number of advisory locks), so a process holding
//! thousands of locks uses a handful of connections; a wait in the server
//! blocks its session, so it takes one of its own from the idle pool.
//!
//! Sharing stops where a session's state is a lock's: a lease is the
//! session's idle timeout, which any statement on it resets, so leased locks
//! keep a session each (`max_shared` is 0 then).
//!
//! Waits are bounded too: at most `max_waiting` sessions of a process's own
//! are in a wait, or carry the hold a wait was granted while the shared set
//! had no room for its session. A wait that finds no place left tries on a
//! shared session instead, again and again, until it gets the lock or a
//! place frees up (see `WaitPlace`).

use std::fmt;
use std::io;
use std::ops::Deref;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use event_listener::{Event, EventListener};

use super::conn::Conn;
use super::lock;

/// How many idle sessions a server keeps for later waits and holds.
const IDLE_SESSIONS: usize = 8;

/// A session for some statements: shared with the holds it carries, or
/// this caller's alone.
#[allow(
    clippy::large_enum_variant,
    reason = "one lives on the stack for the length of a call"
)]
pub(super) enum Session {
    Shared(Arc<Conn>),
    Own(Conn),
}

impl Deref for Session {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        match self {
            Session::Shared(conn) => conn,
            Session::Own(conn) => conn,
        }
    }
}

/// The sessions of one server and table.
pub(super) struct Pool {
    idle: Mutex<Vec<Conn>>,
    shared: Mutex<Shared>,
    /// Signalled when an opening for the shared set ends.
    opened: Condvar,
    /// At most this many sessions carry holds together; 0: none do.
    max_shared: usize,
    places: Arc<Places>,
}

/// The places of the sessions a process's waits may use.
struct Places {
    taken: Mutex<usize>,
    max: usize,
    /// Notified when a place is given back.
    freed: Event,
}

/// A session's place among the waiting sessions: given back when dropped
/// (with the session, or when the session goes idle or joins the shared
/// set).
pub(super) struct WaitPlace(Arc<Places>);

impl Drop for WaitPlace {
    fn drop(&mut self) {
        *lock(&self.0.taken) -= 1;
        self.0.freed.notify(1);
    }
}

impl fmt::Debug for WaitPlace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WaitPlace")
    }
}

#[derive(Default)]
struct Shared {
    sessions: Vec<Arc<Conn>>,
    /// Sessions being opened for the shared set.
    opening: usize,
}

impl Pool {
    pub(super) fn new(max_shared: usize, max_waiting: usize) -> Pool {
        Pool {
            idle: Mutex::new(Vec::new()),
            shared: Mutex::new(Shared::default()),
            opened: Condvar::new(),
            max_shared,
            places: Arc::new(Places {
                taken: Mutex::new(0),
                max: max_waiting,
                freed: Event::new(),
            }),
        }
    }

    /// A session of the caller's own for a wait in the server (`reuse`, or
    /// an idle or new one), if a place among the waiting sessions is free;
    /// `None` (and `reuse` back to the idle pool) if not.
    pub(super) fn waiting(
        &self,
        reuse: Option<Conn>,
        open: impl FnOnce() -> io::Result<Conn>,
    ) -> Option<io::Result<Conn>> {
        let place = {
            let mut taken = lock(&self.places.taken);
            if *taken >= self.places.max {
                drop(taken);
                if let Some(conn) = reuse {
                    self.give_back(conn);
                }
                return None;
            }
            *taken += 1;
            WaitPlace(Arc::clone(&self.places))
        };
        // An open that fails drops the place, which frees it.
        let conn = match reuse {
            Some(conn) => Ok(conn),
            None => self.own(open),
        };
        Some(conn.inspect(|conn| conn.take_place(place)))
    }

    /// [`waiting`](Self::waiting), if it can be had without waiting: an
    /// idle session, if one is open and a place is free. Never opens one.
    pub(super) fn waiting_now(&self) -> Option<Conn> {
        self.place_for(self.idle_now()?)
    }

    /// `conn` (the caller's own) with a place among the waiting sessions,
    /// if one is free; `None` (and `conn` back to the idle pool) if not.
    pub(super) fn place_for(&self, conn: Conn) -> Option<Conn> {
        // Given a session, `waiting` opens none.
        let opened = || Err(io::Error::other("no session to open here"));
        self.waiting(Some(conn), opened)?.ok()
    }

    /// Fires when a place among the waiting sessions may have been freed.
    /// Listen before asking for one, so a place freed in between is seen.
    pub(super) fn place_freed(&self) -> EventListener {
        self.places.freed.listen()
    }

    /// Whether holds share sessions.
    pub(super) fn shares(&self) -> bool {
        self.max_shared > 0
    }

    /// A session of the caller's own: an idle one, or one `open` makes.
    pub(super) fn own(&self, open: impl FnOnce() -> io::Result<Conn>) -> io::Result<Conn> {
        match self.idle_now() {
            Some(conn) => Ok(conn),
            None => open(),
        }
    }

    /// Takes back a session of the caller's own that holds no lock.
    pub(super) fn give_back(&self, conn: Conn) {
        conn.leave_place();
        if conn.is_closed() {
            return;
        }
        let mut idle = lock(&self.idle);
        if idle.len() < IDLE_SESSIONS {
            idle.push(conn);
        }
    }

    /// A session for a hold or a short statement: the least busy of the
    /// shared set, which grows (through `open`) up to its bound while every
    /// session in it carries holds. A session of its own where nothing is
    /// shared.
    pub(super) fn shared(&self, open: impl FnOnce() -> io::Result<Conn>) -> io::Result<Session> {
        if self.max_shared == 0 {
            return self.own(open).map(Session::Own);
        }
        let mut shared = lock(&self.shared);
        loop {
            shared.sessions.retain(|conn| !conn.is_closed());
            // How many others use each: its holds, and calls in flight.
            let least = shared
                .sessions
                .iter()
                .min_by_key(|conn| Arc::strong_count(conn))
                .cloned();
            let room = shared.sessions.len() + shared.opening < self.max_shared;
            match least {
                Some(conn) if Arc::strong_count(&conn) <= 2 || !room => {
                    return Ok(Session::Shared(conn));
                }
                // Every slot is being opened: wait for one (each open is
                // bounded by the connect timeout).
                None if !room => {
                    shared = self
                        .opened
                        .wait(shared)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                _ => break,
            }
        }
        shared.opening += 1;
        drop(shared);
        let opened = self.own(open);
        let mut shared = lock(&self.shared);
        shared.opening -= 1;
        self.opened.notify_all();
        let conn = Arc::new(opened?);
        shared.sessions.push(Arc::clone(&conn));
        Ok(Session::Shared(conn))
    }

    /// [`shared`](Self::shared), if it can be had without waiting: never
    /// opens a session, never waits for one being opened. `None` where it
    /// would.
    pub(super) fn shared_now(&self) -> Option<Session> {
        if self.max_shared == 0 {
            return self.idle_now().map(Session::Own);
        }
        let mut shared = lock(&self.shared);
        shared.sessions.retain(|conn| !conn.is_closed());
        let least = shared
            .sessions
            .iter()
            .min_by_key(|conn| Arc::strong_count(conn))
            .cloned()?;
        let room = shared.sessions.len() + shared.opening < self.max_shared;
        (Arc::strong_count(&least) <= 2 || !room).then_some(Session::Shared(least))
    }

    /// An idle session that is still open, if there is one.
    fn idle_now(&self) -> Option<Conn> {
        loop {
            let conn = lock(&self.idle).pop()?;
            if !conn.is_closed() {
                return Some(conn);
            }
        }
    }

    /// Gives back a session used for short statements.
    pub(super) fn done(&self, session: Session) {
        match session {
            Session::Own(conn) => self.give_back(conn),
            Session::Shared(conn) => self.released(conn),
        }
    }

    /// A session of the caller's own that now holds a lock (a wait was
    /// granted on it): it joins the shared set if there is room, so that
    /// later holds can share it too. Otherwise it keeps its place among
    /// the waiting sessions until it is released, so that waits bound the
    /// sessions a process uses however many of their holds it keeps; but
    /// where every hold has a session of its own, holds are not waits.
    pub(super) fn adopt(&self, conn: Conn) -> Arc<Conn> {
        let conn = Arc::new(conn);
        if self.max_shared == 0 {
            conn.leave_place();
            return conn;
        }
        let mut shared = lock(&self.shared);
        shared.sessions.retain(|c| !c.is_closed());
        if shared.sessions.len() + shared.opening < self.max_shared {
            conn.leave_place();
            shared.sessions.push(Arc::clone(&conn));
        }
        conn
    }

    /// A clean session of the caller's own that it is done with: into the
    /// shared set if there is room (so that it is the one later holds use,
    /// not one more), else back to the idle pool.
    pub(super) fn offer(&self, conn: Conn) {
        self.released(self.adopt(conn));
    }

    /// A session whose last hold was released: back to the idle pool if it
    /// was nobody else's.
    pub(super) fn released(&self, conn: Arc<Conn>) {
        if let Ok(conn) = Arc::try_unwrap(conn) {
            self.give_back(conn);
        }
    }
}
