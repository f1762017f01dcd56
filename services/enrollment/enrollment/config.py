"""Enrollment-only settings (``CRMFLOW_ENROLLMENT_*``): retention and batch sizes."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class EnrollmentConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRMFLOW_ENROLLMENT_", extra="ignore")

    # Enrollment history (ledger rows of ended enrollments): 6 months.
    history_days: int = Field(default=183, ge=1)
    # Enrollment facts ("has been enrolled in workflow X", first-time-only): 2 years.
    facts_days: int = Field(default=730, ge=1)
    # Dedupe memory of processed event ids (redeliveries come within minutes, not months).
    processed_event_days: int = Field(default=30, ge=1)
    # When the daily maintenance job (retention + recovery) runs, UTC.
    maintenance_hour: int = Field(default=3, ge=0, le=23)
    # How often time-relative criteria ("more than 7 days ago") are re-checked, minutes.
    time_recheck_minutes: int = Field(default=60, ge=1)
    backfill_page_size: int = Field(default=200, ge=1, le=1000)
    backfill_pages_per_run: int = Field(default=20, ge=1)

    def cutoffs(self) -> dict[str, timedelta]:
        return {
            "history": timedelta(days=self.history_days),
            "facts": timedelta(days=self.facts_days),
            "events": timedelta(days=self.processed_event_days),
        }
