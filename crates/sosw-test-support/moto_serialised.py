"""moto's server, with every request handled under one lock.

moto applies a conditional write as "read, check, write" in Python with no lock of its own, so two
requests in flight at once can both pass the same condition (two orchestrators both "win" one
claim), and a failed transaction restores whole tables from a copy taken before it started,
undoing writes that committed meanwhile. Real DynamoDB does neither. Tests that prove the claim is
atomic run against this launcher: the same moto application, its requests one at a time.

Usage: python moto_serialised.py -H 127.0.0.1 -p PORT
"""

import argparse
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


def serialised(app):
    lock = threading.Lock()

    def handle(environ, start_response):
        with lock:
            # Produce the whole body under the lock: moto may compute it lazily.
            return [b"".join(app(environ, start_response))]

    return handle


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        serialised(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
