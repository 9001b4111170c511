"""Where the built-in templates are: inside the installed package, or at the top of a source checkout.

``templates/`` stays at the top of the repository, where coordinators find it; the wheel ships it as the
package ``surveybot.templates`` (see ``pyproject.toml``). An editable install has no such package on disk,
so it reads the checkout's folder — the very files being edited.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent / "templates"


def template_folder(name: str) -> Path:
    """The folder ``templates/NAME`` ('email' or 'web'); the installed one when present, else the checkout's.

    A missing folder is returned as the installed location would be, so a broken install's error names it."""
    installed = _installed()
    for candidate in (installed, CHECKOUT):
        if candidate is not None and (candidate / name).is_dir():
            return candidate / name
    return (installed or CHECKOUT) / name


def _installed() -> Path | None:
    try:
        spec = importlib.util.find_spec("surveybot.templates")
    except ImportError:
        return None
    # a namespace package (the folder has no __init__.py): its one location on disk
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return Path(locations[0]) if locations else None
