"""A Python sosw Worker (PyPI `sosw`) reporting a task, as deployed Python workers do: it invokes
the Worker Assistant through the Lambda API at AWS_ENDPOINT_URL_LAMBDA and, with a meta table
given, writes its meta row through MetaHandler (meta_handler_config).

Usage: python_worker.py TASK_ID completed|failed STATS_JSON RESULT_JSON [META_TABLE]
The Lambda context is request id `python-request-1`, log stream `python-stream`.
"""
import json
import sys
from types import SimpleNamespace

from sosw.app import global_vars
from sosw.worker import Worker

task_id, outcome, stats, result = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
meta_table = sys.argv[5] if len(sys.argv) > 5 else None

global_vars.lambda_context = SimpleNamespace(
    function_name="python_example_worker",
    aws_request_id="python-request-1",
    log_stream_name="python-stream",
    invoked_function_arn="arn:aws:lambda:us-west-2:000000000000:function:python_example_worker",
)
config = {}
if meta_table:
    config["meta_handler_config"] = {"dynamo_db_config": {"table_name": meta_table}}


class ReportingWorker(Worker):
    def __call__(self, event):
        # Drop the Processor's own counters (time_register_clients, calls_register_clients...),
        # which a Rust worker has no equivalent of, so the bytes compare what the worker reports.
        self.stats.clear()
        self.stats.update(stats)
        self.result.update(result)
        if outcome == "failed":
            self.mark_task_as_failed(event["task_id"])
        else:
            super().__call__(event)


ReportingWorker(custom_config=config)({"task_id": task_id})
print("done")
