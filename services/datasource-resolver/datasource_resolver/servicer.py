"""DatasourceService: proto at the edge, the resolver inside."""

from __future__ import annotations

import grpc

from crmflow.api.datasource.v1 import datasource_service_pb2 as pb
from crmflow.api.datasource.v1 import datasource_service_pb2_grpc as pb_grpc
from crmflow.grpc.server import ServiceBinding
from crmflow.records.port import RecordStore
from datasource_resolver.cache import StepCache

SERVICE_NAME = "crmflow.api.datasource.v1.DatasourceService"


class DatasourceServicer(pb_grpc.DatasourceServiceServicer):
    def __init__(self, store: RecordStore, cache: StepCache) -> None:
        self._store = store
        self._cache = cache

    async def ResolveInputs(
        self, request: pb.ResolveInputsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ResolveInputsResponse:
        raise NotImplementedError


def binding(store: RecordStore, cache: StepCache) -> ServiceBinding:
    servicer = DatasourceServicer(store, cache)

    def add(server: grpc.aio.Server) -> None:
        pb_grpc.add_DatasourceServiceServicer_to_server(servicer, server)

    return ServiceBinding(SERVICE_NAME, add)
