//! A wait in the server polled on the caller's task
//! (`Resource::wait_polled`): the lock statement leaves from the caller's
//! thread on a waiting session of its own, and the grant is read as the
//! caller's task is polled. No pool thread waits for it, and where the
//! task's thread is running the reactor when the grant arrives
//! (`async_io::block_on`, smol), that thread goes on with the lock at
//! once, where a wait on the pool hears the grant on a pool thread, which
//! must then wake the task.
//!
//! It starts only where nothing has to wait: on the session of this
//! lock's last release, whose unlock's reply it reads first (statements on
//! one session run in order, so the wait never overtakes that release), or
//! on an idle session, prepared already, with a place free among the
//! waiting sessions. Otherwise the wait runs on the pool as before
//! (`wait_in_server`), which opens sessions, prepares statements and tries
//! on a shared session when the waits have no place left; a polled wait
//! that finds it cannot go on (the last release's session lost, no place)
//! hands over to it too.
//!
//! Dropped mid-wait, it hands the session and the statement's reply to a
//! pool thread, which cancels the statement until it ends and releases
//! whatever the session holds, as an abandoned wait on the pool does: a
//! wait given up never leaves a lock granted to nobody.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::conn::{Conn, Reply};
use super::polled::read;
use super::pool::Session;
use super::{
    cancel_until_ended, clean_up, granted_token, lock_call, sql, unlocked_cleanly, wait_in_server,
    Hold, PgServer,
};
use crate::engine::{Abandon, FireOnDrop, Waited};
use crate::mode::LockMode;
use crate::options::LockOptions;

/// One wait in the server, polled.
pub(super) struct PolledWait {
    server: Arc<PgServer>,
    mode: LockMode,
    key: i64,
    id: i32,
    options: LockOptions,
    step: Step,
}

#[allow(
    clippy::large_enum_variant,
    reason = "one per wait, boxed with it; the session is moved on, not copied"
)]
enum Step {
    /// The last release's unlock, whose reply is read first, on the
    /// session the wait then uses. The session's turn is kept.
    Unlocking(Arc<Conn>, Reply),
    /// The lock statement is on the wire. The session's turn is kept.
    Waiting(Conn, Reply),
    /// The wait on the pool (`wait_in_server`), told to give up when the
    /// second part is dropped; or the clean-up of a session whose
    /// statement failed (it may have been granted the lock), before the
    /// error is reported.
    Pool(blocking::Task<io::Result<Waited>>, Option<FireOnDrop>),
    Done,
}

/// Where a polled wait starts.
#[allow(
    clippy::large_enum_variant,
    reason = "built once per wait and moved straight into it"
)]
pub(super) enum Start {
    /// An idle session that took a place among the waiting sessions.
    Idle(Conn),
    /// The last release's session, its unlock's reply unread; its turn is
    /// kept.
    AfterRelease(Arc<Conn>, Reply),
}

impl PolledWait {
    /// Starts a wait from `start`. `None` (and an idle session back to the
    /// pool) where the statement cannot be sent without waiting: not
    /// prepared on the session yet, or the session's turn taken.
    pub(super) fn start(
        server: Arc<PgServer>,
        start: Start,
        mode: LockMode,
        (key, id): (i64, i32),
        options: LockOptions,
    ) -> Option<PolledWait> {
        let mut wait = PolledWait {
            server,
            mode,
            key,
            id,
            options,
            step: Step::Done,
        };
        wait.step = match start {
            Start::AfterRelease(conn, reply) => Step::Unlocking(conn, reply),
            Start::Idle(conn) => wait.ask(conn)?,
        };
        Some(wait)
    }

    /// Sends the wait's statement on `conn` (this wait's own, with a
    /// place), keeping the session's turn. `None`, and the session back to
    /// the idle pool, where that cannot be done at once: its turn taken, or
    /// the statement not prepared on it yet.
    fn ask(&self, conn: Conn) -> Option<Step> {
        if !conn.turn().try_keep() {
            self.server.pool.give_back(conn);
            return None;
        }
        let statements = (self.server.sql.wait_exclusive.as_str(), sql::WAIT_SHARED);
        let (statement, params) =
            lock_call(self.mode, statements, (self.key, self.id), &self.options);
        if let Some(reply) = conn.send(statement, params) {
            return Some(Step::Waiting(conn, reply));
        }
        conn.turn().give();
        self.server.pool.give_back(conn);
        None
    }

