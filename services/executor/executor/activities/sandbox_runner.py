"""Runs inside the custom-code child process (started with ``python -I -S``).

Reads {"code", "event", "allow_network", "require_isolation"} as JSON on stdin, confines
itself, runs ``main(event)`` and writes one JSON line to the original stdout. The user's own
prints go to stderr so they cannot forge the result line.

Confinement, before any user code runs:

* Landlock (kernel-enforced, unprivileged, Linux >= 5.13): the process may read only the
  Python standard library and time-zone data, and read/write only its own empty temporary
  directory; no other file of the worker (its databases, the tenant secrets directory,
  /proc/<worker>/environ) can be opened, nothing else can be executed, and with ABI >= 4 TCP
  connect/bind are refused unless the action allows the network; with ABI >= 6 it cannot
  signal processes outside itself. When the kernel has no Landlock the action fails, unless
  the operator chose ``custom_code_isolation=best-effort``.
* An audit hook (defence in depth, and the only file guard in best-effort mode): opening files
  outside those directories, spawning processes and loading native libraries are refused.
* The network: sockets are replaced unless allowed (plus the worker's network namespace
  attempt and Landlock's TCP rules).

Self-contained on purpose: ``-I -S`` gives it only the standard library.
"""

import ctypes
import json
import os
import sys
import traceback

# -- Landlock (include/uapi/linux/landlock.h); syscall numbers are the same on every arch ----
_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_PR_SET_NO_NEW_PRIVS = 38
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_ALL_V1 = (1 << 13) - 1  # execute .. make_sym
_FS_REFER, _FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1
_READ = _FS_READ_FILE | _FS_READ_DIR


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _landlock(read_only, read_write, block_tcp):
    """Confine this process; returns the Landlock ABI used, or 0 when there is none."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), _CREATE_RULESET_VERSION)
    if abi < 1:
        return 0
    fs = _FS_ALL_V1
    if abi >= 2:
        fs |= _FS_REFER
    if abi >= 3:
        fs |= _FS_TRUNCATE
    if abi >= 5:
        fs |= _FS_IOCTL_DEV
    attr = _RulesetAttr(handled_access_fs=fs)
    size = 8
    if abi >= 4:
        size = 16
        if block_tcp:
            attr.handled_access_net = _NET_BIND_TCP | _NET_CONNECT_TCP
    if abi >= 6:
        size = 24
        attr.scoped = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL
    ruleset = libc.syscall(
        _SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)
    )
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        # Read-only roots may be read (imports, extension modules are mmapped: no EXECUTE
        # right needed); nothing anywhere may be executed.
        rules = [(p, _READ) for p in read_only]
        rules += [(p, fs & ~_FS_EXECUTE) for p in read_write]
        for path, access in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # a listed directory that does not exist here
            try:
                if not os.path.isdir(path):
                    access &= _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE
                rule = _PathBeneath(allowed_access=access & fs, parent_fd=fd)
                if libc.syscall(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0):
                    raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
            finally:
                os.close(fd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0):
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if libc.syscall(_SYS_RESTRICT_SELF, ruleset, 0):
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
    return abi


def _readable_roots():
    # -I -S: sys.path is the standard library only (zip, directory, lib-dynload).
    roots = [os.path.realpath(p) for p in sys.path if p]
    roots += ["/usr/share/zoneinfo", "/usr/lib/locale"]
    return [p for p in dict.fromkeys(roots) if os.path.exists(p)]


def _audit_guard(readable, writable):
    """Refuse, from Python, what Landlock refuses in the kernel (and more)."""
    readable = tuple(r.rstrip("/") + "/" for r in readable)
    writable = tuple(w.rstrip("/") + "/" for w in writable)
    denied = {
        "subprocess.Popen",
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.fork",
        "os.forkpty",
        "ctypes.dlopen",
        "ctypes.dlsym",
        "ctypes.cdata",
        "os.add_dll_directory",
        "os.kill",
        "os.killpg",
        "sys.addaudithook",
    }

    def hook(event, args):
        if event in denied:
            raise PermissionError(f"{event} is not allowed in custom code")
        if event == "open" and args and isinstance(args[0], str | bytes):
            path = os.path.realpath(os.fsdecode(args[0])) + "/"
            mode = args[1] if len(args) > 1 and isinstance(args[1], str) else "r"
            writing = any(c in mode for c in "wax+")
            allowed = writable if writing else readable + writable
            if not path.startswith(allowed):
                raise PermissionError(f"custom code may not open {args[0]!r}")
        elif event in ("os.listdir", "os.scandir") and args and args[0] is not None:
            path = os.path.realpath(os.fsdecode(args[0])) + "/"
            if not path.startswith(readable + writable):
                raise PermissionError(f"custom code may not list {args[0]!r}")

    sys.addaudithook(hook)


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
    cwd = os.getcwd()
    readable = _readable_roots()
    try:
        abi = _landlock(readable, [cwd], block_tcp=not request.get("allow_network"))
    except OSError as exc:
        abi, why = 0, str(exc)
    else:
        why = "this kernel has no Landlock"
    if not abi and request.get("require_isolation", True):
        out.write(
            json.dumps(
                {
                    "ok": False,
                    "isolation_unavailable": True,
                    "error": f"custom code cannot be isolated from the worker's files: {why}",
                }
            )
            + "\n"
        )
        out.flush()
        return
    if not request.get("allow_network"):
        _block_network()
    _audit_guard(readable, [cwd])
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
