"""The phone core driven from a foreign language, against a real server.

Loads the Python bindings uniffi-bindgen generated from libgridsync_ffi
(the same library Android and iOS load) and runs what a field worker's
phone does: open the encrypted store, enroll, record offline, sync, and
what goes wrong: a wrong key, bad input, a revoked phone.

Environment (set by ffi/tests/python.rs):
  GRIDSYNC_BINDINGS_DIR  directory with gridsync_ffi.py and the library
  GRIDSYNC_SERVER_BIN    the gridsync-server binary
"""

import asyncio
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.environ["GRIDSYNC_BINDINGS_DIR"])
import gridsync_ffi as g  # noqa: E402

SERVER_BIN = os.environ["GRIDSYNC_SERVER_BIN"]

# A distinctive string that must never appear in the store file in clear.
SECRET_TEXT = "山体滑坡"


def run(coro):
    """Await one of the core's async methods from synchronous test code."""
    return asyncio.run(coro)


class Server:
    """A gridsync-server process on a loopback port with the demo county."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.cli("load-tree", "--demo")
        self.proc = subprocess.Popen(
            [SERVER_BIN, "--data-dir", str(data_dir), "serve", "--listen", "127.0.0.1:0", "--workers", "2"],
            stdout=subprocess.PIPE,
            text=True,
            # Several phones enroll from one address within seconds.
            env={**os.environ, "RUST_LOG": "warn", "GRIDSYNC_ENROLL_PER_MINUTE": "1000"},
        )
        deadline = time.time() + 60
        self.url = None
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"gridsync-server exited: {self.proc.wait()}")
            if line.startswith("listening on "):
                self.url = line.split("listening on ", 1)[1].strip()
                break
        assert self.url, "server did not say where it listens"
        # Keep draining stdout so the server never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def cli(self, *args) -> str:
        out = subprocess.run(
            [SERVER_BIN, "--data-dir", str(self.data_dir), *args], check=True, capture_output=True, text=True
        )
        return out.stdout

    def code(self, user: str) -> str:
        return self.cli("enroll-code", "--user", user).strip().splitlines()[-1].strip()

    def devices(self) -> dict:
        """Device id -> (user, state, last_sync_ms or None)."""
        out = {}
        for line in self.cli("devices").splitlines():
            dev, user, _name, state, last = line.split("\t")
            last = last.split("=", 1)[1]
            out[dev] = (user, state, None if last == "never" else int(last))
        return out

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("server"))
    yield s
    s.stop()


class Progress(g.SyncProgress):
    """The app's side of the sync callback."""

    def __init__(self):
        self.updates = []
        self.logs = []

    def on_progress(self, stats):
        self.updates.append(stats)

    def on_log(self, message):
        self.logs.append(message)


def enrolled_phone(server, path: Path, user: str, key=None):
    key = key or secrets.token_bytes(32)
    core = g.GridCore.open(str(path), key)
    info = run(core.enroll(server.url, server.code(user), f"{user} 的手机"))
    return core, info, key


def now_ms() -> int:
    return int(time.time() * 1000)


def every_kind(now: int):
    """One body of every record kind, keyed by kind."""
    return {
        g.RecordKind.PATROL: g.RecordBody.PATROL(
            g.Patrol(
                slot=g.PatrolSlot.MORNING,
                started_at=now - 3_600_000,
                ended_at=now,
                route=[g.GeoPoint(lat=33.91, lon=106.30), g.GeoPoint(lat=33.92, lon=106.31)],
                findings="沿河堤巡查一遍",
                hazard_ids=[],
            )
        ),
        g.RecordKind.HAZARD: g.RecordBody.HAZARD(
            g.Hazard(
                category=g.HazardCategory.GEOLOGICAL,
                location=g.Location(text="后山三组上方", gps=g.GeoPoint(lat=33.9, lon=106.3)),
                description=f"{SECRET_TEXT}隐患，坡面有裂缝",
                events=[],
            )
        ),
        g.RecordKind.VISIT: g.RecordBody.VISIT(
            g.Visit(
                target=g.VisitTarget.FLOATING_POPULATION,
                subject="出租房租户赵五",
                household_id=None,
                visited_at=now,
                findings="登记在册",
                follow_up_needed=True,
            )
        ),
        g.RecordKind.HOUSEHOLD: g.RecordBody.HOUSEHOLD(
            g.Household(
                head_name="王大山",
                address="一组18号",
                ten_household_group="第三联防组",
                members={
                    "m1": g.Member(
                        name="王小河",
                        relation="子女",
                        category=g.PersonCategory.RESIDENT,
                        id_number="11010519491231002X",
                        guardian=None,
                    )
                },
                machinery={"a1": g.Asset(description="拖拉机", identifier="甘L-12345")},
                vehicles={},
                facilities={},
                notes="",
            )
        ),
        g.RecordKind.DISPUTE: g.RecordBody.DISPUTE(
            g.Dispute(
                parties=["李甲", "李乙"],
                category=g.DisputeCategory.LAND,
                summary=f"{SECRET_TEXT}后两户地界纠纷",
                found_at=now,
                events=[],
            )
        ),
    }


