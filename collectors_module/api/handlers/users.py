"""Users: GetUser (a personal access token reads its own user; anybody else's is 11101)."""

from __future__ import annotations

from clarifai_grpc.grpc.api import resources_pb2, service_pb2

from collectors_module.api.dispatch import rpc
from collectors_module.core.errors import not_found

from .convert import ts


def user_to_pb(user) -> resources_pb2.User:
    pb = resources_pb2.User(
        id=user.username,
        first_name=user.first_name,
        last_name=user.last_name,
        primary_email=user.email,
        bill_type=user.plan,
    )
    if user.email:
        pb.email_addresses.add(email=user.email, primary=True)
    pb.visibility.gettable = resources_pb2.Visibility.PRIVATE
    ts(pb.created_at, user.date_joined)
    return pb


@rpc("GetUser")
def get_user(ctx, req: service_pb2.GetUserRequest):
    if ctx.owner_user_id != ctx.user.username:
        raise not_found("User", ctx.owner_user_id[:128])
    return service_pb2.SingleUserResponse(user=user_to_pb(ctx.user))
