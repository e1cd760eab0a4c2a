#!/usr/bin/python3
"""Print line and branch coverage per source directory from gcovr's --json-summary file."""
import json
import os
import sys


def main(path):
    with open(path) as f:
        summary = json.load(f)
    dirs = {}
    for entry in summary['files']:
        d = os.path.dirname(entry['filename'])
        acc = dirs.setdefault(d, [0, 0, 0, 0, 0])
        acc[0] += entry['line_covered']
        acc[1] += entry['line_total']
        acc[2] += entry['branch_covered']
        acc[3] += entry['branch_total']
        acc[4] += 1

    def pct(a, b):
        return f'{100.0 * a / b:5.1f}%' if b else '    -'

    print(f'{"directory":28} {"files":>5} {"lines":>15} {"line %":>7} {"branches":>15} {"branch %":>8}')
    tot = [0, 0, 0, 0, 0]
    for d in sorted(dirs):
        a = dirs[d]
        tot = [x + y for x, y in zip(tot, a)]
        print(f'{d:28} {a[4]:5} {a[0]:7}/{a[1]:<7} {pct(a[0], a[1]):>7} {a[2]:7}/{a[3]:<7} {pct(a[2], a[3]):>8}')
    print(f'{"total":28} {tot[4]:5} {tot[0]:7}/{tot[1]:<7} {pct(tot[0], tot[1]):>7} {tot[2]:7}/{tot[3]:<7} {pct(tot[2], tot[3]):>8}')


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else 'build/coverage/coverage-summary.json')
