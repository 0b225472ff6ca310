"""Peer measurement: MPyC as-is, N secure comparisons (np_less on secint(L) arrays).

A plain MPyC program (MPyC parses its own flags), run as three processes::

    MPC_N=5000 MPC_L=64 python bench/mpyc_comparisons_peer.py -M3 -I0 -B 17390 --no-log &
    MPC_N=5000 MPC_L=64 python bench/mpyc_comparisons_peer.py -M3 -I1 -B 17390 --no-log &
    MPC_N=5000 MPC_L=64 python bench/mpyc_comparisons_peer.py -M3 -I2 -B 17390 --no-log

A tolerance check |d| <= tau with comparisons needs two of them (or one at 2L bits).
"""

import json
import os
import resource
import time

import numpy as np
from mpyc.runtime import mpc

N = int(os.environ.get("MPC_N", 5000))
L = int(os.environ.get("MPC_L", 64))


async def main():
    await mpc.start()
    secint = mpc.SecInt(L)
    rng = np.random.default_rng(1)
    x = rng.integers(-(2 ** (L - 2)), 2 ** (L - 2), size=N)
    a = secint.array(x if mpc.pid == 0 else np.zeros(N, dtype=np.int64))
    wall, cpu = time.perf_counter(), time.process_time()
    a = mpc.input(a, senders=0)
    z = await mpc.output(mpc.np_less(a, 0))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    correct = bool(np.array_equal(np.array(z, dtype=np.int64).astype(bool), x < 0))
    sent = sum(p.protocol.nbytes_sent for p in mpc.parties if p.pid != mpc.pid)
    print(json.dumps({"party": mpc.pid, "n": N, "bit_length": L, "seconds": wall, "cpu_seconds": cpu,
                      "comparisons_per_s": N / wall, "bytes_sent": sent, "correct": correct,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    await mpc.shutdown()


mpc.run(main())
