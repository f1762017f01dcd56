"""Record actions: change the enrolled record or the records around it."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from crmflow.actions import record as spec
from crmflow.actions.record import SetMode, SetPropertyFields
from crmflow.criteria.values import as_number
from crmflow.errors import InvalidArgument
from executor.activities.base import ActionContext, handles


def _add_days(current: Any, days: float) -> Any:
    if current in (None, ""):
        raise InvalidArgument.field("fields.property", "the property holds no date to add days to")
    if isinstance(current, str) and len(current) == 10:
        return (date.fromisoformat(current) + timedelta(days=days)).isoformat()
    if isinstance(current, str):
        dt = datetime.fromisoformat(current.replace("Z", "+00:00"))
        return (dt + timedelta(days=days)).isoformat()
    if isinstance(current, int | float):  # epoch milliseconds
        return current + days * 86_400_000
    raise InvalidArgument.field("fields.property", f"cannot add days to {current!r}")


async def new_value(ctx: ActionContext, f: SetPropertyFields) -> Any:
    r = ctx.req
    if f.mode == SetMode.SET:
        return f.value
    if f.mode == SetMode.CLEAR:
        return None
    current = (await ctx.store.get(r.tenant_id, r.object_type, r.record_id)).properties
    if f.mode == SetMode.COPY:
        return current.get(f.source_property)
    if f.mode in (SetMode.INCREMENT, SetMode.DECREMENT):
        base = as_number(current.get(f.property)) or 0.0
        result = base + (f.amount if f.mode == SetMode.INCREMENT else -f.amount)
        return int(result) if float(result).is_integer() else result
    return _add_days(current.get(f.property), f.amount)


@handles(spec.SET_PROPERTY)
async def set_property(ctx: ActionContext, f: SetPropertyFields) -> dict[str, Any]:
    r = ctx.req
    value = await new_value(ctx, f)
    await ctx.store.update(
        r.tenant_id, r.object_type, r.record_id, {f.property: value},
        idempotency_key=r.idempotency_key,
    )
    return {"property": f.property, "value": value}
