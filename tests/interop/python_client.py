"""An independent (non-Rust) gRPC client generated from proto/: calls Rank,
CatalogService, health and reflection against a running server.

    python3 -m pip install grpcio grpcio-tools grpcio-health-checking grpcio-reflection
    cargo run --release -- serve &
    python3 tests/interop/python_client.py 127.0.0.1:50051

Exits non-zero on the first failed check.
"""
import pathlib
import sys
import tempfile

import grpc
from grpc_tools import protoc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

ROOT = pathlib.Path(__file__).resolve().parents[2]


def generate(out: pathlib.Path) -> None:
    protos = [str(p.relative_to(ROOT / "proto")) for p in (ROOT / "proto").rglob("*.proto")]
    rc = protoc.main(["protoc", f"-I{ROOT / 'proto'}", f"--python_out={out}", f"--grpc_python_out={out}", *protos])
    if rc != 0:
        sys.exit(f"protoc failed: {rc}")
    sys.path.insert(0, str(out))


def main(addr: str) -> None:
    generate(pathlib.Path(tempfile.mkdtemp()))
    from fairflow.v1 import catalog_pb2, catalog_pb2_grpc, common_pb2, rank_pb2, rank_pb2_grpc

    channel = grpc.insecure_channel(addr)

    health = health_pb2_grpc.HealthStub(channel)
    status = health.Check(health_pb2.HealthCheckRequest(service="fairflow.v1.RankService")).status
    assert status == health_pb2.HealthCheckResponse.SERVING, status
    print("health: SERVING")

    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    reply = next(reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    names = sorted(s.name for s in reply.list_services_response.service)
    assert "fairflow.v1.RankService" in names and "fairflow.v1.CatalogService" in names, names
    print("reflection:", ", ".join(names))

    catalog = catalog_pb2_grpc.CatalogServiceStub(channel)
    stats = catalog.GetCatalogStats(catalog_pb2.GetCatalogStatsRequest())
    print(f"catalog: {stats.streamers} streamers ({stats.top_streamers} top, {stats.mid_streamers} mid, "
          f"{stats.small_streamers} small), {stats.goods} goods, {stats.live_streams} live")
    catalog.UpsertStreamers(catalog_pb2.UpsertStreamersRequest(streamers=[catalog_pb2.Streamer(
        id="py-streamer", followers=250_000, kind=common_pb2.STREAMER_KIND_INFLUENCER, reputation_score=95.0)]))
    catalog.UpsertGoods(catalog_pb2.UpsertGoodsRequest(goods=[catalog_pb2.Goods(
        id="py-goods", brand_id="py-brand", price=59.9, seller_id="py-streamer")]))

    rank = rank_pb2_grpc.RankServiceStub(channel)
    request = rank_pb2.RankRequest(
        request_id="py-1", user_id="py-user", scene=common_pb2.SCENE_RECOMMEND, slots=3,
        candidates=[
            rank_pb2.Candidate(item_id="py-goods", kind=common_pb2.ITEM_KIND_GOODS),
            rank_pb2.Candidate(item_id="g000001", kind=common_pb2.ITEM_KIND_GOODS),
            rank_pb2.Candidate(item_id="not-in-catalog", kind=common_pb2.ITEM_KIND_GOODS, price=20.0, pctr=0.1, pcvr=0.05),
        ])
    response = rank.Rank(request)
    assert len(response.slots) == 3, response
    by_id = {s.item_id: s for s in response.slots}
    assert by_id["py-goods"].tier == common_pb2.TIER_MID, by_id["py-goods"]
    assert not by_id["not-in-catalog"].resolved
    for s in response.slots:
        reasons = [rank_pb2.ReasonCode.Name(r) for r in s.reasons]
        print(f"slot {s.position}: {s.item_id} {common_pb2.Tier.Name(s.tier)} score={s.score:.4f} {reasons}")
    print(f"config {response.config_version}, model {response.model_version}")

    try:
        rank.Rank(rank_pb2.RankRequest(user_id="", scene=common_pb2.SCENE_MALL, slots=1))
        sys.exit("an empty user id must be refused")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
        print("empty user_id:", e.code().name, "-", e.details())
    print("interop: all checks passed")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051")
