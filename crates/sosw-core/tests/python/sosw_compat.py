"""Drive Python sosw's own TaskManager against the local AWS, for the compatibility tests.

Usage (environment points boto3 at moto):
    sosw_compat.py create LABOURER PAYLOAD_JSON   -> prints the created task as JSON
    sosw_compat.py get TASK_ID                    -> prints get_task_by_id as JSON
    sosw_compat.py next LABOURER N                -> prints get_next_for_labourer as JSON
    sosw_compat.py raw TASK_ID                    -> prints the raw DynamoDB item (typed) as JSON
    sosw_compat.py invocations LABOURER N         -> prints, per queued task, the exact Payload
                                                     bytes TaskManager.invoke_task sends (a JSON list)
"""
import json
import sys
import time

import boto3
from sosw.managers.task import TaskManager
from sosw.labourer import Labourer

CONFIG = {
    "init_clients": ["DynamoDb"],  # no Lambda / Ecology clients needed for these operations
    "labourers": {"worker": {"arn": "worker", "max_simultaneous_invocations": 10}},
}


def manager():
    return TaskManager(custom_config=CONFIG)


def labourer(tm, labourer_id):
    lab = Labourer(id=labourer_id, arn=labourer_id)
    now = int(time.time())
    lab.set_custom_attribute("start", now)
    lab.set_custom_attribute("invoked", now + tm.config["greenfield_invocation_delta"])
    return lab


def main(argv):
    cmd = argv[1]
    if cmd == "create":
        tm = manager()
        task = tm.create_task(labourer(tm, argv[2]), payload=json.loads(argv[3]))
        print(json.dumps(task))
    elif cmd == "get":
        print(json.dumps(manager().get_task_by_id(argv[2]), default=str))
    elif cmd == "next":
        tm = manager()
        print(json.dumps(tm.get_next_for_labourer(labourer(tm, argv[2]), cnt=int(argv[3])), default=str))
    elif cmd == "invocations":
        # What TaskManager.invoke_task sends: the task's payload flattened with the task's fields,
        # then json.dumps (sosw 0.7.51, managers/task.py).
        tm = manager()
        out = []
        for task in tm.get_next_for_labourer(labourer(tm, argv[2]), cnt=int(argv[3])):
            call_payload = task.pop("payload", {})
            if isinstance(call_payload, str):
                call_payload = json.loads(call_payload)
            call_payload.update(task)
            out.append(json.dumps(call_payload))
        print(json.dumps(out))
    elif cmd == "raw":
        item = boto3.client("dynamodb").get_item(TableName="sosw_tasks", Key={"task_id": {"S": argv[2]}})
        print(json.dumps(item.get("Item")))
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
