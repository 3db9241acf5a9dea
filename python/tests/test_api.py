"""lockyard's own API from Python: holders, tokens, shared holds, leases,
LockDir, run-once, fork, asyncio, PostgreSQL. Every cross-process claim is
checked with real processes."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

import lockyard
from lockyard import Lock, LockDir, LockLost, LockTimeout, LockyardError, WouldBlock

HOLD = """
    import sys, lockyard
    lock = lockyard.Lock(sys.argv[1], owner=sys.argv[2], soft=sys.argv[3] == "soft")
    with lock.acquire(timeout=20) as guard:
        print("held", guard.token, flush=True)
        sys.stdin.readline()
    print("released", flush=True)
"""


@pytest.mark.parametrize("soft", ["os", "soft"])
def test_a_busy_lock_names_its_holder_and_tokens_go_up(tmp: Path, child, soft: str) -> None:
    path = tmp / "state.lock"
    holder = child(HOLD, path, "nightly", soft)
    first = int(holder.expect("held").split()[1])
    lock = Lock(path, soft=soft == "soft")

    seen = lock.holder()
    assert seen is not None
    assert (seen.pid, seen.owner, seen.token, seen.mode) == (holder.pid, "nightly", first, "exclusive")
    assert seen.kind == ("soft" if soft == "soft" else "strict")
    assert abs(seen.acquired_at - time.time()) < 60

    with pytest.raises(WouldBlock) as busy:
        lock.try_acquire()
    e = busy.value
    assert isinstance(e, LockyardError) and isinstance(e, OSError)
    assert e.kind == "would_block" and e.lock == str(path)
    assert e.holder is not None and e.holder.pid == holder.pid and e.holder.owner == "nightly"
    assert str(path) in str(e)

    with pytest.raises(LockTimeout) as late:
        lock.acquire(timeout=0.3)
    assert isinstance(late.value, TimeoutError)
    assert late.value.kind == "timed_out" and late.value.waited >= 0.25
    assert late.value.holder.pid == holder.pid

    holder.say()
    holder.expect("released")
    with lock.acquire(timeout=10) as guard:
        assert guard.token > first
        assert guard.holder.pid == os.getpid()
        mine = guard.token
    again = child(HOLD, path, "next", soft)
    assert int(again.expect("held").split()[1]) > mine
    again.say()
    assert again.finish() == 0


SHARED = """
    import sys, lockyard
    with lockyard.Lock(sys.argv[1]).acquire(timeout=20, shared=True) as guard:
        print("shared", guard.mode, flush=True)
        sys.stdin.readline()
"""


def test_shared_holds_coexist_and_keep_out_an_exclusive_one(tmp: Path, child) -> None:
    path = tmp / "cache.lock"
    reader = child(SHARED, path)
    assert reader.expect("shared").split()[1] == "shared"
    lock = Lock(path)
    with lock.acquire(timeout=5, shared=True) as mine:
        assert mine.mode == "shared" and mine.token is None
    with pytest.raises(WouldBlock):
        lock.try_acquire()
    reader.say()
    assert reader.finish() == 0
    with lock.acquire(timeout=5) as guard:
        assert guard.mode == "exclusive"


def test_a_lease_taken_over_tells_the_old_holder_it_is_lost(tmp: Path, child) -> None:
    path = tmp / "job.lock"
    lock = Lock(path, soft=True, lease=0.5)
    guard = lock.acquire(timeout=5)
    assert guard.holder.ttl == pytest.approx(0.5)
    assert guard.still_held()
    # Not renewed: another process takes it once the lease lapses.
    taker = child(
        """
        import sys, lockyard
        with lockyard.Lock(sys.argv[1], soft=True, lease=30).acquire(timeout=20) as g:
            print("took", g.token, flush=True)
            sys.stdin.readline()
        """,
        path,
    )
    took = int(taker.expect("took").split()[1])
    assert took > guard.token
    assert not guard.still_held()
    with pytest.raises(LockLost) as lost:
        guard.refresh()
    assert lost.value.kind == "lost" and lost.value.lock == str(path)
    with pytest.raises(LockLost):
        guard.release()
    taker.say()
    assert taker.finish() == 0


KEEP_ALIVE = """
    import sys, time, lockyard
    lock = lockyard.Lock(sys.argv[1], soft=True, lease=0.6)
    guard = lock.acquire(timeout=20)
    guard.keep_alive()
    print("held", guard.token, flush=True)
    sys.stdin.readline()
    try:
        guard.check()
        print("still held", guard.still_held(), flush=True)
    except lockyard.LockLost as e:
        print("lost", e.kind, flush=True)
