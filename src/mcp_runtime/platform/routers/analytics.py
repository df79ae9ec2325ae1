"""`ingest/events` (gateways send analytics events) and `analytics/*` (people ask about them)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from mcp_runtime.platform.analytics import SECTIONS
from mcp_runtime.platform.deps import CallerDep, PlatformDep, bearer_token
from mcp_runtime.platform.errors import ApiError, invalid
from mcp_runtime.sentinel.events import IngestBatch

router = APIRouter(tags=["analytics"])



def _text() -> Any:
    """A fresh Query per parameter (FastAPI binds a Query object to the parameter it first sees)."""
    return Query(None, max_length=253)


@router.post("/ingest/events", status_code=202, responses={202: {"description": "{accepted, duplicates}"}})
async def ingest_events(request: Request, platform: PlatformDep) -> JSONResponse:
    """A batch `{"events": [...]}` from a gateway, with an ingest API key; idempotent on `event_id`."""
    token = bearer_token(request)
    keys = platform.ingest_keys
    if not keys.known(token) and not await run_in_threadpool(keys.verify, token):  # a miss may reload from the DB
        raise ApiError(401, "invalid_ingest_key",
                       "send Authorization: Bearer <ingest API key> (the platform's data dir has the local "
                       "gateways' key in ingest-api-key)", headers={"WWW-Authenticate": "Bearer"})
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the events as application/json")
    body = await request.body()
    try:
        batch = IngestBatch.model_validate_json(body)
    except ValidationError as exc:
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            raise ApiError(400, "malformed_json", "request body is not valid JSON") from None
        raise invalid(exc) from None
    try:
        result = await platform.ingest.ingest(batch.events)
    except ApiError:
        raise
    except Exception as exc:  # the store or NATS is down: 503 makes the emitter spool and retry
        raise ApiError(503, "unavailable", f"the analytics store cannot take events now ({type(exc).__name__})",
                       headers={"Retry-After": "1"}) from exc
    return JSONResponse(result.model_dump(), status_code=202)


@router.get("/analytics/usage")
def usage(caller: CallerDep, platform: PlatformDep,
          section: list[str] = Query(list(SECTIONS), description=f"any of: {', '.join(SECTIONS)}"),
          server: str | None = _text(), namespace: str | None = _text(), team: str | None = _text(),
          user: str | None = _text(), agent: str | None = _text(), tool: str | None = _text(),
          decision: Literal["allow", "deny"] | None = None,
          since: str | None = Query(None, max_length=64, description="15m, 24h, 7d or ISO 8601"),
          until: str | None = Query(None, max_length=64),
          bucket: Literal["hour", "day"] = "hour", limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    """Totals, servers, tools, actors, decisions, time series and recent events the caller may see."""
    sections = [s.strip() for value in section for s in value.split(",") if s.strip()]
    flt = platform.analytics.filter(caller, server=server, namespace=namespace, team=team, user=user,
                                    agent=agent, tool=tool, decision=decision, since=since, until=until)
    return platform.analytics.usage(flt, sections, bucket=bucket, limit=limit)


@router.get("/analytics/events")
def events(caller: CallerDep, platform: PlatformDep, server: str | None = _text(), namespace: str | None = _text(),
           team: str | None = _text(), user: str | None = _text(), agent: str | None = _text(),
           tool: str | None = _text(),
           decision: Literal["allow", "deny"] | None = None,
           since: str | None = Query(None, max_length=64), until: str | None = Query(None, max_length=64),
           after: str | None = Query(None, max_length=36, description="the `next` of the previous page"),
           limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    """Events in emission order, a page at a time; poll with `after=<next>` to follow new ones."""
    flt = platform.analytics.filter(caller, server=server, namespace=namespace, team=team, user=user,
                                    agent=agent, tool=tool, decision=decision, since=since, until=until)
    return platform.analytics.list_events(flt, limit=limit, after=after)
