"""The shared gRPC runtime on a real server: error mapping, health, shutdown, port errors."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import BaseModel

from crmflow import errors as e
from crmflow.grpc.errors import bad_request_fields, from_rpc_error, status_from_rpc_error
from crmflow.grpc.server import ServiceBinding, start_server
from crmflow.settings import ConfigurationError, Settings

SERVICE = "crmflow.test.v1.ProbeService"


class _Strict(BaseModel):
    count: int


async def _raise(request: struct_pb2.Struct, context: grpc.aio.ServicerContext) -> empty_pb2.Empty:
    kind = request.fields["kind"].string_value
    if kind == "invalid":
        raise e.InvalidArgument(
            "bad",
            [
                e.FieldViolation("workflow.name", "must not be empty"),
                e.FieldViolation("workflow.object_type", "unknown object type 'x'"),
            ],
        )
    if kind == "not_found":
        raise e.NotFound("workflow", "wf-9")
    if kind == "precondition":
        raise e.FailedPrecondition(
            "cannot publish", [e.PreconditionViolation("PLACEHOLDER", "a1", "incomplete")]
        )
    if kind == "aborted":
        raise e.Aborted("draft changed (expected 3, found 4)")
    if kind == "pydantic":
        _Strict.model_validate({"count": "many"})
    if kind == "bug":
        raise RuntimeError("secret internals")
    return empty_pb2.Empty()


def _binding() -> ServiceBinding:
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Raise": grpc.unary_unary_rpc_method_handler(
                _raise,
                request_deserializer=struct_pb2.Struct.FromString,
                response_serializer=empty_pb2.Empty.SerializeToString,
            )
        },
    )
    return ServiceBinding(SERVICE, lambda server: server.add_generic_rpc_handlers((handler,)))


@pytest.fixture
async def running():
    srv = await start_server([_binding()], settings=Settings(), port=0)
    yield srv
    await srv.stop(0)


async def _call(port: int, kind: str) -> grpc.aio.AioRpcError:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        method = ch.unary_unary(
            f"/{SERVICE}/Raise",
            request_serializer=struct_pb2.Struct.SerializeToString,
            response_deserializer=empty_pb2.Empty.FromString,
        )
        req = struct_pb2.Struct()
        req.update({"kind": kind})
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await method(req)
        return err.value


async def test_invalid_argument_carries_bad_request_with_every_field(running) -> None:
    err = await _call(running.port, "invalid")
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(err) == {
        "workflow.name": "must not be empty",
        "workflow.object_type": "unknown object type 'x'",
    }
    rebuilt = from_rpc_error(err)
    assert isinstance(rebuilt, e.InvalidArgument) and len(rebuilt.violations) == 2


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("not_found", grpc.StatusCode.NOT_FOUND),
        ("precondition", grpc.StatusCode.FAILED_PRECONDITION),
        ("aborted", grpc.StatusCode.ABORTED),
        ("pydantic", grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
async def test_domain_errors_map_to_codes(running, kind: str, code: grpc.StatusCode) -> None:
    err = await _call(running.port, kind)
    assert err.code() == code
    status = status_from_rpc_error(err)
    assert status is not None and status.message == err.details()
    if kind == "pydantic":
        assert "count" in bad_request_fields(err)


async def test_a_bug_is_internal_and_does_not_leak(running) -> None:
    err = await _call(running.port, "bug")
    assert err.code() == grpc.StatusCode.INTERNAL
    assert "secret internals" not in (err.details() or "")
    assert "request id" in (err.details() or "")


async def test_health_serving_then_not_serving_on_stop() -> None:
    srv = await start_server([_binding()], settings=Settings(), port=0)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        resp = await stub.Check(health_pb2.HealthCheckRequest(service=SERVICE))
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
        await srv.set_serving(False)
        resp = await stub.Check(health_pb2.HealthCheckRequest(service=""))
        assert resp.status == health_pb2.HealthCheckResponse.NOT_SERVING
    await srv.stop(0)


async def test_port_in_use_is_a_one_line_configuration_error(running) -> None:
    with pytest.raises(ConfigurationError, match=f"cannot listen on 127.0.0.1:{running.port}"):
        await start_server([_binding()], settings=Settings(), port=running.port)
