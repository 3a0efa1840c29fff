"""Where game_chat keeps its per-user files: the client's settings and the server's history.

The directories are platformdirs' for this platform, unless an environment variable names
another, or the directory an older game_chat chose by hand already holds the file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

__all__ = ["APP_NAME", "HISTORY_FILE", "SETTINGS_FILE", "config_dir", "data_dir"]

APP_NAME = "game_chat"
SETTINGS_FILE = "client.json"  # in config_dir()
HISTORY_FILE = "history.sqlite3"  # in data_dir()

# Before platformdirs, game_chat chose these directories by hand. What platformdirs gives with
# the options below, against that:
#
#            settings (config_dir)                      history (data_dir)
#   Linux    $XDG_CONFIG_HOME or ~/.config: same        $XDG_DATA_HOME or ~/.local/share: same
#   Windows  %APPDATA% (Roaming): same                  %LOCALAPPDATA%: same
#   macOS    ~/Library/Application Support: same       ~/Library/Application Support: same
#
# appauthor=False: no author folder on Windows (it would be game_chat\game_chat). roaming=True
# for settings only: they have always been in Roaming (%APPDATA%), where Windows carries them
# from machine to machine; platformdirs' default would be Local. History stays Local: a
# database is no file to roam.
#
# One difference: platformdirs honours $XDG_CONFIG_HOME and $XDG_DATA_HOME on macOS too, where
# the old code ignored them. A Mac with those set would find its settings and history gone, so
# there the old directory is still used while it holds the file and the new one does not.
# (Two cases are not carried over, as they only held settings, which come back from the
# defaults: a relative $XDG_CONFIG_HOME, which the old code took relative to the working
# directory and the XDG spec says to ignore; and a Windows session without %APPDATA%, where the
# old code used the home folder.)


def config_dir() -> Path:
    """The directory of the client's settings ($GAME_CHAT_CONFIG_DIR overrides)."""
    current = platformdirs.user_config_path(APP_NAME, appauthor=False, roaming=True)
    return _choose("GAME_CHAT_CONFIG_DIR", current, SETTINGS_FILE)


def data_dir() -> Path:
    """The directory of the server's history database ($GAME_CHAT_DATA_DIR overrides)."""
    current = platformdirs.user_data_path(APP_NAME, appauthor=False)
    return _choose("GAME_CHAT_DATA_DIR", current, HISTORY_FILE)


def _choose(override_variable: str, current: Path, filename: str) -> Path:
    """The override if set; else ``current``, unless only an older game_chat's directory holds
    ``filename``."""
    override = os.environ.get(override_variable)
    if override:
        return Path(override)
    for old in _old_dirs():
        if old != current and _holds(old, filename) and not _holds(current, filename):
            return old
    return current


def _holds(directory: Path, filename: str) -> bool:
    try:
        return (directory / filename).exists()
    except OSError:  # unreadable: as good as absent, and no reason to stop the program
        return False


def _old_dirs() -> list[Path]:
    """The directories the old code chose where platformdirs may choose another (see above)."""
    if sys.platform == "darwin":
        return [Path.home() / "Library" / "Application Support" / APP_NAME]
    return []
