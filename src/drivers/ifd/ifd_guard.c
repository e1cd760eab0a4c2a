/*
 * Guarded handler calls (ifd_guard.h): the handler runs on the caller's own thread, so an APDU
 * costs no thread hand-off in the bridge; what the per-slot call thread used to give (a call that
 * hangs does not hold the caller for ever) comes from one watchdog thread for the whole bridge,
 * and a crash inside the handler returns to the bridge instead of killing the daemon.
 *
 * Per call: a sigsetjmp (no system call: the signal mask is not saved, the handlers run with
 * SA_NODEFER so none is left blocked), a thread-local "armed" flag, and for a bounded call the
 * slot's watch record under its own lock. The watchdog is told about a call only when the call's
 * deadline is earlier than the one it already sleeps towards: under steady traffic it wakes once
 * per bound, not once per call. Its scan covers the registered slots; it runs only when woken.
 *
 * A late call: the watchdog sends SIG_WD to the calling thread; the handler jumps back to the
 * recovery point if the thread is still in that call (a per-thread call number tells a stale
 * signal from a current one) and it is interruptible: in the handler library's own code, in a
 * blocking system call, or just back from the system call of one of the C library's I/O wrappers
 * (read, select, poll...; a handler spinning on a dead line lives there). A thread caught elsewhere (inside the C library, e.g. malloc holding its
 * lock, or in scrm's log_msg) is left to run and signalled again 10 ms later (RETRY_NS). A crash: SIGSEGV,
 * SIGBUS, SIGILL or SIGFPE on a thread that is inside a handler call jumps back at once (on an
 * alternate signal stack, so that a stack overflow is caught too); anywhere else it goes to the
 * handler that was installed before (a sanitizer's) or the default action.
 */
#include "drivers/ifd/ifd_guard.h"

#include <dlfcn.h>
#include <link.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>

#include "common/log.h"
#include "common/timeutil.h"

#if defined(__SANITIZE_THREAD__)
#define IFD_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define IFD_UNDER_TSAN 1
#endif
#endif

#define SIG_WD        (SIGRTMIN + 7)
#define ALTSTACK_SIZE (64u * 1024u)
/* A thread not interruptible when signalled is signalled again: every RETRY_NS for the first
 * RETRIES_FAST tries, then ten times less often. A handler spinning on a dead device spends most
 * of its time in system calls that return at once, and is caught only when a signal lands in its
 * own code: many tries early find that moment within a second where 100 ms took up to a minute. */
#define RETRY_NS      (10u * 1000000u)
#define RETRIES_FAST  200u

struct ifd_tls {
    sigjmp_buf env;
    volatile sig_atomic_t armed;   /* inside fn() */
    volatile sig_atomic_t in_host; /* inside log_msg / log_xxd, called by the handler */
    _Atomic uint64_t seq;          /* this thread's current call */
    _Atomic uint64_t kill_seq;     /* the call the watchdog wants interrupted */
    const struct ifd_text *text;
    volatile int sig;
    volatile uintptr_t addr;
    bool prepared;
};

static __thread struct ifd_tls tls __attribute__((tls_model("initial-exec")));

static const int fault_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE};
#define N_FAULTS (sizeof(fault_signals) / sizeof(fault_signals[0]))
static struct sigaction old_fault[N_FAULTS];
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static bool init_ok;
static pthread_key_t altstack_key;

const char *ifd_signal_name(int sig)
{
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGILL: return "SIGILL";
    case SIGFPE: return "SIGFPE";
    default: return "a signal";
    }
}

/* ---- the signal handlers ---- */

/* The C library's plain system-call wrappers for device I/O, which hold no lock of the library
 * around their system call: a thread that has just returned from the system call inside one of
 * them may leave it. A handler spinning on a dead line (libccid on a serial port that hung up)
 * lives in these calls, which return at once, and only rarely in its own code. Found once, before
 * any signal (install). */
static const char *const io_wrappers[] = {"read",  "write",   "select",    "pselect",
                                          "poll",  "ppoll",   "recv",      "send",
                                          "ioctl", "tcdrain", "nanosleep", "clock_nanosleep"};
#define N_WRAPPERS (sizeof(io_wrappers) / sizeof(io_wrappers[0]))
static struct ifd_text wrapper_text[N_WRAPPERS];

