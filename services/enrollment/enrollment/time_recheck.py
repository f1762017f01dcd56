"""Time-relative criteria re-checked by a schedule: records that start matching because time
passed ("createdate is more than 7 days ago", "renewal date is within the next 30 days").

An event re-evaluates criteria only for the record it is about; a record whose date crosses a
boundary while nothing happens to it would never enroll. So every active revision whose
enrollment (or re-enrollment) criteria read a time-relative operator gets a Temporal Schedule
(``schedules.py``) that runs ``EnrollmentTimeRecheck`` every few minutes: it asks the CRM for
the records that can have crossed a boundary since the last check (``since``, a durable
watermark) and enrolls those whose criteria did not match at ``since`` and match now — the
same not-matching -> matching transition an event would have produced, applied through the
same rules (first time only, re-enrollment, suppression, goal, never twice at once). The
records enrolled in the workflow are re-checked the same way for a goal or unenrollment
criteria that time made true, and for enrollment criteria that time made false ("unenroll
when criteria are no longer met").

Pure helpers here; the activity lives in ``activities.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from crmflow.criteria.evaluate import Matcher
from crmflow.criteria.operators import TIME_RELATIVE
from crmflow.criteria.values import as_number
from crmflow.model.criteria import Conjunction, FilterGroup, PropertyFilter
from enrollment.compiled import CompiledWorkflow

# Dates stored without a time compare as midnight; a day either side of the crossing window
# keeps them in the search (each candidate is confirmed exactly afterwards).
SLACK = timedelta(days=1)


def time_filters(group: FilterGroup) -> Iterator[PropertyFilter]:
    """The record's own time-relative filters (association-scoped ones are not searched)."""
    for f in group.filters:
        if f.operator in TIME_RELATIVE and f.association is None:
            yield f
    for g in group.groups:
        yield from time_filters(g)


def needs_recheck(cw: CompiledWorkflow) -> bool:
    """Does time alone change something for this revision (a schedule re-checks it)?"""
    return bool(recheck_triggers(cw) or leaving_rules(cw))


def recheck_triggers(cw: CompiledWorkflow) -> list[tuple[str, int]]:
    """(role, index) of the enroll / re-enroll criteria that time alone can flip."""
    return [
        key
        for key, (group, _) in cw.criteria.items()
        if key[0] in ("enroll", "reenroll") and any(True for _ in time_filters(group))
    ]


LeavingRule = tuple[str, int, Matcher, bool]  # (role, index, matcher, rising)


def leaving_rules(cw: CompiledWorkflow) -> list[LeavingRule]:
    """Goal and unenrollment criteria that time alone can make true, and "criteria no longer
    met" that time alone can make false: re-checked for the records enrolled now."""
    out: list[LeavingRule] = []
    e = cw.definition.enrollment
    if cw.goal is not None and e.goal is not None and any(True for _ in time_filters(e.goal)):
        out.append(("goal", -1, cw.goal, True))
    for (role, i), (group, m) in cw.criteria.items():
        if role == "unenroll" and any(True for _ in time_filters(group)):
            out.append(("unenroll", i, m, True))
    if cw.stay is not None and cw.stay_matcher is not None:
        if any(True for _ in time_filters(cw.stay)):
            out.append(("stay", -1, cw.stay_matcher, False))
    return out


def crossing_window(f: PropertyFilter, since: datetime, now: datetime) -> PropertyFilter:
    """The values for which ``f`` went from false to true between ``since`` and ``now``.

    within_last_days N (t - N <= x <= t) turns true when t reaches x: x in (since, now];
    within_next_days N (t <= x <= t + N) when t + N reaches x: x in (since + N, now + N];
    more_than_days_ago N (x < t - N) when t - N passes x: x in [since - N, now - N).
    """
    span = timedelta(days=as_number(f.value) or 0)
    if f.operator == "within_last_days":
        lo, hi = since, now
    elif f.operator == "within_next_days":
        lo, hi = since + span, now + span
    else:
        lo, hi = since - span, now - span
    return PropertyFilter(
        property=f.property,
        operator="between",
        values=[(lo - SLACK).isoformat(), (hi + SLACK).isoformat()],
    )


def recheck_search(cw: CompiledWorkflow, since: datetime, now: datetime) -> FilterGroup | None:
    """What to ask the CRM for: records matching a time-flippable trigger now (without its
    enrollment filters, which the CRM cannot see) whose time-relative value crossed a
    boundary in (since, now]. A group made only of AND/OR over filters turns true only if one
    of its filters does, and only time-relative filters change without an event."""
    groups = []
    for key in recheck_triggers(cw):
        group = cw.criteria[key][0]
        windows = [crossing_window(f, since, now) for f in time_filters(group)]
        groups.append(
            FilterGroup(
                groups=[
                    group.without_enrollment_filters(),
                    FilterGroup(conjunction=Conjunction.OR, filters=windows),
                ]
            )
        )
    if not groups:
        return None
    return groups[0] if len(groups) == 1 else FilterGroup(conjunction=Conjunction.OR, groups=groups)
