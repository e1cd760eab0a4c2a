#!/usr/bin/python3
"""Interop test of libsmc's ATR parser against real ATRs and pyscard.

Every concrete ATR of pcsc-tools' smartcard_list.txt (lines with wildcards such as '..' or '[' are
skipped) goes through our parser (the atr_dump helper, one output line per ATR) and through
pyscard's smartcard.ATR.ATR. For each ATR we compare the protocols offered, TA1, the historical
bytes and the TCK verdict (absent / ok / bad).

A disagreement is accepted only when it falls in one of the categories of KNOWN below, each of
which states why pyscard is wrong by ISO/IEC 7816-3 and comes with a check that the ATR really is
in that situation. Anything else fails.

Run by meson (suite 'interop') as:   test_atr_list.py <path to atr_dump>     (prints TAP)
or with pytest:                       ATR_DUMP=<path> python3 -m pytest -p no:cacheprovider ...
"""
import os
import re
import subprocess
import sys

LIST = '/usr/share/pcsc/smartcard_list.txt'
HEXLINE = re.compile(r'^[0-9A-Fa-f]{2}( [0-9A-Fa-f]{2})*$')


def load_atrs(path=LIST):
    """Concrete ATRs of the list (unique, in file order) and how many lines had wildcards."""
    atrs, seen, skipped = [], set(), 0
    with open(path, encoding='utf-8', errors='replace') as f:
        for line in f:
            if not line.strip() or line[0] in '#\t ':
                continue
            s = line.strip().upper()
            if not HEXLINE.match(s):
                skipped += 1
            elif s not in seen:
                seen.add(s)
                atrs.append(s)
    return atrs, skipped


def run_dump(dump, atrs):
    """Our parser's view: {atr: dict(status, protocols, ta1, hist, tck, why)}."""
    out = subprocess.run([dump], input='\n'.join(atrs) + '\n', capture_output=True, text=True,
                         check=True, timeout=120).stdout
    ours = {}
    for line in out.splitlines():
        atr, status, protos, ta1, hist, tck, why = line.split('|', 6)
        ours[atr] = dict(status=status, protocols=protos, ta1=ta1, hist=hist, tck=tck, why=why)
    return ours


def pyscard_view(atr):
    """pyscard's view in the same form, or None when pyscard raises."""
    from smartcard.ATR import ATR
    try:
        a = ATR(list(bytes.fromhex(atr)))
        protos = sorted(int(k[2:]) for k in a.getSupportedProtocols())
        tck = 'absent'
        if a.hasChecksum:
            tck = 'ok' if a.checksumOK else 'bad'
        return dict(protocols=','.join(str(t) for t in protos),
                    ta1='-' if a.TA[0] is None else '%02X' % a.TA[0],
                    hist=''.join('%02X' % b for b in a.historicalBytes), tck=tck)
    except Exception:  # pyscard raises IndexError & co. on some malformed ATRs
        return None


def same_fields(o, p, fields=('protocols', 'ta1', 'hist')):
    return p is not None and all(o[k] == p[k] for k in fields)


def trailing_ok(atr, o, p):
    # One trailing byte is taken by pyscard as TCK (ok or bad); more make it report no TCK.
    extra = int(re.search(r'(\d+) extra bytes', o['why']).group(1))
    if 'after TCK' in o['why']:
        extra += 1  # pyscard counts the real TCK among the bytes after the historical bytes
    want = ('ok', 'bad') if extra == 1 else ('absent',)
    return same_fields(o, p) and p['tck'] in want


def short_hist_ok(atr, o, p):
    m = re.search(r'announces (\d+) historical bytes but only (\d+) follow', o['why'])
    return (same_fields(o, p, ('protocols', 'ta1')) and len(p['hist']) // 2 == int(m.group(2))
            and int(m.group(2)) < int(m.group(1)))


