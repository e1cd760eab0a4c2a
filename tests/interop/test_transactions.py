"""Transactions without threads held in the daemon and without a context lock held during a wait:
two handles of one context used from two threads, ending another handle's transaction (as
pcsc-lite: SCARD_E_SHARING_VIOLATION, card untouched), and hundreds of clients waiting for one
reader's transaction while the daemon's thread count stays bounded and other readers are served.
"""
import os
import select
import struct
import threading

import pytest
from smartcard.scard import (SCARD_LEAVE_CARD, SCARD_PROTOCOL_T0, SCARD_PROTOCOL_T1,
                             SCARD_RESET_CARD, SCARD_S_SUCCESS, SCARD_SCOPE_USER,
                             SCARD_SHARE_SHARED, SCardBeginTransaction, SCardConnect,
                             SCardControl, SCardDisconnect, SCardEndTransaction,
                             SCardEstablishContext,
                             SCardReconnect, SCardReleaseContext, SCardStatus, SCardTransmit)

import scrm_env as env
from scrm_env import R_SPARE, R_T0, R_T1

E_SHARING_VIOLATION = 0x8010000B
W_RESET_CARD = 0x80100068
TX_BUSY = 0x8010FFF1
BEGIN, END, WAIT_TX = 8, 9, 17
ECHO = [0x80, 0xEC, 0x00, 0x00, 0x02, 0x01, 0x02, 0x00]
PROTOS = SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1


@pytest.fixture(scope='module')
def daemon():
    d = env.Daemon()
    yield d
    d.close()


def u(rc):
    return rc & 0xFFFFFFFF


def two_handles(reader=R_T1):
    hr, ctx = SCardEstablishContext(SCARD_SCOPE_USER)
    assert hr == SCARD_S_SUCCESS
    hr, a, pa = SCardConnect(ctx, reader, SCARD_SHARE_SHARED, PROTOS)
    assert hr == SCARD_S_SUCCESS
    hr, b, pb = SCardConnect(ctx, reader, SCARD_SHARE_SHARED, PROTOS)
    assert hr == SCARD_S_SUCCESS
    return ctx, (a, pa), (b, pb)


def close_all(ctx, *cards):
    for c in cards:
        SCardDisconnect(c, SCARD_LEAVE_CARD)
    SCardReleaseContext(ctx)


@pytest.mark.parametrize('call', ['begin', 'reconnect', 'transmit', 'disconnect'])
def test_one_context_two_threads(daemon, call):
    """Thread B's call waits for the transaction thread A holds on the same context; A can
    still use the context and end the transaction, then B's call completes."""
    ctx, (a, pa), (b, pb) = two_handles()
    assert SCardBeginTransaction(a) == SCARD_S_SUCCESS
    result = {}

    def other():
        if call == 'begin':
            result['rc'] = SCardBeginTransaction(b)
        elif call == 'reconnect':
            result['rc'] = SCardReconnect(b, SCARD_SHARE_SHARED, PROTOS, SCARD_LEAVE_CARD)[0]
        elif call == 'disconnect':  # a disposition waits; the handle must survive the wait
            result['rc'] = SCardDisconnect(b, SCARD_RESET_CARD)
        else:
            result['rc'] = SCardTransmit(b, pb, ECHO)[0]

    t = threading.Thread(target=other)
    t.start()
    t.join(0.2)  # B is (very likely) waiting now; the assertions below hold either way
    hr, resp = SCardTransmit(a, pa, ECHO)
    assert hr == SCARD_S_SUCCESS and bytes(resp)[-2:] == b'\x90\x00'
    assert 'rc' not in result  # B cannot have got through A's transaction
    assert SCardEndTransaction(a, SCARD_LEAVE_CARD) == SCARD_S_SUCCESS
    t.join(10)
    assert not t.is_alive(), 'the waiting call never returned: the context stayed locked'
    assert result['rc'] == SCARD_S_SUCCESS
    if call == 'begin':
        assert SCardEndTransaction(b, SCARD_LEAVE_CARD) == SCARD_S_SUCCESS
    close_all(ctx, a, b)


