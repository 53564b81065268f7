"""Oracle for the chunking differential test: Python sosw's own Scheduler chunks each job.

Reads JSON lines `{"config": {...}, "event": ..., "today": "YYYY-MM-DD"}` on stdin and writes, per
case, one JSON line: `{"rows": ["<queue file line>", ...]}` with the exact lines Python sosw writes
to its queue file, or `{"error": "<exception>"}` when Python rejects (or crashes on) the job.

The Scheduler is built without AWS: its config is assembled as the original does (DEFAULT_CONFIG
updated recursively with the case's config), the TaskManager is replaced by a stand-in that only
answers `get_labourer`, and `datetime.date.today()` returns the case's date.
"""
import copy
import datetime as real_datetime
import json
import os
import sys
import tempfile
import types

os.environ.setdefault("AWS_DEFAULT_REGION", "us-west-2")

import sosw.scheduler as scheduler_module  # noqa: E402
from sosw.components.helpers import recursive_update  # noqa: E402
from sosw.labourer import Labourer  # noqa: E402


class FixedDate(real_datetime.date):
    today_value = None

    @classmethod
    def today(cls):
        return cls.today_value


fake_datetime = types.SimpleNamespace(date=FixedDate, timedelta=real_datetime.timedelta,
                                      datetime=real_datetime.datetime)
scheduler_module.datetime = fake_datetime


class Labourers:
    def __init__(self, names):
        self.names = names

    def get_labourer(self, labourer_id):
        return Labourer(id=labourer_id) if labourer_id in self.names else None


def run_case(case, workdir, n):
    today = real_datetime.date.fromisoformat(case["today"])
    FixedDate.today_value = FixedDate(today.year, today.month, today.day)
    sch = object.__new__(scheduler_module.Scheduler)
    sch.config = recursive_update(copy.deepcopy(scheduler_module.Scheduler.DEFAULT_CONFIG), case["config"])
    sch.config["job_schema"] = sch.config["job_schema_variants"]["default"]
    sch.initialize_from_job_schema()
    sch.task_client = Labourers(list(sch.config["task_config"]["labourers"].keys()))
    sch.stats = {}
    sch._queue_file_name = f"case_{n}.txt"
    path = os.path.join(workdir, sch._queue_file_name)
    type(sch).local_queue_file = property(lambda self: os.path.join(workdir, self._queue_file_name))
    job = sch.extract_job_from_payload(case["event"])
    sch.apply_job_schema(name=job.get("job_schema_name"))
    sch.parse_job_to_file(job)
    with open(path) as f:
        rows = [line.rstrip("\n") for line in f]
    os.remove(path)
    return rows


def main():
    workdir = tempfile.mkdtemp(prefix="sosw_oracle_")
    for n, line in enumerate(sys.stdin):
        if not line.strip():
            continue
        case = json.loads(line)
        try:
            out = {"rows": run_case(case, workdir, n)}
        except Exception as err:  # a rejection or a crash of the original: both count as "rejected"
            out = {"error": f"{type(err).__name__}: {err}"}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
