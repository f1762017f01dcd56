"""Object types, default property definitions, and validation of property values.

Standard object types (contact, company, deal, ...) and their default properties are code, the
same for every tenant; a tenant adds custom objects and custom properties (stored by the
adapter). ``validate_properties`` is the single gate every write goes through: it refuses an
unknown property, a value of the wrong type, an unknown enumeration option, a missing required
property, and names the offending field ``properties.<name>`` so the caller can show it.
Accepted values are normalised to one JSON shape per type (what the store keeps and filters on):

- string -> str; number -> int/float (numeric strings accepted); bool -> bool ("true"/"false")
- date -> "YYYY-MM-DD"; datetime -> ISO-8601 UTC ("...+00:00"); epoch milliseconds accepted
- enumeration -> the option as defined (matched case-insensitively)
- multi_select -> list of options (a list, or HubSpot's "a;b" string)
- owner -> owner id as str (existence is checked by the store, which knows the owners)
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from crmflow.errors import ErrorList, InvalidArgument, NotFound
from crmflow.records.port import ObjectTypeDefinition, PropertyDefinition, PropertyType

STANDARD_OBJECT_TYPES: dict[str, ObjectTypeDefinition] = {
    o.name: o
    for o in [
        ObjectTypeDefinition(name="contact", label="Contacts", primary_property="email"),
        ObjectTypeDefinition(name="company", label="Companies", primary_property="name"),
        ObjectTypeDefinition(name="deal", label="Deals", primary_property="dealname"),
        ObjectTypeDefinition(name="quote", label="Quotes", primary_property="hs_title"),
        ObjectTypeDefinition(name="ticket", label="Tickets", primary_property="subject"),
        ObjectTypeDefinition(
            name="conversation", label="Conversations", primary_property="hs_thread_id"
        ),
        ObjectTypeDefinition(
            name="feedback_submission", label="Feedback submissions", primary_property="hs_content"
        ),
        ObjectTypeDefinition(
            name="subscription", label="Subscriptions", primary_property="hs_name"
        ),
        ObjectTypeDefinition(name="payment", label="Payments", primary_property="hs_reference"),
        ObjectTypeDefinition(name="invoice", label="Invoices", primary_property="hs_number"),
        ObjectTypeDefinition(name="goal", label="Goals", primary_property="hs_goal_name"),
        ObjectTypeDefinition(name="lead", label="Leads", primary_property="hs_lead_name"),
        ObjectTypeDefinition(name="user", label="Users", primary_property="hs_email"),
        ObjectTypeDefinition(name="task", label="Tasks", primary_property="hs_task_subject"),
        ObjectTypeDefinition(name="call", label="Calls", primary_property="hs_call_title"),
    ]
}

# Properties the store maintains itself on every object (read-only for callers).
_COMMON = [
    ("createdate", "Create date", PropertyType.DATETIME, (), False, True),
    ("lastmodifieddate", "Last modified date", PropertyType.DATETIME, (), False, True),
    ("hubspot_owner_id", "Owner", PropertyType.OWNER, (), False, False),
]

_Spec = tuple[str, str, PropertyType, tuple[str, ...], bool, bool]  # name,label,type,opts,req,ro
S, N, B, D, DT, E, M, OW = (
    PropertyType.STRING,
    PropertyType.NUMBER,
    PropertyType.BOOL,
    PropertyType.DATE,
    PropertyType.DATETIME,
    PropertyType.ENUMERATION,
    PropertyType.MULTI_SELECT,
    PropertyType.OWNER,
)

LIFECYCLE = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead",
             "opportunity", "customer", "evangelist", "other")  # fmt: skip
DEAL_STAGES = ("appointmentscheduled", "qualifiedtobuy", "presentationscheduled",
               "decisionmakerboughtin", "contractsent", "closedwon", "closedlost")  # fmt: skip
TICKET_STAGES = ("new", "waiting_on_contact", "waiting_on_us", "closed")
PRIORITIES = ("LOW", "MEDIUM", "HIGH", "URGENT")

_STANDARD_PROPS: dict[str, list[_Spec]] = {
    "contact": [
        ("email", "Email", S, (), False, False),
        ("firstname", "First name", S, (), False, False),
        ("lastname", "Last name", S, (), False, False),
        ("phone", "Phone number", S, (), False, False),
        ("company", "Company name", S, (), False, False),
        ("jobtitle", "Job title", S, (), False, False),
        ("city", "City", S, (), False, False),
        ("country", "Country", S, (), False, False),
        ("lifecyclestage", "Lifecycle stage", E, LIFECYCLE, False, False),
        (
            "hs_lead_status",
            "Lead status",
            E,
            ("NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED", "CONNECTED", "BAD_TIMING"),
            False,
            False,
        ),
        ("hs_language", "Preferred language", S, (), False, False),
        ("num_employees", "Number of employees", N, (), False, False),
        ("annualrevenue", "Annual revenue", N, (), False, False),
        ("date_of_birth", "Date of birth", D, (), False, False),
        ("hs_email_optout", "Unsubscribed from all email", B, (), False, False),
        ("interests", "Interests", M, ("product", "pricing", "events", "newsletter"), False, False),
    ],
    "company": [
        ("name", "Company name", S, (), True, False),
        ("domain", "Company domain name", S, (), False, False),
        ("industry", "Industry", S, (), False, False),
        ("city", "City", S, (), False, False),
        ("country", "Country", S, (), False, False),
        ("numberofemployees", "Number of employees", N, (), False, False),
        ("annualrevenue", "Annual revenue", N, (), False, False),
        ("lifecyclestage", "Lifecycle stage", E, LIFECYCLE, False, False),
        ("type", "Type", E, ("PROSPECT", "PARTNER", "RESELLER", "VENDOR", "OTHER"), False, False),
    ],
    "deal": [
        ("dealname", "Deal name", S, (), True, False),
        ("amount", "Amount", N, (), False, False),
        ("dealstage", "Deal stage", E, DEAL_STAGES, False, False),
        ("pipeline", "Pipeline", E, ("default",), False, False),
        ("closedate", "Close date", DT, (), False, False),
        ("dealtype", "Deal type", E, ("newbusiness", "existingbusiness"), False, False),
        ("hs_priority", "Priority", E, ("low", "medium", "high"), False, False),
    ],
    "ticket": [
        ("subject", "Ticket name", S, (), True, False),
        ("content", "Ticket description", S, (), False, False),
        ("hs_pipeline", "Pipeline", E, ("0",), False, False),
        ("hs_pipeline_stage", "Ticket status", E, TICKET_STAGES, False, False),
        ("hs_ticket_priority", "Priority", E, PRIORITIES, False, False),
        ("priority", "Priority (alias)", E, PRIORITIES, False, False),
        ("source_type", "Source", E, ("EMAIL", "CHAT", "PHONE", "FORM"), False, False),
    ],
    "quote": [
        ("hs_title", "Title", S, (), False, False),
        ("hs_expiration_date", "Expires", D, (), False, False),
        ("hs_status", "Status", E, ("DRAFT", "APPROVED", "SIGNED", "LOST"), False, False),
        ("hs_quote_amount", "Amount", N, (), False, False),
    ],
    "conversation": [
        ("hs_thread_id", "Thread", S, (), False, False),
        ("hs_status", "Status", E, ("OPEN", "CLOSED"), False, False),
    ],
    "feedback_submission": [
        ("hs_content", "Response", S, (), False, False),
        ("hs_survey_type", "Survey type", E, ("NPS", "CSAT", "CES"), False, False),
        ("hs_response_value", "Rating", N, (), False, False),
    ],
    "subscription": [
        ("hs_name", "Name", S, (), False, False),
        ("hs_status", "Status", E, ("active", "canceled", "past_due"), False, False),
        ("hs_recurring_billing_start_date", "Start date", D, (), False, False),
    ],
    "payment": [
        ("hs_reference", "Reference", S, (), False, False),
        ("hs_amount", "Amount", N, (), False, False),
        ("hs_status", "Status", E, ("succeeded", "failed", "refunded"), False, False),
    ],
    "invoice": [
        ("hs_number", "Number", S, (), False, False),
        ("hs_amount_billed", "Amount billed", N, (), False, False),
        ("hs_due_date", "Due date", D, (), False, False),
        ("hs_invoice_status", "Status", E, ("draft", "open", "paid", "voided"), False, False),
    ],
    "goal": [
        ("hs_goal_name", "Goal name", S, (), False, False),
        ("hs_target_amount", "Target", N, (), False, False),
        ("hs_start_datetime", "Start", DT, (), False, False),
        ("hs_end_datetime", "End", DT, (), False, False),
    ],
    "lead": [
        ("hs_lead_name", "Lead name", S, (), False, False),
        (
            "hs_pipeline_stage",
            "Stage",
            E,
            ("new", "attempting", "connected", "qualified", "disqualified"),
            False,
            False,
        ),
    ],
    "user": [
        ("hs_email", "Email", S, (), False, False),
        ("hs_given_name", "First name", S, (), False, False),
        ("hs_family_name", "Last name", S, (), False, False),
    ],
    "task": [
        ("hs_task_subject", "Title", S, (), False, False),
        ("hs_task_body", "Notes", S, (), False, False),
        (
            "hs_task_status",
            "Status",
            E,
            ("NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED"),
            False,
            False,
        ),
        ("hs_task_priority", "Priority", E, ("LOW", "MEDIUM", "HIGH"), False, False),
        ("hs_timestamp", "Due date", DT, (), False, False),
    ],
    "call": [
        ("hs_call_title", "Title", S, (), False, False),
        ("hs_call_duration", "Duration (ms)", N, (), False, False),
        ("hs_call_direction", "Direction", E, ("INBOUND", "OUTBOUND"), False, False),
        (
            "hs_call_disposition",
            "Outcome",
            E,
            ("connected", "busy", "no_answer", "left_voicemail", "wrong_number"),
            False,
            False,
        ),
        ("hs_timestamp", "Call time", DT, (), False, False),
    ],
}


def _defs(object_type: str, specs: Iterable[_Spec]) -> list[PropertyDefinition]:
    return [
        PropertyDefinition(
            object_type=object_type, name=n, label=lbl, type=t, options=list(o),
            required=req, read_only=ro,
        )
        for n, lbl, t, o, req, ro in specs
    ]  # fmt: skip


STANDARD_PROPERTIES: dict[str, list[PropertyDefinition]] = {
    ot: _defs(ot, [*_STANDARD_PROPS.get(ot, []), *_COMMON]) for ot in STANDARD_OBJECT_TYPES
}

# Names: lower-case identifiers, as HubSpot's internal names. Checked before anything touches SQL.
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def check_name(value: str, field: str) -> None:
    if not NAME_RE.match(value or ""):
        raise InvalidArgument.field(
            field, f"{value!r} is not a valid name (lower-case letters, digits, '_'; max 64)"
        )


def check_property_definition(p: PropertyDefinition, field: str) -> None:
    """A property definition's own shape (name, options); InvalidArgument naming ``field.x``."""
    check_name(p.name, f"{field}.name")
    if p.type in (PropertyType.ENUMERATION, PropertyType.MULTI_SELECT):
        if not p.options or any(not o.strip() for o in p.options):
            raise InvalidArgument.field(f"{field}.options", "needs non-empty options")
        if len({o.casefold() for o in p.options}) != len(p.options):
            raise InvalidArgument.field(f"{field}.options", "options must be unique")
    elif p.options:
        raise InvalidArgument.field(f"{field}.options", "only enumerations have options")


