"""Where mirrorscale keeps its data: the database URL and the data directory.

``MIRRORSCALE_DATABASE_URL`` selects the history store (any SQLAlchemy URL,
e.g. ``postgresql+psycopg://user@host/db``). Without it, mirrorscale uses an
embedded SQLite file in the user's data directory (``MIRRORSCALE_HOME`` if
set, else the platform's user data dir, e.g. ``~/.local/share/mirrorscale``).
"""

from __future__ import annotations

import os
from pathlib import Path

DATABASE_URL_ENV = "MIRRORSCALE_DATABASE_URL"
HOME_ENV = "MIRRORSCALE_HOME"


def data_dir() -> Path:
    """Return (and create) the directory for mirrorscale's own files."""
    home = os.environ.get(HOME_ENV)
    if home:
        path = Path(home).expanduser()
    else:
        from platformdirs import user_data_dir

        path = Path(user_data_dir("mirrorscale", appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url() -> str:
    """The store's SQLAlchemy URL: ``MIRRORSCALE_DATABASE_URL`` or the SQLite default."""
    url = os.environ.get(DATABASE_URL_ENV, "").strip()
    if url:
        return url
    return f"sqlite:///{data_dir() / 'mirrorscale.sqlite'}"
