"""Model rows -> protobuf messages, shared by every handler family (and the gRPC server)."""

from __future__ import annotations

from clarifai_grpc.grpc.api import resources_pb2


def ts(message_field, dt) -> None:
    if dt is not None:
        message_field.FromDatetime(dt)


def app_to_pb(app) -> resources_pb2.App:
    pb = resources_pb2.App(
        id=app.public_id,
        name=app.public_id,
        user_id=app.owner.username,
        description=app.description,
    )
    pb.visibility.gettable = app.visibility
    if app.notes:
        pb.notes = app.notes
    if app.metadata:
        pb.metadata.update(app.metadata)
    ts(pb.created_at, app.created_at)
    ts(pb.modified_at, app.modified_at)
    return pb
