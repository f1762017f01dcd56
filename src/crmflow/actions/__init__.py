"""The action catalogue: every action type's field schema, keyed by (type, version).

The registry is shared by editor-api (validation, placeholders, plan locks, undo rules), the
datasource-resolver (which fields hold tokens) and the executor (which activity runs a type).
Adding an action = adding a spec here and an activity in the executor; the interpreter only
knows the closed set of control-flow types.
"""
