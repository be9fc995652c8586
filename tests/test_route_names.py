"""Every `url_for` name in a template is a route of the app: a typo or a renamed
handler fails here, not on the one page that happens to link to it."""

from __future__ import annotations

import re
from pathlib import Path

from portal.web.app import create_app

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
_URL_FOR = re.compile(r"""url_for\(\s*['"]([^'"]+)['"]""")


def _names_in_templates() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in TEMPLATES.rglob("*.html"):
        for name in _URL_FOR.findall(path.read_text()):
            found.setdefault(name, path.relative_to(TEMPLATES).as_posix())
    return found


def test_templates_name_routes() -> None:
    names = _names_in_templates()
    assert names, "no url_for in the templates: the pattern no longer finds them"
    app = create_app()
    missing = {name: where for name, where in names.items() if app.get_handler_index_by_name(name) is None}
    assert not missing, f"url_for names no route: {missing}"


def test_the_pattern_finds_a_known_name() -> None:
    assert _URL_FOR.findall("""href="{{ url_for('orders.assign', order_id=o.id) }}?x=1\"""") == ["orders.assign"]
