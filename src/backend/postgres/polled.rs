//! A first attempt made by polling on the caller's task
//! (`Resource::attempt_polled`): the attempt's statement leaves from the
//! caller's thread and its reply is read as the caller's task is polled,
//! so an uncontended `lock().await` costs the round trip and no wake-up of
//! another thread. The session's turn is kept from the statement's sending
//! to its reply, so no other call drives the session meanwhile.
//!
//! Whatever would block the caller's thread goes to the pool instead, as
//! the whole attempt did before: a session to open or to wait for, a
//! session another call is using, a statement not prepared on it yet, the
//! clean-up of a failed attempt.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};

use super::conn::{Conn, Reply};
use super::pool::Session;
use super::{
    attempt, discard, lock_call, outcome_of, session_after, sql, unlocked_cleanly, Hold, Holder,
    PgServer, Release,
};
use crate::engine::Polled;
use crate::mode::LockMode;
use crate::options::LockOptions;

/// One polled attempt at a lock.
pub(super) struct PolledTry {
    server: Arc<PgServer>,
    mode: LockMode,
    key: i64,
    id: i32,
    options: LockOptions,
    step: Step,
}

#[allow(
    clippy::large_enum_variant,
    reason = "one per attempt in flight, moved between steps"
)]
enum Step {
    /// The last release's unlock, whose reply is read first, on the
    /// session the attempt then uses: statements on one session run in
    /// order, so the attempt never overtakes its own process's release.
    /// The session's turn is kept.
    Unlocking(Arc<Conn>, Reply),
    /// The attempt's statement is on the wire. The session's turn is kept.
    Asking(Session, Reply),
    /// The rest of the attempt, on the pool.
    Pool(blocking::Task<io::Result<Polled>>),
    Done,
}

impl PolledTry {
    /// Starts an attempt: on the last release's session if its unlock is
    /// in flight, else on the session of the last hold, else on one the
    /// pool has at hand; the statement is sent before this returns where
    /// nothing has to wait.
    pub(super) fn start(
        server: Arc<PgServer>,
        mode: LockMode,
        (key, id): (i64, i32),
        options: LockOptions,
        releasing: Option<Release>,
        last: Weak<Conn>,
    ) -> PolledTry {
        let mut attempt = PolledTry {
            server,
            mode,
            key,
            id,
            options,
            step: Step::Done,
        };
        attempt.step = attempt.first_step(releasing, last);
        attempt
    }

    fn first_step(&self, releasing: Option<Release>, last: Weak<Conn>) -> Step {
        if let Some(release) = releasing {
            return match release.unlocking_now() {
                Ok((conn, reply)) => Step::Unlocking(conn, reply),
                Err(release) => self.on_pool(Some(release), last),
            };
        }
        if let Some(conn) = last.upgrade().filter(|conn| !conn.is_closed()) {
            if conn.turn().try_keep() {
                return self.ask(Session::Shared(conn));
            }
            return self.on_pool(None, Arc::downgrade(&conn));
        }
        match self.server.pool.shared_now() {
            Some(session) if session.turn().try_keep() => self.ask(session),
            Some(session) => {
                self.server.pool.done(session);
                self.on_pool(None, Weak::new())
            }
            None => self.on_pool(None, Weak::new()),
        }
    }

    /// Sends the attempt's statement on `session`, whose turn is kept.
    fn ask(&self, session: Session) -> Step {
        let statements = (self.server.sql.try_exclusive.as_str(), sql::TRY_SHARED);
        let (statement, params) =
            lock_call(self.mode, statements, (self.key, self.id), &self.options);
        match session.send(statement, params) {
            Some(reply) => Step::Asking(session, reply),
            // Not prepared on this session yet: that is a round trip more.
            None => {
                session.turn().give();
                let (server, options) = (Arc::clone(&self.server), self.options.clone());
                let (mode, key, id) = (self.mode, self.key, self.id);
                Step::Pool(blocking::unblock(move || {
                    attempt_on(&server, session, mode, (key, id), &options)
                }))
            }
        }
    }

    /// The whole attempt on the pool: a session found as a blocking
    /// attempt finds one (after `releasing`'s unlock, or on `last`).
    fn on_pool(&self, releasing: Option<Release>, last: Weak<Conn>) -> Step {
        let (server, options) = (Arc::clone(&self.server), self.options.clone());
        let (mode, key, id) = (self.mode, self.key, self.id);
        Step::Pool(blocking::unblock(move || {
            let session = session_after(&server, releasing, &Mutex::new(last))?;
            attempt_on(&server, session, mode, (key, id), &options)
        }))
    }
}

