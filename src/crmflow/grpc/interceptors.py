"""Server interceptors: request context, error mapping, and tracing, in one wrapper.

grpc.aio interceptors wrap the method handler; we wrap unary and streaming behaviours alike so
every rpc gets a request id, the tenant id of its request in the log context, a span, and the
domain-error -> status mapping. Anything that is not a ``CrmflowError`` is a bug: it is logged
with its traceback and answered INTERNAL without leaking the message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from opentelemetry import trace
from pydantic import ValidationError

from crmflow import errors as e
from crmflow.grpc import errors as grpc_errors
from crmflow.grpc.context import REQUEST_ID_HEADER, new_request_id, request_id_var, tenant_id_var

log = logging.getLogger("crmflow.grpc")
_tracer = trace.get_tracer("crmflow.grpc")


def _metadata_value(context: grpc.aio.ServicerContext, key: str) -> str | None:
    for k, v in context.invocation_metadata() or ():
        if k == key:
            return v if isinstance(v, str) else v.decode()
    return None


async def _handle(
    method: str,
    request: Any,
    context: grpc.aio.ServicerContext,
    call: Callable[[], Awaitable[Any]],
) -> Any:
    rid = _metadata_value(context, REQUEST_ID_HEADER) or new_request_id()
    tenant = getattr(request, "tenant_id", "") if request is not None else ""
    t_token = tenant_id_var.set(tenant)
    r_token = request_id_var.set(rid)
    start = time.perf_counter()
    code = "OK"
    try:
        with _tracer.start_as_current_span(
            method, attributes={"rpc.system": "grpc", "crmflow.tenant_id": tenant}
        ):
            try:
                return await call()
            except e.CrmflowError as exc:
                code = type(exc).__name__
                await grpc_errors.abort(context, exc)
            except ValidationError as exc:
                code = "InvalidArgument"
                await grpc_errors.abort(context, grpc_errors.from_validation_error(exc))
    except grpc.aio.AbortError:
        raise
    except Exception:
        code = "INTERNAL"
        log.exception("unhandled error in %s", method)
        await context.abort(grpc.StatusCode.INTERNAL, f"internal error (request id {rid})")
    finally:
        log.debug(
            "rpc %s %s in %.1f ms",
            method,
            code,
            (time.perf_counter() - start) * 1000,
            extra={"rpc_method": method, "rpc_code": code},
        )
        tenant_id_var.reset(t_token)
        request_id_var.reset(r_token)


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(("/grpc.health", "/grpc.reflection")):
            return handler

        if handler.unary_unary:
            inner_uu = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                return await _handle(method, request, context, lambda: inner_uu(request, context))

            return grpc.unary_unary_rpc_method_handler(
                unary_unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:
            inner_su = handler.stream_unary

            async def stream_unary(request_iter: Any, context: grpc.aio.ServicerContext) -> Any:
                return await _handle(method, None, context, lambda: inner_su(request_iter, context))

            return grpc.stream_unary_rpc_method_handler(
                stream_unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        # Server-streaming and bidi handlers are async generators; errors there are mapped by
        # the servicer itself via crmflow.grpc.errors.abort.
        return handler
