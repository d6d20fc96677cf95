"""One rank of the DDP test (test_range_test.py DistributedTest): a model
under DistributedDataParallel on CPU with gloo, each rank on its own shard,
in one lrtune.RangeTest. Writes what it saw to $OUT as JSON: the LR of every
update, the steps taken, whether the state came back, the job and its
max_lr (rank 0 also the stored steps).

    RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 OUT=r0.json \
        python3 ddp_range_test.py
"""

import datetime
import json
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import lrtune
from lrtune.v1 import lrtune_pb2


def main():
    # A rank that cannot meet the other fails within a minute and a half
    # instead of gloo's half hour.
    dist.init_process_group("gloo", rank=int(os.environ["RANK"]),
                            world_size=int(os.environ["WORLD_SIZE"]),
                            timeout=datetime.timedelta(seconds=90))
    rank = dist.get_rank()
    torch.manual_seed(0)  # the same initial model on every rank
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 2))
    ddp = DistributedDataParallel(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    before = [p.detach().clone() for p in model.parameters()]
    g = torch.Generator().manual_seed(100 + rank)  # each rank its own shard
    y = torch.arange(2048) % 2
    x = torch.randn(2048, 8, generator=g) + (y.float() - 0.5).unsqueeze(1)
    lrs = []
    steps = 0
    with lrtune.RangeTest(ddp, opt, start_lr=1e-5, end_lr=100, steps=150,
                          db=os.environ["LRTUNE_TEST_DB"],
                          flush_interval=0.02) as rt:
        for i in range(0, 2048 * 10, 32):
            lrs.append(opt.param_groups[0]["lr"])
            idx = torch.arange(i, i + 32) % 2048
            loss = torch.nn.functional.cross_entropy(ddp(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            if rt.step(loss):
                break
    out = {
        "lrs": lrs, "steps": steps, "job_id": rt.job_id,
        "end_reason": rt.end_reason,
        "params_equal_after_restore": all(
            torch.equal(p, q) for p, q in zip(model.parameters(), before)),
        "max_lr": rt.result.max_lr,
    }
    if rank == 0:
        conn = lrtune.connect(db=os.environ["LRTUNE_TEST_DB"])
        stored = []
        for event in conn.stub.WatchJob(lrtune_pb2.WatchJobRequest(job_id=rt.job_id)):
            if event.WhichOneof("event") == "point":
                stored.append(event.point.point.step)
        out["stored_steps"] = stored
    with open(os.environ["OUT"], "w") as f:
        json.dump(out, f)
    dist.barrier()
    # Both ranks have written what they saw: leave without tearing DDP and
    # gloo down. With torch 1.13 a rank once hung for minutes after main()
    # returned, in the destructors of its DDP model and process group,
    # after the other rank had exited (CI, 2026-12-07: faulthandler showed
    # the main thread at the call of main(), no Python frame below it).
    # Nothing is left to flush; rank 0's `lrtune serve` ends with its stdin.
    os._exit(0)


if __name__ == "__main__":
    main()
