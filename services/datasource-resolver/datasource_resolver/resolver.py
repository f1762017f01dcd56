"""ResolveInputs: one action's fields -> typed values for one enrollment step.

Only what the fields reference is read: the enrolled record when a token (or a property-match
source) needs it, and only the data sources that are referenced. Everything read is kept in the
step cache (keyed by tenant, workflow, revision, record and step), so the executor's retries and
the several fields of one action cost one round of look-ups; a change to any record read drops
the entry. The look-ups of one step are one ``RecordStore.resolve_sources`` call (O(1) round
trips on the SQL store and over gRPC).

Missing data never raises: a missing record or source makes its tokens fall back to their
defaults or the explicit unknown value, and the paths are reported in ``missing``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from crmflow.actions.catalogue import default_registry
from crmflow.actions.registry import ActionRegistry, UnknownActionType
from crmflow.model.data_sources import DataSource
from crmflow.model.records import Record
from crmflow.records.port import RecordStore
from crmflow.records.sources import needs_enrolled, searched_types
from crmflow.tokens import Escape, build_context, parse, references_in
from crmflow.tokens.render import render_template, resolve_value
from datasource_resolver.cache import StepCache, StepData, StepKey, deps_of

log = logging.getLogger("datasource_resolver.resolver")

# Escaping when neither the request nor the action type says: email bodies are HTML, webhook
# bodies JSON.
_GUESSED_ESCAPES: dict[str, dict[str, Escape]] = {
    "email": {"body": Escape.HTML, "html": Escape.HTML, "html_body": Escape.HTML},
    "webhook": {"body": Escape.JSON},
}


@dataclass
class ResolveRequest:
    tenant_id: str
    workflow_id: str
    revision: int
    object_type: str
    record_id: str
    action_id: str
    fields: dict[str, Any]
    action_outputs: dict[str, Any] = field(default_factory=dict)
    event_properties: dict[str, Any] = field(default_factory=dict)
    data_sources: list[DataSource] = field(default_factory=list)
    action_type: str = ""
    type_version: int = 1
    escapes: dict[str, Escape] = field(default_factory=dict)
    step_key: str = ""


@dataclass
class ResolveResult:
    values: dict[str, Any]
    missing: list[str] = field(default_factory=list)
    sources: dict[str, Record | None] = field(default_factory=dict)


class Resolver:
    def __init__(
        self,
        store: RecordStore,
        cache: StepCache | None = None,
        registry: ActionRegistry | None = None,
    ) -> None:
        self._store = store
        self._cache = cache if cache is not None else StepCache()
        self._registry = registry or default_registry()

    def _escapes(self, req: ResolveRequest) -> Mapping[str, Escape]:
        out: dict[str, Escape] = {}
        if req.action_type:
            try:
                spec = self._registry.get(req.action_type, req.type_version or 1)
                declared = getattr(spec, "token_escapes", None) or {}
                out.update({k: Escape(v) for k, v in dict(declared).items()})
            except (UnknownActionType, ValueError):
                pass
            if not out:
                for word, guess in _GUESSED_ESCAPES.items():
                    if word in req.action_type:
                        out.update(guess)
        out.update(req.escapes)
        return out

    async def step_data(
        self, req: ResolveRequest, source_ids: set[str], need_record: bool
    ) -> StepData:
        """Enrolled record and the asked sources, from the cache or the store."""
        key: StepKey = (
            req.tenant_id,
            req.workflow_id,
            req.revision,
            req.object_type,
            req.record_id,
            req.step_key or req.action_id,
        )
        by_id = {s.source_id: s for s in req.data_sources}
        wanted = [by_id[s] for s in sorted(source_ids) if s in by_id]
        cached = self._cache.get(key)
        todo = [s for s in wanted if cached is None or s.source_id not in cached.sources]
        need_record = need_record or needs_enrolled(todo)
        if cached is not None and not todo and (cached.record is not None or not need_record):
            return cached
        data = cached or StepData(record=None)
        # One port call for the record and every source (the SQL store and the gRPC adapter
        # answer it in one statement / one rpc; see RecordStore.resolve_sources).
        got = await self._store.resolve_sources(
            req.tenant_id,
            req.object_type,
            req.record_id,
            todo,
            enrolled=data.record,
            include_record=need_record and data.record is None,
        )
        if need_record and data.record is None:
            data.record = got.record
        data.sources.update({s.source_id: got.sources.get(s.source_id) for s in todo})
        deps = deps_of(req.tenant_id, [data.record, *data.sources.values()], searched_types(wanted))
        deps |= data.deps
        deps.add((req.tenant_id, req.object_type, req.record_id))
        data.deps = deps
        self._cache.put(key, data)
        return data

    async def resolve(self, req: ResolveRequest) -> ResolveResult:
        # Parse everything first: a malformed template is refused before any look-up.
        need_record, source_ids = _needs(req.fields)
        data = await self.step_data(req, set(source_ids), need_record)
        context = build_context(
            object_type=req.object_type,
            record=data.record.properties if data.record else None,
            sources={
                sid: (r.properties if r is not None else None) for sid, r in data.sources.items()
            },
            actions=req.action_outputs,
            event=req.event_properties,
        )
        escapes = self._escapes(req)
        missing: list[str] = []
        values = {
            name: _resolve(value, context, escapes.get(name, Escape.NONE), missing)
            for name, value in req.fields.items()
        }
        return ResolveResult(values, list(dict.fromkeys(missing)), dict(data.sources))


# Field texts whose references are remembered (what an action's fields read is the same for
# every step of every enrollment; bounded by entries and by characters per entry).
_NEEDS_CACHE_CHARS = 8_192


def _needs(fields: dict[str, Any]) -> tuple[bool, frozenset[str]]:
    """Whether the fields read the enrolled record, and the source ids they read (a malformed
    template raises TemplateError). Flat text fields: parsed once per set of texts."""
    values = tuple(fields.values())
    if all(type(v) is str for v in values) and sum(map(len, values)) <= _NEEDS_CACHE_CHARS:
        return _needs_of_texts(values)
    refs = references_in(list(values))
    return bool(refs.objects), frozenset(refs.sources)


@lru_cache(maxsize=4096)
def _needs_of_texts(texts: tuple[str, ...]) -> tuple[bool, frozenset[str]]:
    refs = references_in(texts)
    return bool(refs.objects), frozenset(refs.sources)


def _resolve(value: Any, context: dict[str, Any], escape: Escape, missing: list[str]) -> Any:
    if isinstance(value, str):
        if "{{" not in value:
            return value
        template = parse(value)
        # Escaped fields (email/webhook bodies) are always text; others keep a lone token's type.
        if template.single_token is not None and escape is Escape.NONE:
            out = resolve_value(value, context, escape=escape)
            if isinstance(out, dict) and "$unknown" in out:
                missing.append(out["$unknown"])
            return out
        res = render_template(template, context, escape=escape)
        missing.extend(res.missing)
        return res.text
    if isinstance(value, dict):
        return {k: _resolve(v, context, escape, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, context, escape, missing) for v in value]
    return value