class Schema:
    """The property definitions of one object type for one tenant (standard + custom)."""

    def __init__(self, object_type: ObjectTypeDefinition, props: Iterable[PropertyDefinition]):
        self.object_type = object_type
        self.properties: dict[str, PropertyDefinition] = {p.name: p for p in props}

    def get(self, name: str, field: str) -> PropertyDefinition:
        try:
            return self.properties[name]
        except KeyError:
            raise InvalidArgument.field(
                field, f"unknown property {name!r} of object type {self.object_type.name!r}"
            ) from None


def unknown_object_type(name: str) -> NotFound:
    return NotFound("object_type", name, f"unknown object type {name!r}")


def normalise_value(prop: PropertyDefinition, value: Any) -> Any:
    """The value in its stored shape; ValueError with a user-readable reason when it can't be."""
    if value is None or value == "" or value == []:
        return None
    t = prop.type
    if t == PropertyType.STRING:
        if isinstance(value, dict | list):
            raise ValueError("expected a string")
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return _text(str(value))
    if t == PropertyType.NUMBER:
        num: int | float
        if isinstance(value, bool):
            raise ValueError("expected a number, got a boolean")
        if isinstance(value, int | float):
            num = value
        elif isinstance(value, str):
            try:
                num = float(value.strip().replace(",", "")) if value.strip() else math.nan
            except ValueError:
                raise ValueError(f"expected a number, got {value!r}") from None
        else:
            raise ValueError("expected a number")
        if not math.isfinite(num):
            raise ValueError(f"expected a finite number, got {value!r}")
        return int(num) if float(num).is_integer() and abs(num) < 2**53 else float(num)
    if t == PropertyType.BOOL:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no"):
            return value.strip().lower() in ("true", "yes")
        raise ValueError(f"expected true or false, got {value!r}")
    if t in (PropertyType.DATE, PropertyType.DATETIME):
        dt = _parse_when(value)
        if t == PropertyType.DATE:
            return dt.date().isoformat()
        return dt.astimezone(UTC).isoformat()
    if t in (PropertyType.ENUMERATION, PropertyType.MULTI_SELECT):
        by_fold = {o.casefold(): o for o in prop.options}
        if t == PropertyType.ENUMERATION:
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise ValueError("expected one option")
            return _option(by_fold, str(value), prop)
        items = value.split(";") if isinstance(value, str) else value
        if not isinstance(items, list):
            raise ValueError("expected a list of options")
        out: list[str] = []
        for item in items:
            opt = _option(by_fold, str(item), prop)
            if opt not in out:
                out.append(opt)
        return out or None
    if t == PropertyType.OWNER:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValueError("expected an owner id")
        return _text(str(value))
    raise ValueError(f"unsupported property type {t}")  # pragma: no cover