"""


def test_keep_alive_holds_a_lease_past_its_length_and_check_reports_a_loss(tmp: Path, child) -> None:
    path = tmp / "lease.lock"
    holder = child(KEEP_ALIVE, path)
    holder.expect("held")
    time.sleep(2.0)  # over three leases
    with pytest.raises(WouldBlock):
        Lock(path, soft=True).try_acquire()
    holder.say()
    assert holder.expect("still held") == "still held True"
    assert holder.finish() == 0

    # Stopped, the holder cannot renew: the lease lapses, another process
    # takes over, and the holder's check() says so when it runs again.
    holder = child(KEEP_ALIVE, path)
    token = int(holder.expect("held").split()[1])
    os.kill(holder.pid, signal.SIGSTOP)
    try:
        with Lock(path, soft=True, lease=30).acquire(timeout=10) as taken:
            assert taken.token > token
            os.kill(holder.pid, signal.SIGCONT)
            time.sleep(0.5)  # a renewal attempt, refused
            holder.say()
            assert holder.expect("lost") == "lost lost"
    finally:
        os.kill(holder.pid, signal.SIGCONT)
    assert holder.finish() == 0


def test_lock_dir_names_lists_and_cleans_only_what_is_stale(tmp: Path, child) -> None:
    locks = LockDir(tmp / "locks", soft=True, owner="py")
    name = "deploy/prod: eu-west"
    live = child(
        """
        import sys, lockyard
        with lockyard.LockDir(sys.argv[1], soft=True).lock(sys.argv[2]).acquire(timeout=20):
            print("held", flush=True)
            sys.stdin.readline()
        """,
        tmp / "locks",
        "live",
    )
    live.expect("held")
    dead = child(
        """
        import sys, lockyard
        g = lockyard.LockDir(sys.argv[1], soft=True).lock(sys.argv[2]).acquire(timeout=20)
        print("held", flush=True)
        sys.stdin.readline()
        """,
        tmp / "locks",
        "dead",
    )
    dead.expect("held")
    dead.kill()  # SIGKILL: its lock file stays, its holder is gone
    with locks.lock(name).acquire(timeout=5) as guard:
        assert guard.holder.owner == "py"
        listed = {info.name: info for info in locks.list()}
        assert set(listed) == {name, "live", "dead"}
        assert listed[name].is_held and listed[name].holder.pid == os.getpid()
        assert listed["live"].is_held and listed["live"].holder.pid == live.pid
        assert listed["dead"].state == "stale"
    removed = locks.clean_stale()
    assert [p.name for p in map(Path, removed)] == [Path(locks.lock("dead").path).name]
    assert {info.name for info in locks.list()} >= {"live"}
    with pytest.raises(WouldBlock):
        locks.lock("live").try_acquire()
    with pytest.raises(LockyardError) as bad:
        locks.lock("")
    assert bad.value.kind == "invalid_path"
    live.say()
    assert live.finish() == 0


ONCE = """
    import sys, time, lockyard
    def download():
        with open(sys.argv[2], "a") as log:
            log.write("ran\\n")
        time.sleep(0.3)
        return "llvm-18"
    print("outcome", *lockyard.once(sys.argv[1], download, key=sys.argv[3]), flush=True)
