#!/usr/bin/python3
"""Count every test case that ran in one or more meson test logs and print
'N passed, N failed[, N skipped]'.

A TAP test contributes its 'ok' / 'not ok' lines (a '# SKIP' directive counts as skipped). A test
that crashed after its last TAP line counts one extra failure, so a crash is never hidden. A
non-TAP test (lint) counts as one case. Exit status 1 if anything failed."""
import json
import re
import sys

TAP = re.compile(r'^(not ok|ok)\b(.*)$')


def count(logfile, totals, failures):
    with open(logfile, encoding='utf-8', errors='replace') as f:
        for line in f:
            t = json.loads(line)
            name = t.get('name', '?')
            result = t.get('result', '')
            out = t.get('stdout', '') or ''
            p = fa = s = 0
            for l in out.splitlines():
                m = TAP.match(l.strip())
                if not m:
                    continue
                if '# SKIP' in m.group(2).upper():
                    s += 1
                elif m.group(1) == 'ok':
                    p += 1
                else:
                    fa += 1
                    failures.append(f'{name}:{m.group(2).strip()}')
            if p + fa + s == 0:
                if result in ('OK', 'EXPECTEDFAIL'):
                    p = 1
                elif result == 'SKIP':
                    s = 1
                else:
                    fa = 1
                    failures.append(f'{name} ({result})')
            elif result not in ('OK', 'SKIP', 'EXPECTEDFAIL') and fa == 0:
                fa = 1
                failures.append(f'{name} ({result} after its last test case)')
            totals[0] += p
            totals[1] += fa
            totals[2] += s


def main():
    totals = [0, 0, 0]
    failures = []
    for logfile in sys.argv[1:]:
        count(logfile, totals, failures)
    for f in failures:
        print(f'FAILED: {f}')
    line = f'{totals[0]} passed, {totals[1]} failed'
    if totals[2]:
        line += f', {totals[2]} skipped'
    print(line)
    return 1 if totals[1] else 0


if __name__ == '__main__':
    sys.exit(main())