def _text(value: str) -> str:
    """Text as every store keeps it: PostgreSQL text and jsonb cannot hold a NUL character
    (and no CRM value means one), so it is refused on every backend alike."""
    if "\x00" in value:
        raise ValueError("must not contain a NUL character (\\x00)")
    return value


def _option(by_fold: Mapping[str, str], value: str, prop: PropertyDefinition) -> str:
    opt = by_fold.get(value.strip().casefold())
    if opt is None:
        raise ValueError(
            f"{value!r} is not an option of {prop.name!r}; options: {', '.join(prop.options)}"
        )
    return opt


def _parse_when(value: Any) -> datetime:
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        dt = datetime.fromtimestamp(value / 1000, tz=UTC)  # HubSpot: epoch milliseconds
    elif isinstance(value, str):
        s = value.strip()
        if s.isdigit():
            return _parse_when(int(s))
        try:
            dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"expected an ISO-8601 date/datetime, got {value!r}") from None
    else:
        raise ValueError("expected a date")
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def validate_properties(
    schema: Schema,
    properties: Mapping[str, Any],
    *,
    existing: Mapping[str, Any] | None = None,
    field: str = "properties",
    errors: ErrorList | None = None,
    allow_read_only: bool = False,
) -> dict[str, Any]:
    """Normalised values (None = clear). ``existing`` given means an update of that record.

    Collects every violation in ``errors`` when given (batches report all rows at once),
    otherwise raises InvalidArgument.
    """
    own = errors is None
    errs = errors if errors is not None else ErrorList()
    out: dict[str, Any] = {}
    for name, value in properties.items():
        path = f"{field}.{name}"
        prop = schema.properties.get(name)
        if prop is None:
            errs.add(path, f"unknown property {name!r} of object type {schema.object_type.name!r}")
            continue
        if prop.read_only and not allow_read_only:
            errs.add(path, f"{name!r} is read-only")
            continue
        try:
            out[name] = normalise_value(prop, value)
        except ValueError as exc:
            errs.add(path, f"{exc} ({prop.type.value} property)")
            continue
        if out[name] is None and prop.required:
            errs.add(path, f"{name!r} is required and cannot be cleared")
    if existing is None:
        for prop in schema.properties.values():
            if (
                prop.required
                and properties.get(prop.name) in (None, "", [])
                and (f"{field}.{prop.name}" not in {v.field for v in errs.violations})
            ):
                errs.add(f"{field}.{prop.name}", f"{prop.name!r} is required")
    if own:
        errs.raise_if_any("invalid properties")
    return out
