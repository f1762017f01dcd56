"""A deterministic, realistic demo CRM: owners and teams, companies, contacts, deals, tickets,
their associations, a static list and subscription statuses.

``generate(seed, anchor=...)`` is pure: the same seed and anchor give the same data set (dates
are spread around ``anchor``, so "closes within the next 30 days" finds deals whenever the demo
runs). ``load(store, tenant_id, dataset)`` writes it through any RecordStore - the embedded store
or CrmService over gRPC - with idempotency keys, so loading twice creates nothing new.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from crmflow.records.port import Association, Owner, RecordStore, SubscriptionStatus

DEFAULT_TENANT = "demo"

FIRST = (
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Ken",
    "Barbara",
    "Dennis",
    "Frances",
    "Edsger",
    "Radia",
    "Tim",
    "Hedy",
    "John",
    "Katherine",
    "Niklaus",
    "Sophie",
    "Mads",
    "Freja",
    "Oskar",
    "Ida",
    "Lucas",
    "Emma",
    "Noah",
    "Clara",
    "Karl",
    "Anna",
    "Jens",
)
LAST = (
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Thompson",
    "Liskov",
    "Ritchie",
    "Allen",
    "Dijkstra",
    "Perlman",
    "Berners-Lee",
    "Lamarr",
    "Backus",
    "Johnson",
    "Wirth",
    "Jensen",
    "Nielsen",
    "Hansen",
    "Pedersen",
    "Andersen",
    "Christensen",
    "Larsen",
    "Sørensen",
)
COMPANY_WORDS = (
    "Nordic",
    "Blue",
    "Harbor",
    "Pixel",
    "Granite",
    "Fjord",
    "Copper",
    "Aurora",
    "Summit",
    "Vertex",
    "Lumen",
    "Beacon",
    "Orbit",
    "Maple",
    "Cobalt",
    "Juniper",
)
COMPANY_KINDS = (
    "Labs",
    "Logistics",
    "Analytics",
    "Foods",
    "Health",
    "Systems",
    "Studios",
    "Energy",
    "Robotics",
    "Finance",
)
INDUSTRIES = (
    "Software",
    "Logistics",
    "Retail",
    "Healthcare",
    "Manufacturing",
    "Finance",
    "Education",
    "Energy",
)
CITIES = (
    ("Copenhagen", "Denmark"),
    ("Aarhus", "Denmark"),
    ("Odense", "Denmark"),
    ("Stockholm", "Sweden"),
    ("Oslo", "Norway"),
    ("Berlin", "Germany"),
    ("London", "United Kingdom"),
    ("Boston", "United States"),
)
TITLES = (
    "CEO",
    "CTO",
    "Head of Marketing",
    "Sales Manager",
    "Developer",
    "Office Manager",
    "Customer Success Lead",
    "Procurement Officer",
)
LIFECYCLE_WEIGHTS = (
    ("subscriber", 10),
    ("lead", 35),
    ("marketingqualifiedlead", 15),
    ("salesqualifiedlead", 10),
    ("opportunity", 12),
    ("customer", 15),
    ("evangelist", 3),
)
DEAL_STAGES = (
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
    "closedwon",
    "closedlost",
)
TICKET_SUBJECTS = (
    "Cannot log in",
    "Invoice is wrong",
    "Feature request: export to CSV",
    "Integration stopped syncing",
    "Password reset email not received",
    "How do I add a user?",
    "Data import failed",
    "Slow dashboard",
)


@dataclass
class DemoRecord:
    key: str  # stable within the data set ("company:7"); the store assigns the record id
    object_type: str
    properties: dict[str, Any]


@dataclass
class DemoDataset:
    owners: list[Owner] = field(default_factory=list)
    records: list[DemoRecord] = field(default_factory=list)
    # (from key, to key, label)
    associations: list[tuple[str, str, str]] = field(default_factory=list)
    list_members: dict[str, list[str]] = field(default_factory=dict)  # list name -> contact keys
    unsubscribed: list[str] = field(default_factory=list)  # contact keys
    seed: int = 0

    def of(self, object_type: str) -> list[DemoRecord]:
        return [r for r in self.records if r.object_type == object_type]


def generate(
    seed: int = 7,
    *,
    anchor: datetime | None = None,
    contacts: int = 300,
    companies: int = 60,
    deals: int = 120,
    tickets: int = 80,
) -> DemoDataset:
    rnd = random.Random(seed)
    now = (anchor or datetime.now(UTC)).replace(hour=12, minute=0, second=0, microsecond=0)
    ds = DemoDataset(seed=seed)
    users = []
    for i in range(8):
        first, last = FIRST[i * 3 % len(FIRST)], LAST[i * 5 % len(LAST)]
        users.append(
            Owner(
                owner_id=f"u{i + 1}",
                email=f"{first.lower()}@crmflow.example",
                name=f"{first} {last}",
            )
        )
    ds.owners = [
        *users,
        Owner(
            owner_id="team-sales",
            kind="team",
            name="Sales",
            member_ids=[u.owner_id for u in users[:5]],
        ),
        Owner(
            owner_id="team-support",
            kind="team",
            name="Support",
            member_ids=[u.owner_id for u in users[5:]],
        ),
    ]
    sales, support = [u.owner_id for u in users[:5]], [u.owner_id for u in users[5:]]

    names: set[str] = set()
    for i in range(companies):
        while (name := f"{rnd.choice(COMPANY_WORDS)} {rnd.choice(COMPANY_KINDS)}") in names:
            pass
        names.add(name)
        city, country = rnd.choice(CITIES)
        domain = name.lower().replace(" ", "") + rnd.choice((".com", ".dk", ".io"))
        ds.records.append(
            DemoRecord(
                f"company:{i}",
                "company",
                {
                    "name": name,
                    "domain": domain,
                    "industry": rnd.choice(INDUSTRIES),
                    "city": city,
                    "country": country,
                    "numberofemployees": rnd.choice((5, 12, 40, 120, 800, 5000)),
                    "annualrevenue": rnd.randrange(1, 500) * 100_000,
                    "type": rnd.choice(("PROSPECT", "PROSPECT", "PARTNER", "RESELLER", "OTHER")),
                    "hubspot_owner_id": rnd.choice(sales),
                },
            )
        )
    stages, weights = zip(*LIFECYCLE_WEIGHTS, strict=True)
    staff: dict[int, list[str]] = {}  # company index -> contact keys
    for i in range(contacts):
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        company = rnd.randrange(companies)
        domain = ds.records[company].properties["domain"]
        local = f"{first}.{last}".lower().replace("ø", "o").replace(" ", "")
        props: dict[str, Any] = {
            "firstname": first,
            "lastname": last,
            "email": f"{local}{i}@{domain}",
            "jobtitle": rnd.choice(TITLES),
            "company": ds.records[company].properties["name"],
            "city": ds.records[company].properties["city"],
            "country": ds.records[company].properties["country"],
            "lifecyclestage": rnd.choices(stages, weights)[0],
            "hs_lead_status": rnd.choice(("NEW", "OPEN", "IN_PROGRESS", "CONNECTED")),
            "phone": f"+45 {rnd.randrange(20, 99)} {rnd.randrange(10, 99)} "
            f"{rnd.randrange(10, 99)} {rnd.randrange(10, 99)}",
            "interests": rnd.sample(
                ("product", "pricing", "events", "newsletter"), rnd.randrange(0, 3)
            ),
            "hubspot_owner_id": rnd.choice(sales) if rnd.random() < 0.8 else None,
        }
        if rnd.random() < 0.3:
            props["date_of_birth"] = (
                f"{rnd.randrange(1960, 2002)}-{rnd.randrange(1, 13):02d}-{rnd.randrange(1, 29):02d}"
            )
        ds.records.append(
            DemoRecord(
                f"contact:{i}", "contact", {k: v for k, v in props.items() if v not in (None, [])}
            )
        )
        ds.associations.append((f"contact:{i}", f"company:{company}", "primary"))
        staff.setdefault(company, []).append(f"contact:{i}")
        if rnd.random() < 0.08:
            ds.unsubscribed.append(f"contact:{i}")
    for i in range(deals):
        company = rnd.randrange(companies)
        stage = rnd.choice(DEAL_STAGES)
        close = now + timedelta(days=rnd.randrange(-90, 90))
        ds.records.append(
            DemoRecord(
                f"deal:{i}",
                "deal",
                {
                    "dealname": f"{ds.records[company].properties['name']} - "
                    f"{rnd.choice(('Annual licence', 'Expansion', 'Pilot', 'Renewal'))}",
                    "amount": rnd.randrange(5, 400) * 250,
                    "dealstage": stage,
                    "pipeline": "default",
                    "closedate": close.isoformat(),
                    "dealtype": rnd.choice(("newbusiness", "existingbusiness")),
                    "hs_priority": rnd.choice(("low", "medium", "high")),
                    "hubspot_owner_id": rnd.choice(sales),
                },
            )
        )
        ds.associations.append((f"deal:{i}", f"company:{company}", ""))
        people = staff.get(company, [])[:2] or [f"contact:{rnd.randrange(contacts)}"]
        for p in people:
            ds.associations.append((f"deal:{i}", p, "decision maker" if p == people[0] else ""))
    for i in range(tickets):
        contact = rnd.randrange(contacts)
        ds.records.append(
            DemoRecord(
                f"ticket:{i}",
                "ticket",
                {
                    "subject": rnd.choice(TICKET_SUBJECTS),
                    "hs_pipeline": "0",
                    "hs_pipeline_stage": rnd.choice(
                        ("new", "new", "waiting_on_contact", "waiting_on_us", "closed")
                    ),
                    "hs_ticket_priority": rnd.choice(("LOW", "MEDIUM", "HIGH", "URGENT")),
                    "source_type": rnd.choice(("EMAIL", "CHAT", "PHONE", "FORM")),
                    "hubspot_owner_id": rnd.choice(support),
                },
            )
        )
        ds.associations.append((f"ticket:{i}", f"contact:{contact}", ""))
    ds.list_members["Demo: newsletter readers"] = [
        r.key for r in ds.of("contact") if "newsletter" in r.properties.get("interests", [])
    ]
    return ds


Progress = Callable[[str, int, int], None]  # (what, done, total)


async def load(
    store: RecordStore,
    tenant_id: str = DEFAULT_TENANT,
    dataset: DemoDataset | None = None,
    *,
    batch_size: int = 100,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Write the data set; returns counts per kind. Idempotent (keys derive from the seed)."""
    ds = dataset or generate()
    report = progress or (lambda what, done, total: None)
    for o in sorted(ds.owners, key=lambda o: o.kind != "user"):  # users before their teams
        await store.upsert_owner(tenant_id, o)
    ids: dict[str, str] = {}
    counts: dict[str, int] = {"owners": len(ds.owners)}
    for ot in ("company", "contact", "deal", "ticket"):
        recs = ds.of(ot)
        for start in range(0, len(recs), batch_size):
            chunk = recs[start : start + batch_size]
            made = await store.batch_create(
                tenant_id,
                ot,
                [r.properties for r in chunk],
                idempotency_key=f"demo:{ds.seed}:{ot}:{start}:{len(chunk)}",
            )
            ids.update({r.key: m.record_id for r, m in zip(chunk, made, strict=True)})
            report(ot, start + len(chunk), len(recs))
        counts[ot] = len(recs)
    for n, (a, b, label) in enumerate(ds.associations):
        await store.associate(
            tenant_id,
            Association(
                from_object_type=a.split(":")[0],
                from_record_id=ids[a],
                to_object_type=b.split(":")[0],
                to_record_id=ids[b],
                label=label,
            ),
        )
        if n % 50 == 0 or n == len(ds.associations) - 1:
            report("association", n + 1, len(ds.associations))
    counts["associations"] = len(ds.associations)
    existing = {x.name: x for x in await store.list_lists(tenant_id, "contact")}
    for name, keys in ds.list_members.items():
        lst = existing.get(name) or await store.create_list(tenant_id, name, "contact")
        await store.add_to_list(tenant_id, lst.list_id, [ids[k] for k in keys])
    counts["lists"] = len(ds.list_members)
    for key in ds.unsubscribed:
        await store.set_subscription_status(tenant_id, ids[key], SubscriptionStatus.UNSUBSCRIBED)
    counts["unsubscribed"] = len(ds.unsubscribed)
    return counts
