"""The example: push a pool, read the system report, follow WatchHealth until one change, leave.

    python -m healthscore_client 127.0.0.1:50051
"""

import sys

import healthscore_client as hs
from healthscore.v1 import service_pb2

SOURCE = "python-example"


def push(stub, sequence, active):
    response = hs.push_pool(stub, SOURCE, "mainDB", active=active, maximum=32, sequence=sequence)
    print(f"pushed {response.entity_count} entities, applied={response.applied}")


def main(address):
    channel, stub = hs.connect(address)
    with channel:
        push(stub, 1, active=20)
        print(hs.describe(hs.system_report(stub)))
        reports = hs.watch(stub)
        print("watching:", hs.describe(next(reports)))  # the current state comes first
        push(stub, 2, active=31)  # 31 of 32 connections: saturated
        print("change:", hs.describe(next(reports)))
        reports.close()  # cancels the call
        stub.ForgetSource(service_pb2.ForgetSourceRequest(source=SOURCE), timeout=5)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051")
