"""Where settings and history live: platformdirs' directories, the environment overrides, and
the old macOS directory kept while it holds the user's files.

platformdirs reads the environment when asked, so these tests point $HOME and the XDG variables
at tmp_path. The macOS and Windows cases run platformdirs' own MacOS and Windows classes here
(its convenience functions look up ``platformdirs.PlatformDirs`` on each call)."""

from __future__ import annotations

import sys
from pathlib import Path

import platformdirs
import platformdirs.macos
import platformdirs.windows
import pytest

from game_chat.client.config import ClientSettings
from game_chat.dirs import config_dir, data_dir
from game_chat.server.history import default_history_path

on_unix = pytest.mark.skipif(
    sys.platform in ("win32", "darwin"), reason="platformdirs' XDG directories (Linux, BSD)"
)
not_on_windows = pytest.mark.skipif(sys.platform == "win32", reason="HOME does not move ~ there")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home of our own, no XDG variables, and none of conftest's GAME_CHAT_* overrides."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("GAME_CHAT_CONFIG_DIR", "GAME_CHAT_DATA_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def mac(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """platformdirs and game_chat.dirs as on macOS; the old directory, not yet created."""
    monkeypatch.setattr(platformdirs, "PlatformDirs", platformdirs.macos.MacOS)
    monkeypatch.setattr(sys, "platform", "darwin")
    return home / "Library" / "Application Support" / "game_chat"


# --- Linux: the XDG directories, as before ----------------------------------------------------


@on_unix
def test_xdg_variables_place_settings_and_history(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "cfg"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    assert config_dir() == home / "cfg" / "game_chat"
    assert default_history_path() == home / "data" / "game_chat" / "history.sqlite3"
    ClientSettings(nick="alice", server="example.org:5050").save()
    assert (home / "cfg" / "game_chat" / "client.json").is_file()
    assert ClientSettings.load().nick == "alice"


@on_unix
def test_without_xdg_variables_the_dirs_are_under_home(home: Path) -> None:
    assert config_dir() == home / ".config" / "game_chat"
    assert data_dir() == home / ".local" / "share" / "game_chat"


@on_unix
def test_relative_xdg_variables_are_ignored(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative")
    monkeypatch.setenv("XDG_DATA_HOME", "relative")
    assert config_dir() == home / ".config" / "game_chat"
    assert data_dir() == home / ".local" / "share" / "game_chat"


def test_environment_overrides_win(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "cfg"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("GAME_CHAT_CONFIG_DIR", str(home / "my-config"))
    monkeypatch.setenv("GAME_CHAT_DATA_DIR", str(home / "my-data"))
    assert config_dir() == home / "my-config"
    assert default_history_path() == home / "my-data" / "history.sqlite3"


# --- Windows: settings in Roaming, history in Local, no author folder -------------------------


@not_on_windows
def test_windows_settings_roam_and_history_stays_local(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # platformdirs' own override of the shell's answer, so that this runs off Windows too
    monkeypatch.setenv("WIN_PD_OVERRIDE_APPDATA", "C:\\Users\\a\\AppData\\Roaming")
    monkeypatch.setenv("WIN_PD_OVERRIDE_LOCAL_APPDATA", "C:\\Users\\a\\AppData\\Local")
    monkeypatch.setattr(platformdirs, "PlatformDirs", platformdirs.windows.Windows)
    assert str(config_dir()).replace("\\", "/") == "C:/Users/a/AppData/Roaming/game_chat"
    assert str(data_dir()).replace("\\", "/") == "C:/Users/a/AppData/Local/game_chat"


# --- macOS: Application Support, or XDG if set unless the old directory holds the files -------


@not_on_windows
def test_mac_without_xdg_uses_application_support(mac: Path) -> None:
    assert config_dir() == mac
    assert data_dir() == mac


@not_on_windows
def test_mac_with_xdg_and_nothing_saved_follows_xdg(
    mac: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "cfg"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    assert config_dir() == home / "cfg" / "game_chat"
    assert data_dir() == home / "data" / "game_chat"


@not_on_windows
def test_mac_with_xdg_keeps_the_files_an_older_game_chat_saved(
    mac: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mac.mkdir(parents=True)
    (mac / "client.json").write_text('{"nick": "bob", "server": "old.example:5050"}')
    (mac / "history.sqlite3").write_bytes(b"")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "cfg"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    assert ClientSettings.load().server == "old.example:5050"
    assert default_history_path() == mac / "history.sqlite3"


@not_on_windows
def test_mac_old_dir_counts_only_for_the_file_it_holds(
    mac: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The settings made the old directory; the history was never there.
    mac.mkdir(parents=True)
    (mac / "client.json").write_text("{}")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "cfg"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    assert config_dir() == mac
    assert data_dir() == home / "data" / "game_chat"


@not_on_windows
def test_mac_new_dir_wins_once_it_holds_the_file(
    mac: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new = home / "cfg" / "game_chat"
    for directory in (mac, new):
        directory.mkdir(parents=True)
        (directory / "client.json").write_text("{}")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "cfg"))
    assert config_dir() == new
