#!/usr/bin/env python3
"""CPU time of whole processes, measured interleaved: each command in turn, ROUNDS rounds,
standard output and error to /dev/null. User and system time, peak RSS and minor page faults come
from wait4 (microsecond resolution, where /usr/bin/time prints hundredths; the peak RSS is at
least this script's own, about 10 MB, which the kernel carries across fork and exec). Prints a
markdown table with means and medians and the 1-minute load average over the run.

Usage: benches/scenarios/interleave.py ROUNDS 'LABEL=COMMAND ARGS...' ...
(COMMAND is split on spaces and run without a shell; give its full path.) With transparent huge
pages off for one process: `LABEL=/path/to/nothp /path/to/kiln parse --json FILE`, `nothp` from
benches/scenarios/nothp.c (`cc -O2 -o nothp nothp.c`).
"""
import os
import statistics
import sys


def main():
    rounds = int(sys.argv[1])
    cmds = [a.split("=", 1) for a in sys.argv[2:]]
    res = {label: [] for label, _ in cmds}
    null = os.open("/dev/null", os.O_WRONLY)
    loads = [os.getloadavg()[0]]
    for _ in range(rounds):
        for label, cmd in cmds:
            argv = cmd.split()
            pid = os.fork()
            if pid == 0:
                os.dup2(null, 1)
                os.dup2(null, 2)
                try:
                    os.execv(argv[0], argv)
                finally:
                    os._exit(127)
            _, status, ru = os.wait4(pid, 0)
            res[label].append((ru.ru_utime, ru.ru_stime, ru.ru_maxrss / 1024, ru.ru_minflt, status))
        loads.append(os.getloadavg()[0])
    print(f"load average (1 min) {min(loads):.2f}-{max(loads):.2f}, {rounds} rounds")
    print("| command | user mean | sys mean | CPU mean | CPU median | minor faults (median) | peak RSS MiB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, _ in cmds:
        v = res[label]
        user = [x[0] for x in v]
        sys_ = [x[1] for x in v]
        cpu = [a + b for a, b in zip(user, sys_)]
        failed = sum(1 for x in v if x[4] != 0)
        print(
            f"| {label} | {statistics.mean(user):.4f} | {statistics.mean(sys_):.4f} | "
            f"{statistics.mean(cpu):.4f} | {statistics.median(cpu):.4f} | "
            f"{statistics.median([x[3] for x in v]):.0f} | {max(x[2] for x in v):.1f} |"
            + (f" ({failed} runs failed)" if failed else "")
        )


if __name__ == "__main__":
    main()
