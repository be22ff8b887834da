"""The JSONL and SQLite stores: append, duplicate ids, lookup, streaming, torn lines, concurrent writers."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from agentracer.errors import InputError
from agentracer.schema import SCHEMA_VERSION, Step, Trajectory, Verdict
from agentracer.store import DuplicateIdError, JsonlStore, SqliteStore, foreign_content, open_store


def make(trajectory_id: str, steps: int = 3) -> Trajectory:
    return Trajectory(
        id=trajectory_id, task=f"task {trajectory_id}", framework="python", created_at=1700000000.0,
        steps=[Step(index=i, agent=f"agent{i % 2}", content=f"{trajectory_id} says {i} — ünïcode") for i in range(steps)],
        labels=[Verdict(agent="agent1", step=1, reason="wrong", source="counterfactual")] if steps > 1 else [],
    )


@pytest.fixture(params=["jsonl", "db"])
def store_path(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return tmp_path / f"store.{request.param}"


def test_open_store_picks_the_backend_by_suffix(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path / "a.jsonl"), JsonlStore)
    assert isinstance(open_store(tmp_path / "a.db"), SqliteStore)
    assert isinstance(open_store(tmp_path / "a.sqlite"), SqliteStore)


@pytest.mark.parametrize("name", ["runs.json", "runs.JSON", "rows.parquet", "rows.pq"])
def test_a_name_read_as_another_format_is_no_store(tmp_path: Path, name: str) -> None:
    """``trace(store="runs.json")`` wrote JSON lines that ``validate``/``show`` then read as one JSON document."""
    with pytest.raises(InputError, match="name the store .jsonl") as info:
        open_store(tmp_path / name)
    assert str(tmp_path / name) in str(info.value)
    assert not (tmp_path / name).exists()


def test_a_store_an_earlier_version_wrote_under_a_json_name_still_opens(tmp_path: Path) -> None:
    JsonlStore(tmp_path / "runs.json").extend([make("a"), make("b")])  # (what trace(store="runs.json") wrote)
    assert [t.id for t in open_store(tmp_path / "runs.json")] == ["a", "b"]
    for text in (make("c").to_json(), make("c").to_json() + "\n"):  # (one trajectory: a trajectory file)
        (tmp_path / "one.json").write_text(text)
        with pytest.raises(InputError, match="name the store .jsonl"):
            open_store(tmp_path / "one.json")


@pytest.mark.parametrize("name", ["runs", "runs.db", "runs.jsonl"])
def test_a_folder_is_no_store(tmp_path: Path, name: str) -> None:
    """``trace(store="runs")`` on a folder was taken, and the first run's trajectory lost when it ended."""
    (tmp_path / name).mkdir()
    with pytest.raises(InputError, match="is a folder") as info:
        open_store(tmp_path / name)
    assert str(tmp_path / name) in str(info.value)


def test_append_get_iterate_in_order(store_path: Path) -> None:
    store = open_store(store_path)
    assert len(store) == 0 and list(store) == []
    originals = [make(f"t{i}") for i in range(5)]
    for trajectory in originals:
        store.append(trajectory)
    assert len(store) == 5
    assert "t3" in store and "nope" not in store
    assert store.get("t3") == originals[3]
    with pytest.raises(KeyError):
        store.get("nope")
    assert [t.id for t in store] == [f"t{i}" for i in range(5)]
    # a fresh handle on the same file sees the same records
    again = open_store(store_path)
    assert list(again) == originals
    assert again.get("t0") == originals[0]


def test_duplicate_id_is_an_error_and_stores_nothing_twice(store_path: Path) -> None:
    store = open_store(store_path)
    store.append(make("same"))
    with pytest.raises(DuplicateIdError) as info:
        store.append(make("same", steps=1))
    assert str(store_path) in str(info.value)
    with pytest.raises(DuplicateIdError):
        open_store(store_path).append(make("same"))  # a second handle knows it too
    assert len(open_store(store_path)) == 1
    assert len(open_store(store_path).get("same").steps) == 3