def test_end_by_another_handle(daemon):
    """As pcsc-lite: SCARD_E_SHARING_VIOLATION, the transaction and the card untouched."""
    ctx, (a, pa), (b, _pb) = two_handles()
    hr, _r, _s, _p, atr_before = SCardStatus(a)
    assert hr == SCARD_S_SUCCESS
    assert SCardBeginTransaction(a) == SCARD_S_SUCCESS
    assert u(SCardEndTransaction(b, SCARD_RESET_CARD)) == E_SHARING_VIOLATION
    hr, resp = SCardTransmit(a, pa, ECHO)  # no reset happened: no W_RESET_CARD for a
    assert hr == SCARD_S_SUCCESS and bytes(resp)[-2:] == b'\x90\x00'
    hr, _r, _s, _p, atr_after = SCardStatus(a)
    assert hr == SCARD_S_SUCCESS and atr_after == atr_before
    assert SCardEndTransaction(a, SCARD_LEAVE_CARD) == SCARD_S_SUCCESS
    close_all(ctx, a, b)


def proc_threads(pid):
    with open(f'/proc/{pid}/status', encoding='ascii') as f:
        for line in f:
            if line.startswith('Threads:'):
                return int(line.split()[1])
    return -1


def hello_v1(s):
    s.sendall(env.wire_msg(env.HELLO, struct.pack('<IHHII', 0x4D524353, 1, 1, 1 << 20, 0)))
    cmd, _seq, status, _body = env.wire_recv(s)
    assert cmd == env.HELLO and status == 0


def connect_card(s, reader=R_T1, seq=2):
    """CONNECT (shared, T=0 or T=1) on a raw session; the card handle."""
    name = reader.encode()
    s.sendall(env.wire_msg(env.CONNECT, struct.pack('<IIII', 2, 3, len(name), 0), name, seq=seq))
    _cmd, _seq, status, body = env.wire_recv(s)
    assert status == 0
    return struct.unpack('<QII', body)[0]


def session_with_card(sock, reader=R_T1):
    """A new raw session of protocol minor 1 with a card handle on reader: (socket, card)."""
    s = env.wire_connect(sock)
    hello_v1(s)
    return s, connect_card(s, reader)


def send_transmit(s, card, seq):
    """Send TRANSMIT of ECHO on a raw session (the reply is read by the caller)."""
    s.sendall(env.wire_msg(env.TRANSMIT, struct.pack('<QIIII', card, 0, 258, len(ECHO), 0),
                           bytes(ECHO), seq=seq))


def test_many_waiters_hold_no_thread(daemon):
    """200 clients wait for one reader's transaction: each is told IPC_S_TX_BUSY at once and
    waits with WAIT_TX, no daemon thread per waiter; the holder and other readers are served
    meanwhile; when the holder ends, every waiter is woken."""
    run_waiters(daemon, 200)  # under the default max_clients (256)


def test_thread_cap_one_worker():
    """With a single worker thread (max_threads = 1) the same: the waiters hold nothing, the
    holder's END and another reader's clients are served, the pool never grows."""
    d = env.Daemon(extra='max_threads = 1\n')
    try:
        run_waiters(d, 100)
        stop = threading.Event()
        errors = []

        def apdus(reader):
            hr, ctx = SCardEstablishContext(SCARD_SCOPE_USER)
            hr, card, p = SCardConnect(ctx, reader, SCARD_SHARE_SHARED, PROTOS)
            while hr == SCARD_S_SUCCESS and not stop.is_set():
                hr = SCardTransmit(card, p, ECHO)[0]
            if hr != SCARD_S_SUCCESS:
                errors.append(hex(u(hr)))
            close_all(ctx, card)

        ts = [threading.Thread(target=apdus, args=(r,)) for r in (R_T1, R_SPARE) * 8]
        for t in ts:
            t.start()
        ctx, (a, pa), (b, _pb) = two_handles(R_SPARE)  # a transaction in the middle of it
        assert SCardBeginTransaction(a) == SCARD_S_SUCCESS
        assert SCardTransmit(a, pa, ECHO)[0] == SCARD_S_SUCCESS
        assert SCardEndTransaction(a, SCARD_LEAVE_CARD) == SCARD_S_SUCCESS
        close_all(ctx, a, b)
        stop.set()
        for t in ts:
            t.join(20)
        assert not errors and not any(t.is_alive() for t in ts)
    finally:
        d.close()


