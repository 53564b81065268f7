"""Print the effective config Python sosw's own essentials assemble, for the differential test.

Usage (environment points boto3 at the local AWS, the config table holds the documents):
    python_config.py ESSENTIAL FUNCTION_NAME
ESSENTIAL is orchestrator, scavenger, scheduler or worker_assistant. Prints one JSON line:
{"essential": <the essential's config>, "task": <its TaskManager's config>,
 "ecology": <its EcologyManager's config>, "meta": <its MetaHandler's config>} (task and ecology
null for the Worker Assistant).

Only the AWS calls that have nothing to do with configuration are stubbed: DescribeTable of the
data tables (their names differ per installation) and the Glue catalog lookup. The config table
is read by Python sosw's own code.
"""
import json
import os
import sys

ESSENTIAL, FUNCTION = sys.argv[1], sys.argv[2]
os.environ["AWS_LAMBDA_FUNCTION_NAME"] = FUNCTION

from sosw.components import dynamo_db  # noqa: E402

_describe = dynamo_db.DynamoDbClient.identify_dynamo_capacity


def identify_dynamo_capacity(self, table_name=None):
    # The config table is real; the data tables need not exist for config assembly.
    if (table_name or self.config.get("table_name")) == "config":
        return _describe(self, table_name)


dynamo_db.DynamoDbClient.identify_dynamo_capacity = identify_dynamo_capacity
dynamo_db.DynamoDbClient.enrich_config_from_glue = lambda self, config, glue_client=None: config

if ESSENTIAL == "orchestrator":
    from sosw.orchestrator import Orchestrator as Cls
elif ESSENTIAL == "scavenger":
    from sosw.scavenger import Scavenger as Cls
elif ESSENTIAL == "scheduler":
    from sosw import scheduler
    from sosw.scheduler import Scheduler as Cls

    class Context:  # the Scheduler names its queue file after the Lambda request at start-up
        aws_request_id = "config-test"
        invoked_function_arn = f"arn:aws:lambda:us-west-2:000000000000:function:{FUNCTION}"

    scheduler.global_vars.lambda_context = Context()
elif ESSENTIAL == "worker_assistant":
    from sosw.worker_assistant import WorkerAssistant as Cls
else:
    raise SystemExit(f"unknown essential {ESSENTIAL}")

essential = Cls()
task = getattr(essential, "task_client", None)
out = {
    "essential": essential.config,
    "task": task.config if task else None,
    "ecology": task.ecology_client.config if task else None,
    "meta": essential.meta_handler.config,
}
print(json.dumps(out, default=str))
