"""``crmflow records import|get|search`` against a real CrmService on a real port."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crmflow.cli import records as cli
from crmflow.grpc.server import start_server
from crmflow.records.servicer import binding
from crmflow.records.sql import SqlRecordStore
from crmflow.settings import Settings


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, SqlRecordStore]]:
    sql = await SqlRecordStore.open(f"sqlite+aiosqlite:///{tmp_path / 'crm.db'}")
    running = await start_server([binding(sql)], settings=Settings(), port=0)
    yield f"127.0.0.1:{running.port}", sql
    await running.stop(0)
    await sql.close()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="crmflow")
    cli.register(p.add_subparsers(dest="command", required=True))
    return p


async def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    return int(await asyncio.to_thread(args.func, args))  # the CLI runs its own event loop


async def test_import_csv_reports_refused_rows_and_imports_the_rest(
    served: tuple[str, SqlRecordStore],
    tenant_id: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    address, sql = served
    f = tmp_path / "contacts.csv"
    f.write_text(
        "email,firstname,lifecyclestage,num_employees\n"
        "a@x.test,Ann,lead,10\n"
        "b@x.test,Bob,astronaut,5\n"
        "c@x.test,Cy,customer,many\n"
        "d@x.test,Di,,\n"
    )
    argv = [
        "records",
        "import",
        "contact",
        str(f),
        "--address",
        address,
        "--tenant",
        tenant_id,
        "--batch-size",
        "3",
    ]
    assert await run(argv) == 2
    out, err = capsys.readouterr()
    assert "imported 2 contact record(s); refused 2 row(s)" in out
    assert "line 3: properties.lifecyclestage: 'astronaut' is not an option" in out
    assert "line 4: properties.num_employees: expected a number" in out
    assert "4/4 rows, 2 refused" in err  # the progress bar
    names = sorted(
        r.properties["firstname"] for r in (await sql.search(tenant_id, "contact")).records
    )
    assert names == ["Ann", "Di"]
    # Re-running the same file creates no duplicates (content-derived idempotency keys).
    assert await run(argv) == 2
    assert await sql.count(tenant_id, "contact") == 2


async def test_import_jsonl_then_get_and_search(
    served: tuple[str, SqlRecordStore],
    tenant_id: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    address, _ = served
    f = tmp_path / "deals.jsonl"
    f.write_text(
        "\n".join(
            [
                json.dumps({"dealname": "Small", "amount": 100, "dealstage": "closedwon"}),
                "{not json",
                json.dumps({"properties": {"dealname": "Big", "amount": 9000}}),
                json.dumps(["not", "an", "object"]),
            ]
        )
        + "\n"
    )
    common = ["--address", address, "--tenant", tenant_id]
    assert await run(["records", "import", "deal", str(f), *common]) == 2
    out, _ = capsys.readouterr()
    assert "imported 2 deal record(s); refused 2 row(s)" in out and "line 2: not valid JSON" in out
    assert (
        await run(["records", "search", "deal", "--where", "amount gt 500", "--json", *common]) == 0
    )
    found = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["properties"]["dealname"] for r in found] == ["Big"]
    assert (
        await run(
            [
                "records",
                "search",
                "deal",
                "--count",
                "--any",
                "--where",
                "dealstage eq closedwon",
                "--where",
                "amount between 1000,10000",
                *common,
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.strip() == "2"
    big = found[0]["record_id"]
    assert await run(["records", "get", "deal", big, "--history", "amount", *common]) == 0
    out = capsys.readouterr().out
    assert json.loads(out.split("history of")[0])["properties"]["amount"] == 9000
    assert "9000" in out.split("history of")[1]


async def test_errors_are_one_line_reasons(
    served: tuple[str, SqlRecordStore],
    tenant_id: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    address, _ = served
    common = ["--address", address, "--tenant", tenant_id]
    assert await run(["records", "get", "contact", "missing", *common]) == 1
    assert "not found" in capsys.readouterr().err
    f = tmp_path / "x.csv"
    f.write_text("name\nx\n")
    assert await run(["records", "import", "spaceship", str(f), *common]) == 1
    assert "unknown object type 'spaceship'" in capsys.readouterr().err
    assert await run(["records", "search", "contact", "--where", "nope eq 1", *common]) == 1
    assert "criteria.filters[0].property" in capsys.readouterr().err
    assert (
        await run(
            ["records", "get", "contact", "x", "--address", "127.0.0.1:1", "--tenant", tenant_id]
        )
        == 1
    )
    assert "cannot reach CrmService" in capsys.readouterr().err


async def test_define_event_then_list(
    served: tuple[str, SqlRecordStore], tenant_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    address, sql = served
    common = ["--address", address, "--tenant", tenant_id]
    argv = ["records", "define-event", "viewed_pricing", "--object-type", "contact"]
    props = ["--property", "seats:number", "--property", "plan!:enumeration:free,pro"]
    assert await run([*argv, "--label", "Viewed pricing", *props, *common]) == 0
    assert "plan: enumeration [free, pro] (required)" in capsys.readouterr().out
    d = await sql.get_event_definition(tenant_id, "viewed_pricing")
    assert [(p.name, p.type.value, p.required) for p in d.properties] == [
        ("seats", "number", False),
        ("plan", "enumeration", True),
    ]
    assert await run(["records", "events", "--json", *common]) == 0
    listed = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(x["name"], x["label"]) for x in listed] == [("viewed_pricing", "Viewed pricing")]
    # Bad input: one-line reasons naming the field; a type change is refused by the store.
    assert await run([*argv, "--property", "seats:integer", *common]) == 1
    assert "--property[0]: unknown property type 'integer'" in capsys.readouterr().err
    assert await run([*argv, "--property", "seats:string", *common]) == 1
    assert "its type can't change" in capsys.readouterr().err
    assert await run([*argv[:3], "--object-type", "spaceship", *common]) == 1
    assert "spaceship" in capsys.readouterr().err