def run_waiters(daemon, n):
    hr, ctx = SCardEstablishContext(SCARD_SCOPE_USER)
    hr, holder, hp = SCardConnect(ctx, R_T1, SCARD_SHARE_SHARED, PROTOS)
    assert hr == SCARD_S_SUCCESS
    name = R_T1.encode()
    socks, cards = [], []
    for _ in range(n):  # connected before the transaction (a connect would wait for it too)
        s, card = session_with_card(daemon.sock)
        socks.append(s)
        cards.append(card)
    assert SCardBeginTransaction(holder) == SCARD_S_SUCCESS
    base = proc_threads(daemon.proc.pid)
    for s, card in zip(socks, cards):
        s.sendall(env.wire_msg(BEGIN, struct.pack('<Q', card), seq=3))
        cmd, seq, status, body = env.wire_recv(s)
        assert (cmd, seq, status) == (BEGIN, 3, TX_BUSY) and body[8:] == name
        s.sendall(env.wire_msg(WAIT_TX, bytes(8), name, seq=4))
    # No thread per waiter: a burst of requests may start a few workers, far fewer than n (idle
    # workers leave after 1 s, so those the connects above started may be gone already, and
    # under TSan on a busy machine the burst can find none idle: 17 were seen for n = 200).
    assert proc_threads(daemon.proc.pid) <= base + max(16, n // 8)
    # Another reader's client and the holder itself are served.
    hr2, ctx2 = SCardEstablishContext(SCARD_SCOPE_USER)
    hr2, other, op = SCardConnect(ctx2, R_SPARE, SCARD_SHARE_SHARED, PROTOS)
    assert hr2 == SCARD_S_SUCCESS
    assert SCardTransmit(other, op, ECHO)[0] == SCARD_S_SUCCESS
    assert SCardTransmit(holder, hp, ECHO)[0] == SCARD_S_SUCCESS
    assert SCardEndTransaction(holder, SCARD_LEAVE_CARD) == SCARD_S_SUCCESS
    for s in socks:  # every waiter learns that the transaction is free
        cmd, seq, status, _body = env.wire_recv(s)
        assert (cmd, seq, status) == (WAIT_TX, 4, 0)
        s.close()
    close_all(ctx2, other)
    close_all(ctx, holder)


def test_busy_reader_holds_no_thread():
    """More clients than max_threads send an APDU to one reader while its card hangs in another
    handle's TRANSMIT (SIM_FAULT_HANG, freed by the IOCTL watchdog), and more leave with a handle
    on it (their teardown resets the card): neither the requests nor the teardowns wait in the
    daemon with a thread each, so clients of another reader are served during the hang; when
    the watchdog cancels the hung call, every waiter is answered (the leavers' resets may come
    first: SCARD_W_RESET_CARD)."""
    # the simulator says when it hangs (drv:info)
    d = env.Daemon(extra='max_threads = 2\nioctl_watchdog_ms = 8000\n',
                   log='ipc:info,rm:info,drv:info')
    try:
        socks, cards = [], []
        for _ in range(18):  # 12 waiters and 6 leavers, 9x max_threads
            s, card = session_with_card(d.sock)
            socks.append(s)
            cards.append(card)
        hr, ctx = SCardEstablishContext(SCARD_SCOPE_USER)
        hr, holder, hp = SCardConnect(ctx, R_T1, SCARD_SHARE_SHARED, PROTOS)
        assert hr == SCARD_S_SUCCESS
        hr, _ = SCardControl(holder, env.SIM_FAULT, list(struct.pack('<II', 7, 1)))  # HANG
        assert hr == SCARD_S_SUCCESS
        result = {}
        hung = threading.Thread(target=lambda: result.update(rc=u(SCardTransmit(holder, hp,
                                                                                ECHO)[0])))
        hung.start()
        env.wait_for(lambda: 'hanging (SIM_FAULT_HANG)' in d.log_text(), 10, 'the card to hang')
        for s in socks[12:]:
            s.close()
        socks, cards = socks[:12], cards[:12]
        for s, card in zip(socks, cards):
            send_transmit(s, card, 3)
        # Another reader's client is served while every one of them waits.
        hr2, ctx2 = SCardEstablishContext(SCARD_SCOPE_USER)
        hr2, other, op = SCardConnect(ctx2, R_SPARE, SCARD_SHARE_SHARED, PROTOS)
        assert hr2 == SCARD_S_SUCCESS
        for _ in range(20):
            assert SCardTransmit(other, op, ECHO)[0] == SCARD_S_SUCCESS
        assert hung.is_alive(), 'the watchdog freed the reader before the check was done'
        assert proc_threads(d.proc.pid) <= 16  # loop, pool (2), rm workers, timers, watchdog
        hung.join(60)
        assert not hung.is_alive() and result['rc'] == 0x80100002  # SCARD_E_CANCELLED
        for s in socks:  # each waiter, in turn, gets its APDU through
            cmd, seq, status, body = env.wire_recv(s)
            assert (cmd, seq) == (env.TRANSMIT, 3) and status in (0, W_RESET_CARD)
            assert status or body[-2:] == bytes([0x90, 0x00])
        for s in socks:  # (only now: a client that leaves resets the card for the others)
            s.close()
        close_all(ctx2, other)
        close_all(ctx, holder)
    finally:
        d.close()


def test_answered_client_not_held_by_the_next_request():
    """Clients of scrm's protocol sharing a reader: after its answer a client's session stays with
    the worker that runs the reader's next request, which takes that client's next request from
    the socket itself (docs/pcsc.md, lingering). When that next request hangs (SIM_FAULT_HANG for
    two TRANSMITs, each cancelled by the IOCTL watchdog), the loop thread takes the session back
    after SRV_LINGER_US: the client's request for another reader is answered while the hung one
    still waits, not after it."""
    d = env.Daemon(extra='ioctl_watchdog_ms = 3000\n', log='ipc:trace,drv:info')
    try:
        a, card_a = session_with_card(d.sock)
        b, card_b = session_with_card(d.sock)
        spare_b = connect_card(b, R_SPARE)
        hr, ctx = SCardEstablishContext(SCARD_SCOPE_USER)
        hr, holder, _hp = SCardConnect(ctx, R_T1, SCARD_SHARE_SHARED, PROTOS)
        assert hr == SCARD_S_SUCCESS
        hr, _ = SCardControl(holder, env.SIM_FAULT, list(struct.pack('<II', 7, 2)))  # HANG x 2
        assert hr == SCARD_S_SUCCESS

        send_transmit(b, card_b, 3)  # hangs until the watchdog cancels it
        env.wait_for(lambda: d.log_text().count('hanging (SIM_FAULT_HANG)') == 1, 10, 'a hang')
        send_transmit(a, card_a, 3)  # parked behind it; runs next on the same worker, and hangs
        env.wait_for(lambda: 'TRANSMIT parked on arrival' in d.log_text(), 10, "a's park")
        b.settimeout(30)
        cmd, seq, status, _body = env.wire_recv(b)
        assert (cmd, seq, status) == (env.TRANSMIT, 3, 0x80100002)  # SCARD_E_CANCELLED
        env.wait_for(lambda: d.log_text().count('hanging (SIM_FAULT_HANG)') == 2, 10,
                     "a's request to hang")
        send_transmit(b, spare_b, 4)  # another reader: answered during a's hang
        cmd, seq, status, body = env.wire_recv(b)
        assert (cmd, seq, status) == (env.TRANSMIT, 4, 0) and body[-2:] == bytes([0x90, 0x00])
        assert not select.select([a], [], [], 0)[0], "b was answered only after a's hang"
        assert 'the loop thread reads it again' in d.log_text()
        a.settimeout(30)
        cmd, seq, status, _body = env.wire_recv(a)
        assert (cmd, seq, status) == (env.TRANSMIT, 3, 0x80100002)
        a.close()
        b.close()
        close_all(ctx, holder)
    finally:
        d.close()


def test_many_clients_stream_on_one_reader_in_turn():
    """Twenty clients of scrm's protocol send APDU after APDU to one reader, more than linger on
    one worker (SRV_LINGER_MAX): every APDU is answered, each client's replies come in order, and
    the reader serves them in turn (first come, first served), so when the first client is done
    with its 150 APDUs every other one has had at least half as many.

    At normal priority (realtime = no): the measure holds only while the daemon is the slower
    side, so that every client is queued on the reader all the time. At real-time priority the
    daemon outpaces twenty Python threads of one process, and under `make check`'s load (TSan,
    other tests on both CPUs) how many turns each gets is decided by when its own thread gets a
    CPU and the GIL to send the next request (one run in a full `make check` saw a client at 33);
    the daemon's order is the same. test_realtime_for_the_loop_and_a_reader_clients_queue_for
    covers the priority."""
    d = env.Daemon(extra='realtime = no\n')
    n_clients, n_apdus = 20, 150
    try:
        socks, cards = [], []
        for _ in range(n_clients):
            s, card = session_with_card(d.sock)
            socks.append(s)
            cards.append(card)
        done = [0] * n_clients
        at_first_end = []
        errors = []
        start = threading.Barrier(n_clients)

        def stream(i):
            s, card = socks[i], cards[i]
            try:
                start.wait(30)
                for k in range(n_apdus):
                    seq = 100 + k
                    send_transmit(s, card, seq)
                    cmd, rseq, status, body = env.wire_recv(s)
                    if (cmd, rseq, status) != (env.TRANSMIT, seq, 0) or body[-4:] != bytes(
                            [1, 2, 0x90, 0x00]):
                        errors.append((i, k, cmd, rseq, hex(status), body.hex()))
                        return
                    done[i] = k + 1
                if not at_first_end:
                    at_first_end.append(list(done))
            except (OSError, ConnectionError, threading.BrokenBarrierError) as e:
                errors.append((i, repr(e)))

        threads = [threading.Thread(target=stream, args=(i,)) for i in range(n_clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads), done
        assert not errors, errors[:5]
        assert done == [n_apdus] * n_clients
        assert min(at_first_end[0]) >= n_apdus // 2, at_first_end[0]
        for s in socks:
            s.close()
    finally:
        d.close()


def thread_policies(pid):
    """{tid: scheduling policy} of a process's threads (0 normal, 1 SCHED_FIFO), from /proc."""
    out = {}
    for tid in os.listdir(f'/proc/{pid}/task'):
        try:
            with open(f'/proc/{pid}/task/{tid}/stat', encoding='ascii') as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except FileNotFoundError:  # a thread that left meanwhile
            continue
        out[int(tid)] = int(fields[38])  # field 41 of proc(5), counted after the name
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason='SCHED_FIFO needs root or CAP_SYS_NICE')
def test_realtime_for_the_loop_and_a_reader_clients_queue_for():
    """scrmd's loop thread runs SCHED_FIFO; a worker does while clients queue for its reader,
    and goes back to normal priority once they stop; `realtime = no` keeps every thread
    normal."""
    d = env.Daemon(log='core:info,ipc:info,rm:info')
    pid = d.proc.pid
    try:
        assert 'real-time priority on' in d.log_text()
        assert thread_policies(pid)[pid] == 1
        socks = [session_with_card(d.sock) for _ in range(4)]
        stop = threading.Event()
        errors = []

        def stream(s, card):
            k = 0
            while not stop.is_set() and not errors:
                send_transmit(s, card, 100 + k % 1000)
                cmd, _, status, _ = env.wire_recv(s)
                if (cmd, status) != (env.TRANSMIT, 0):
                    errors.append((cmd, hex(status)))
                k += 1

        threads = [threading.Thread(target=stream, args=sc) for sc in socks]
        for t in threads:
            t.start()
        try:
            env.wait_for(lambda: any(p == 1 for tid, p in thread_policies(pid).items()
                                     if tid != pid) or errors, 20,
                         'a worker at SCHED_FIFO while four clients share a reader')
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        assert not errors, errors
        env.wait_for(lambda: [tid for tid, p in thread_policies(pid).items() if p == 1] == [pid],
                     10, 'the workers back to normal priority')
        for s, _ in socks:
            s.close()
    finally:
        d.close()
    d = env.Daemon(extra='realtime = no\n', log='core:info,ipc:info,rm:info')
    try:
        assert 'real-time priority off' in d.log_text()
        assert set(thread_policies(d.proc.pid).values()) == {0}
    finally:
        d.close()


def worker_tids(pid):
    """The thread ids of scrmd's pool workers (named scrm-worker)."""
    out = set()
    for tid in os.listdir(f'/proc/{pid}/task'):
        try:
            with open(f'/proc/{pid}/task/{tid}/comm', encoding='ascii') as f:
                if f.read().strip() == 'scrm-worker':
                    out.add(int(tid))
        except FileNotFoundError:  # a thread that left meanwhile
            continue
    return out


RESERVE = 'kept in reserve'  # scrmd's debug line: the last worker has been idle 1 s


@pytest.mark.parametrize('max_threads', [0, 1])
def test_a_burst_after_a_pause_runs_on_a_new_worker(max_threads):
    """Idle workers leave after a second but one, kept in reserve; a request that comes when only
    the reserve has been idle that long runs on a new thread (placed by the kernel like any new
    thread), unless none may be started (max_threads = 1): then the reserve runs it."""
    d = env.Daemon(extra=f'max_threads = {max_threads}\n', log='ipc:debug')
    pid = d.proc.pid
    try:
        s, card = session_with_card(d.sock)
        send_transmit(s, card, 1)
        _cmd, _seq, status, _body = env.wire_recv(s)
        assert status == 0
        # the pool shrinks back to its reserve
        env.wait_for(lambda: len(worker_tids(pid)) == 1, 10, 'the pool to shrink to one worker')
        reserve = worker_tids(pid)
        env.wait_for(lambda: d.log_text().count(RESERVE) >= 1, 10, 'the reserve')  # idle 1 s
        send_transmit(s, card, 2)
        _cmd, _seq, status, _body = env.wire_recv(s)
        assert status == 0
        now = worker_tids(pid)
        if max_threads == 1:
            assert now == reserve  # no new thread allowed: the reserve ran it
        else:
            # a thread that did not exist before the pause ran it (the reserve may leave now
            # that another thread is there: the last one left is the reserve)
            assert now - reserve, (reserve, now)
        # a burst after a pause: clients of three readers send at once; every one is answered
        burst = [session_with_card(d.sock, r) for r in (R_T1, R_T0, R_SPARE) * 3]
        seen = d.log_text().count(RESERVE)
        # the last one, idle again
        env.wait_for(lambda: d.log_text().count(RESERVE) > seen, 10, 'the reserve again')
        for i, (b, c) in enumerate(burst):
            send_transmit(b, c, 10 + i)
        for i, (b, _c) in enumerate(burst):
            b.settimeout(10)
            _cmd, _seq, status, _body = env.wire_recv(b)
            assert status == 0, (i, hex(status))
        for b, _c in burst:  # (a client that leaves resets its card: W_RESET_CARD for the rest)
            b.close()
        if max_threads == 1:
            assert worker_tids(pid) == reserve
        s.close()
    finally:
        d.close()
