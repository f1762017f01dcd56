"""The executor: the EnrolledRecord Temporal workflow (interpreter) and the action activities."""