def test_a_batch_is_stored_whole_or_not_at_all(store_path: Path) -> None:
    store = open_store(store_path)
    store.append(make("a"))
    for batch in ([make("b"), make("c"), make("a")], [make("b"), make("c"), make("b")]):
        with pytest.raises(DuplicateIdError, match="nothing was stored"):
            store.extend(batch)
        assert [t.id for t in open_store(store_path)] == ["a"]
    assert store.extend([make("b"), make("c")]) == 2  # the retry without the repeated id goes in
    assert [t.id for t in open_store(store_path)] == ["a", "b", "c"]


def _label_on_no_step(trajectory: Trajectory) -> None:
    trajectory.labels.append(Verdict(agent="agent0", step=7, source="tracer"))


def _step_removed(trajectory: Trajectory) -> None:
    trajectory.steps.pop(0)


def _not_a_number(trajectory: Trajectory) -> None:
    trajectory.created_at = float("nan")


def _no_json_for_it(trajectory: Trajectory) -> None:
    trajectory.steps[0].content = object()


@pytest.mark.parametrize(("spoil", "message"), [
    (_label_on_no_step, "(labels[1].step 7 is outside the 3 steps)"), (_step_removed, "steps"),
    (_not_a_number, "created_at"), (_no_json_for_it, "does not convert to JSON"),
])
def test_a_trajectory_changed_into_one_that_would_not_read_back_is_refused(store_path: Path, spoil, message) -> None:
    """pydantic checks a model when it is built: one changed in place afterwards (a verdict appended to its labels)
    could be stored unreadable, counted by len and `in`, and its id taken for good."""
    store = open_store(store_path)
    spoilt = make("spoilt")
    spoil(spoilt)
    with pytest.raises(InputError, match="cannot be stored") as info:
        store.extend([make("fine"), spoilt])
    assert message in str(info.value) and "spoilt" in str(info.value)
    again = open_store(store_path)
    assert len(again) == 0 and "spoilt" not in again and list(again) == []
    store.append(make("spoilt"))  # its id is still free
    assert open_store(store_path).get("spoilt") == make("spoilt")


def test_iteration_streams(store_path: Path) -> None:
    """The first record comes back before the store is read to its end: a bad record near the end only
    raises when iteration reaches it."""
    store = open_store(store_path)
    store.extend(make(f"t{i}") for i in range(3))
    if store_path.suffix == ".jsonl":
        with store_path.open("a") as fh:
            fh.write('{"schema_version": "9.9", "id": "bad"}\n')
    else:
        with sqlite3.connect(store_path) as db:
            db.execute("INSERT INTO trajectories (id, data) VALUES ('bad', '{\"schema_version\": \"9.9\"}')")
    stream = iter(open_store(store_path))
    assert next(stream).id == "t0"
    assert next(stream).id == "t1"
    assert next(stream).id == "t2"
    with pytest.raises(InputError, match="schema_version"):
        next(stream)
    errors: list[InputError] = []
    assert [t.id for t in open_store(store_path).iter(errors=errors)] == ["t0", "t1", "t2"]
    assert len(errors) == 1 and str(store_path) in str(errors[0])