impl Future for PolledTry {
    type Output = io::Result<Polled>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<Polled>> {
        let this = self.get_mut();
        loop {
            match std::mem::replace(&mut this.step, Step::Done) {
                Step::Unlocking(conn, mut reply) => {
                    let Poll::Ready(unlocked) = read(&conn, &mut reply, cx) else {
                        this.step = Step::Unlocking(conn, reply);
                        return Poll::Pending;
                    };
                    if unlocked_cleanly(unlocked) {
                        this.step = this.ask(Session::Shared(conn));
                    } else {
                        // The session lost its hold or failed: let it go (it
                        // closes once nothing else shares it).
                        conn.turn().give();
                        drop(conn);
                        this.step = this.on_pool(None, Weak::new());
                    }
                }
                Step::Asking(session, mut reply) => {
                    let Poll::Ready(answer) = read(&session, &mut reply, cx) else {
                        this.step = Step::Asking(session, reply);
                        return Poll::Pending;
                    };
                    session.turn().give();
                    let result = answer.and_then(|row| outcome_of(this.mode, &row));
                    match conclude(
                        &this.server,
                        session,
                        this.mode,
                        this.key,
                        &this.options,
                        result,
                    ) {
                        Concluded::Done(out) => return Poll::Ready(out),
                        // Cleaning the session up is a round trip, made
                        // before the attempt ends (and its turn with it).
                        Concluded::Discard(session, e) => {
                            let server = Arc::clone(&this.server);
                            let (mode, key) = (this.mode, this.key);
                            this.step = Step::Pool(blocking::unblock(move || {
                                discard(&server, session, mode, key);
                                Err(e)
                            }));
                        }
                    }
                }
                Step::Pool(mut task) => {
                    let Poll::Ready(out) = Pin::new(&mut task).poll(cx) else {
                        this.step = Step::Pool(task);
                        return Poll::Pending;
                    };
                    return Poll::Ready(out);
                }
                Step::Done => {
                    return Poll::Ready(Err(io::Error::other(
                        "a polled attempt was polled after it ended",
                    )))
                }
            }
        }
    }
}

impl Drop for PolledTry {
    /// The engine polls an attempt to its end; should one be dropped with
    /// its statement in flight all the same, the reply is read on the pool
    /// and a lock it took released.
    fn drop(&mut self) {
        match std::mem::replace(&mut self.step, Step::Done) {
            Step::Unlocking(conn, reply) => {
                conn.turn().give();
                blocking::unblock(move || drop(conn.run(reply))).detach();
            }
            Step::Asking(session, reply) => {
                session.turn().give();
                let (server, options) = (Arc::clone(&self.server), self.options.clone());
                let (mode, key) = (self.mode, self.key);
                blocking::unblock(move || {
                    let answer = session.run(reply);
                    let result = answer.and_then(|row| outcome_of(mode, &row));
                    // A hold it took is released as it is dropped.
                    match conclude(&server, session, mode, key, &options, result) {
                        Concluded::Done(_) => {}
                        Concluded::Discard(session, _) => discard(&server, session, mode, key),
                    }
                })
                .detach();
            }
            Step::Pool(task) => task.detach(),
            Step::Done => {}
        }
    }
}

/// Polls a statement's reply, driving the session's protocol (whose turn
/// the caller keeps) with the task's context.
pub(super) fn read(
    conn: &Conn,
    reply: &mut Reply,
    cx: &mut Context<'_>,
) -> Poll<io::Result<tokio_postgres::Row>> {
    if let Poll::Ready(answer) = reply.as_mut().poll(cx) {
        return Poll::Ready(answer);
    }
    conn.drive(cx);
    reply.as_mut().poll(cx)
}

/// An attempt on `session`, run to its end on this (pool) thread.
fn attempt_on(
    server: &Arc<PgServer>,
    session: Session,
    mode: LockMode,
    (key, id): (i64, i32),
    options: &LockOptions,
) -> io::Result<Polled> {
    let holder = Holder::of(options);
    let result = session.run(attempt(server, &session, mode, key, id, &holder));
    match conclude(server, session, mode, key, options, result) {
        Concluded::Done(out) => out,
        Concluded::Discard(session, e) => {
            discard(server, session, mode, key);
            Err(e)
        }
    }
}

/// What an attempt's answer comes to.
#[allow(
    clippy::large_enum_variant,
    reason = "one lives on the stack for the length of a call"
)]
enum Concluded {
    Done(io::Result<Polled>),
    /// The attempt failed on `Session`, which may hold the lock: clean it
    /// up ([`discard`]), then report the error.
    Discard(Session, io::Error),
}

/// What an attempt's answer (whether it took the lock, an exclusive
/// hold's token) comes to, without blocking: a lock taken is a [`Hold`]
/// (which releases if dropped uncommitted), a session that found it busy
/// goes back to the pool.
fn conclude(
    server: &Arc<PgServer>,
    session: Session,
    mode: LockMode,
    key: i64,
    options: &LockOptions,
    result: io::Result<(bool, Option<i64>)>,
) -> Concluded {
    match result {
        Ok((true, token)) => Concluded::Done(
            Hold::taken(server, session, mode, key, token, options)
                .map(|hold| Polled::Locked(Box::new(hold))),
        ),
        Ok((false, _)) => {
            server.pool.done(session);
            Concluded::Done(Ok(Polled::Busy))
        }
        Err(e) => Concluded::Discard(session, e),
    }
}
