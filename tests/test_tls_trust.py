"""What the client trusts, without sockets: the known-servers file, the trust decisions, and
the LAN announcement of a TLS server."""

from __future__ import annotations

from pathlib import Path

import pytest

from game_chat.client.known_servers import KnownServers, server_key
from game_chat.client.tls import TlsOptions, Trust, TrustRefused
from game_chat.discovery import Announcement, BadPacket, ServerTable, decode, encode
from game_chat.discovery.packet import MAGIC
from game_chat.protocol.tls import fingerprint

CERT_A, CERT_B = b"certificate A", b"certificate B"
FP_A, FP_B = fingerprint(CERT_A), fingerprint(CERT_B)


def test_known_servers_file_round_trip_keeps_what_it_does_not_understand(tmp_path: Path) -> None:
    path = tmp_path / "known_servers"
    path.write_text("# my servers\nnot a line at all\nhost:1 ZZ\n")
    known = KnownServers(path)
    assert known.get("host", 1) is None
    known.pin("Other", 2, FP_A.lower())
    assert "host:1 ZZ" in path.read_text()  # kept while nothing replaces it
    known.pin("Host", 1, FP_A.lower())
    known.pin("fe80::1", 5050, FP_B)
    assert known.get("HOST", 1) == FP_A
    assert known.get("fe80::1", 5050) == FP_B
    text = path.read_text()
    assert text.startswith("# my servers\nnot a line at all\n")
    assert known.get("other", 2) == FP_A
    assert f"host:1 {FP_A}\n" in text and f"[fe80::1]:5050 {FP_B}\n" in text
    known.pin("host", 1, FP_B)  # replaced, not added
    assert path.read_text().count("host:1 ") == 1
    assert "ZZ" not in path.read_text()  # the bad line of that address went with it
    assert server_key("::1", 1) == "[::1]:1"


def test_the_default_file_is_in_the_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GAME_CHAT_CONFIG_DIR", str(tmp_path / "cfg"))
    KnownServers().pin("a", 1, FP_A)
    assert (tmp_path / "cfg" / "known_servers").read_text() == f"a:1 {FP_A}\n"


def trust(tmp_path: Path, **options: str) -> Trust:
    return Trust(TlsOptions(known_servers=str(tmp_path / "known"), **options))


def test_first_use_pins_then_the_same_passes_and_another_is_refused(tmp_path: Path) -> None:
    t = trust(tmp_path)
    assert t.first_mode("a", 1) == Trust.VERIFY  # the system's CAs first
    pinned = t.accept("a", 1, CERT_A, verified=False)
    assert pinned is not None and (pinned.fingerprint, pinned.replaced) == (FP_A, None)
    assert t.first_mode("a", 1) == Trust.PIN
    assert t.accept("a", 1, CERT_A, verified=False) is None
    with pytest.raises(TrustRefused) as refused:
        t.accept("a", 1, CERT_B, verified=False)
    assert refused.value.code == "certificate_changed"
    assert (refused.value.event.known, refused.value.event.presented) == (FP_A, FP_B)
    assert trust(tmp_path).accept("a", 1, CERT_A, verified=False) is None  # kept in the file


def test_a_certificate_a_ca_vouches_for_replaces_an_old_pin_quietly(tmp_path: Path) -> None:
    t = trust(tmp_path)
    t.accept("a", 1, CERT_A, verified=False)
    assert t.accept("a", 1, CERT_B, verified=True) is None
    assert KnownServers(tmp_path / "known").get("a", 1) == FP_B


def test_accepting_deliberately_and_the_announced_fingerprint(tmp_path: Path) -> None:
    trust(tmp_path).accept("a", 1, CERT_A, verified=False)
    accepted = trust(tmp_path, accept_fingerprint=FP_B).accept("a", 1, CERT_B, verified=False)
    assert accepted is not None and accepted.replaced == FP_A
    with pytest.raises(TrustRefused) as refused:
        trust(tmp_path, expected_fingerprint=FP_A).accept("b", 2, CERT_B, verified=False)
    assert refused.value.code == "certificate_mismatch" and refused.value.event.announced
    first = trust(tmp_path, expected_fingerprint=FP_B).accept("b", 2, CERT_B, verified=False)
    assert first is not None
    # an announcement never overrides a pin
    with pytest.raises(TrustRefused):
        trust(tmp_path, expected_fingerprint=FP_A).accept("b", 2, CERT_A, verified=False)


def test_a_pin_the_file_cannot_keep_still_holds_for_the_session(tmp_path: Path) -> None:
    (tmp_path / "known").mkdir()  # a directory where the file should be: writes fail
    t = trust(tmp_path)
    assert t.accept("a", 1, CERT_A, verified=False) is not None
    assert t.accept("a", 1, CERT_A, verified=False) is None
    with pytest.raises(TrustRefused):
        t.accept("a", 1, CERT_B, verified=False)


# --- LAN discovery -----------------------------------------------------------------------------


def announcement(**changes: object) -> Announcement:
    fields: dict[str, object] = {
        "server_id": "abc", "name": "Secure", "port": 5050, "players": 1, "password": False,
        "protocol": 1, **changes,
    }  # fmt: skip
    return Announcement(**fields)  # type: ignore[arg-type]


def test_a_tls_server_announces_tls_and_its_fingerprint() -> None:
    compact = FP_A.replace(":", "").lower()
    secure = announcement(tls=True, fingerprint=compact)
    data = encode(secure)
    assert b'"tls":true' in data and compact.encode() in data
    assert decode(data) == secure
    plain = encode(announcement())
    assert b"tls" not in plain and b"fingerprint" not in plain  # older listeners see no change
    table = ServerTable()
    table.heard(secure, ("192.0.2.1", 5051), 0.0)
    entry = table.entries()[0]
    assert entry.tls and entry.fingerprint == compact
    assert entry.url == "tls://192.0.2.1:5050" and entry.address == "192.0.2.1:5050"


@pytest.mark.parametrize(
    "tail",
    [
        b',"tls":"yes","fingerprint":""}',
        b',"tls":true,"fingerprint":"AB"}',
        b',"tls":true,"fingerprint":"' + b"G" * 64 + b'"}',
        b',"tls":true,"fingerprint":42}',
    ],
)
def test_a_bad_tls_field_is_a_bad_packet(tail: bytes) -> None:
    head = encode(announcement())[len(MAGIC) : -1]
    with pytest.raises(BadPacket):
        decode(MAGIC + head + tail)
    with pytest.raises(ValueError):
        encode(announcement(tls=True, fingerprint="not hex"))