def test_torn_last_line_is_reported_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "torn.jsonl"
    store = JsonlStore(path)
    store.extend(make(f"t{i}") for i in range(2))
    whole = make("t2").model_dump_json()
    with path.open("a") as fh:
        fh.write(whole[: len(whole) // 2])  # a writer died mid-line
    errors: list[InputError] = []
    assert [t.id for t in JsonlStore(path).iter(errors=errors)] == ["t0", "t1"]
    assert len(errors) == 1
    message = str(errors[0])
    assert message.startswith(f"{path}:3: ") and "incomplete last line" in message
    # appending after a torn line keeps the new record whole
    JsonlStore(path).append(make("t3"))
    errors = []
    assert [t.id for t in JsonlStore(path).iter(errors=errors)] == ["t0", "t1", "t3"]
    assert len(errors) == 1 and f"{path}:3:" in str(errors[0]) and "a torn write" in str(errors[0])
    assert JsonlStore(path).get("t3") == make("t3")
    # the torn record was never stored: its id is free, and every view of the store agrees
    again = JsonlStore(path)
    assert "t2" not in again and len(again) == 3
    with pytest.raises(KeyError):
        again.get("t2")
    again.append(make("t2"))
    assert JsonlStore(path).get("t2") == make("t2") and len(JsonlStore(path)) == 4


def test_a_whole_last_record_written_without_its_newline_is_kept_and_seen_by_every_view(tmp_path: Path) -> None:
    """A file joined with "\n" by hand ends without one: its last record is whole, not a torn write."""
    path = tmp_path / "joined.jsonl"
    path.write_text("\n".join(make(i).model_dump_json() for i in ("r1", "r2")))
    store = JsonlStore(path)
    assert [t.id for t in store] == ["r1", "r2"] and "r2" in store and len(store) == 2 and store.get("r2") == make("r2")
    with pytest.raises(DuplicateIdError, match="r2 is already stored"):
        JsonlStore(path).append(make("r2"))
    JsonlStore(path).append(make("r3"))
    errors: list[InputError] = []
    assert [t.id for t in JsonlStore(path).iter(errors=errors)] == ["r1", "r2", "r3"] and errors == []
    assert path.read_text().count("\n") == 3 and "\x00" not in path.read_text()


def test_corrupt_sqlite_file_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    path.write_bytes(b"this is not sqlite" * 10)
    with pytest.raises(InputError, match="x.db"):
        SqliteStore(path)


def test_reading_a_store_that_does_not_exist_makes_nothing(store_path: Path) -> None:
    """``list(open_store("typo.db"))`` made typo.db, and the folders above it."""
    path = store_path.parent / "typo" / store_path.name
    store = open_store(path)
    assert list(store) == [] and len(store) == 0 and "a" not in store
    with pytest.raises(KeyError):
        store.get("a")
    assert not path.parent.exists()
    store.append(make("a"))  # the first append makes it
    assert [t.id for t in open_store(path)] == ["a"]


def test_reading_an_empty_database_file_leaves_it_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    assert list(SqliteStore(path)) == [] and len(SqliteStore(path)) == 0 and "a" not in SqliteStore(path)
    assert path.stat().st_size == 0


_READ_WITHOUT_WRITE_PERMISSION = """
import json, sys
from agentracer.errors import InputError
from agentracer.schema import Trajectory
from agentracer.store import SqliteStore
try:
    open(sys.argv[1], "r+b")
    print("SKIP"); sys.exit()  # (this process may write anywhere)
except PermissionError:
    pass
out = {}
for name in sys.argv[1:]:
    store = SqliteStore(name)
    try:
        store.append(Trajectory(id="new", steps=[]))
        refused = ""
    except InputError as exc:
        refused = str(exc)
    out[name] = [[t.id for t in store], len(store), "b" in store, store.get("b").id, refused]
print(json.dumps(out))
"""


def test_a_read_only_sqlite_store_reads(tmp_path: Path) -> None:
    """A store whose file or folder is read-only: opening it switched it to WAL mode and made its table, and reading
    failed with "attempt to write a readonly database" (a DELETE-journal file; a WAL one in a read-only folder)."""
    folder = tmp_path / "shelf"
    folder.mkdir()
    paths = [folder / "wal.db", tmp_path / "wal.db", tmp_path / "journal.db"]
    for path in paths:
        store = SqliteStore(path)
        store.extend([make("a"), make("b")])
        store.close()
    with sqlite3.connect(paths[2]) as db:
        db.execute("PRAGMA journal_mode=DELETE")
    before = {path: path.read_bytes() for path in paths}
    command = [sys.executable, "-c", _READ_WITHOUT_WRITE_PERMISSION, *map(str, paths)]
    if os.geteuid() == 0:  # (root writes anywhere: run the reader without the capabilities that let it)
        if shutil.which("setpriv") is None:
            pytest.skip("run as root, without setpriv to drop the capability to write read-only files")
        caps = "-dac_override,-dac_read_search,-fowner"
        command = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}", *command]
    for path in paths:
        path.chmod(0o444)
    folder.chmod(0o555)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    finally:
        folder.chmod(0o755)
    if done.stdout.strip() == "SKIP" or done.stderr.startswith("setpriv"):
        pytest.skip(f"cannot run a process that lacks write permission here ({done.stderr.strip()[:100]})")
    assert done.returncode == 0, done.stderr
    for path, (ids, count, found, got, refused) in json.loads(done.stdout).items():
        assert (ids, count, found, got) == (["a", "b"], 2, True, "b"), path
        assert "readonly" in refused and path in refused
    assert {path: path.read_bytes() for path in paths} == before


def test_an_id_that_is_not_text_is_in_no_store(store_path: Path) -> None:
    """SQLite took 123 for "123": ``123 in store`` was True for an SQLite store, False for a JSONL one."""
    store = open_store(store_path)
    store.append(make("123"))
    assert "123" in store and store.get("123").id == "123"
    for probe in (123, 123.0, b"123", None, ["123"]):
        assert probe not in store
        with pytest.raises(KeyError):
            store.get(probe)  # type: ignore[arg-type]


@pytest.mark.parametrize("held", ['{"history": [], "mistake_agent": "a"}\n',  # TracerTraj rows
                                  '{"id": "t1", "task": "sum 2 3"}\n',  # a tasks file
                                  '{"id": "x", "steps": ["a", "b"]}\n',  # another tool's plans (were a store)
                                  '{"id": 7, "steps": []}\n',
                                  "some notes\n"])
def test_a_jsonl_store_refuses_to_append_to_a_file_that_holds_something_else(tmp_path: Path, held: str) -> None:
    """``open_store(path).extend`` appended runs to any file: to TracerTraj rows, whose reader then met bad rows."""
    path = tmp_path / "other.jsonl"
    path.write_text(held)
    with pytest.raises(InputError, match="not trajectories"):
        open_store(path).append(make("a"))
    assert path.read_text() == held
    fresh = open_store(tmp_path / "runs.jsonl")  # (a new or a store's file: appended to as ever)
    fresh.append(make("a"))
    fresh.append(make("b"))
    assert len(open_store(tmp_path / "runs.jsonl")) == 2


def test_a_store_rewritten_with_its_keys_in_another_order_or_by_hand_is_still_appended_to(tmp_path: Path) -> None:
    import json

    record = json.loads(make("a", steps=2).to_json())
    for held in (json.dumps(record, sort_keys=True), json.dumps({"steps": record["steps"], "id": "a"}),
                 '{"id": "a", "steps": []}'):
        path = tmp_path / "runs.jsonl"
        path.write_text(held + "\n")
        open_store(path).append(make("b"))
        assert [t.id for t in open_store(path)] == ["a", "b"]


@pytest.mark.parametrize("name", ["runs.jsonl", "runs.db"])
def test_a_store_opened_by_a_relative_path_stays_where_it_was_opened(tmp_path: Path, name: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that changed folder (a toolkit that switches the working folder) split its runs into a new store
    there."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    store = open_store(name)
    store.append(make("r1"))
    monkeypatch.chdir(tmp_path / "b")
    store.append(make("r2"))
    assert len(store) == 2 and [t.id for t in store] == ["r1", "r2"] and not (tmp_path / "b" / name).exists()


def test_an_sqlite_store_refuses_to_write_into_another_programs_database(tmp_path: Path) -> None:
    """``open_store("app.db").append`` added a trajectories table to another program's database, and switched it to
    WAL for good."""
    app = tmp_path / "app.db"
    with contextlib.closing(sqlite3.connect(app)) as db:
        db.execute("CREATE TABLE users (name TEXT)")
        db.commit()
    with pytest.raises(InputError, match="another database .tables users., not trajectories"):
        open_store(app).append(make("a"))
    with contextlib.closing(sqlite3.connect(app)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    assert tables == {"users"} and mode == "delete"


def test_another_programs_table_named_trajectories_is_no_store(tmp_path: Path) -> None:
    """Taken for a store, such a database failed at the first append ("no column named id"), the run lost."""
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE trajectories (name TEXT, payload BLOB)")
    assert foreign_content(other) == "another database (its table trajectories has no column seq)"
    ours = tmp_path / "ours.db"
    open_store(ours).append(make("a"))
    assert foreign_content(ours) == ""


def test_a_store_being_written_is_a_store_and_another_programs_locked_database_is_not(tmp_path: Path) -> None:
    """A store (WAL mode) that a writer holds is still a store; another program's database in rollback mode, locked
    by its program, was taken for one (which tables it holds cannot be told) and then written into."""
    path = tmp_path / "s.db"
    store = SqliteStore(path)
    store.append(make("a"))
    store.close()
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO trajectories (id, data) VALUES ('x', '{}')")
        assert foreign_content(path) == ""
    finally:
        writer.close()
    app = tmp_path / "app.db"
    with contextlib.closing(sqlite3.connect(app)) as db:
        db.execute("CREATE TABLE users (name TEXT)")
        db.commit()
    holder = sqlite3.connect(app, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        assert foreign_content(app) == "a database another program holds locked"
    finally:
        holder.close()


def test_a_handle_never_keeps_an_immutable_snapshot(tmp_path: Path) -> None:
    """A store read as immutable (WAL, in a folder the reader cannot write) kept that connection: the handle never saw
    what a writer appended afterwards (``len`` 10 while ``iter`` gave 15)."""
    path = tmp_path / "runs.db"
    writer = SqliteStore(path)
    writer.extend([make("a"), make("b")])
    reader = SqliteStore(path)
    snapshot = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    reader._opened(snapshot, immutable=True)  # (what a read-only folder gives a reader that is not root)
    assert len(reader) == 2
    writer.append(make("c"))
    assert len(reader) == 3 and "c" in reader


def test_readers_in_threads_never_let_an_appended_id_in_twice(tmp_path: Path) -> None:
    """A reader that indexed the file afresh while another thread appended lost that append's id from the index:
    the same id was then accepted again."""
    store = JsonlStore(tmp_path / "s.jsonl")
    store.append(make("seed", steps=1))
    stop = threading.Event()

    def writer() -> None:
        for i in range(600):
            with contextlib.suppress(DuplicateIdError):
                store.append(make(f"r{i}", steps=1))

    def reader() -> None:
        while not stop.is_set():
            len(store)
            _ = "r5" in store

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # (threads switch often: the window is a few bytecodes wide)
    try:
        readers = [threading.Thread(target=reader) for _ in range(3)]
        writers = [threading.Thread(target=writer) for _ in range(3)]
        for thread in readers + writers:
            thread.start()
        for thread in writers:
            thread.join()
        stop.set()
        for thread in readers:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    ids = [json.loads(line)["id"] for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 601


def test_concurrent_appends_from_threads_lose_nothing(store_path: Path) -> None:
    store = open_store(store_path)
    per_thread, threads = 25, 8

    def writer(n: int) -> None:
        for i in range(per_thread):
            store.append(make(f"w{n}-{i}", steps=2))

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    ids = [t.id for t in open_store(store_path)]
    assert sorted(ids) == sorted(f"w{n}-{i}" for n in range(threads) for i in range(per_thread))
    assert len(store) == per_thread * threads


def _process_writer(path: str, prefix: str, count: int, barrier) -> None:  # noqa: ANN001 - mp barrier
    store = open_store(path)
    barrier.wait()
    for i in range(count):
        store.append(make(f"{prefix}-{i}", steps=4))


def test_concurrent_appends_from_two_processes_lose_nothing(store_path: Path) -> None:
    open_store(store_path).extend([])  # create it first so both processes open the same file
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    count = 60
    procs = [context.Process(target=_process_writer, args=(str(store_path), p, count, barrier)) for p in "ab"]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    errors: list[InputError] = []
    ids = [t.id for t in open_store(store_path).iter(errors=errors)]
    assert errors == []
    assert sorted(ids) == sorted(f"{p}-{i}" for p in "ab" for i in range(count))
    # the handle's index follows records another process appended
    assert len(open_store(store_path)) == 2 * count


def test_jsonl_handle_sees_appends_by_another_handle(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    first, second = JsonlStore(path), JsonlStore(path)
    first.append(make("a"))
    assert len(second) == 1
    second.append(make("b"))
    assert "b" in first and first.get("b") == make("b")
    with pytest.raises(DuplicateIdError):
        first.append(make("b"))


@pytest.mark.parametrize("renew", ["deleted", "replaced", "rewritten"])
def test_a_jsonl_handle_follows_its_file_made_anew(tmp_path: Path, renew: str) -> None:
    """A handle indexed the old file: once it was deleted, replaced or rewritten in place (a new file may get the
    inode number of the one deleted), the old ids were still found, ``get`` read another record, and an id the new
    file holds was appended again."""
    path = tmp_path / "s.jsonl"
    old = JsonlStore(path)
    old.extend([make("old1"), make("old2", steps=1)])
    assert len(old) == 2
    news = [make("new1", steps=1), make("new2", steps=1), make("new3", steps=1), make("new4"), make("new5")]
    if renew == "deleted":
        path.unlink()
        JsonlStore(path).extend(news)
    elif renew == "replaced":
        JsonlStore(tmp_path / "other.jsonl").extend(news)
        (tmp_path / "other.jsonl").replace(path)
    else:
        path.write_text("".join(t.model_dump_json() + "\n" for t in news))
    assert len(old) == 5 and "new1" in old and "old1" not in old
    with pytest.raises(KeyError):
        old.get("old1")
    assert old.get("new2") == news[1]
    with pytest.raises(DuplicateIdError):
        old.append(make("new1"))
    old.append(make("after"))
    assert [t.id for t in JsonlStore(path)] == [t.id for t in news] + ["after"]


def test_an_append_waiting_for_the_lock_goes_to_the_file_that_replaced_the_one_locked(tmp_path: Path) -> None:
    import fcntl
    import os
    import time

    path = tmp_path / "s.jsonl"
    JsonlStore(path).append(make("old"))
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # (another writer, in the middle of its record)
    late = threading.Thread(target=JsonlStore(path).append, args=(make("late"),))
    late.start()
    time.sleep(0.3)
    JsonlStore(tmp_path / "new.jsonl").append(make("new"))
    (tmp_path / "new.jsonl").replace(path)
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    late.join(timeout=10)
    assert [t.id for t in JsonlStore(path)] == ["new", "late"]


def test_a_sqlite_handle_follows_its_file_replaced(tmp_path: Path) -> None:
    """Another program moved a new database in (the old one's ``-wal``/``-shm`` deleted): the handle kept its
    connection to the file replaced, and what it appended went there, lost."""
    path = tmp_path / "s.db"
    live = SqliteStore(path)
    live.append(make("run1"))
    other = SqliteStore(tmp_path / "other.db")
    other.extend([make("imp1"), make("imp2")])
    other.close()
    for sidecar in ("-wal", "-shm"):
        path.with_name(path.name + sidecar).unlink(missing_ok=True)
    (tmp_path / "other.db").replace(path)
    assert len(live) == 2 and "run1" not in live
    live.append(make("run2"))
    assert [t.id for t in SqliteStore(path)] == ["imp1", "imp2", "run2"]
    path.unlink()  # (deleted: the store is empty, and the next append makes it anew)
    assert len(live) == 0
    live.append(make("run3"))
    assert [t.id for t in SqliteStore(path)] == ["run3"]


def test_get_never_answers_with_another_record(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    store = JsonlStore(path)
    store.extend([make("a"), make("b")])
    assert "b" in store
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[1] + lines[0])  # the same bytes, the records swapped: no length tells it
    assert store.get("a") == make("a") and store.get("b") == make("b")


def test_a_line_that_is_not_utf8_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    good = make("a").model_dump_json().encode()
    path.write_bytes(b"\xff\xfe" + good[2:] + b"\n" + good + b"\n")
    errors: list[InputError] = []
    assert [t.id for t in JsonlStore(path).iter(errors=errors)] == ["a"]
    assert len(errors) == 1 and "not valid UTF-8 (byte 0" in str(errors[0]) and "utf-16" not in str(errors[0])
    assert str(errors[0]).startswith(f"{path}:1")


def test_a_byte_order_mark_is_no_error(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + make("a").model_dump_json().encode() + b"\n")
    assert [t.id for t in JsonlStore(path)] == ["a"]


def _open_then_write(path: str, prefix: str, barrier) -> None:  # noqa: ANN001 - mp barrier
    barrier.wait()
    store = open_store(path)  # the first opener creates the file; the others open it while it writes
    for i in range(20):
        store.append(make(f"{prefix}-{i}", steps=2))


def test_processes_opening_a_new_sqlite_store_together_all_get_in(tmp_path: Path) -> None:
    """Switching a new database to WAL while others write failed at once with 'database is locked' (the busy
    timeout does not cover it): 8 of 20 such starts lost a writer."""
    context = multiprocessing.get_context("fork")
    for trial in range(8):
        path = tmp_path / f"fresh{trial}.db"
        barrier = context.Barrier(6)
        procs = [context.Process(target=_open_then_write, args=(str(path), f"w{w}", barrier)) for w in range(6)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(timeout=120)
        assert [proc.exitcode for proc in procs] == [0] * 6, f"trial {trial}"
        assert len(open_store(path)) == 6 * 20


def _big_writer(path: str, count: int) -> None:
    store = JsonlStore(path)
    for i in range(count):
        store.append(Trajectory(id=f"big{i}", steps=[Step(index=0, agent="a", content="x" * 8_000_000)]))


def test_a_reader_never_sees_a_record_another_process_is_still_writing(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    JsonlStore(path).append(make("first"))
    writer = multiprocessing.get_context("fork").Process(target=_big_writer, args=(str(path), 10))
    writer.start()
    passes = 0
    while writer.is_alive() or passes == 0:
        errors: list[InputError] = []
        ids = [t.id for t in JsonlStore(path).iter(errors=errors)]
        assert errors == [], errors[0]
        assert ids == ["first"] + [f"big{i}" for i in range(len(ids) - 1)]  # whole records, in order
        passes += 1
    writer.join(timeout=60)
    assert writer.exitcode == 0 and len(JsonlStore(path)) == 11


def _append_one(path: str, trajectory_id: str) -> None:
    SqliteStore(path).append(make(trajectory_id))


def test_an_open_sqlite_stream_does_not_hide_other_processes_appends(tmp_path: Path) -> None:
    path = tmp_path / "snap.db"
    store = SqliteStore(path)
    store.extend(make(f"r{i}") for i in range(100))
    stream = store.iter()
    next(stream)  # a stream left open, half read
    other = multiprocessing.get_context("fork").Process(target=_append_one, args=(str(path), "other"))
    other.start()
    other.join(timeout=60)
    assert other.exitcode == 0
    assert "other" in store and len(store) == 101 and store.get("other").id == "other"
    store.append(make("mine"))  # (SQLite refused it: 'database is locked', from the stale snapshot)
    assert sum(1 for _ in stream) == 99  # the stream goes on over what it began with


def _later_minor_record(trajectory: Trajectory, version: str) -> dict:
    """``trajectory`` as a later release of the same major version might write it: fields added at several levels."""
    import json

    data = json.loads(trajectory.to_json())
    data["schema_version"] = version
    data["cost_usd"] = 0.25
    data["steps"][1]["latency_breakdown"] = {"queue": 0.1}
    data["labels"][0]["evidence"] = ["step 1 says so"]
    data["outcome"]["judge"] = "exact"
    data["metadata"]["free_form"] = {"kept": True}  # (free-form: every key is kept)
    return data


def test_a_later_minor_version_reads_without_the_fields_it_added(store_path: Path) -> None:
    import json
    import warnings

    original = make("newer")
    record = _later_minor_record(original, "2.7")
    if store_path.suffix == ".jsonl":
        store_path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    else:
        open_store(store_path).extend([])  # (the table)
        with sqlite3.connect(store_path) as db:
            db.execute("INSERT INTO trajectories (id, data) VALUES (?, ?)", ("newer", json.dumps(record)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read = open_store(store_path).get("newer")
        by_text = Trajectory.from_json(json.dumps(record))
    assert read == by_text == original.model_copy(update={"metadata": {"free_form": {"kept": True}}})
    assert read.schema_version == SCHEMA_VERSION == "2.0"
    said = [str(w.message) for w in caught]
    assert len(said) == 2 and all("schema 2.7" in text for text in said)
    for field in ("cost_usd", "steps[].latency_breakdown", "labels[].evidence", "outcome.judge"):
        assert field in said[0]
    assert "free_form" not in said[0] and str(store_path.name) in said[0]


def test_another_major_version_or_unknown_fields_under_this_version_stay_errors(tmp_path: Path) -> None:
    import json

    for version, problem in (("3.0", "schema_version"), ("1.7", "schema_version"), ("1.0", "Extra inputs are not permitted"),
                             ("2.x", "schema_version")):
        path = tmp_path / f"v{version}.jsonl"
        path.write_text(json.dumps(_later_minor_record(make("r"), version)) + "\n", encoding="utf-8")
        with pytest.raises(InputError, match=problem):
            open_store(path).get("r")
        with pytest.raises(ValueError, match=problem):
            Trajectory.from_json(path.read_text(encoding="utf-8"))


def test_a_record_with_several_problems_names_the_first_and_counts_the_rest_as_problems(tmp_path: Path) -> None:
    import json

    path = tmp_path / "v.jsonl"
    path.write_text(json.dumps({"schema_version": "3.0", "id": "r", "steps": [], "created_at": "x"}) + "\n")
    with pytest.raises(InputError, match=r"unsupported schema_version '3\.0'.*\(and 1 more problem\)$"):
        open_store(path).get("r")


def test_from_json_of_text_that_is_not_json_raises_what_it_always_raised() -> None:
    from pydantic import ValidationError

    for text in ("not json", b"{", '{"id": 1'):
        with pytest.raises(ValidationError):
            Trajectory.from_json(text)


def test_a_record_of_an_earlier_minor_version_is_written_back_as_this_versions(tmp_path: Path) -> None:
    """Read, it holds this version's fields (their defaults): written back stamped 1.0, a 1.0 reader refused it."""
    import json

    record = json.loads(make("old").model_dump_json())
    record["schema_version"] = "1.0"
    for step in record["steps"]:
        for call in step["model_calls"]:
            call.pop("suspended", None)
    (tmp_path / "old.jsonl").write_text(json.dumps(record) + "\n")
    read = open_store(tmp_path / "old.jsonl").get("old")
    assert read.schema_version == SCHEMA_VERSION
    open_store(tmp_path / "again.jsonl").append(read)
    assert json.loads((tmp_path / "again.jsonl").read_text())["schema_version"] == SCHEMA_VERSION