"""


def test_once_runs_the_work_in_one_process_and_again_for_a_new_key(tmp: Path, child) -> None:
    marker, log = tmp / "toolchain" / "llvm.installed", tmp / "runs.log"
    racers = [child(ONCE, marker, log, "v1") for _ in range(5)]
    outcomes = sorted(r.expect("outcome") for r in racers)
    assert outcomes == ["outcome False None"] * 4 + ["outcome True llvm-18"]
    assert log.read_text() == "ran\n"
    assert lockyard.once(marker, lambda: pytest.fail("ran twice"), key="v1") == (False, None)
    assert lockyard.once(marker, lambda: 7, key="v2") == (True, 7)


def test_once_records_nothing_when_the_work_raises(tmp: Path) -> None:
    marker = tmp / "built"

    def fail() -> None:
        raise RuntimeError("network down")

    with pytest.raises(RuntimeError, match="network down"):
        lockyard.once(marker, fail)
    assert lockyard.once(marker, lambda: "built") == (True, "built")


FORK = """
    import os, sys, lockyard
    from lockyard.filelock import FileLock
    # Forked before any use: the child is an ordinary process.
    early = os.fork()
    if early == 0:
        with lockyard.Lock(sys.argv[3]).acquire(timeout=5) as g:
            ok = g.is_held
        os._exit(0 if ok else 1)
    _, status = os.waitpid(early, 0)
    print("early child", os.waitstatus_to_exitcode(status), flush=True)

    lock, flock = lockyard.Lock(sys.argv[1]), FileLock(sys.argv[2])
    guard = lock.acquire(timeout=5)
    flock.acquire(timeout=5)
    pid = os.fork()
    if pid == 0:
        # The child: the copies are not its holds, releasing them does
        # nothing to the parent's locks, and lockyard refuses to run.
        ok = not guard.is_held and not flock.is_locked
        guard.release()
        flock.release()
        del guard, flock
        import gc; gc.collect()
        for attempt in (
            lambda: lockyard.Lock(sys.argv[1]).try_acquire(),
            lambda: FileLock(sys.argv[2]).acquire(timeout=1),
            lambda: lock.holder(),
        ):
            try:
                attempt()
                ok = False
            except lockyard.LockyardError as e:
                ok = ok and e.kind == "unsupported" and "forked" in str(e)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    print("late child", os.waitstatus_to_exitcode(status), guard.is_held, flock.is_locked, flush=True)
    sys.stdin.readline()
    guard.release()
    flock.release()
"""


def test_a_process_forked_while_holding_neither_holds_nor_releases_it(tmp: Path, child) -> None:
    a, b = tmp / "a.lock", tmp / "b.lock"
    parent = child(FORK, a, b, tmp / "early.lock")
    assert parent.expect("early child") == "early child 0"
    assert parent.expect("late child") == "late child 0 True True"
    # The child is gone, having dropped its copies: the parent holds both.
    for path in (a, b):
        with pytest.raises(WouldBlock):
            Lock(path).try_acquire()
    parent.say()
    assert parent.finish() == 0
    for path in (a, b):
        with Lock(path).acquire(timeout=5):
            pass


RELAY = """
    import sys, lockyard
    lock = lockyard.Lock(sys.argv[1])
    for _ in range(int(sys.argv[2])):
        guard = lock.acquire(timeout=20)
        print("held", flush=True)
        sys.stdin.readline()
        guard.release()
        sys.stdin.readline()  # the other side took it and let go
