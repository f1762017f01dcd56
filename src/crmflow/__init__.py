"""crmflow: HubSpot-style workflow automation for CRM records, on gRPC and Temporal."""

__version__ = "0.1.0"
