"""The portal's Jinja looks a dict row's key up before trying getattr (for
speed) yet answers as stock Jinja does: a key never hides a dict method."""

from __future__ import annotations

from jinja2 import Environment

from portal.web.app import _engine_setup


class _Engine:
    def __init__(self) -> None:
        self.engine = Environment(autoescape=True)


def _render(source: str, **context) -> str:
    engine = _Engine()
    _engine_setup(engine)  # type: ignore[arg-type]
    stock = Environment(autoescape=True).from_string(source).render(**context)
    portal = engine.engine.from_string(source).render(**context)
    assert portal == stock
    return portal


def test_a_dict_row_answers_as_in_stock_jinja():
    row = {"name": "Dana", "items": 3, "get": "key"}
    assert _render("{{ row.name }}", row=row) == "Dana"
    assert _render("{{ row.missing is undefined }}", row=row) == "True"
    assert _render("{{ row.items is callable }} {{ row['items'] }}", row=row) == "True 3"
    assert _render("{% for k, v in row.items() %}{{ k }}{% endfor %}", row=row) == "nameitemsget"
    assert _render("{{ row.get('name') }}", row=row) == "Dana"
