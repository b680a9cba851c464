"""Kombu's Redis transport with one fix: a failed acknowledgement frees its prefetch slot.

With `acks_late`, a worker acknowledges a message after its task ran. If Redis went away in
between, kombu's `QoS.ack` raises before it forgets the delivery, so the message keeps its
prefetch slot for ever. Once every slot is held that way (two failed acks with prefetch 1 and
two pool processes), the consumer stops issuing BRPOP: it never reads from the dead connection,
so it never notices that the connection is gone, never reconnects, and the worker sits idle and
healthy-looking while the queue grows. Here the slot is released whether or not Redis answered,
and the error still propagates (Celery logs it). Nothing is lost by forgetting the delivery: the
capture the message named is still `processing` or already committed, and the sweeper republishes
or reclaims it as for any lost message.

Used when the broker is Redis (settings.CELERY_BROKER_TRANSPORT).
"""

from __future__ import annotations

from kombu.transport import redis, virtual


class QoS(redis.QoS):
    def ack(self, delivery_tag):
        try:
            self._remove_from_indices(delivery_tag).execute()
        finally:
            virtual.QoS.ack(self, delivery_tag)

    def reject(self, delivery_tag, requeue=False):
        try:
            if requeue:
                self.restore_by_tag(delivery_tag, leftmost=True)
            else:
                self._remove_from_indices(delivery_tag).execute()
        finally:
            virtual.QoS.ack(self, delivery_tag)


class Channel(redis.Channel):
    QoS = QoS


class Transport(redis.Transport):
    Channel = Channel