static void find_wrappers(void)
{
    void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    if (!libc)
        return;
    for (size_t i = 0; i < N_WRAPPERS; i++) {
        void *f = dlsym(libc, io_wrappers[i]); /* the C library's own, not an interceptor */
        Dl_info info;
        const ElfW(Sym) *sym = NULL;
        if (f && dladdr1(f, &info, (void **)&sym, RTLD_DL_SYMENT) && sym && sym->st_size)
            wrapper_text[i] = (struct ifd_text){(uintptr_t)f, (uintptr_t)f + sym->st_size};
    }
    dlclose(libc);
}

bool ifd_guard_after_io_syscall(const void *at)
{
#if defined(__x86_64__)
    const uint8_t *p = at;
    uintptr_t pc = (uintptr_t)at;
    for (size_t i = 0; i < N_WRAPPERS; i++)
        if (pc >= wrapper_text[i].lo + 2 && pc < wrapper_text[i].hi)
            return p[-2] == 0x0F && p[-1] == 0x05;
#else
    (void)at;
#endif
    return false;
}

/* May the thread that got SIG_WD be taken out of its call at this point? */
static bool interruptible(const struct ifd_tls *t, const void *ucv)
{
#if defined(__x86_64__) && !defined(IFD_UNDER_TSAN)
    const ucontext_t *uc = ucv;
    const uint8_t *p;
    __builtin_memcpy(&p, &uc->uc_mcontext.gregs[REG_RIP], sizeof(p)); /* the interrupted pc */
    uintptr_t pc = (uintptr_t)p;
    if (t->text && pc >= t->text->lo && pc < t->text->hi)
        return true; /* in the handler's own code */
    long long ax = uc->uc_mcontext.gregs[REG_RAX];
    if (p[0] == 0x0F && p[1] == 0x05)
        return true; /* a blocking system call the signal interrupted (to be restarted) */
    if (p[-2] == 0x0F && p[-1] == 0x05 && ax == -4 /* -EINTR */)
        return true;                      /* a blocking system call the signal ended */
    return ifd_guard_after_io_syscall(p); /* just back from an I/O wrapper's system call */
#else
    /* Elsewhere (and under ThreadSanitizer, which delivers signals from its own code): at any
     * point of the call. */
    (void)t;
    (void)ucv;
    return true;
#endif
}

static void on_watchdog(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)si;
    struct ifd_tls *t = &tls;
    if (!t->armed || t->in_host)
        return;
    if (atomic_load(&t->kill_seq) != atomic_load(&t->seq) || !interruptible(t, uc))
        return; /* a stale signal, or not now: the watchdog signals again */
    t->armed = 0;
    siglongjmp(t->env, IFD_CALL_HUNG);
}

static void chain(int sig, siginfo_t *si, void *uc)
{
    size_t i = 0;
    while (i < N_FAULTS && fault_signals[i] != sig)
        i++;
    if (i < N_FAULTS) {
        const struct sigaction *o = &old_fault[i];
        if ((o->sa_flags & SA_SIGINFO) && o->sa_sigaction) {
            o->sa_sigaction(sig, si, uc);
            return;
        }
        if (!(o->sa_flags & SA_SIGINFO) && o->sa_handler != SIG_DFL && o->sa_handler != SIG_IGN) {
            o->sa_handler(sig);
            return;
        }
    }
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    if (si->si_code <= 0)
        raise(sig); /* sent, not a fault: returning would not repeat it */
    /* a fault repeats on return, now with the default action (a core dump) */
}

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    struct ifd_tls *t = &tls;
    if (t->armed && !t->in_host) {
        t->armed = 0;
        t->sig = sig;
        t->addr = (uintptr_t)si->si_addr;
        siglongjmp(t->env, IFD_CALL_CRASHED);
    }
    chain(sig, si, uc);
}

static void free_altstack(void *p)
{
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && cur.ss_sp == p) {
        stack_t off;
        memset(&off, 0, sizeof(off));
        off.ss_flags = SS_DISABLE;
        sigaltstack(&off, NULL);
    }
    free(p);
}

static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;

/* Put on_fault in place for each fault signal where something else replaced it (or at first),
 * keeping what was there to chain to. */
static bool install_fault_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    bool ok = true;
    pthread_mutex_lock(&install_lock);
    for (size_t i = 0; i < N_FAULTS; i++) {
        struct sigaction cur;
        if (sigaction(fault_signals[i], NULL, &cur) != 0) {
            ok = false;
            continue;
        }
        if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_fault)
            continue;
        ok &= sigaction(fault_signals[i], &sa, &old_fault[i]) == 0;
    }
    pthread_mutex_unlock(&install_lock);
    return ok;
}

