#!/usr/bin/env python3
"""Independent instruction count from a QEMU `-d in_asm,exec,nochain` log, to cross-check the
insn_count plugin: in_asm blocks give each translation block's instructions, `Trace` lines the
order blocks executed in (nochain logs every execution). Counts instructions executed from the
start of the begin marker to the start of the end marker, for each begin/end pair, and prints the
second region minus the first (the kernel minus the empty region), as measure.sh does.

usage: trace_count.py <log> <begin-address> <end-address>"""
import re
import sys


def main():
    log, begin, end = sys.argv[1], int(sys.argv[2], 16) & ~1, int(sys.argv[3], 16) & ~1
    tb_size = {}
    current = None
    trace = []
    insn = re.compile(r"^0x([0-9a-f]+):\s")
    exec_line = re.compile(r"^Trace \d+: 0x[0-9a-f]+ \[[0-9a-f]+/([0-9a-f]+)/")
    with open(log) as f:
        for line in f:
            if line.startswith("IN:"):
                current = None
                continue
            m = insn.match(line)
            if m:
                pc = int(m.group(1), 16)
                if current is None:
                    current = pc
                    tb_size[current] = 0
                tb_size[current] += 1
                continue
            if not line.strip():
                current = None
            m = exec_line.match(line)
            if m:
                # A block may be retranslated later; the size at execution time is the last seen.
                pc = int(m.group(1), 16)
                trace.append((pc, tb_size[pc]))
    regions, counting, n = [], False, 0
    for pc, size in trace:
        if pc == end and counting:
            regions.append(n)
            counting = False
        if pc == begin:
            counting, n = True, 0
        if counting:
            n += size
    if len(regions) < 2:
        sys.exit("trace_count: fewer than two regions found")
    print(regions[1] - regions[0])


if __name__ == "__main__":
    main()
