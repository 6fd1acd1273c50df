#!/usr/bin/env python3
"""A goalstore client in Python: grpcio stubs generated from proto/ at test time.

Usage: client_test.py TARGET [PROTO_ROOT]   (TARGET: HOST:PORT, or unix:///path/to.sock)

Generates the goalstore.v1 stubs with grpcio-tools' bundled protoc (which also carries the
well-known types, e.g. google/protobuf/struct.proto) into a temporary folder, then, against the
sidecar at TARGET, over a channel with default options: creates a milestone goal (target 100), logs 30 and 12.5, checks that the
progress is 42.5 in total and 42.5 %, and that an id with '#' is INVALID_ARGUMENT with a
google.rpc.BadRequest field violation naming goal_id (read with grpcio-status).

Prints "python client: ok" and exits 0; anything else exits non-zero with a message.
PROTO_ROOT defaults to the repository's proto/ folder (found from this file's location).
"""

import importlib
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

# Every call's deadline, in seconds: generous, the machine may be busy with other tests.
DEADLINE = 30


def fail(message):
    print(f"python client: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def generate_stubs(proto_root, out_dir):
    """Runs protoc from grpcio-tools, as a separate process, and returns its two modules."""
    proto = "goalstore/v1/goalstore.proto"
    if not (proto_root / proto).is_file():
        fail(f"{proto_root / proto} does not exist")
    command = [
        sys.executable, "-m", "grpc_tools.protoc",
        f"-I{proto_root}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        str(proto_root / proto),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        fail(f"protoc exited {result.returncode}: {result.stderr.strip()}")
    # The stubs import each other as goalstore.v1.*: namespace packages under out_dir.
    sys.path.insert(0, str(out_dir))
    pb2 = importlib.import_module("goalstore.v1.goalstore_pb2")
    pb2_grpc = importlib.import_module("goalstore.v1.goalstore_pb2_grpc")
    return pb2, pb2_grpc


def check(condition, message):
    if not condition:
        fail(message)


def check_rich_details(error):
    """The standard details of an INVALID_ARGUMENT, as any gRPC client reads them
    (grpcio-status): a google.rpc.BadRequest naming the field, a google.rpc.ErrorInfo."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    status = rpc_status.from_call(error)
    check(status is not None, "INVALID_ARGUMENT carries no google.rpc.Status")
    violations, infos = [], []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations += [(v.field, v.description) for v in bad_request.field_violations]
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
    check(
        [field for field, _ in violations] == ["goal_id"],
        f"the BadRequest's field violations are {violations!r}",
    )
    check(violations[0][1] != "", "the field violation has no description")
    check(
        [(i.reason, i.domain) for i in infos] == [("INVALID_ARGUMENT", "goalstore.v1")],
        f"the ErrorInfo is {infos!r}",
    )


def main():
    if len(sys.argv) not in (2, 3):
        fail("usage: client_test.py HOST:PORT|unix:///PATH [PROTO_ROOT]")
    address = sys.argv[1]
    default_root = Path(__file__).resolve().parent.parent.parent / "proto"
    proto_root = Path(sys.argv[2]) if len(sys.argv) == 3 else default_root

    import grpc  # imported here so a missing grpcio fails with the message above, not a trace

    with tempfile.TemporaryDirectory(prefix="goalstore-py-") as out_dir:
        pb2, pb2_grpc = generate_stubs(proto_root, Path(out_dir))
        # Proves the well-known types resolved: the generated module imports struct_pb2.
        check(
            "google/protobuf/struct.proto" in [d.name for d in pb2.DESCRIPTOR.dependencies],
            "the stubs do not depend on google/protobuf/struct.proto",
        )

        user = f"py-{uuid.uuid4().hex[:12]}"
        with grpc.insecure_channel(address) as channel:
            stub = pb2_grpc.GoalStoreStub(channel)

            created = stub.CreateGoal(
                pb2.CreateGoalRequest(
                    user_id=user,
                    title="Write 100 pages",
                    goal_pattern=pb2.GOAL_PATTERN_MILESTONE,
                    target=pb2.Target(
                        metric="count",
                        value=100.0,
                        unit="pages",
                        target_date="2099-12-31T00:00:00Z",
                    ),
                ),
                timeout=DEADLINE,
            ).goal
            check(created.goal_id != "", "CreateGoal returned no goal id")
            check(created.user_id == user, f"CreateGoal's user is {created.user_id!r}")
            check(
                created.status == pb2.GOAL_STATUS_ACTIVE,
                f"a new goal is active, not {pb2.GoalStatus.Name(created.status)}",
            )

            for value in (30.0, 12.5):
                logged = stub.LogActivity(
                    pb2.LogActivityRequest(user_id=user, goal_id=created.goal_id, value=value),
                    timeout=DEADLINE,
                )
                check(logged.activity.value == value, f"logged {logged.activity.value}, not {value}")

            progress = stub.GetProgress(
                pb2.GetProgressRequest(user_id=user, goal_id=created.goal_id),
                timeout=DEADLINE,
            ).progress
            check(
                progress.HasField("total_accumulated"),
                "GetProgress has no total_accumulated",
            )
            check(
                progress.total_accumulated == 42.5,
                f"total_accumulated is {progress.total_accumulated}, not 42.5",
            )
            check(
                progress.percent_complete == 42.5,
                f"percent_complete is {progress.percent_complete}, not 42.5",
            )

            try:
                stub.GetGoal(pb2.GetGoalRequest(user_id=user, goal_id="a#b"), timeout=DEADLINE)
            except grpc.RpcError as error:
                check(
                    error.code() == grpc.StatusCode.INVALID_ARGUMENT,
                    f"GetGoal('a#b') failed with {error.code()}: {error.details()}",
                )
                check(
                    "goal_id" in (error.details() or ""),
                    f"the error names goal_id: {error.details()!r}",
                )
                check_rich_details(error)
            else:
                fail("GetGoal('a#b') succeeded")

    print("python client: ok")


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except Exception as error:  # a failed call or a broken stub: say what, exit non-zero
        fail(f"{type(error).__name__}: {error}")