"""


def test_an_asyncio_wait_is_woken_by_the_release_not_by_a_poll(tmp: Path, child) -> None:
    path = tmp / "aio.lock"
    rounds = 15
    holder = child(RELAY, path, rounds)
    lock = Lock(path)

    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        woke = []
        for _ in range(rounds):
            await loop.run_in_executor(None, holder.expect, "held")
            waiting = asyncio.ensure_future(lock.acquire_async(timeout=20))
            # Long enough for the wait's retry timer to have backed off to
            # its longest (50 ms): a wake-up sooner than that is the event.
            await asyncio.sleep(0.3)
            assert not waiting.done()
            released = time.monotonic()
            holder.say()
            guard = await waiting
            woke.append(time.monotonic() - released)
            guard.release()
            holder.say()
        return sorted(woke)

    woke = asyncio.run(main())
    median = woke[len(woke) // 2]
    # Retries alone would wake it 25 ms after the release on average (the
    # timer at 50 ms); the file event wakes it in well under a millisecond
    # plus the holder's own wake-up and release.
    assert median < 0.010, f"median wake-up {median * 1000:.1f} ms after the release: {woke}"
    assert holder.finish() == 0


CANCEL = """
    import asyncio, random, sys, lockyard
    lock = lockyard.Lock(sys.argv[1])
    async def main():
        # Waits cancelled at random moments, while the lock is passed
        # back and forth with the parent: each either got it (and released
        # it) or left nothing behind.
        got = 0
        for i in range(int(sys.argv[2])):
            try:
                async with asyncio.timeout(random.uniform(0.0, 0.01)):
                    async with lock.acquire_async() as g:
                        got += 1
            except TimeoutError:
                pass
        async def wait_in_group():
            async with asyncio.TaskGroup() as tg:
                tg.create_task(lock.acquire_async())
                tg.create_task(asyncio.sleep(0.05))
                raise RuntimeError("cancel the group")
        try:
            await wait_in_group()
        except* RuntimeError:
            pass
        print("done", got, flush=True)
    asyncio.run(main())
    sys.stdin.readline()
