"""Loaded by moto_server when the lifecycle benchmark puts this folder on PYTHONPATH.

moto 5.2.5's DynamoDBBackend.transact_write_items deep-copies a table once per *item* of the
transaction (its rollback copy, kept only for the last item), so a transaction of 100 items over a
table of T items copies 100 x T items, and the copies pile up faster than the garbage collector
frees them: 1,000 tasks through the lifecycle drove moto past 8 GiB. This patch makes those copies
within one transaction share one copy per table. The tables are not written during that loop, so
every copy of one table is identical: moto's behaviour is unchanged, only its cost.
"""
import copy as _copy
import sys
import threading
import time

_local = threading.local()


class _CopyOncePerTransaction:
    def __getattr__(self, name):
        return getattr(_copy, name)

    @staticmethod
    def deepcopy(obj, memo=None):
        cache = getattr(_local, "cache", None)
        if cache is None:
            return _copy.deepcopy(obj, memo)
        if id(obj) not in cache:
            # The original is kept too, so that its id cannot be reused within the transaction.
            cache[id(obj)] = (obj, _copy.deepcopy(obj, memo))
        return cache[id(obj)][1]


def _patch():
    # moto loads a service's backend on its first request: wait for it.
    while True:
        models = sys.modules.get("moto.dynamodb.models")
        if models is not None and hasattr(models, "DynamoDBBackend"):
            original = models.DynamoDBBackend.transact_write_items

            def transact_write_items(self, *args, **kwargs):
                _local.cache = {}
                try:
                    return original(self, *args, **kwargs)
                finally:
                    _local.cache = None

            models.DynamoDBBackend.transact_write_items = transact_write_items
            models.copy = _CopyOncePerTransaction()
            return
        time.sleep(0.02)


if sys.argv and sys.argv[0].endswith("moto_server"):
    threading.Thread(target=_patch, daemon=True).start()
