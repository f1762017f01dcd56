"""datasource-resolver: data sources, the data panel and personalization for actions.

In embedded CRM mode this process also owns the SQL CRM store: it serves
``crmflow.api.crm.v1.CrmService`` and runs the outbox dispatcher that delivers change events to
the enrollment service (see ``crm_host``).
"""
