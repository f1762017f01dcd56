"""Runs inside the custom-code child process (started with ``python -I -S``).

Reads {"code", "event", "allow_network"} as JSON on stdin, blocks the network unless allowed,
runs ``main(event)`` and writes one JSON line to the original stdout. The user's own prints
go to stderr so they cannot forge the result line.
"""

import json
import os
import sys
import traceback


def _block_network():
    import _socket
    import socket

    def refuse(*args, **kwargs):
        raise PermissionError("network access is disabled for this custom code action")

    class NoSocket:
        def __init__(self, *args, **kwargs):
            refuse()

    for mod in (socket, _socket):
        mod.socket = NoSocket  # type: ignore[attr-defined]
        for name in (
            "create_connection",
            "getaddrinfo",
            "gethostbyname",
            "socketpair",
            "fromfd",
            "create_server",
        ):
            if hasattr(mod, name):
                setattr(mod, name, refuse)


def run():
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    request = json.loads(sys.stdin.read())
    if not request.get("allow_network"):
        _block_network()
    scope = {"__name__": "crmflow_custom_code"}
    try:
        exec(compile(request["code"], "custom_code.py", "exec"), scope)
        main = scope.get("main")
        if not callable(main):
            raise NameError("the code must define main(event)")
        result = main(request["event"])
        if result is None:
            result = {}
        if not isinstance(result, dict):
            raise TypeError("main(event) must return a dict like {'outputs': {...}}")
        payload = {"ok": True, "outputs": result.get("outputs", {})}
    except MemoryError:
        payload = {"ok": False, "error": "MemoryError: the 128 MB memory limit was exceeded"}
    except BaseException as exc:
        tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
        payload = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": "".join(tb[-3:])}
    out.write(json.dumps(payload, default=str) + "\n")
    out.flush()


if __name__ == "__main__":
    run()
