"""A Python sosw Worker (PyPI `sosw`) completing a task: it calls the Worker Assistant through the
Lambda API at AWS_ENDPOINT_URL_LAMBDA, exactly as deployed Python workers do.

Usage: python_worker.py TASK_ID
"""
import sys

from sosw.worker import Worker


class ExampleWorker(Worker):
    def __call__(self, event):
        self.stats["rows_processed"] += 5
        self.result["output_file"] = "s3://bucket/out.csv"
        super().__call__(event)


if __name__ == "__main__":
    ExampleWorker()({"task_id": sys.argv[1], "payload": {"x": 1}})
    print("done")
