"""The dashboard: server-rendered pages (Jinja2, a little JS, no build step).

/            every site's zones: score, grade, a 30-day sparkline
/sites/S/zones/Z   a zone's acts: time, type, severity, evidence thumbnail, void button
/sites/S/cameras   the cameras: last event, chain state (blocked: reason and recovery), zone map
/login, /logout    log in with an API key (a session cookie follows)

Every page except /login needs a session (or an API key header); without one the login page
is returned with 401, so nothing of the ledger is shown.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from detector.backend.auth import SESSION_COOKIE, AuthError, Principal, key_hash

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
router = APIRouter(include_in_schema=False)

GRADE_COLOURS = {"A": "#2e9e44", "B": "#a3c227", "C": "#f0a020", "D": "#d83a2e"}


def _ago(ts: float | None) -> str:
    if ts is None:
        return "never"
    s = max(0, time.time() - ts)
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= n:
            return f"{int(s // n)} {unit} ago"
    return f"{int(s)} s ago"


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC") if ts else ""


def sparkline(history: list[dict], ceiling: int, width: int = 120, height: int = 24) -> str:
    """SVG polyline points of the daily scores (the top edge is the ceiling)."""
    scores = [h["score"] for h in history]
    lo = min(min(scores), ceiling - 1)
    step = width / max(1, len(scores) - 1)
    pts = [f"{i * step:.1f},{(ceiling - s) / (ceiling - lo) * (height - 2) + 1:.1f}" for i, s in enumerate(scores)]
    return " ".join(pts)


templates.env.filters["ago"] = _ago
templates.env.filters["when"] = _when
templates.env.filters["q"] = lambda s: quote(str(s), safe="")
templates.env.globals["grade_colours"] = GRADE_COLOURS


def _page(request: Request, role: str = "viewer") -> Principal:
    return request.app.state.auth.require(request, role, page=True)


def render(request: Request, name: str, p: Principal | None, status: int = 200, **ctx) -> HTMLResponse:
    return templates.TemplateResponse(
        request, name, {"user": p.user if p else None, "csrf": p.csrf if p else "", **ctx}, status_code=status
    )


def login_page(request: Request, message: str = "", status: int = 200) -> HTMLResponse:
    return render(request, "login.html", None, status=status, message=message)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    return login_page(request)


@router.post("/login")
def login(request: Request, key: str = Form("")) -> Response:
    auth = request.app.state.auth
    found = auth.log_in(key.strip()) if key.strip() else None
    if found is None:
        return login_page(request, "That API key is not valid.", 401)
    _, token = found
    r = RedirectResponse("/", status_code=303)
    r.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(auth.session_seconds),
        httponly=True,
        samesite="strict",
        secure=auth.secure_cookie,
        path="/",
    )
    return r


@router.post("/logout")
def logout(request: Request, csrf: str = Form("")) -> Response:
    p = _page(request)
    request.app.state.auth.check_csrf(p, csrf)
    if p.session_token:
        request.app.state.store.end_session(key_hash(p.session_token))
    r = RedirectResponse("/login", status_code=303)
    r.delete_cookie(SESSION_COOKIE, path="/")
    return r


@router.get("/", response_class=HTMLResponse)
def overview(request: Request) -> HTMLResponse:
    p = _page(request)
    st = request.app.state
    ceiling = st.backend.config.scoring.ceiling
    sites: dict[str, list[dict]] = {}
    for z in st.store.zones():
        row = st.scores.zone(z)
        history = st.scores.history(z.total, st.store.daily(z.site, z.zone, 30))
        row["spark"] = sparkline(history, ceiling)
        sites.setdefault(z.site, []).append(row)
    blocked = [s for s in st.store.source_states() if s.blocked_reason]
    for s in st.store.source_states():
        sites.setdefault(s.site, [])
    return render(request, "overview.html", p, sites=sites, blocked=blocked, ceiling=ceiling)


@router.get("/sites/{site}/zones/{zone}", response_class=HTMLResponse)
def zone_page(request: Request, site: str, zone: str) -> HTMLResponse:
    p = _page(request)
    st = request.app.state
    z = st.store.zone(site, zone)
    if z is None:
        return render(request, "message.html", p, status=404, title="No such zone", message=f"{site} / {zone}")
    row = st.scores.zone(z)
    history = st.scores.history(z.total, st.store.daily(site, zone, 30))
    acts = st.store.recent(site, zone, st.backend.config.recent_entries)
    return render(
        request,
        "zone.html",
        p,
        site=site,
        z=row,
        acts=acts,
        spark=sparkline(history, st.backend.config.scoring.ceiling, 360, 60),
        can_void=p.user.role in ("operator", "admin"),
    )


@router.post("/sites/{site}/zones/{zone}/void")
def void_form(
    request: Request, site: str, zone: str, event_id: str = Form(...), reason: str = Form(""), csrf: str = Form("")
) -> Response:
    p = _page(request, "operator")
    request.app.state.auth.check_csrf(p, csrf)
    if not reason.strip():
        raise AuthError(400, "reason", "a void needs a reason", page=True)
    request.app.state.void(event_id, reason[:500], p)
    return RedirectResponse(f"/sites/{quote(site, safe='')}/zones/{quote(zone, safe='')}", status_code=303)


@router.get("/sites/{site}/cameras", response_class=HTMLResponse)
def cameras_page(request: Request, site: str) -> HTMLResponse:
    from detector.backend.app import source_state

    p = _page(request)
    st = request.app.state
    cams = [source_state(s) for s in st.store.source_states(site)]
    grades = {}
    for z in st.store.zones(site):
        row = st.scores.zone(z)
        grades[z.zone] = row
    default = {"score": st.backend.config.scoring.ceiling, "grade": "A"}
    views = []
    for v in st.store.views(site):
        zones = [
            {
                "id": z["id"],
                "points": " ".join(f"{x},{y}" for x, y in z["polygon"]),
                "label_at": z["polygon"][0],
                **grades.get(z["id"], default),
            }
            for z in v.zones
        ]
        views.append({"camera": v.source.rsplit("/", 1)[-1], "v": v, "zones": zones})
    return render(request, "cameras.html", p, site=site, cameras=cams, views=views)
