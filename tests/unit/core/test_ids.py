from __future__ import annotations

import pytest

from crmflow.temporal import ids, search_attributes


def test_enrollment_id_is_deterministic_and_readable() -> None:
    a = ids.enrollment_workflow_id("acme", "wf-42", "contact", "1001", 1)
    assert a == ids.enrollment_workflow_id("acme", "wf-42", "contact", "1001", 1)
    assert a == "enroll/acme/wf-42/contact-1001/1"
    assert a != ids.enrollment_workflow_id("acme", "wf-42", "contact", "1001", 2)
    assert a != ids.enrollment_workflow_id("other", "wf-42", "contact", "1001", 1)


@pytest.mark.parametrize("bad", ["", "a/b", "x y", "../etc"])
def test_parts_that_could_collide_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        ids.enrollment_workflow_id("acme", bad, "contact", "1", 1)


def test_enrollment_number_starts_at_one() -> None:
    with pytest.raises(ValueError):
        ids.enrollment_workflow_id("acme", "wf", "contact", "1", 0)


def test_idempotency_key_differs_per_visit() -> None:
    k1 = ids.action_idempotency_key("enroll/a/w/contact-1/1", "a3", 1)
    assert k1 != ids.action_idempotency_key("enroll/a/w/contact-1/1", "a3", 2)


def test_dev_server_flags_register_every_attribute_with_its_type() -> None:
    flags = search_attributes.dev_server_flags()
    pairs = dict(f.split("=") for f in flags[1::2])
    assert pairs["CrmflowRevision"] == "Int"
    assert pairs["CrmflowTenantId"] == "Keyword"
    assert set(pairs) == {k.name for k in search_attributes.ALL}
