"""The acting key's access at collector create/change (finding 1 of issue 15).

The app's owner owns the collector, but the request is made with a key, and that key's reach can
be narrower than the owner's: an app key sees one app, a PAT holds only some scopes. A collector
would otherwise let such a key reach further than itself: point the collector at a model the key
cannot read (its predictions then land in the key's app), or name a stronger key of the owner by
the public id GetCollector shows. So, besides the owner's checks:

- the acting key must be able to read the source model itself (Models:Get, and an app key only
  in its own app or a public model);
- the acting key may name as post-inputs key only itself, a key given by its secret (it was shown
  the key in full), or a key it could have created: a PAT with the PostKeys scopes whose scopes
  cover the named key's. App keys cannot create keys.

`acting_key=None` is a signed-in owner on the pages (full access to their own objects).
"""

from __future__ import annotations

from collectors_module.accounts.services import check_grantable
from collectors_module.api.descriptors import get_rpc
from collectors_module.core.errors import SC, ApiError


def check_reads_source(acting_key, mv) -> None:
    if acting_key is None:
        return
    model = mv.model
    missing = acting_key.missing_scopes(get_rpc("GetModel").scopes)
    if missing:
        raise ApiError(
            SC.CONN_INSUFFICIENT_SCOPES,
            f"This key cannot read the source model: it lacks the scopes {', '.join(missing)}",
            field="model_id",
        )
    if acting_key.app_id is not None and model.app_id != acting_key.app_id and not model.is_public:
        # Like any model the key cannot see: it does not exist (no hint it is there).
        raise ApiError(
            SC.MODEL_DOES_NOT_EXIST,
            f"Source model {model.app.owner.username}/{model.app.public_id}/{model.public_id} "
            "does not exist or you may not read it",
            field="model_id",
        )


def check_may_name_key(acting_key, key, *, by_secret: bool) -> None:
    if acting_key is None or by_secret or key.pk == acting_key.pk:
        return
    refusal = ApiError(
        SC.CONN_INSUFFICIENT_SCOPES,
        f"This API key may not name key '{key.public_id}' as the post inputs key: name it by its "
        "secret, or use a key this key could have created itself",
        field="post_inputs_key_id",
    )
    if acting_key.app_id is not None or acting_key.missing_scopes(get_rpc("PostKeys").scopes):
        raise refusal
    try:
        check_grantable(granting_scopes=acting_key.scopes, scopes=list(key.scopes or []))
    except ApiError as exc:
        raise refusal from exc
