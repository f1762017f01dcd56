"""Fast draft JSON -> proto conversion for responses.

``json_format.Parse`` walks a 500-action draft in Python (~17 ms), which would dominate every
edit's latency. An edit changes a handful of actions, so each action's proto bytes are cached
by its canonical JSON; a response is assembled by merging cached bytes (~100x cheaper per
action). Whole drafts are cached too (GetWorkflow of an unchanged draft is a byte copy).
Caches are bounded, per process, and hold only derived data (always rebuildable).
"""

from __future__ import annotations

import json
from collections import OrderedDict

from google.protobuf import json_format

from crmflow.api.workflow.v1 import workflow_pb2 as wf_pb


class _Lru:
    def __init__(self, size: int) -> None:
        self.size = size
        self.data: OrderedDict[str, bytes] = OrderedDict()

    def get(self, key: str) -> bytes | None:
        got = self.data.get(key)
        if got is not None:
            self.data.move_to_end(key)
        return got

    def put(self, key: str, value: bytes) -> None:
        self.data[key] = value
        if len(self.data) > self.size:
            self.data.popitem(last=False)


_actions = _Lru(50_000)
_drafts = _Lru(64)


def definition_proto(draft: str, *, with_actions: bool = True) -> wf_pb.WorkflowDefinition:
    key = draft if with_actions else ""
    if key:
        whole = _drafts.get(key)
        if whole is not None:
            return wf_pb.WorkflowDefinition.FromString(whole)
    data = json.loads(draft)
    actions = data.pop("actions", {})
    out = json_format.ParseDict(data, wf_pb.WorkflowDefinition())
    if with_actions:
        for aid, action in actions.items():
            akey = json.dumps(action, separators=(",", ":"))
            blob = _actions.get(akey)
            if blob is None:
                blob = json_format.ParseDict(action, wf_pb.Action()).SerializeToString()
                _actions.put(akey, blob)
            out.actions[aid].MergeFromString(blob)
        _drafts.put(key, out.SerializeToString())
    return out
