"""Action activities: one handler per side-effecting action type, registered by type."""
