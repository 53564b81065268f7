"""Loaded by every moto server that `sosw_test_support::LocalAws` starts (this folder is put first
on the child's PYTHONPATH).

moto 5.2.5's `DynamoDBBackend.transact_write_items` takes a rollback copy of every table a
transaction touches, once per *item* of the transaction, before it writes anything. A transaction
of 100 items over a table of T items therefore deep-copies 100 x T items: with 10,000 tasks a
lifecycle run took minutes per step and drove moto past 8 GiB. Its rollback also restores whole
tables, so on a moto that is not serialised a failed transaction can undo writes that other
requests committed meanwhile.

This module replaces that method with one that behaves as DynamoDB does and costs O(items):

1. Every item is checked first (one operation per item, no two on one key, every condition
   against the current state), and nothing is written unless every check passes. Keys are
   unique within a transaction, so an item's condition never depends on another item's write:
   checking all before writing gives the same verdicts as moto's one-pass loop.
2. The writes are then applied in order, each after saving the one item it replaces; if a write
   fails (an item too large, an invalid update expression), the saved items are put back in
   reverse order and the transaction is cancelled with that item's reason.

The cancellation reasons (`TransactionCanceledException` with one entry per item) and the errors
raised directly (`MultipleTransactionsException`, `MockValidationException`) are moto's own.
"""
import copy
import sys
import threading
import time


def _install(models):
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    operations = ("ConditionCheck", "Put", "Delete", "Update")

    class ConditionFailed(Exception):
        def __init__(self, old):
            super().__init__()
            self.old = old

    def item_key(backend, op_type, op):
        if op_type != "Put":
            return op["Key"]
        table = backend.get_table(op["TableName"])
        attrs = op["Item"]
        key = {table.hash_key_attr: attrs[table.hash_key_attr]}
        if table.range_key_attr is not None:
            key[table.range_key_attr] = attrs[table.range_key_attr]
        return key

    def check(backend, op_type, op, key):
        """Raise ConditionFailed (holding the item when asked for it) if the condition fails."""
        condition = op.get("ConditionExpression")
        current = backend.get_item(op["TableName"], key)
        if condition is None:
            return
        evaluator = get_filter_expression(
            condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
        )
        if not evaluator.expr(current):
            old = None
            if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                old = current.to_json()["Attributes"]
            raise ConditionFailed(old)

    def write(backend, op_type, op, key):
        names = op.get("ExpressionAttributeNames")
        values = op.get("ExpressionAttributeValues")
        if op_type == "Put":
            backend.put_item(
                op["TableName"],
                op["Item"],
                expression_attribute_names=names,
                expression_attribute_values=values,
            )
        elif op_type == "Delete":
            backend.delete_item(
                op["TableName"], key, expression_attribute_names=names, expression_attribute_values=values
            )
        elif op_type == "Update":
            backend.update_item(
                op["TableName"],
                key,
                update_expression=op["UpdateExpression"],
                expression_attribute_names=names,
                expression_attribute_values=values,
            )

    def transact_write_items(self, transact_items):
        if len(transact_items) > 100:
            raise TooManyTransactionsException()
        seen = set()
        planned = []  # (op_type, op, key) in request order
        reasons = []  # one (code, message, item) per item, moto's shape
        for entry in transact_items:
            if len(entry) > 1:
                raise TransactWriteSingleOpException
            op_type, op = next(iter(entry.items()))
            try:
                if op_type not in operations:
                    raise ValueError("Unsupported transaction operation")
                key = item_key(self, op_type, op)
                marker = (str(op["TableName"]), str(dict(sorted(key.items()))))
                if marker in seen:
                    raise MultipleTransactionsException()
                seen.add(marker)
                check(self, op_type, op, key)
                planned.append((op_type, op, key))
                reasons.append((None, None, None))
            except (MultipleTransactionsException, MockValidationException):
                raise
            except ConditionFailed as e:
                reasons.append(("ConditionalCheckFailed", str(ConditionalCheckFailed().message), e.old))
            except Exception as e:  # noqa: BLE001 - every other failure cancels the transaction
                reasons.append((type(e).__name__, str(e), None))
        if any(code is not None for code, _, _ in reasons):
            raise TransactionCanceledException(reasons)

        saved = []  # (table, key, attributes before or None), in write order
        for index, (op_type, op, key) in enumerate(planned):
            if op_type == "ConditionCheck":
                continue
            table_name = op["TableName"]
            before = self.get_item(table_name, key)
            saved.append((table_name, key, copy.deepcopy(before.to_json()["Attributes"]) if before else None))
            try:
                write(self, op_type, op, key)
            except Exception as e:  # noqa: BLE001 - undo, then report as moto does
                for undo_table, undo_key, attributes in reversed(saved):
                    if attributes is None:
                        self.delete_item(undo_table, undo_key)
                    else:
                        self.put_item(undo_table, attributes)
                if isinstance(e, (MultipleTransactionsException, MockValidationException)):
                    raise
                failed = [(None, None, None)] * len(planned)
                failed[index] = (type(e).__name__, str(e), None)
                raise TransactionCanceledException(failed)

    models.DynamoDBBackend.transact_write_items = transact_write_items


def _wait_and_install():
    # moto imports a service's backend on that service's first request: install as soon as it is there.
    while True:
        models = sys.modules.get("moto.dynamodb.models")
        if models is not None and hasattr(models, "DynamoDBBackend"):
            _install(models)
            return
        time.sleep(0.005)


if sys.argv and (sys.argv[0].endswith("moto_server") or sys.argv[0].endswith("moto_serialised.py")):
    threading.Thread(target=_wait_and_install, daemon=True).start()
