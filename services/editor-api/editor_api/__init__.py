"""editor-api: workflow definitions, the editor operations, templates and publishing."""