"""


@pytest.mark.skipif(not hasattr(asyncio, "timeout"), reason="asyncio.timeout needs Python 3.11")
def test_cancelled_asyncio_waits_leave_nothing_held(tmp: Path, child) -> None:
    path = tmp / "cancel.lock"
    canceller = child(CANCEL, path, 300)
    lock = Lock(path)
    deadline = time.monotonic() + 60
    held = 0
    while time.monotonic() < deadline:
        with lock.acquire(timeout=20):
            held += 1
            time.sleep(0.002)
        if canceller.process.poll() is not None:
            break
        try:
            if held > 20:
                line = canceller.expect("done", timeout=0.001)
                break
        except BaseException:  # noqa: BLE001 (not done yet)
            continue
    else:
        pytest.fail("the cancelling process did not finish in 60 s")
    # The waits are over and the process is alive: nothing of them holds it.
    with lock.acquire(timeout=5):
        pass
    checker = child(HOLD, path, "checker", "os")
    checker.expect("held")
    checker.say()
    canceller.say()
    assert checker.finish() == 0
    assert canceller.finish() == 0
    assert line.startswith("done")


PG = os.environ.get("LOCKYARD_TEST_POSTGRES")
needs_pg = pytest.mark.skipif(
    not PG and not os.environ.get("LOCKYARD_REQUIRE_POSTGRES"),
    reason="LOCKYARD_TEST_POSTGRES is not set (a postgres:// URL of a test server)",
)


@needs_pg
def test_postgres_locks_with_holder_and_tokens(child) -> None:
    assert PG, "LOCKYARD_REQUIRE_POSTGRES is set but LOCKYARD_TEST_POSTGRES is not"
    assert "postgres" in lockyard.FEATURES, "built without the postgres feature"
    name = f"py-{os.getpid()}-{time.monotonic_ns()}"
    holder = child(
        """
        import sys, lockyard
        lock = lockyard.PgLocks(sys.argv[1], owner="worker").lock(sys.argv[2])
        with lock.acquire(timeout=20) as g:
            print("held", g.token, flush=True)
            sys.stdin.readline()
        """,
        PG,
        name,
    )
    token = int(holder.expect("held").split()[1])
    lock = lockyard.PgLocks(PG).lock(name)
    with pytest.raises(WouldBlock) as busy:
        lock.try_acquire()
    assert busy.value.holder is not None and busy.value.holder.owner == "worker"
    assert name in str(busy.value)
    assert lock.holder().pid == holder.pid
    listed = [i for i in lockyard.PgLocks(PG).list() if i.name == name]
    assert len(listed) == 1 and listed[0].is_held and listed[0].holder.owner == "worker"

    async def wait() -> int:
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, holder.say)
        async with lock.acquire_async(timeout=20) as g:
            return g.token

    assert asyncio.run(wait()) > token
    assert holder.finish() == 0
    # list() shows held locks: none of this name now.
    assert not [i for i in lockyard.PgLocks(PG).list() if i.name == name]


def test_bad_arguments_are_refused_with_the_reason(tmp: Path) -> None:
    with pytest.raises(ValueError, match="lease must be a positive number"):
        Lock(tmp / "x", lease=0)
    with pytest.raises(ValueError, match="timeout must be None"):
        Lock(tmp / "x").acquire(timeout=-1)
    guard = Lock(tmp / "x").acquire()
    guard.release()
    guard.release()  # twice is fine
    with pytest.raises(RuntimeError, match="was released"):
        guard.refresh()


STORES = [
    pytest.param("LOCKYARD_TEST_S3", "LOCKYARD_REQUIRE_S3", "s3", id="s3"),
    pytest.param("LOCKYARD_TEST_GCS", "LOCKYARD_REQUIRE_GCS", "gcs", id="gcs"),
    pytest.param("LOCKYARD_TEST_AZURE", "LOCKYARD_REQUIRE_AZURE", "azure", id="azure"),
]

OBJECT_HOLD = """
    import sys, lockyard
    lock = lockyard.ObjectLocks(sys.argv[1], owner="worker", lease=float(sys.argv[3])).lock(sys.argv[2])
    guard = lock.acquire(timeout=30)
    print("held", guard.token, flush=True)
    sys.stdin.readline()
    guard.release()
    print("released", flush=True)
"""


@pytest.mark.parametrize(("url_var", "require_var", "feature"), STORES)
def test_object_storage_locks_name_holders_raise_tokens_and_lose_leases(
    child, url_var: str, require_var: str, feature: str
) -> None:
    url = os.environ.get(url_var)
    if not url:
        if os.environ.get(require_var):
            pytest.fail(f"{require_var} is set but {url_var} is not")
        pytest.skip(f"{url_var} is not set (the URL of a test bucket, see .ci/{feature}-bed)")
    assert feature in lockyard.FEATURES, f"built without the {feature} feature"
    prefix = f"{url.rstrip('/')}/py-{os.getpid()}-{time.monotonic_ns()}"
    name = "deploy"
    holder = child(OBJECT_HOLD, prefix, name, 30)
    token = int(holder.expect("held").split()[1])
    lock = lockyard.ObjectLocks(prefix, owner="me", lease=1.0).lock(name)
    with pytest.raises(WouldBlock) as busy:
        lock.try_acquire()
    assert busy.value.holder.owner == "worker" and busy.value.holder.kind == "object"
    assert name in str(busy.value)
    holder.say()
    holder.expect("released")
    assert holder.finish() == 0

    # A 1 s lease, not renewed: another process takes it over once it lapses.
    guard = lock.acquire(timeout=30)
    assert guard.token > token
    started = time.monotonic()
    taker = child(OBJECT_HOLD, prefix, name, 30)
    taken = int(taker.expect("held", timeout=60).split()[1])
    assert time.monotonic() - started >= 0.9
    assert taken > guard.token
    assert not guard.still_held()
    with pytest.raises(LockLost):
        guard.release()
    taker.say()
    assert taker.finish() == 0
