"""`page` / `per_page` as Clarifai defines them (1-based, default 128, at most 1000).

`page` is bounded too (MAX_PAGE): an offset past any real listing is refused with an
invalid-request status instead of reaching the database (a huge OFFSET is a database error on
some backends and a full scan on others).
"""

from __future__ import annotations

from .errors import SC, ApiError

DEFAULT_PER_PAGE = 128
MAX_PER_PAGE = 1000
MAX_PAGE = 100_000


def page_bounds(page: int, per_page: int) -> tuple[int, int]:
    """Return (offset, limit) for a 1-based page; 0 means 'use the default'."""
    page = page or 1
    per_page = per_page or DEFAULT_PER_PAGE
    if page < 1 or per_page < 1:
        raise ApiError(SC.CONN_INVALID_REQUEST, "page and per_page must be positive")
    if page > MAX_PAGE:
        raise ApiError(SC.CONN_INVALID_REQUEST, f"page may be at most {MAX_PAGE}")
    if per_page > MAX_PER_PAGE:
        raise ApiError(SC.CONN_INVALID_REQUEST, f"per_page may be at most {MAX_PER_PAGE}")
    return (page - 1) * per_page, per_page


def paginate(queryset, page: int, per_page: int):
    offset, limit = page_bounds(page, per_page)
    return queryset[offset : offset + limit]