# category: (pattern of our reason, ISO 7816-3 explanation, check(atr, ours, pyscard))
KNOWN = {
    'tck-missing': (
        r'^ATR truncated: TCK missing',
        'ISO 7816-3 8.2.5: TCK is mandatory when a protocol other than T=0 is indicated; pyscard '
        'reports such an ATR as having no TCK instead of rejecting it',
        lambda atr, o, p: same_fields(o, p) and p['tck'] == 'absent'
        and any(t != '0' for t in p['protocols'].split(','))),
    'trailing-bytes': (
        r'extra bytes after|^more than 15 historical bytes',
        'ISO 7816-3 8.2: the ATR ends with TCK, or with the K historical bytes when only T=0 is '
        'indicated (TCK shall then be absent, 8.2.5); pyscard takes a single byte past that end '
        'as TCK even for T=0 alone, and ignores two or more',
        trailing_ok),
    'truncated-historical': (
        r'^ATR truncated: T0 announces \d+ historical bytes',
        'ISO 7816-3 8.2.2: T0 announces K historical bytes; with fewer present the ATR is '
        'truncated, while pyscard silently returns the shorter list',
        short_hist_ok),
    'truncated-interface': (
        r'^ATR truncated: (T0|TD\d+) announces T[ABCD]\d+',
        'ISO 7816-3 8.2.3: every interface byte announced by T0/TDi must be present; pyscard '
        'fails with an exception on such an ATR',
        lambda atr, o, p: p is None),
    'too-long': (
        r'^ATR is \d+ bytes long',
        'ISO 7816-3 8.2: an ATR has at most 32 characters after TS; pyscard sets no limit',
        lambda atr, o, p: len(bytes.fromhex(atr)) > 33),
}


def compare(dump, atrs):
    """(agreeing ATRs, {category: [atr...]}, [(atr, ours, pyscard) unexplained])"""
    ours = run_dump(dump, atrs)
    agree, known, unexplained = [], {k: [] for k in KNOWN}, []
    for atr in atrs:
        o, p = ours.get(atr), pyscard_view(atr)
        if o is None:
            unexplained.append((atr, 'no output line from atr_dump', p))
            continue
        if o['tck'] != 'malformed' and same_fields(o, p, ('protocols', 'ta1', 'hist', 'tck')):
            agree.append(atr)
            continue
        for name, (pattern, _why, check) in KNOWN.items():
            if o['tck'] == 'malformed' and re.search(pattern, o['why']) and check(atr, o, p):
                known[name].append(atr)
                break
        else:
            unexplained.append((atr, o, p))
    return agree, known, unexplained


_CACHE = {}


def results(dump=None):
    if 'r' not in _CACHE:
        atrs, skipped = load_atrs()
        dump = dump or os.environ.get('ATR_DUMP', 'build/debug/tests/interop/atr_dump')
        _CACHE['r'] = (atrs, skipped) + compare(dump, atrs)
    return _CACHE['r']


# ---- pytest entry points --------------------------------------------------------------------

def test_every_disagreement_is_explained():
    atrs, _skipped, agree, known, unexplained = results()
    assert len(atrs) > 1000
    assert not unexplained, unexplained[:20]
    assert len(agree) + sum(len(v) for v in known.values()) == len(atrs)


def test_most_atrs_agree():
    atrs, _skipped, agree, _known, _unexplained = results()
    assert len(agree) >= 0.95 * len(atrs)


# ---- TAP runner for meson ---------------------------------------------------------------------

def tap_main(dump):
    try:
        import smartcard.ATR  # noqa: F401
    except ImportError:
        print('1..0 # SKIP pyscard (python3-pyscard) not installed')
        return 0
    if not os.path.exists(LIST):
        print('1..0 # SKIP %s not installed (pcsc-tools)' % LIST)
        return 0
    atrs, skipped, agree, known, unexplained = results(dump)
    cases = [(len(atrs) > 1000, 'read %d concrete ATRs from smartcard_list.txt (%d with wildcards '
                                'skipped)' % (len(atrs), skipped)),
             (len(agree) >= 0.95 * len(atrs),
              'agreement with pyscard (protocols, TA1, historical bytes, TCK verdict): %d of %d '
              'ATRs' % (len(agree), len(atrs)))]
    for name, (_pattern, why, _check) in KNOWN.items():
        cases.append((True, 'known disagreement %s: %d ATRs' % (name, len(known[name]))))
    cases.append((not unexplained, 'no unexplained disagreement (%d)' % len(unexplained)))
    print('1..%d' % len(cases))
    for i, (ok, text) in enumerate(cases, 1):
        print('%s %d - %s' % ('ok' if ok else 'not ok', i, text))
    for name, (_pattern, why, _check) in KNOWN.items():
        if known[name]:
            print('# %s -- %s' % (name, why))
        for atr in known[name]:
            print('#   %s' % atr)
    for atr, o, p in unexplained:
        print('# UNEXPLAINED %s: ours %s, pyscard %s' % (atr, o, p))
    return 0 if all(ok for ok, _ in cases) else 1


if __name__ == '__main__':
    sys.exit(tap_main(sys.argv[1] if len(sys.argv) > 1 else None))
