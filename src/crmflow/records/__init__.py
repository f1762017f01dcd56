"""The CRM port (``RecordStore``) and its adapters (embedded SQL, gRPC)."""