static void install(void)
{
    if (pthread_key_create(&altstack_key, free_altstack) != 0)
        return;
    find_wrappers();
    if (!install_fault_handlers())
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_sigaction = on_watchdog;
#ifdef IFD_UNDER_TSAN
    /* ThreadSanitizer runs the handler only when the interrupted call returns to it */
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
#else
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_NODEFER;
#endif
    if (sigaction(SIG_WD, &sa, NULL) != 0)
        return;
    init_ok = true;
}

bool ifd_guard_init(void)
{
    pthread_once(&init_once, install);
    /* a later sigaction (a test framework's, a library's) may have replaced ours: again */
    return init_ok && install_fault_handlers();
}

/* Once per thread that calls handlers: SIG_WD unblocked, an alternate signal stack unless the
 * thread has one (a sanitizer's). */
static void prepare(struct ifd_tls *t)
{
    t->prepared = true;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIG_WD);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    stack_t cur;
    if (sigaltstack(NULL, &cur) != 0 || !(cur.ss_flags & SS_DISABLE))
        return;
    void *p = malloc(ALTSTACK_SIZE);
    if (!p)
        return;
    stack_t ss;
    memset(&ss, 0, sizeof(ss));
    ss.ss_sp = p;
    ss.ss_size = ALTSTACK_SIZE;
    if (sigaltstack(&ss, NULL) != 0 || pthread_setspecific(altstack_key, p) != 0) {
        free_altstack(p);
        return;
    }
}

void ifd_guard_host_enter(void)
{
    tls.in_host = 1;
}

void ifd_guard_host_leave(void)
{
    tls.in_host = 0;
}

/* ---- the watchdog ---- */

static pthread_mutex_t wd_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cond;
static struct ifd_watch *wd_list; /* under wd_lock */
static bool wd_started;           /* under wd_lock */
static _Atomic uint64_t wd_until; /* when the watchdog wakes next; 0: only when asked */

/* One pass over the watched slots; the earliest time something is due, or UINT64_MAX. */
static uint64_t scan_locked(uint64_t now)
{
    uint64_t next = UINT64_MAX;
    for (struct ifd_watch *w = wd_list; w; w = w->next) {
        pthread_mutex_lock(&w->mu);
        if (w->active && now >= w->retry_ns) {
            unsigned tries = 0;
            if (!w->fired) {
                w->fired = true;
                log_error(drv,
                          "ifd: driver %s: %s on reader '%s' has not returned after %u ms; the "
                          "call is interrupted and the reader is taken out of service",
                          w->lib, w->what, w->name, w->limit_ms);
            } else {
                tries = (unsigned)((now - w->deadline_ns) / RETRY_NS);
                if (tries >= RETRIES_FAST && !w->told) {
                    w->told = true;
                    log_error(drv,
                              "ifd: driver %s: %s on reader '%s' cannot be interrupted (not in "
                              "the handler's code nor in a blocking system call); still trying",
                              w->lib, w->what, w->name);
                }
            }
            atomic_store(&w->tls->kill_seq, w->seq);
            pthread_kill(w->thread, SIG_WD);
            w->retry_ns = now + (tries < RETRIES_FAST ? RETRY_NS : 10u * RETRY_NS);
        }
        if (w->active && w->retry_ns < next)
            next = w->retry_ns;
        pthread_mutex_unlock(&w->mu);
    }
    return next;
}

static void *wd_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&wd_lock);
    for (;;) {
        atomic_store(&wd_until, 0); /* from here on, a new call asks (wd_request) */
        uint64_t next = scan_locked(scrm_now_ns());
        if (next == UINT64_MAX) {
            pthread_cond_wait(&wd_cond, &wd_lock);
            continue;
        }
        atomic_store(&wd_until, next);
        struct timespec until = scrm_ns_timespec(next);
        pthread_cond_timedwait(&wd_cond, &wd_lock, &until);
    }
    return NULL;
}

/* A call with this deadline started: wake the watchdog if it would wake later (or never). */
static void wd_request(uint64_t deadline)
{
    uint64_t u = atomic_load(&wd_until);
    if (u != 0 && u <= deadline)
        return;
    pthread_mutex_lock(&wd_lock);
    u = atomic_load(&wd_until);
    if (u == 0 || u > deadline) {
        atomic_store(&wd_until, deadline);
        pthread_cond_signal(&wd_cond);
    }
    pthread_mutex_unlock(&wd_lock);
}

