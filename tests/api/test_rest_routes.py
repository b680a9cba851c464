"""The REST router: one trie for the ~300 bindings resolves every path as a list of Django
`path()` patterns in specificity order does (the router it replaced), variables and all."""

from __future__ import annotations

import functools
import random

from django.urls import URLResolver, resolve
from django.urls import path as django_path
from django.urls.exceptions import Resolver404
from django.urls.resolvers import RegexPattern

from collectors_module.api.rest.transport import (
    _django_route,
    _specificity,
    make_view,
    route_table,
    urlpatterns,
)
from collectors_module.core.errors import SC


@functools.cache
def _reference():
    """The old router: one Django `path()` per template, sorted by specificity."""
    table = route_table()
    patterns = [
        django_path(_django_route(t), make_view(t, table[t]))
        for t in sorted(table, key=_specificity)
    ]
    return URLResolver(RegexPattern(r"^/"), patterns)


@functools.cache
def _trie():
    return URLResolver(RegexPattern(r"^/"), urlpatterns())


def _paths() -> list[str]:
    """A concrete path per template, plus neighbours a client might send by mistake."""
    rng = random.Random(20261204)
    out = []
    for template in route_table():
        segs = template.strip("/").split("/")
        words = [f"w{rng.randrange(1000)}" if s.startswith("{") else s for s in segs]
        out.append("/" + "/".join(words))
        # a variable filled with a literal another template has at that place
        literal_fill = ["types" if s.startswith("{") else s for s in segs]
        out.append("/" + "/".join(literal_fill))
        out.append("/" + "/".join(words) + "/")  # trailing slash: no route
        out.append("/" + "/".join(words[:-1]) + "//" + words[-1])  # an empty segment
        out.append("/" + "/".join(words) + "/extra")
    return out


def _outcome(resolver, path: str):
    try:
        match = resolver.resolve(path)
    except Resolver404:
        return None
    return (getattr(match.func, "rest_template", None), match.kwargs, match.route)


def test_the_trie_resolves_as_the_sorted_patterns_did():
    paths = _paths()
    differ = [p for p in paths if _outcome(_trie(), p) != _outcome(_reference(), p)]
    assert not differ, differ[:10]
    resolved = [p for p in paths if _outcome(_trie(), p) is not None]
    assert len(route_table()) <= len(resolved) < len(paths)  # both kinds of path were tried


def test_literal_segments_win_over_variables_and_values_are_passed_by_name():
    match = resolve("/v2/models/types")
    assert match.func.rest_template == "/v2/models/types"
    match = resolve("/v2/users/alice/apps/app1/models/m1/versions/v1/outputs")
    assert match.func.rest_template.endswith("/versions/{version_id}/outputs")
    assert match.kwargs == {
        "user_app_id__user_id": "alice",
        "user_app_id__app_id": "app1",
        "model_id": "m1",
        "version_id": "v1",
    }


def test_a_path_no_binding_has_falls_through_to_the_json_404(client):
    response = client.get("/v2/no/such/route")
    assert response.status_code == 404
    assert response.json()["status"]["code"] == SC.CONN_DOES_NOT_EXIST