def assert_no_plaintext(path: Path):
    for f in [path, Path(str(path) + "-wal")]:
        if not f.exists():
            continue
        data = f.read_bytes()
        assert SECRET_TEXT.encode("utf-8") not in data, f"{f.name} holds record text in clear"
        assert b"summary" not in data, f"{f.name} holds field names in clear"
        assert b"head_name" not in data, f"{f.name} holds field names in clear"
        assert not data.startswith(b"SQLite format 3"), f"{f.name} is a plain SQLite file"


def test_a_key_must_be_32_bytes(tmp_path):
    with pytest.raises(g.ApiError.InvalidInput) as e:
        g.GridCore.open(str(tmp_path / "s.db"), b"short")
    assert e.value.field == "key"


def test_records_of_every_kind_sync_and_reach_who_may_see_them(server, tmp_path):
    """A grid manager records all five kinds offline, syncs, reopens the
    store and reads them back; the village leader's phone receives them, a
    manager of another group does not."""
    path = tmp_path / "phone1.db"
    key = secrets.token_bytes(32)
    core = g.GridCore.open(str(path), key)

    # Not enrolled yet: nothing can be authored.
    with pytest.raises(g.ApiError.NotEnrolled):
        run(core.create_record(None, every_kind(now_ms())[g.RecordKind.PATROL]))
    with pytest.raises(g.ApiError.NotEnrolled):
        run(core.sync(Progress()))
    # A wrong code names the field.
    with pytest.raises(g.ApiError.InvalidInput) as e:
        run(core.enroll(server.url, "ABCDEFGH2345", "手机"))
    assert e.value.field == "code"

    info = run(core.enroll(server.url, server.code("gm-t01-v01-g1"), "一号手机"))
    assert info.user_id == "gm-t01-v01-g1" and info.grid == "t01/v01/g1"
    assert run(core.enrollment()).device_id == info.device_id

    # Offline work: create every kind, append history, edit, delete.
    now = now_ms()
    created = {}
    for kind, body in every_kind(now).items():
        rec = run(core.create_record(None, body))
        assert rec.kind == kind and rec.grid == "t01/v01/g1" and rec.author == "gm-t01-v01-g1"
        created[kind] = rec
    dispute_id = created[g.RecordKind.DISPUTE].id
    hazard_id = created[g.RecordKind.HAZARD].id
    rec = run(core.append_dispute_event(dispute_id, g.DisputeAction.FOUND(note="排查发现")))
    rec = run(core.append_dispute_event(dispute_id, g.DisputeAction.FOLLOW_UP(note="约双方到村委会")))
    assert [e.action for e in rec.body.value.events] == [
        g.DisputeAction.FOUND(note="排查发现"),
        g.DisputeAction.FOLLOW_UP(note="约双方到村委会"),
    ]
    assert rec.body.value.events[1].parents == [rec.body.value.events[0].id]
    assert rec.status == "in_progress"
    rec = run(core.append_hazard_event(hazard_id, g.HazardAction.STEP(note="设置警示牌")))
    assert rec.status == "handling"
    with pytest.raises(g.ApiError.InvalidInput):
        run(core.append_hazard_event(dispute_id, g.HazardAction.STEP(note="x")))

    visit = created[g.RecordKind.VISIT]
    changed = visit.body.value
    changed.findings = "已复查，情况正常"
    changed.follow_up_needed = False
    rec = run(core.update_record(visit.id, g.RecordBody.VISIT(changed)))
    assert rec.status == "done" and rec.body.value.findings == "已复查，情况正常"

    extra = run(core.create_record(None, every_kind(now)[g.RecordKind.PATROL]))
    run(core.delete_record(extra.id))
    with pytest.raises(g.ApiError.NotFound):
        run(core.get_record("00000000-0000-4000-8000-000000000000"))

    # Lists and filters.
    all_rows = run(core.list_records(g.ListFilter()))
    assert len(all_rows) == 5
    assert len(run(core.list_records(g.ListFilter(include_deleted=True)))) == 6
    disputes = run(core.list_records(g.ListFilter(kind=g.RecordKind.DISPUTE)))
    assert [r.id for r in disputes] == [dispute_id]
    assert [r.title for r in run(core.list_records(g.ListFilter(search="王小河")))] == [
        created[g.RecordKind.HOUSEHOLD].title
    ]
    assert len(run(core.list_records(g.ListFilter(status="handling")))) == 1
    assert len(run(core.list_records(g.ListFilter(grid="t01/v01")))) == 5
    assert run(core.list_records(g.ListFilter(grid="t01/v02"))) == []
    # Only the patrol (started an hour ago) occurred before now.
    early = run(core.list_records(g.ListFilter(until_ms=now - 1000)))
    assert [r.kind for r in early] == [g.RecordKind.PATROL]
    assert len(run(core.list_records(g.ListFilter(from_ms=now - 1000)))) == 4
    page = run(core.list_records(g.ListFilter(limit=2, offset=4)))
    assert len(page) == 1
    assert run(core.pending_changes()) > 0
    assert_no_plaintext(path)

    # Sync.
    progress = Progress()
    stats = run(core.sync(progress))
    assert stats.records_sent == 6, stats
    assert stats.rejected == []
    assert progress.updates and progress.updates[-1].records_sent == 6
    assert progress.logs[0] == "sync started" and progress.logs[-1].startswith("sync done")
    assert run(core.pending_changes()) == 0
    devices = server.devices()
    assert devices[info.device_id][0] == "gm-t01-v01-g1"
    assert devices[info.device_id][2] is not None, "server records the device's last sync"

    # Reopen and read everything back.
    before = {k: run(core.get_record(r.id)) for k, r in created.items()}
    del core
    core = g.GridCore.open(str(path), key)
    assert run(core.count_records()) == 5
    assert run(core.integrity_ok())
    for kind, rec in before.items():
        assert run(core.get_record(rec.id)) == rec
    assert run(core.enrollment()).user_id == "gm-t01-v01-g1"
    assert_no_plaintext(path)

    # The village leader's phone receives every record of the village.
    leader, _, _ = enrolled_phone(server, tmp_path / "leader.db", "vl-t01-v01")
    stats = run(leader.sync(Progress()))
    assert stats.records_received >= 5
    ids = {r.id for r in run(leader.list_records(g.ListFilter()))}
    assert {r.id for r in created.values()} <= ids
    got = run(leader.get_record(dispute_id))
    assert got == before[g.RecordKind.DISPUTE]
    assert run(leader.get_record(created[g.RecordKind.HOUSEHOLD].id)).body.value.members["m1"].name == "王小河"

    # A grid manager of another group receives none of them.
    other, _, _ = enrolled_phone(server, tmp_path / "other.db", "gm-t01-v01-g2")
    run(other.sync(Progress()))
    other_ids = {r.id for r in run(other.list_records(g.ListFilter(include_deleted=True)))}
    assert not ({r.id for r in created.values()} & other_ids)

    # The wrong key does not open the store.
    with pytest.raises(g.ApiError.WrongKey):
        g.GridCore.open(str(path), secrets.token_bytes(32))


