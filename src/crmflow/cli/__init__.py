"""The ``crmflow`` command line."""
