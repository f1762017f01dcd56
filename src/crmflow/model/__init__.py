"""The pydantic model used inside every service and in Temporal payloads.

Field names and enum values mirror ``proto/crmflow/api/*/v1`` exactly, so conversion at the
edge is generic (``crmflow.model.convert``) and round-trip tested rather than hand-written.
"""
