"""A failing history store on a real server: a full disk, a disk gone read-only, pages damaged
while the server runs or before it starts, a stop while lines wait unsaved.

Nothing is mocked: the faults are real file systems (a small tmpfs that fills up, an ext4 image
that the kernel turns read-only after an error), real bytes overwritten in real SQLite files,
a real run_server.py process. The file system tests need root (mount); they are skipped with
the reason when mounting is not possible.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import NO_FLOOD_LIMITS
from wire import WireClient, rich_client

from game_chat.server.group_commit import GroupCommit, PendingLine
from game_chat.server.history import HistoryStore, StoredMessage

ROOT = Path(__file__).resolve().parent.parent
RUN_SERVER = [sys.executable, str(ROOT / "run_server.py"), "--host", "127.0.0.1", "--port", "0"]

# An exception escaping a server thread fails the test instead of passing as a warning.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

NOT_SAVED = re.compile(r" \(not saved: [^()]+\)$")
UNAVAILABLE = "The history of this room is unavailable right now."


# --- file systems -----------------------------------------------------------------------------


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def _unmount(where: Path) -> None:
    if _run("umount", str(where)).returncode != 0:
        _run("umount", "-l", str(where))  # still busy after a failed test: detach it anyway


def _need(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, unmounted after the test: a disk that fills up."""
    _need("mount", "umount")
    where = tmp_path / "small-disk"
    where.mkdir()
    done = _run("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {done.stderr.strip()}")
    try:
        yield where
    finally:
        _unmount(where)


@dataclass
class FragileDisk:
    """An ext4 image mounted with errors=remount-ro: after an error, the kernel makes it
    read-only for good (until it is unmounted), whatever files are open on it.

    ``mount -o remount,ro`` cannot do this mid-run: Linux refuses it (EBUSY) while a file is
    open for writing there, and the server's database is. For the same reason there is no
    going back to read-write under the running server (an ext4 that had an error stays
    read-only until unmounted), so the store's recovery is tested on the full disk instead."""

    image: Path
    path: Path
    trigger: Path

    def fail(self) -> None:
        """A file system error, as a failing disk would cause: from now on it is read-only."""
        self.trigger.write_text("storage fault test\n")
        with pytest.raises(OSError) as refused:
            (self.path / "probe").write_text("x")
        assert refused.value.errno == errno.EROFS

    def mount_again(self) -> None:
        """Unmount (everything on it must be closed) and mount it again, writable."""
        assert _run("umount", str(self.path)).returncode == 0
        assert _mount_ext4(self.image, self.path).returncode == 0


def _mount_ext4(image: Path, where: Path) -> subprocess.CompletedProcess[str]:
    return _run("mount", "-o", "loop,errors=remount-ro", str(image), str(where))


@pytest.fixture
def fragile_disk(tmp_path: Path) -> Iterator[FragileDisk]:
    _need("mount", "umount", "mkfs.ext4", "findmnt")
    image, where = tmp_path / "ext4.img", tmp_path / "fragile-disk"
    where.mkdir()
    with open(image, "wb") as file:
        file.truncate(16 * 1024 * 1024)
    made = _run("mkfs.ext4", "-q", "-F", str(image))
    if made.returncode != 0:
        pytest.skip(f"mkfs.ext4 failed: {made.stderr.strip()}")
    mounted = _mount_ext4(image, where)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount an ext4 image on a loop device: {mounted.stderr.strip()}")
    try:
        device = _run("findmnt", "-n", "-o", "SOURCE", str(where)).stdout.strip()
        trigger = Path("/sys/fs/ext4") / Path(device).name / "trigger_fs_error"
        if not trigger.exists():
            pytest.skip(f"this kernel has no {trigger} to make ext4 fail")
        yield FragileDisk(image, where, trigger)
    finally:
        _unmount(where)


def fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` to the last byte; returns the filler file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        chunk = b"\xaa" * 65536
        while True:
            try:
                os.write(fd, chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
    finally:
        os.close(fd)
    assert shutil.disk_usage(directory).free == 0
    return filler


# --- the database, looked at from outside ----------------------------------------------------


def stored(db: Path) -> list[tuple[int, str]]:
    """(id, text) of every stored line, read with a connection of our own."""
    with contextlib.closing(sqlite3.connect(db)) as con:
        return con.execute("SELECT id, text FROM messages ORDER BY id").fetchall()


def stored_bans(db: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(db)) as con:
        return [row[0] for row in con.execute("SELECT target FROM bans")]


def checkpoint(db: Path) -> None:
    """Move every committed page from the -wal file into the database file itself."""
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as con:
        busy, _, _ = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0


def root_page(db: Path, name: str) -> tuple[int, int]:
    """(byte offset, size) of the root page of table or index ``name``."""
    with contextlib.closing(sqlite3.connect(db)) as con:
        (root,) = con.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)
        ).fetchone()
        (size,) = con.execute("PRAGMA page_size").fetchone()
    return (root - 1) * size, size


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll what the server does on its own clock (the store is retried once a second)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# --- speaking to the server ------------------------------------------------------------------


def say(client: WireClient, text: str, client_id: str) -> dict[str, Any]:
    """Send a chat line; its ack (an error for it fails the test)."""
    client.send_json(type="chat", text=text, id=client_id)
    answer = client.recv_until(lambda m: m["type"] in ("ack", "error") and m.get("id") == client_id)
    assert answer["type"] == "ack", answer
    return answer


def chats(client: WireClient, count: int) -> list[dict[str, Any]]:
    return [client.recv_until(lambda m: m["type"] == "chat") for _ in range(count)]


def until_pong(client: WireClient, token: str = "alive?") -> list[dict[str, Any]]:
    """Ping; everything that came before the pong. Fails if the connection is gone."""
    client.send_json(type="ping", token=token)
    before = []
    while (message := client.recv_json())["type"] != "pong":
        before.append(message)
    assert message["token"] == token
    return before


def become_operator(client: WireClient) -> None:
    client.send_json(type="oper", password="pw")
    client.recv_until(lambda m: m["type"] == "notice" and "now an operator" in m["text"])


def notice_about(client: WireClient, start: str) -> str:
    return client.recv_until(lambda m: m["type"] == "notice" and m["text"].startswith(start))[
        "text"
    ]


def submit(group: GroupCommit) -> tuple[int, int]:
    """A line straight into a pipeline (no server): (its id, its ticket)."""
    n = group.next_id()
    return n, group.submit(PendingLine(n, StoredMessage(n, "#lobby", "ann", "hi", 1.0), None, 0))


# --- logs -----------------------------------------------------------------------------------


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="game_chat")
    return caplog


def errors_in(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []
    assert "Traceback" not in caplog.text


# --- 1. a full disk -------------------------------------------------------------------------


def test_a_full_disk_delivers_lines_unsaved_then_stores_the_backlog(
    small_disk: Path, server_factory: Any, server_log: pytest.LogCaptureFixture
) -> None:
    db = small_disk / "history.sqlite3"
    server = server_factory(limits=NO_FLOOD_LIMITS, history_db=str(db))
    alice, _ = rich_client(server.address, "alice")
    bob, _ = rich_client(server.address, "bob")
    first = say(alice, "stored before the disk filled up", "c0")
    assert "unsaved" not in first

    filler = fill(small_disk)
    texts = [f"line {n} on a full disk" for n in range(1, 31)]
    acks = [say(alice, text, f"c{n}") for n, text in enumerate(texts[:20], 1)]
    time.sleep(1.3)  # the store is retried every second: those retries fail as well
    acks += [say(alice, text, f"c{n}") for n, text in enumerate(texts[20:], 21)]

    assert [ack.get("unsaved") for ack in acks] == [True] * 30
    seen = chats(bob, 31)  # the others got every line, at once
    assert [m["text"] for m in seen] == ["stored before the disk filled up", *texts]
    assert [m["id"] for m in seen] == [first["msg_id"]] + [ack["msg_id"] for ack in acks]
    assert until_pong(alice) == [] and until_pong(bob) == []  # nobody was disconnected
    assert stored(db) == [(first["msg_id"], "stored before the disk filled up")]

    filler.unlink()  # space again: the next retry writes the backlog
    assert wait_until(lambda: len(stored(db)) == 31)
    later = say(alice, "after the disk was freed", "c31")
    assert "unsaved" not in later
    ids = [first["msg_id"], *(ack["msg_id"] for ack in acks), later["msg_id"]]
    everything = ["stored before the disk filled up", *texts, "after the disk was freed"]
    assert stored(db) == list(zip(ids, everything, strict=True))

    errors = errors_in(server_log)
    assert 1 <= len(errors) <= 2, errors  # 30 failed lines and two failed retries: one report
    assert "database or disk is full" in errors[0]
    assert "delivering lines without storing them; 1 lines wait unsaved" in errors[0]
    assert "every unsaved line is stored now" in server_log.text
    assert_no_traceback(server_log)


# --- 2. a disk gone read-only ---------------------------------------------------------------


def test_a_disk_gone_read_only_keeps_the_chat_and_the_bans(
    fragile_disk: FragileDisk, server_factory: Any, server_log: pytest.LogCaptureFixture
) -> None:
    db = fragile_disk.path / "history.sqlite3"
    server = server_factory(history_db=str(db), oper_password="pw")
    op, _ = rich_client(server.address, "op")
    become_operator(op)
    bob, _ = rich_client(server.address, "bob")
    saved = say(op, "before the disk failed", "c0")
    assert "unsaved" not in saved
    op.send_json(type="ban", target="eve")
    assert notice_about(op, "eve is banned") == "eve is banned by op for good"
    os.sync()  # on the disk itself before it fails, as what was stored long ago would be

    fragile_disk.fail()
    unsaved = say(op, "on a read-only disk", "c1")
    assert unsaved["unsaved"] is True
    assert [m["text"] for m in chats(bob, 2)] == ["before the disk failed", "on a read-only disk"]

    # A ban cannot be stored: it holds all the same, and the operator is told.
    op.send_json(type="ban", target="mallory", reason="spam")
    assert NOT_SAVED.search(notice_about(op, "mallory is banned"))
    assert until_pong(op) == []
    mallory = WireClient(server.address)
    mallory.send_json(type="hello", nick="mallory", version=1)
    refused = mallory.recv_json()
    assert (refused["type"], refused["code"], refused["fatal"]) == ("error", "banned", False)
    mallory.send_json(type="hello", nick="carol", version=1)  # the address is not banned
    assert mallory.recv_json()["type"] == "welcome"
    mallory.close()

    # An unban cannot be stored either: lifted all the same, and the operator is told.
    op.send_json(type="unban", target="eve")
    assert NOT_SAVED.search(notice_about(op, "eve is no longer banned"))
    eve, _ = rich_client(server.address, "eve")
    eve.close()

    # Banning a member who is online cuts it off (and its address), never the operator.
    op.send_json(type="ban", target="bob")
    assert NOT_SAVED.search(notice_about(op, "bob is banned"))
    cut = bob.recv_until(lambda m: m["type"] == "error")
    assert (cut["code"], cut["fatal"]) == ("banned", True)
    bob.expect_closed()
    assert "error" not in [m["type"] for m in until_pong(op)]  # told, and still connected
    late = WireClient(server.address)  # the same address as bob's: refused at once
    assert (late.recv_json()["code"], late.recv()) == ("banned", None)

    server.shutdown()
    assert "history: 1 delivered lines were never stored" in server_log.text
    assert_no_traceback(server_log)
    fragile_disk.mount_again()
    assert stored(db) == [(saved["msg_id"], "before the disk failed")]
    assert stored_bans(db) == ["eve"]  # as the operator was told: nothing after the failure


# --- 3. reads that fail while members join ---------------------------------------------------


# Both write into the file while the server has it open (it is idle meanwhile), after a
# checkpoint moved every page from the -wal file into it: its reader must read them from there.


def _damage_index_page(db: Path, text: str) -> None:
    """Junk over the root page of the index that room histories are read through."""
    checkpoint(db)
    offset, size = root_page(db, "messages_room_id")
    with open(db, "r+b") as file:
        file.seek(offset)
        file.write(b"\xff" * size)


def _flip_a_type_bit(db: Path, text: str) -> None:
    """One bit flipped in the record header of the line ``text``: its TEXT value reads back
    as a BLOB of the same bytes (SQLite's checks at open do not see it)."""
    checkpoint(db)
    data = db.read_bytes()
    body = b"#lobbyalice" + text.encode()  # room key, nick and text follow the header
    at = data.find(body)
    assert at > 0 and data.find(body, at + 1) == -1
    type_at = at - 4  # header: size, id, room, nick, text, ts, action, private_to
    assert data[at - 8] == 8 and data[type_at] == 2 * len(text.encode()) + 13
    with open(db, "r+b") as file:  # that one byte, in place, as the server runs
        file.seek(type_at)
        file.write(bytes([data[type_at] ^ 1]))


@pytest.mark.parametrize(
    ("damage", "all_rooms"),
    [(_damage_index_page, True), (_flip_a_type_bit, False)],
    ids=["page", "bit"],
)
def test_a_history_read_error_while_joining_costs_only_the_replay(
    tmp_path: Path,
    server_factory: Any,
    server_log: pytest.LogCaptureFixture,
    damage: Callable[[Path, str], None],
    all_rooms: bool,
) -> None:
    db = tmp_path / "history.sqlite3"
    server = server_factory(history_db=str(db))
    alice, _ = rich_client(server.address, "alice")
    for n in range(3):
        say(alice, f"damaged line {n}", f"c{n}")
    damage(db, "damaged line 1")

    carol, _ = rich_client(server.address, "carol")
    assert [m["nick"] for m in carol.joined["members"]] == ["alice", "carol"]
    before = until_pong(carol)
    assert [m["type"] for m in before] == ["notice"]  # and no line of history
    assert (before[0]["text"], before[0]["room"]) == (UNAVAILABLE, "#lobby")
    carol.send_json(type="join", room="#team")  # a new room: its (empty) history is read too
    assert carol.recv_json()["type"] == "joined"
    unavailable = {"type": "notice", "text": UNAVAILABLE, "room": "#team"}
    assert until_pong(carol) == ([unavailable] if all_rooms else [])
    carol.send_json(type="history", room="#lobby", limit=10)
    refused = carol.recv_json()
    assert (refused["type"], refused["code"], refused["fatal"]) == ("error", "unavailable", False)

    alice.recv_until(lambda m: m["type"] == "join" and m["nick"] == "carol")
    carol.close()
    alice.recv_until(lambda m: m["type"] == "leave" and m["nick"] == "carol")
    again, _ = rich_client(server.address, "carol")  # the nick is free: nobody holds it
    assert [m["text"] for m in until_pong(again)] == [UNAVAILABLE]
    errors = errors_in(server_log)
    assert len(errors) == 1 and errors[0].startswith("history read failed"), errors
    assert_no_traceback(server_log)


# --- 4. a damaged file at start ---------------------------------------------------------------


def _a_history_file(db: Path) -> None:
    """A real history file of some pages, written by the store and closed cleanly."""
    with HistoryStore(db) as store:
        lines = [StoredMessage(n, "#lobby", "ann", f"{n} " + "x" * 300, 1.0) for n in range(1, 400)]
        store.write(lines, reserve_to=1000)


def _table_leaf_in_the_middle(db: Path) -> tuple[bytearray, int]:
    data = bytearray(db.read_bytes())
    size = 4096
    pages = len(data) // size
    for page in range(pages // 2, pages):
        if data[page * size] == 0x0D:  # a leaf page of a table b-tree
            return data, page * size
    raise AssertionError("no table leaf page past the middle")


def _damaged_cell_pointers(db: Path) -> None:
    _a_history_file(db)
    data, offset = _table_leaf_in_the_middle(db)
    data[offset + 8 : offset + 16] = b"\xff" * 8  # where its first cells are said to be
    db.write_bytes(data)


def _junk_page(db: Path) -> None:
    _a_history_file(db)
    data, offset = _table_leaf_in_the_middle(db)
    data[offset : offset + 4096] = bytes(range(256)) * 16
    db.write_bytes(data)


def _not_a_database(db: Path) -> None:
    db.write_text("this is a shopping list, not a database\n" * 200)


def _a_directory(db: Path) -> None:
    db.mkdir()


@pytest.mark.parametrize(
    "make",
    [_damaged_cell_pointers, _junk_page, _not_a_database, _a_directory],
    ids=["cell-pointers", "junk-page", "not-a-database", "directory"],
)
def test_an_unusable_database_at_start_is_one_line_and_exit_2(
    tmp_path: Path, make: Callable[[Path], None]
) -> None:
    db = tmp_path / "history.sqlite3"
    make(db)
    done = subprocess.run(
        [*RUN_SERVER, "--history-db", str(db)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("run_server.py: error:")
    assert str(db) in lines[0]
    assert done.stdout == ""


# --- 5. a stop while lines wait unsaved -------------------------------------------------------


def test_sigterm_on_a_full_disk_reports_the_unsaved_lines_and_keeps_the_acked_ones(
    small_disk: Path,
) -> None:
    db = small_disk / "history.sqlite3"
    process = subprocess.Popen(
        [*RUN_SERVER, "--history-db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert banner.startswith("game_chat server listening on 127.0.0.1:"), banner
        address = ("127.0.0.1", int(banner.rsplit(":", 1)[1]))
        alice, _ = rich_client(address, "alice")
        bob, _ = rich_client(address, "bob")
        kept = [say(alice, f"kept {n}", f"k{n}") for n in range(3)]
        assert all("unsaved" not in ack for ack in kept)
        filler = fill(small_disk)
        lost = [say(alice, f"unsaved {n}", f"u{n}") for n in range(4)]
        assert all(ack.get("unsaved") is True for ack in lost)
        assert len(chats(bob, 7)) == 7

        process.send_signal(signal.SIGTERM)
        _, log = process.communicate(timeout=10)
        assert process.returncode == 0, log
        assert "Traceback" not in log
        never = re.findall(r"history: (\d+) delivered lines were never stored", log)
        assert never == ["4"], log
        filler.unlink()
        assert stored(db) == [(ack["msg_id"], f"kept {n}") for n, ack in enumerate(kept)]
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


# --- the pipeline underneath: a database another connection holds locked --------------------
# (ServerConfig sets neither the busy timeout, 5 s, nor the retry interval, 1 s, nor the
# backlog limit, 10 000 lines: these run GroupCommit on a real file with short ones.)


@contextlib.contextmanager
def locked(db: Path) -> Iterator[None]:
    """Another connection holds the write lock, as another process could: writes fail."""
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as locker:
        locker.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            locker.execute("ROLLBACK")


def test_a_locked_database_stalls_only_the_first_line(tmp_path: Path) -> None:
    """The first line waits the busy timeout out (a short lock costs nothing) and goes
    unsaved; the store is retried every interval, and the lines after it are still delivered
    at once (a retry does not wait out the busy timeout again)."""
    db = tmp_path / "history.sqlite3"
    store = HistoryStore(db, busy_timeout=1.0)
    delivered: dict[int, tuple[bool, float]] = {}

    def deliver(batch: Any, kept: bool) -> None:
        delivered.update((line.id, (kept, time.monotonic())) for line in batch)

    group = GroupCommit(store, deliver, retry_interval=0.2)
    try:
        assert wait_until(lambda: group.prune_count >= 1)  # the retention pass at start is over
        waits = []
        with locked(db):
            for _ in range(8):
                sent = time.monotonic()
                n, ticket = submit(group)
                assert group.wait(ticket, timeout=5)
                waits.append(delivered[n][1] - sent)
                time.sleep(0.15)  # 1.2 s in all: several retries fail meanwhile
        assert {kept for kept, _ in delivered.values()} == {False}
        assert 0.8 < waits[0] < 3, waits  # the busy timeout
        assert max(waits[1:]) < 0.5, waits  # not one more busy timeout per retry
        assert wait_until(lambda: group.healthy)
        assert [m.id for m in store.recent("#lobby", 10)] == sorted(delivered)
    finally:
        group.close()
        store.close()


def test_a_failed_retention_pass_does_not_hide_that_lines_go_unsaved(
    tmp_path: Path, server_log: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "history.sqlite3"
    store = HistoryStore(db, busy_timeout=0.01)
    group = GroupCommit(store, lambda batch, kept: None, retry_interval=0.05)
    try:
        assert wait_until(lambda: group.prune_count >= 1)
        with locked(db):
            assert group.prune_now(timeout=5)
            _, ticket = submit(group)
            assert group.wait(ticket, timeout=5)
        warnings = [r.getMessage() for r in server_log.records if r.levelno == logging.WARNING]
        assert warnings[0].startswith("history retention failed: "), warnings
        errors = errors_in(server_log)
        assert len(errors) == 1, errors
        assert "delivering lines without storing them; 1 lines wait unsaved" in errors[0], errors
    finally:
        group.close()
        store.close()


def test_the_report_at_close_counts_lines_the_full_backlog_let_go(
    tmp_path: Path, server_log: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "history.sqlite3"
    store = HistoryStore(db, busy_timeout=0.01)
    group = GroupCommit(store, lambda batch, kept: None, backlog_limit=5, retry_interval=0.05)
    try:
        with locked(db):
            for _ in range(12):
                submit(group)
            assert group.flush(timeout=10)
            assert group.backlog_size == 5
            group.close()
    finally:
        group.close()
        store.close()
    never = re.findall(r"history: (\d+) delivered lines were never stored", server_log.text)
    assert never == ["12"], server_log.text
