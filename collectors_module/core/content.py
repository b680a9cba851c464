"""The post-queue rule: does an output hold anything?

A workflow's output (a `Data`) is "non-empty" when some field holds a NON-DEFAULT value: text
with characters, at least one concept, region, embedding, colour, frame, a metadata key, image
bytes or a URL, a number other than 0, ... Protobuf field presence is not enough: a runner that
sets `data.text.raw = ""` marks `text` present (`Data.ListFields()` lists it) though it holds
nothing. This one function decides it for the executor (a node's output, a workflow's `keep`),
inline admission (through the executor) and the capture worker.

Pure: protobuf messages in, a bool out; it walks only the fields that are set, so a typical
prediction (concepts first) is decided on its first field.
"""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

_MESSAGE = FieldDescriptor.TYPE_MESSAGE


def _value_has_content(fd: FieldDescriptor, value) -> bool:
    if fd.type != _MESSAGE:
        return bool(value)  # "", b"", 0, 0.0, False and enum 0 are the defaults
    if fd.message_type.GetOptions().map_entry:
        return len(value) > 0
    return has_content(value)


def has_content(message: Message) -> bool:
    """True when some field of `message` (recursively) holds a non-default value.

    Repeated fields count when they have at least one element (a concept, a region, an embedding
    ...); maps when they have a key; singular messages when they hold content themselves;
    scalars when they differ from their default."""
    for fd, value in message.ListFields():
        if fd.is_repeated:
            if len(value) > 0:
                return True
            continue
        if _value_has_content(fd, value):
            return True
    return False


def prune_empty(message: Message) -> Message:
    """Clear, in place, every singular message field that holds no content (recursively), so a
    runner's `text.raw = ""` does not leave `text` present. Returns `message`."""
    for fd, value in message.ListFields():
        if fd.type != _MESSAGE or fd.is_repeated:
            continue
        if fd.message_type.GetOptions().map_entry:
            continue
        if has_content(value):
            prune_empty(value)
        else:
            message.ClearField(fd.name)
    return message


def is_empty(message: Message) -> bool:
    """Not `has_content`: the post-queue rule's "empty output"."""
    return not has_content(message)


__all__ = ["has_content", "is_empty", "prune_empty"]
