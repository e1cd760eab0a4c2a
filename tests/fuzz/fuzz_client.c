/*
 * libFuzzer target for the client library's reply parsing (src/client): the real PC/SC calls of
 * libpcsclite.so.1's sources run against a fake daemon on a private socket that answers each
 * request with the next chunk of the input. Chunks: 1 byte of flags, 2 bytes of length, the
 * bytes. With flag bit 0 the harness writes a proper header before the bytes (size, the request's
 * command and sequence number, the reply flag, a status from the flags), so the fixed and
 * variable parts of every reply kind get exercised; without it the bytes go out as they are
 * (any header), and the connection ends after them. When the input is used up the fake daemon
 * closes the connection (and the library's reconnection attempts the same way).
 *
 * The calls: establish a context, list readers, a status-change snapshot of two readers,
 * connect, status, transmit, control, get attribute, begin and end a transaction, reconnect,
 * disconnect, release. The library must answer each with a result code and never crash, hang or
 * leak, whatever the daemon says.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <PCSC/reader.h>
#include <PCSC/winscard.h>

#include "ipc/ipc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int listen_fd = -1;

/* The input being served; read by the daemon thread during one LLVMFuzzerTestOneInput. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    const uint8_t *data;
    size_t size, pos;
    bool active; /* an input is being served */
    bool done;   /* the calls finished: stop serving */
} feed = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0, 0, false, false};

/* Answer one request read from fd; false when the connection should end. */
static bool answer(int fd, const struct ipc_hdr *req)
{
    uint8_t out[sizeof(struct ipc_hdr) + 70000];
    uint8_t flags;
    size_t len;

    if (feed.pos + 3 > feed.size)
        return false;
    flags = feed.data[feed.pos];
    len = (size_t)(feed.data[feed.pos + 1] | (feed.data[feed.pos + 2] << 8));
    feed.pos += 3;
    if (len > feed.size - feed.pos)
        len = feed.size - feed.pos;
    if (flags & 1) {
        static const uint32_t statuses[8] = {
            SCARD_S_SUCCESS,           SCARD_S_SUCCESS,         SCARD_E_INSUFFICIENT_BUFFER,
            SCARD_W_REMOVED_CARD,      SCARD_E_NO_SMARTCARD,    SCARD_E_TIMEOUT,
            SCARD_E_SHARING_VIOLATION, SCARD_E_SERVICE_STOPPED,
        };
        struct ipc_hdr h = {.size = (uint32_t)(sizeof h + len),
                            .cmd = req->cmd,
                            .flags = IPC_FLAG_REPLY,
                            .seq = req->seq,
                            .status = (uint32_t)statuses[(flags >> 1) & 7]};
        memcpy(out, &h, sizeof h);
        memcpy(out + sizeof h, feed.data + feed.pos, len);
        feed.pos += len;
        return ipc_send_all(fd, out, sizeof h + len) == 0;
    }
    /* Raw bytes may announce more than they hold: the connection ends after them, so the
     * library reads them and then end of file, never waits for bytes that do not come. */
    memcpy(out, feed.data + feed.pos, len);
    feed.pos += len;
    (void)ipc_send_all(fd, out, len);
    return false;
}

static void serve(int fd)
{
    static uint8_t body[IPC_MSG_MAX];
    for (;;) {
        struct ipc_hdr h;
        pthread_mutex_lock(&feed.lock);
        bool more = feed.active && !feed.done;
        pthread_mutex_unlock(&feed.lock);
        if (!more || ipc_recv_all(fd, &h, sizeof h) < 0 || h.size < sizeof h ||
            h.size > IPC_MSG_MAX || ipc_recv_all(fd, body, h.size - sizeof h) < 0)
            break;
        pthread_mutex_lock(&feed.lock);
        more = answer(fd, &h);
        pthread_mutex_unlock(&feed.lock);
        if (!more)
            break;
    }
    close(fd);
}

static void *daemon_main(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            serve(fd);
    }
    return NULL;
}

static void start(void)
{
    static char dir[] = "/tmp/scrm-fuzzc-XXXXXX";
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    pthread_t th;

    if (listen_fd >= 0)
        return;
    if (!mkdtemp(dir))
        abort();
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/scrm.sock", dir);
    listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        listen(listen_fd, 16) < 0 || pthread_create(&th, NULL, daemon_main, NULL) != 0)
        abort();
    setenv("SCRM_SOCKET", sa.sun_path, 1);
    setenv("SCRM_LOG", "client:off", 1);
}

static void calls(void)
{
    SCARDCONTEXT ctx;
    SCARDHANDLE card;
    DWORD proto = 0, len;
    char names[1024], rname[256];
    BYTE atr[64], resp[300], attr[300];
    SCARD_READERSTATE rs[2] = {{.szReader = "A", .dwCurrentState = SCARD_STATE_UNAWARE},
                               {.szReader = "B", .dwCurrentState = SCARD_STATE_EMPTY}};
    static const BYTE apdu[] = {0x00, 0xA4, 0x04, 0x00, 0x00};

    if (SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx) != SCARD_S_SUCCESS)
        return;
    len = sizeof names;
    (void)SCardListReaders(ctx, NULL, names, &len);
    (void)SCardGetStatusChange(ctx, 0, rs, 2);
    if (SCardConnect(ctx, "A", SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &card,
                     &proto) == SCARD_S_SUCCESS) {
        DWORD rlen = sizeof rname, state, p, alen = sizeof atr;
        (void)SCardStatus(card, rname, &rlen, &state, &p, atr, &alen);
        len = sizeof resp;
        (void)SCardTransmit(card, SCARD_PCI_T1, apdu, sizeof apdu, NULL, resp, &len);
        len = sizeof resp;
        (void)SCardControl(card, SCARD_CTL_CODE(3400), NULL, 0, resp, sizeof resp, &len);
        len = sizeof attr;
        (void)SCardGetAttrib(card, SCARD_ATTR_ATR_STRING, attr, &len);
        if (SCardBeginTransaction(card) == SCARD_S_SUCCESS)
            (void)SCardEndTransaction(card, SCARD_LEAVE_CARD);
        (void)SCardReconnect(card, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T1, SCARD_RESET_CARD, &proto);
        (void)SCardDisconnect(card, SCARD_LEAVE_CARD);
    }
    (void)SCardReleaseContext(ctx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 200000)
        return 0;
    start();
    pthread_mutex_lock(&feed.lock);
    feed.data = data;
    feed.size = size;
    feed.pos = 0;
    feed.active = true;
    feed.done = false;
    pthread_mutex_unlock(&feed.lock);
    calls();
    pthread_mutex_lock(&feed.lock);
    feed.done = true;
    feed.active = false;
    pthread_mutex_unlock(&feed.lock);
    return 0;
}