void ifd_watch_init(struct ifd_watch *w, const char *lib, const char *name)
{
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->mu, NULL);
    w->lib = lib;
    w->name = name;
}

bool ifd_watch_add(struct ifd_watch *w)
{
    pthread_mutex_lock(&wd_lock);
    bool ok = true;
    if (!wd_started) {
        ok = scrm_cond_init_monotonic(&wd_cond) == 0;
        if (ok) {
            pthread_t th;
            pthread_attr_t attr;
            pthread_attr_init(&attr);
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
            ok = pthread_create(&th, &attr, wd_main, NULL) == 0; /* lives as long as the process */
            pthread_attr_destroy(&attr);
            if (!ok)
                pthread_cond_destroy(&wd_cond);
        }
        wd_started = ok;
    }
    if (ok) {
        w->prev = NULL;
        w->next = wd_list;
        if (wd_list)
            wd_list->prev = w;
        wd_list = w;
    }
    pthread_mutex_unlock(&wd_lock);
    if (!ok)
        log_error(drv, "ifd: cannot start the watchdog thread");
    return ok;
}

void ifd_watch_remove(struct ifd_watch *w)
{
    pthread_mutex_lock(&wd_lock);
    if (w->prev)
        w->prev->next = w->next;
    else if (wd_list == w)
        wd_list = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    pthread_mutex_unlock(&wd_lock);
    pthread_mutex_destroy(&w->mu);
}

/* ---- the call ---- */

enum ifd_call_end ifd_guard_call(struct ifd_watch *w, uint32_t limit_ms, const char *what,
                                 const struct ifd_text *text, ifd_call_fn fn, void *arg, ifd_rc *rc,
                                 struct ifd_fault *fault)
{
    struct ifd_tls *t = &tls;
    if (!t->prepared)
        prepare(t);
    if (t->armed) { /* a handler calling the bridge again: impossible, but not under a guard */
        *rc = fn(arg);
        return IFD_CALL_RETURNED;
    }
    uint64_t seq = atomic_fetch_add(&t->seq, 1) + 1;
    t->text = text;
    bool watched = w && limit_ms;
    if (watched) {
        uint64_t deadline = scrm_now_ns() + (uint64_t)limit_ms * 1000000u;
        pthread_mutex_lock(&w->mu);
        w->active = true;
        w->fired = false;
        w->told = false;
        w->deadline_ns = w->retry_ns = deadline;
        w->thread = pthread_self();
        w->tls = t;
        w->seq = seq;
        w->what = what;
        w->limit_ms = limit_ms;
        pthread_mutex_unlock(&w->mu);
        wd_request(deadline);
    }
    int how = sigsetjmp(t->env, 0);
    if (how == 0) {
        t->armed = 1;
        atomic_signal_fence(memory_order_seq_cst);
        ifd_rc r = fn(arg);
        atomic_signal_fence(memory_order_seq_cst);
        t->armed = 0;
        *rc = r;
    } else {
        /* glibc's cancellable system calls switch to asynchronous cancellation around the
         * call; a jump out of one leaves it on */
        pthread_setcanceltype(PTHREAD_CANCEL_DEFERRED, NULL);
    }
    if (watched) {
        pthread_mutex_lock(&w->mu);
        w->active = false;
        if (w->fired)
            how = how ? how : IFD_CALL_HUNG; /* past its bound: out of service all the same */
        pthread_mutex_unlock(&w->mu);
    }
    if (how == IFD_CALL_CRASHED && fault) {
        fault->sig = t->sig;
        fault->addr = t->addr;
    }
    return how ? (enum ifd_call_end)how : IFD_CALL_RETURNED;
}

/* ---- the handler's code range ---- */

struct text_search {
    uintptr_t at;
    struct ifd_text found;
};

static int text_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct text_search *ts = arg;
    bool mine = false;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t a = info->dlpi_addr + ph->p_vaddr, b = a + ph->p_memsz;
        if (ts->at >= a && ts->at < b)
            mine = true;
        if (ph->p_flags & PF_X) {
            lo = a < lo ? a : lo;
            hi = b > hi ? b : hi;
        }
    }
    if (!mine || lo >= hi)
        return 0;
    ts->found.lo = lo;
    ts->found.hi = hi;
    return 1;
}

struct ifd_text ifd_text_of(const void *sym)
{
    struct text_search ts = {.at = (uintptr_t)sym};
    dl_iterate_phdr(text_cb, &ts);
    return ts.found;
}