def test_bad_input_names_the_field(server, tmp_path):
    core, _, _ = enrolled_phone(server, tmp_path / "phone.db", "gm-t01-v01-g3")
    body = every_kind(now_ms())[g.RecordKind.DISPUTE]
    body.value.summary = ""
    with pytest.raises(g.ApiError.InvalidInput) as e:
        run(core.create_record(None, body))
    assert e.value.field == "summary"
    assert e.value.reason == "required"
    assert "纠纷概要" in e.value.message_zh

    household = every_kind(now_ms())[g.RecordKind.HOUSEHOLD]
    household.value.members["m1"].id_number = "123"
    with pytest.raises(g.ApiError.InvalidInput) as e:
        run(core.create_record(None, household))
    assert e.value.field == "members[m1].id_number"

    with pytest.raises(g.ApiError.InvalidInput) as e:
        run(core.create_record("不是网格", every_kind(now_ms())[g.RecordKind.PATROL]))
    assert e.value.field == "grid"
    with pytest.raises(g.ApiError.InvalidInput) as e:
        run(core.get_record("not-a-uuid"))
    assert e.value.field == "id"
    assert run(core.count_records()) == 0


def test_a_revoked_phone_is_refused_and_wiped(server, tmp_path):
    path = tmp_path / "lost.db"
    core, info, _ = enrolled_phone(server, path, "gm-t01-v02-g1")
    rec = run(core.create_record(None, every_kind(now_ms())[g.RecordKind.DISPUTE]))
    run(core.sync(Progress()))
    run(core.create_record(None, every_kind(now_ms())[g.RecordKind.VISIT]))
    assert run(core.count_records()) == 2

    server.cli("revoke-device", info.device_id)
    progress = Progress()
    with pytest.raises(g.ApiError.NotAuthorized) as e:
        run(core.sync(progress))
    assert e.value.wiped is True
    assert "停用" in e.value.message_zh
    assert progress.logs[-1].startswith("sync failed")
    assert run(core.count_records()) == 0
    assert run(core.list_records(g.ListFilter(include_deleted=True))) == []
    assert run(core.pending_changes()) == 0
    assert run(core.enrollment()) is None
    with pytest.raises(g.ApiError.NotFound):
        run(core.get_record(rec.id))
    with pytest.raises(g.ApiError.NotEnrolled):
        run(core.sync(Progress()))


def test_a_bundle_carries_records_to_another_phone(server, tmp_path):
    core, _, _ = enrolled_phone(server, tmp_path / "a.db", "gm-t01-v03-g1")
    rec = run(core.create_record(None, every_kind(now_ms())[g.RecordKind.HAZARD]))
    bundle = run(core.export_bundle())
    other = g.GridCore.open(str(tmp_path / "b.db"), secrets.token_bytes(32))
    stats = run(other.import_bundle(bundle))
    assert stats.records == 1 and stats.changes >= 1
    assert run(other.get_record(rec.id)) == rec
    with pytest.raises(g.ApiError.InvalidInput) as e:
        run(other.import_bundle(b"not a bundle"))
    assert e.value.field == "bundle"
