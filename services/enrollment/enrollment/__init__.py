"""The enrollment service: decides which records enter which workflow (issue 5)."""
