//! A wait in the server polled on the caller's task
//! (`Resource::wait_polled`): the lock statement leaves from the caller's
//! thread on a waiting session of its own, and the grant is read as the
//! caller's task is polled. An executor whose thread runs the reactor
//! itself (`async_io::block_on`, smol) then hears the grant on the thread
//! that goes on with the lock, where a wait on the pool hears it on a pool
//! thread, which must then wake the task.
//!
//! It starts only where nothing has to wait: an idle session, prepared
//! already, and a free place among the waiting sessions. Otherwise the
//! wait runs on the pool as before (`wait_in_server`), which opens
//! sessions, prepares statements and tries on a shared session when the
//! waits have no place left.
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

use super::conn::{Conn, Owned, Reply};
use super::polled::read;
use super::pool::Session;
use super::{cancel_until_ended, clean_up, granted_token, sql, Hold, Holder, PgServer};
use crate::engine::Waited;
use crate::mode::LockMode;
use crate::options::LockOptions;

/// One wait in the server, polled.
pub(super) struct PolledWait {
    server: Arc<PgServer>,
    mode: LockMode,
    key: i64,
    options: LockOptions,
    step: Step,
}

#[allow(
    clippy::large_enum_variant,
    reason = "one per wait, boxed with it; the session is moved on, not copied"
)]
enum Step {
    /// The lock statement is on the wire. The session's turn is kept.
    Waiting(Conn, Reply),
    /// The statement failed: the session is cleaned up on the pool before
    /// the error is reported (it may have been granted the lock).
    CleaningUp(blocking::Task<io::Result<Waited>>),
    Done,
}

impl PolledWait {
    /// Sends the wait's statement on `conn`, an idle session that took a
    /// place among the waiting sessions. `None` (and the session back to
    /// the pool) where that cannot be done without waiting: the statement
    /// not prepared on it yet, or its turn taken.
    pub(super) fn start(
        server: Arc<PgServer>,
        conn: Conn,
        mode: LockMode,
        (key, id): (i64, i32),
        options: LockOptions,
    ) -> Option<PolledWait> {
        if !conn.turn().try_keep() {
            server.pool.give_back(conn);
            return None;
        }
        let (statement, params): (&str, Vec<Owned>) = match mode {
            LockMode::Exclusive => (
                &server.sql.wait_exclusive,
                Holder::of(&options).owned(key, id),
            ),
            LockMode::Shared => (sql::WAIT_SHARED, vec![Box::new(key)]),
        };
        let Some(reply) = conn.send(statement, params) else {
            conn.turn().give();
            server.pool.give_back(conn);
            return None;
        };
        Some(PolledWait {
            server,
            mode,
            key,
            options,
            step: Step::Waiting(conn, reply),
        })
    }
}

impl Future for PolledWait {
    type Output = io::Result<Waited>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<Waited>> {
        let this = self.get_mut();
        match std::mem::replace(&mut this.step, Step::Done) {
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
                        Poll::Ready(hold.map(|hold| Waited::Locked(Box::new(hold))))
                    }
                    // Cancelled by someone, a deadlock report, the session
                    // ending: it may have been granted all the same.
                    Err(e) => {
                        let server = Arc::clone(&this.server);
                        let mut task = blocking::unblock(move || {
                            clean_up(&server, conn);
                            Err(e)
                        });
                        let polled = Pin::new(&mut task).poll(cx);
                        if polled.is_pending() {
                            this.step = Step::CleaningUp(task);
                        }
                        polled
                    }
                }
            }
            Step::CleaningUp(mut task) => {
                let polled = Pin::new(&mut task).poll(cx);
                if polled.is_pending() {
                    this.step = Step::CleaningUp(task);
                }
                polled
            }
            Step::Done => Poll::Ready(Err(io::Error::other(
                "a polled wait was polled after it ended",
            ))),
        }
    }
}

impl Drop for PolledWait {
    /// Abandoned mid-wait (the acquisition was dropped or timed out): a
    /// pool thread cancels the statement until it ends, then releases
    /// whatever the session holds and gives it back.
    fn drop(&mut self) {
        match std::mem::replace(&mut self.step, Step::Done) {
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
            Step::CleaningUp(task) => task.detach(),
            Step::Done => {}
        }
    }
}