    /// The wait on the pool, from the start: for a wait that cannot go on
    /// here.
    fn on_pool(&self) -> Step {
        let (server, options) = (Arc::clone(&self.server), self.options.clone());
        let (mode, key, id) = (self.mode, self.key, self.id);
        let abandon = Abandon::new();
        let signal = abandon.clone();
        let task =
            blocking::unblock(move || wait_in_server(server, None, mode, key, id, options, signal));
        Step::Pool(task, Some(FireOnDrop(abandon)))
    }

    /// The next step once the last release's unlock has answered on
    /// `conn`, whose turn is kept.
    fn after_unlock(&self, conn: Arc<Conn>, unlocked: io::Result<tokio_postgres::Row>) -> Step {
        let clean = unlocked_cleanly(unlocked);
        conn.turn().give();
        // A session that lost its hold or failed is let go (it closes once
        // nothing else shares it); a clean one of this lock's alone waits.
        let own = match Arc::try_unwrap(conn) {
            Ok(own) if clean => own,
            _ => return self.on_pool(),
        };
        // No place left: the pool's wait tries on a shared session.
        self.server
            .pool
            .place_for(own)
            .and_then(|own| self.ask(own))
            .unwrap_or_else(|| self.on_pool())
    }
}

impl Future for PolledWait {
    type Output = io::Result<Waited>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<Waited>> {
        let this = self.get_mut();
        loop {
            match std::mem::replace(&mut this.step, Step::Done) {
                Step::Unlocking(conn, mut reply) => {
                    let Poll::Ready(unlocked) = read(&conn, &mut reply, cx) else {
                        this.step = Step::Unlocking(conn, reply);
                        return Poll::Pending;
                    };
                    this.step = this.after_unlock(conn, unlocked);
                }
                Step::Waiting(conn, mut reply) => {
                    let Poll::Ready(answer) = read(&conn, &mut reply, cx) else {
                        this.step = Step::Waiting(conn, reply);
                        return Poll::Pending;
                    };
                    conn.turn().give();
                    match answer.and_then(|row| granted_token(this.mode, &row)) {
                        Ok(token) => {
                            let session = Session::Own(conn);
                            let (server, options) = (&this.server, &this.options);
                            // A hold that cannot be reported (the name's row
                            // gone) is released as it is dropped.
                            let hold =
                                Hold::taken(server, session, this.mode, this.key, token, options);
                            return Poll::Ready(hold.map(|hold| Waited::Locked(Box::new(hold))));
                        }
                        // Cancelled by someone, a deadlock report, the
                        // session ending: it may have been granted all the
                        // same.
                        Err(e) => {
                            let server = Arc::clone(&this.server);
                            let task = blocking::unblock(move || {
                                clean_up(&server, conn);
                                Err(e)
                            });
                            this.step = Step::Pool(task, None);
                        }
                    }
                }
                Step::Pool(mut task, abandon) => {
                    let polled = Pin::new(&mut task).poll(cx);
                    if polled.is_pending() {
                        this.step = Step::Pool(task, abandon);
                    }
                    return polled;
                }
                Step::Done => {
                    return Poll::Ready(Err(io::Error::other(
                        "a polled wait was polled after it ended",
                    )))
                }
            }
        }
    }
}

impl Drop for PolledWait {
    /// Abandoned mid-wait (the acquisition was dropped or timed out): a
    /// pool thread cancels the statement until it ends, then releases
    /// whatever the session holds and gives it back. A wait on the pool is
    /// told to give up; an unlock's reply is read there.
    fn drop(&mut self) {
        match std::mem::replace(&mut self.step, Step::Done) {
            Step::Unlocking(conn, reply) => {
                conn.turn().give();
                let server = Arc::clone(&self.server);
                blocking::unblock(move || {
                    let clean = unlocked_cleanly(conn.run(reply));
                    if let (true, Ok(own)) = (clean, Arc::try_unwrap(conn)) {
                        server.give_back(own);
                    }
                })
                .detach();
            }
            Step::Waiting(conn, mut reply) => {
                conn.turn().give();
                let server = Arc::clone(&self.server);
                blocking::unblock(move || {
                    // A cancel that could not be sent leaves the statement
                    // to end by itself: granted, or with the session.
                    let _ = conn.run(cancel_until_ended(&conn, Pin::new(&mut reply)));
                    clean_up(&server, conn);
                })
                .detach();
            }
            // Dropping the signal tells the pool's wait to give up.
            Step::Pool(task, abandon) => {
                drop(abandon);
                task.detach();
            }
            Step::Done => {}
        }
    }
}
