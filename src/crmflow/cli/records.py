"""``crmflow records import|get|search|define-event|events``: load and inspect CRM records, and
define custom events, over CrmService (gRPC).

They talk to whatever serves ``crmflow.api.crm.v1.CrmService``: the datasource-resolver in
embedded mode (the default address), or a platform's CRM (``--address`` / CRMFLOW_CRM_ADDRESS).

``import`` sends batches of rows to BatchCreateRecords. A batch is all or nothing on the server,
so when it is refused the rows it names (``records[i]...``) are set aside as refused with the
server's reason and the rest of the batch is sent again. Each batch carries an idempotency key
derived from its content, so re-running an interrupted import does not duplicate what already
went in. Exit status: 0 all rows imported, 2 some rows refused, 1 the import could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import grpc
from pydantic import ValidationError

from crmflow.errors import CrmflowError, InvalidArgument
from crmflow.model.criteria import FilterGroup
from crmflow.records.grpc_adapter import GrpcRecordStore
from crmflow.records.port import EventDefinition, PropertyDefinition, PropertyType
from crmflow.settings import Settings, load_settings

ROW_FIELD = re.compile(r"^records\[(\d+)\]\.?(.*)$")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("records", help="import, get and search CRM records")
    rsub = p.add_subparsers(dest="records_command", required=True, metavar="ACTION")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--address", help="CrmService host:port (default: from settings)")
        q.add_argument(
            "--tenant",
            default=os.environ.get("CRMFLOW_TENANT", "demo"),
            help="tenant id (default: $CRMFLOW_TENANT or 'demo')",
        )

    imp = rsub.add_parser("import", help="create records from a CSV (header row) or JSONL file")
    imp.add_argument("object_type")
    imp.add_argument("file", type=Path)
    imp.add_argument("--batch-size", type=int, default=100)
    imp.add_argument("--format", choices=("auto", "csv", "jsonl"), default="auto")
    common(imp)
    imp.set_defaults(func=_import)

    get = rsub.add_parser("get", help="show one record (and optionally more about it)")
    get.add_argument("object_type")
    get.add_argument("record_id")
    get.add_argument("--history", metavar="PROPERTY", help="also show this property's history")
    get.add_argument("--associations", metavar="OBJECT_TYPE", help="also list associations")
    common(get)
    get.set_defaults(func=_get)

    se = rsub.add_parser("search", help="search records by filters")
    se.add_argument("object_type")
    se.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="'PROP OP [VALUE]'",
        help="a filter, e.g. 'lifecyclestage eq customer', 'amount between 1,100', "
        "'email is_known'; repeat to AND them",
    )
    se.add_argument("--any", action="store_true", help="OR the --where filters instead")
    se.add_argument("--criteria", help="a FilterGroup as JSON, or @file.json")
    se.add_argument("--limit", type=int, default=20)
    se.add_argument("--sort", default="", help="property, '-property' for descending")
    se.add_argument("--properties", default="", help="comma-separated columns to show")
    se.add_argument("--count", action="store_true", help="print only the number of matches")
    se.add_argument("--all", action="store_true", help="follow cursors to the last page")
    se.add_argument("--json", action="store_true", help="one JSON record per line")
    common(se)
    se.set_defaults(func=_search)

    de = rsub.add_parser(
        "define-event",
        help="create or update a custom event definition (typed properties)",
        description="Occurrences of a defined event are checked against it (RecordEvent, "
        "enrollment ingest) and the data panel lists its properties with their types.",
    )
    de.add_argument("name", help="event name, as occurrences carry it in event_name")
    de.add_argument("--object-type", required=True, help="object type the event happens to")
    de.add_argument("--label", default="")
    de.add_argument(
        "--property",
        action="append",
        default=[],
        metavar="NAME:TYPE[:OPT,OPT...]",
        help="a property, e.g. 'seats:number', 'plan:enumeration:free,pro'; append '!' to the "
        "name to require it ('plan!:enumeration:free,pro'); repeat for more",
    )
    common(de)
    de.set_defaults(func=_define_event)

    ev = rsub.add_parser("events", help="list the tenant's custom event definitions")
    ev.add_argument("--object-type", default="", help="only events of this object type")
    ev.add_argument("--json", action="store_true", help="one JSON definition per line")
    common(ev)
    ev.set_defaults(func=_events)


def _address(args: argparse.Namespace, settings: Settings) -> str:
    if args.address:
        return str(args.address)
    if settings.crm_mode == "grpc" and settings.crm_address:
        return settings.crm_address
    return settings.datasource_resolver_address


def _run(args: argparse.Namespace, body: Any) -> int:
    settings = load_settings(Settings)
    address = _address(args, settings)

    async def main() -> int:
        store = GrpcRecordStore.connect(address, settings)  # grpc.aio needs the running loop
        try:
            return int(await body(store))
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except grpc.aio.AioRpcError as err:
        reason = err.details() or err.code().name
        if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            reason = f"cannot reach CrmService at {address} ({reason}); is `crmflow up` running?"
        print(f"crmflow: {reason}", file=sys.stderr)
        return 1
    except ValidationError as exc:
        print(f"crmflow: {exc.errors()[0]['msg']} at {exc.errors()[0]['loc']}", file=sys.stderr)
        return 1
    except CrmflowError as exc:
        print(f"crmflow: {exc.message}", file=sys.stderr)
        for v in getattr(exc, "violations", [])[1:]:
            print(f"  {v.field}: {v.description}", file=sys.stderr)
        return 1


# import ---------------------------------------------------------------------------------
@dataclass
class Row:
    line: int
    properties: dict[str, Any]


@dataclass
class ImportResult:
    imported: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)


def read_rows(path: Path, fmt: str, refused: list[tuple[int, str]]) -> list[Row]:
    if fmt == "auto":
        fmt = "jsonl" if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else "csv"
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(_jsonl(fh, refused) if fmt == "jsonl" else _csv(fh))


def _csv(fh: IO[str]) -> Iterator[Row]:
    reader = csv.DictReader(fh)
    for row in reader:
        props = {k.strip(): v for k, v in row.items() if k and v not in (None, "")}
        yield Row(reader.line_num, props)


def _jsonl(fh: IO[str], refused: list[tuple[int, str]]) -> Iterator[Row]:
    for n, line in enumerate(fh, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            refused.append((n, f"not valid JSON ({exc.msg})"))
            continue
        if not isinstance(data, dict):
            refused.append((n, "not a JSON object"))
            continue
        props = data.get("properties", data) if isinstance(data.get("properties"), dict) else data
        yield Row(n, props)


class ProgressBar:
    """A one-line progress bar on stderr (redrawn in place when stderr is a terminal)."""

    def __init__(self, total: int, label: str, stream: IO[str] | None = None) -> None:
        self.total, self.label = max(total, 1), label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()

    def update(self, done: int, refused: int) -> None:
        width = 30
        filled = int(width * done / self.total)
        bar = "#" * filled + "." * (width - filled)
        text = f"{self.label} [{bar}] {done}/{self.total} rows, {refused} refused"
        self.stream.write(("\r" + text) if self.tty else text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")


def _key(object_type: str, rows: list[Row]) -> str:
    digest = hashlib.sha256(
        json.dumps([object_type, [r.properties for r in rows]], sort_keys=True).encode()
    )
    return f"import:{digest.hexdigest()[:40]}"


async def import_rows(
    store: GrpcRecordStore,
    tenant: str,
    object_type: str,
    rows: list[Row],
    batch_size: int,
    result: ImportResult,
    bar: ProgressBar | None = None,
) -> ImportResult:
    done = 0
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        while batch:
            try:
                made = await store.batch_create(
                    tenant,
                    object_type,
                    [r.properties for r in batch],
                    idempotency_key=_key(object_type, batch),
                )
                result.imported += len(made)
                break
            except InvalidArgument as exc:
                bad: dict[int, list[str]] = {}
                for v in exc.violations:
                    m = ROW_FIELD.match(v.field)
                    if m and int(m.group(1)) < len(batch):
                        bad.setdefault(int(m.group(1)), []).append(
                            f"{m.group(2) or 'record'}: {v.description}"
                        )
                if not bad:  # not about particular rows: the whole batch is refused
                    result.refused += [(r.line, exc.message) for r in batch]
                    break
                result.refused += [(batch[i].line, "; ".join(bad[i])) for i in sorted(bad)]
                batch = [r for i, r in enumerate(batch) if i not in bad]
        done += len(rows[start : start + batch_size])
        if bar:
            bar.update(done, len(result.refused))
    return result


def _import(args: argparse.Namespace) -> int:
    if args.batch_size < 1 or args.batch_size > 1000:
        print("crmflow: --batch-size must be between 1 and 1000", file=sys.stderr)
        return 1
    result = ImportResult()
    try:
        rows = read_rows(args.file, args.format, result.refused)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        print(f"crmflow: cannot read {args.file}: {exc}", file=sys.stderr)
        return 1

    async def body(store: GrpcRecordStore) -> int:
        await store.list_properties(args.tenant, args.object_type)  # unknown type: stop early
        bar = ProgressBar(len(rows), f"importing {args.object_type}")
        try:
            await import_rows(
                store, args.tenant, args.object_type, rows, args.batch_size, result, bar
            )
        finally:
            bar.close()
        print_summary(result, args.object_type)
        return 2 if result.refused else 0

    return _run(args, body)


def print_summary(result: ImportResult, object_type: str, out: IO[str] | None = None) -> None:
    out = out or sys.stdout
    print(
        f"imported {result.imported} {object_type} record(s); refused {len(result.refused)} row(s)",
        file=out,
    )
    if not result.refused:
        return
    why = Counter(reason.split(":")[0] for _, reason in result.refused)
    print("refused by field: " + ", ".join(f"{k} x{n}" for k, n in why.most_common()), file=out)
    for line, reason in sorted(result.refused)[:50]:
        print(f"  line {line}: {reason}", file=out)
    if len(result.refused) > 50:
        print(f"  ... and {len(result.refused) - 50} more", file=out)


# get / search -----------------------------------------------------------------------------
def _get(args: argparse.Namespace) -> int:
    async def body(store: GrpcRecordStore) -> int:
        rec = await store.get(args.tenant, args.object_type, args.record_id)
        print(rec.model_dump_json(indent=2))
        if args.history:
            print(f"history of {args.history}:")
            for h in await store.property_history(
                args.tenant, args.object_type, args.record_id, args.history
            ):
                print(f"  {h.changed_at.isoformat()}  {json.dumps(h.value)}  ({h.source})")
        if args.associations:
            print(f"associated {args.associations} records:")
            for a in await store.list_associations(
                args.tenant, args.object_type, args.record_id, args.associations
            ):
                print(f"  {a.to_record_id}" + (f"  [{a.label}]" if a.label else ""))
        return 0

    return _run(args, body)


def _operand(raw: str) -> Any:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return raw
    return value if isinstance(value, int | float | bool) else raw


def parse_where(items: list[str], *, any_of: bool = False) -> FilterGroup:
    """``['amount gt 100', 'stage in a,b', 'email is_known']`` -> FilterGroup."""
    filters = []
    for i, item in enumerate(items):
        parts = item.split(None, 2)
        if len(parts) < 2:
            raise InvalidArgument.field(
                f"--where[{i}]", f"expected 'PROPERTY OPERATOR [VALUE]', got {item!r}"
            )
        f: dict[str, Any] = {"property": parts[0], "operator": parts[1]}
        if len(parts) == 3:
            if parts[1] in ("in", "not_in", "has_all", "between"):
                f["values"] = [_operand(v.strip()) for v in parts[2].split(",")]
            else:
                f["value"] = _operand(parts[2])
        filters.append(f)
    conj = "CONJUNCTION_OR" if any_of else "CONJUNCTION_AND"
    return FilterGroup.model_validate({"conjunction": conj, "filters": filters})


def _criteria(args: argparse.Namespace) -> FilterGroup | None:
    if args.criteria:
        raw = (
            Path(args.criteria[1:]).read_text() if args.criteria.startswith("@") else args.criteria
        )
        return FilterGroup.model_validate_json(raw)
    return parse_where(args.where, any_of=args.any) if args.where else None


def _search(args: argparse.Namespace) -> int:
    async def body(store: GrpcRecordStore) -> int:
        criteria = _criteria(args)
        if args.count:
            print(await store.count(args.tenant, args.object_type, criteria))
            return 0
        cols = [c for c in args.properties.split(",") if c]
        cursor, shown = "", 0
        while True:
            page = await store.search(
                args.tenant,
                args.object_type,
                criteria,
                limit=args.limit,
                cursor=cursor,
                sort=args.sort,
            )
            for r in page.records:
                if args.json:
                    print(r.model_dump_json())
                else:
                    shown_cols = cols or list(r.properties)[:4]
                    vals = "  ".join(f"{c}={json.dumps(r.properties.get(c))}" for c in shown_cols)
                    print(f"{r.record_id}  {vals}")
            shown += len(page.records)
            cursor = page.next_cursor
            if not (args.all and cursor):
                break
        if not args.json:
            print(f"({shown} of {page.total} matching {args.object_type} records)", file=sys.stderr)
        return 0

    return _run(args, body)


# custom event definitions -----------------------------------------------------------------
def parse_event_property(spec: str, object_type: str, field: str) -> PropertyDefinition:
    """``'plan!:enumeration:free,pro'`` -> a required enumeration property with two options."""
    parts = spec.split(":", 2)
    if len(parts) < 2 or not parts[0].strip("!"):
        raise InvalidArgument.field(field, f"expected 'NAME:TYPE[:OPTIONS]', got {spec!r}")
    name, required = parts[0].rstrip("!"), parts[0].endswith("!")
    try:
        ptype = PropertyType(parts[1].strip().lower())
    except ValueError:
        known = ", ".join(t.value for t in PropertyType)
        raise InvalidArgument.field(
            field, f"unknown property type {parts[1]!r} (one of {known})"
        ) from None
    options = [o.strip() for o in parts[2].split(",")] if len(parts) == 3 else []
    return PropertyDefinition(
        object_type=object_type, name=name, type=ptype, options=options, required=required
    )


def _define_event(args: argparse.Namespace) -> int:
    async def body(store: GrpcRecordStore) -> int:
        props = [
            parse_event_property(spec, args.object_type, f"--property[{i}]")
            for i, spec in enumerate(args.property)
        ]
        saved = await store.define_event(
            args.tenant,
            EventDefinition(
                name=args.name, label=args.label, object_type=args.object_type, properties=props
            ),
        )
        print(f"defined event {saved.name!r} on {saved.object_type}:")
        _print_event_properties(saved)
        return 0

    return _run(args, body)


def _print_event_properties(d: EventDefinition) -> None:
    for p in d.properties:
        opts = f" [{', '.join(p.options)}]" if p.options else ""
        print(f"  {p.name}: {p.type.value}{opts}" + (" (required)" if p.required else ""))


def _events(args: argparse.Namespace) -> int:
    async def body(store: GrpcRecordStore) -> int:
        for d in await store.list_event_definitions(args.tenant, args.object_type):
            if args.json:
                print(d.model_dump_json())
            else:
                print(f"{d.name} ({d.object_type})" + (f"  {d.label}" if d.label else ""))
                _print_event_properties(d)
        return 0

    return _run(args, body)
