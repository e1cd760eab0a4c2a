/*
 * The PC/SC functions of libpcsclite.so.1 other than SCardGetStatusChange / SCardCancel
 * (status_change.c): argument checks with pcsc-lite's result codes, one request to scrmd, and the
 * buffer conventions (length query with a NULL buffer, SCARD_AUTOALLOCATE, and
 * SCARD_E_INSUFFICIENT_BUFFER with the needed length).
 *
 * Each card function follows one pattern: find the context owning the handle (card_begin, which
 * locks it), send the request, read what the reply says while still holding the lock (the reply
 * lives in the context's buffer), then card_end.
 */
#include <stdlib.h>
#include <string.h>

#include "client/client.h"

/* ---- Helpers ----------------------------------------------------------------------------------
 */

LONG client_copy_out(const void *src, size_t len, void *buf, DWORD *buf_len)
{
    if (*buf_len == SCARD_AUTOALLOCATE) {
        void *p;
        if (!buf)
            return SCARD_E_INVALID_PARAMETER;
        p = malloc(len ? len : 1);
        if (!p)
            return SCARD_E_NO_MEMORY;
        if (len)
            memcpy(p, src, len);
        *(void **)buf = p;
        *buf_len = len;
        return SCARD_S_SUCCESS;
    }
    if (buf && *buf_len < len) {
        *buf_len = len;
        return SCARD_E_INSUFFICIENT_BUFFER;
    }
    if (buf && len)
        memcpy(buf, src, len);
    *buf_len = len;
    return SCARD_S_SUCCESS;
}

/* The context of a card handle, locked; NULL if the handle is unknown. (Conditional acquisition
 * of a lock of the returned object: the analysis cannot express it; card_end() pairs with it.) */
static struct cctx *card_begin(SCARDHANDLE card) SCRM_NO_THREAD_SAFETY_ANALYSIS
{
    struct cctx *c = cctx_get_card(card);
    if (c)
        scrm_mutex_lock(&c->call_lock);
    return c;
}

static void card_end(struct cctx *c) SCRM_NO_THREAD_SAFETY_ANALYSIS
{
    scrm_mutex_unlock(&c->call_lock);
    cctx_put(c);
}

/* A card request whose reply carries nothing but its status. */
static LONG card_simple(SCARDHANDLE card, uint16_t cmd, const void *req, size_t req_len)
{
    struct cctx *c = card_begin(card);
    struct creply r;
    LONG rc;
    if (!c)
        return SCARD_E_INVALID_HANDLE;
    rc = cctx_call(c, cmd, true, req, req_len, NULL, 0, &r);
    if (rc == SCARD_S_SUCCESS)
        rc = (LONG)r.status;
    card_end(c);
    return rc;
}

static bool fits_u32(DWORD v)
{
    return v <= 0xFFFFFFFFul;
}

/* ---- Contexts ---------------------------------------------------------------------------------
 */

CLIENT_EXPORT LONG SCardEstablishContext(DWORD dwScope, LPCVOID pvReserved1, LPCVOID pvReserved2,
                                         LPSCARDCONTEXT phContext)
{
    struct cctx *c;
    LONG rc;
    (void)pvReserved1;
    (void)pvReserved2;

    if (!phContext)
        return SCARD_E_INVALID_PARAMETER;
    *phContext = 0;
    if (dwScope != SCARD_SCOPE_USER && dwScope != SCARD_SCOPE_TERMINAL &&
        dwScope != SCARD_SCOPE_SYSTEM && dwScope != SCARD_SCOPE_GLOBAL)
        return SCARD_E_INVALID_VALUE;
    rc = cctx_create(&c);
    if (rc == SCARD_S_SUCCESS)
        *phContext = (SCARDCONTEXT)c->id;
    return rc;
}

CLIENT_EXPORT LONG SCardReleaseContext(SCARDCONTEXT hContext)
{
    return cctx_release(hContext);
}

CLIENT_EXPORT LONG SCardIsValidContext(SCARDCONTEXT hContext)
{
    struct cctx *c = cctx_get(hContext);
    if (!c)
        return SCARD_E_INVALID_HANDLE;
    cctx_put(c);
    return SCARD_S_SUCCESS;
}

CLIENT_EXPORT LONG SCardFreeMemory(SCARDCONTEXT hContext, LPCVOID pvMem)
{
    struct cctx *c = cctx_get(hContext);
    if (!c)
        return SCARD_E_INVALID_HANDLE;
    void *mem;
    memcpy(&mem, &pvMem, sizeof mem); /* the API passes it as const */
    free(mem);
    cctx_put(c);
    return SCARD_S_SUCCESS;
}

CLIENT_EXPORT LONG SCardListReaderGroups(SCARDCONTEXT hContext, LPSTR mszGroups, LPDWORD pcchGroups)
{
    static const char groups[] = "SCard$DefaultReaders\0"; /* + the literal's NUL = "\0\0" */
    struct cctx *c;
    LONG rc;

    if (!pcchGroups)
        return SCARD_E_INVALID_PARAMETER;
    c = cctx_get(hContext);
    if (!c)
        return SCARD_E_INVALID_HANDLE;
    rc = client_copy_out(groups, sizeof groups, mszGroups, pcchGroups);
    cctx_put(c);
    return rc;
}

/* Turn a LIST_READERS reply into a multi-string; *out is malloc'd. */
static LONG reply_to_multistring(const struct creply *r, char **out, size_t *out_len)
{
    struct ipc_list_rep rep;
    size_t pos = 0;
    memcpy(&rep, r->fixed, sizeof rep);
    /* Each name is NUL-terminated in the reply; check count and termination. */
    for (uint32_t i = 0; i < rep.count; i++) {
        const void *nul = pos < r->var_len ? memchr(r->var + pos, '\0', r->var_len - pos) : NULL;
        if (!nul)
            return SCARD_F_COMM_ERROR;
        pos = (size_t)((const uint8_t *)nul - r->var) + 1;
    }
    if (pos != r->var_len)
        return SCARD_F_COMM_ERROR;
    if (rep.count == 0)
        return SCARD_E_NO_READERS_AVAILABLE;
    *out = malloc(pos + 1);
    if (!*out)
        return SCARD_E_NO_MEMORY;
    memcpy(*out, r->var, pos);
    (*out)[pos] = '\0';
    *out_len = pos + 1;
    return SCARD_S_SUCCESS;
}

CLIENT_EXPORT LONG SCardListReaders(SCARDCONTEXT hContext, LPCSTR mszGroups, LPSTR mszReaders,
                                    LPDWORD pcchReaders)
{
    struct ipc_none req = {0};
    struct creply r;
    struct cctx *c;
    char *list = NULL;
    size_t len = 0;
    LONG rc;
    (void)mszGroups; /* one group: every reader */

    if (!pcchReaders)
        return SCARD_E_INVALID_PARAMETER;
    c = cctx_get(hContext);
    if (!c)
        return SCARD_E_INVALID_HANDLE;
    scrm_mutex_lock(&c->call_lock);
    rc = cctx_call(c, IPC_CMD_LIST_READERS, false, &req, sizeof req, NULL, 0, &r);
    if (rc == SCARD_S_SUCCESS)
        rc = (LONG)r.status;
    if (rc == SCARD_S_SUCCESS)
        rc = reply_to_multistring(&r, &list, &len);
    scrm_mutex_unlock(&c->call_lock);
    if (rc == SCARD_S_SUCCESS)
        rc = client_copy_out(list, len, mszReaders, pcchReaders);
    free(list);
    cctx_put(c);
    return rc;
}

/* ---- Connections ------------------------------------------------------------------------------
 */

CLIENT_EXPORT LONG SCardConnect(SCARDCONTEXT hContext, LPCSTR szReader, DWORD dwShareMode,
                                DWORD dwPreferredProtocols, LPSCARDHANDLE phCard,
                                LPDWORD pdwActiveProtocol)
{
    struct ipc_connect_req req = {0};
    struct ipc_connect_rep rep;
    struct creply r;
    struct cctx *c;
    size_t n;
    LONG rc;

    if (!phCard || !pdwActiveProtocol)
        return SCARD_E_INVALID_PARAMETER;
    *phCard = 0;
    if (!szReader)
        return SCARD_E_UNKNOWN_READER;
    n = strnlen(szReader, MAX_READERNAME);
    if (n >= MAX_READERNAME || !fits_u32(dwShareMode) || !fits_u32(dwPreferredProtocols))
        return SCARD_E_INVALID_VALUE;
    c = cctx_get(hContext);
    if (!c)
        return SCARD_E_INVALID_HANDLE;
    if (n == 0) {
        cctx_put(c);
        return SCARD_E_UNKNOWN_READER;
    }
    req.share = (uint32_t)dwShareMode;
    req.protocols = (uint32_t)dwPreferredProtocols;
    req.name_len = (uint32_t)n;
    scrm_mutex_lock(&c->call_lock);
    rc = cctx_call(c, IPC_CMD_CONNECT, false, &req, sizeof req, szReader, n, &r);
    if (rc == SCARD_S_SUCCESS)
        rc = (LONG)r.status;
    if (rc == SCARD_S_SUCCESS) {
        memcpy(&rep, r.fixed, sizeof rep);
        if (cctx_add_card(c, rep.card) == 0) {
            *phCard = (SCARDHANDLE)rep.card;
            *pdwActiveProtocol = rep.protocol;
        } else {
            struct ipc_card_disp_req d = {.card = rep.card, .disposition = SCARD_LEAVE_CARD};
            (void)cctx_call(c, IPC_CMD_DISCONNECT, true, &d, sizeof d, NULL, 0, &r);
            rc = SCARD_E_NO_MEMORY;
        }
    }
    scrm_mutex_unlock(&c->call_lock);
    cctx_put(c);
    return rc;
}

CLIENT_EXPORT LONG SCardReconnect(SCARDHANDLE hCard, DWORD dwShareMode, DWORD dwPreferredProtocols,
                                  DWORD dwInitialization, LPDWORD pdwActiveProtocol)
{
    struct ipc_reconnect_req req = {.card = (uint64_t)hCard};
    struct ipc_protocol_rep rep;
    struct creply r;
    struct cctx *c;
    LONG rc;

    if (!pdwActiveProtocol)
        return SCARD_E_INVALID_PARAMETER;
    if (!fits_u32(dwShareMode) || !fits_u32(dwPreferredProtocols) || !fits_u32(dwInitialization))
        return SCARD_E_INVALID_VALUE;
    c = card_begin(hCard);
    if (!c)
        return SCARD_E_INVALID_HANDLE;
    req.share = (uint32_t)dwShareMode;
    req.protocols = (uint32_t)dwPreferredProtocols;
    req.init = (uint32_t)dwInitialization;
    rc = cctx_call(c, IPC_CMD_RECONNECT, true, &req, sizeof req, NULL, 0, &r);
    if (rc == SCARD_S_SUCCESS)
        rc = (LONG)r.status;
    if (rc == SCARD_S_SUCCESS) {
        memcpy(&rep, r.fixed, sizeof rep);
        *pdwActiveProtocol = rep.protocol;
    }
    card_end(c);
    return rc;
}

CLIENT_EXPORT LONG SCardDisconnect(SCARDHANDLE hCard, DWORD dwDisposition)
{
    struct ipc_card_disp_req req = {.card = (uint64_t)hCard};
    struct creply r;
    struct cctx *c;
    LONG rc;

    if (!fits_u32(dwDisposition))
        return SCARD_E_INVALID_VALUE;
    c = card_begin(hCard);
    if (!c)
        return SCARD_E_INVALID_HANDLE;
    req.disposition = (uint32_t)dwDisposition;
    rc = cctx_call(c, IPC_CMD_DISCONNECT, true, &req, sizeof req, NULL, 0, &r);
    if (rc == SCARD_S_SUCCESS)
        rc = (LONG)r.status;
    /* The daemon drops the handle even when the disposition fails; only a refused argument
     * leaves it valid. */
    if (rc != SCARD_E_INVALID_VALUE)
        cctx_del_card(c, (uint64_t)hCard);
    card_end(c);
    return rc;
}

CLIENT_EXPORT LONG SCardBeginTransaction(SCARDHANDLE hCard)
{
    struct ipc_card_req req = {.card = (uint64_t)hCard};
    return card_simple(hCard, IPC_CMD_BEGIN_TRANSACTION, &req, sizeof req);
}

CLIENT_EXPORT LONG SCardEndTransaction(SCARDHANDLE hCard, DWORD dwDisposition)
{
    struct ipc_card_disp_req req = {.card = (uint64_t)hCard};
    if (!fits_u32(dwDisposition))
        return SCARD_E_INVALID_VALUE;
    req.disposition = (uint32_t)dwDisposition;
    return card_simple(hCard, IPC_CMD_END_TRANSACTION, &req, sizeof req);
}

/* ---- Status ------------------------------------------------------------------------------------
 */

/* Fill SCardStatus's outputs from a STATUS reply. */
static LONG status_outputs(const struct creply *r, LPSTR name, LPDWORD name_len, LPDWORD state,
                           LPDWORD protocol, LPBYTE atr, LPDWORD atr_len)
{
    struct ipc_status_rep rep;
    char buf[IPC_READER_NAME_MAX];
    LONG rc_name = SCARD_S_SUCCESS, rc_atr = SCARD_S_SUCCESS;

    memcpy(&rep, r->fixed, sizeof rep);
    if (rep.name_len != r->var_len || rep.name_len >= sizeof buf || rep.atr_len > IPC_ATR_MAX)
        return SCARD_F_COMM_ERROR;
    memcpy(buf, r->var, rep.name_len);
    buf[rep.name_len] = '\0';
    if (state)
        *state = ((DWORD)(rep.counter & 0xFFFFu) << 16) | (rep.state & 0xFFFFu);
    if (protocol)
        *protocol = rep.protocol;
    if (name_len) /* the name with its NUL, as pcsc-lite returns it */
        rc_name = client_copy_out(buf, rep.name_len + 1, name, name_len);
    if (atr_len)
        rc_atr = client_copy_out(rep.atr, rep.atr_len, atr, atr_len);
    return rc_name != SCARD_S_SUCCESS ? rc_name : rc_atr;
}

CLIENT_EXPORT LONG SCardStatus(SCARDHANDLE hCard, LPSTR szReaderName, LPDWORD pcchReaderLen,
                               LPDWORD pdwState, LPDWORD pdwProtocol, LPBYTE pbAtr,
                               LPDWORD pcbAtrLen)
{
    struct ipc_card_req req = {.card = (uint64_t)hCard};
    struct creply r;
    struct cctx *c = card_begin(hCard);
    LONG rc;

    if (!c)
        return SCARD_E_INVALID_HANDLE;
    rc = cctx_call(c, IPC_CMD_STATUS, true, &req, sizeof req, NULL, 0, &r);
    if (rc == SCARD_S_SUCCESS) {
        LONG st = (LONG)r.status;
        rc = st;
        /* Outputs are filled on success and with the removed / reset warnings. */
        if (st == SCARD_S_SUCCESS || st == SCARD_W_REMOVED_CARD || st == SCARD_W_RESET_CARD) {
            LONG out = status_outputs(&r, szReaderName, pcchReaderLen, pdwState, pdwProtocol, pbAtr,
                                      pcbAtrLen);
            if (st == SCARD_S_SUCCESS)
                rc = out;
        }
    }
    card_end(c);
    return rc;
}

/* ---- Data exchange ----------------------------------------------------------------------------
 */

CLIENT_EXPORT LONG SCardTransmit(SCARDHANDLE hCard, const SCARD_IO_REQUEST *pioSendPci,
                                 LPCBYTE pbSendBuffer, DWORD cbSendLength,
                                 SCARD_IO_REQUEST *pioRecvPci, LPBYTE pbRecvBuffer,
                                 LPDWORD pcbRecvLength)
{
    struct ipc_transmit_req req = {.card = (uint64_t)hCard};
    struct ipc_transmit_rep rep;
    struct creply r;
    struct cctx *c;
    LONG rc;

    if (!pioSendPci || !pbSendBuffer || !pbRecvBuffer || !pcbRecvLength || cbSendLength == 0 ||
        *pcbRecvLength == SCARD_AUTOALLOCATE)
        return SCARD_E_INVALID_PARAMETER;
    if (cbSendLength > MAX_BUFFER_SIZE_EXTENDED)
        return SCARD_E_INSUFFICIENT_BUFFER;
    c = card_begin(hCard);
    if (!c)
        return SCARD_E_INVALID_HANDLE;
    req.protocol = (uint32_t)pioSendPci->dwProtocol;
    req.recv_max = *pcbRecvLength > IPC_DATA_MAX ? IPC_DATA_MAX : (uint32_t)*pcbRecvLength;
    req.send_len = (uint32_t)cbSendLength;
    rc = cctx_call(c, IPC_CMD_TRANSMIT, true, &req, sizeof req, pbSendBuffer, cbSendLength, &r);
    if (rc == SCARD_S_SUCCESS) {
        memcpy(&rep, r.fixed, sizeof rep);
        rc = (LONG)r.status;
        if (rc == SCARD_S_SUCCESS && (rep.recv_len != r.var_len || rep.recv_len > req.recv_max))
            rc = SCARD_F_COMM_ERROR;
        if (rc == SCARD_S_SUCCESS) {
            memcpy(pbRecvBuffer, r.var, rep.recv_len);
            *pcbRecvLength = rep.recv_len;
            if (pioRecvPci) {
                pioRecvPci->dwProtocol = rep.protocol;
                pioRecvPci->cbPciLength = sizeof(SCARD_IO_REQUEST);
            }
        } else if (rc == SCARD_E_INSUFFICIENT_BUFFER) {
            *pcbRecvLength = rep.recv_len;
        }
    }
    card_end(c);
    return rc;
}

CLIENT_EXPORT LONG SCardControl(SCARDHANDLE hCard, DWORD dwControlCode, LPCVOID pbSendBuffer,
                                DWORD cbSendLength, LPVOID pbRecvBuffer, DWORD cbRecvLength,
                                LPDWORD lpBytesReturned)
{
    struct ipc_control_req req = {.card = (uint64_t)hCard};
    struct ipc_data_rep rep;
    struct creply r;
    struct cctx *c;
    LONG rc;

    if (lpBytesReturned)
        *lpBytesReturned = 0;
    /* lpBytesReturned is optional, as in pcsc-lite */
    if ((cbSendLength > 0 && !pbSendBuffer) || (cbRecvLength > 0 && !pbRecvBuffer))
        return SCARD_E_INVALID_PARAMETER;
    if (cbSendLength > MAX_BUFFER_SIZE_EXTENDED)
        return SCARD_E_INSUFFICIENT_BUFFER;
    if (!fits_u32(dwControlCode))
        return SCARD_E_UNSUPPORTED_FEATURE;
    c = card_begin(hCard);
    if (!c)
        return SCARD_E_INVALID_HANDLE;
    req.code = (uint32_t)dwControlCode;
    req.recv_max = cbRecvLength > IPC_DATA_MAX ? IPC_DATA_MAX : (uint32_t)cbRecvLength;
    req.send_len = (uint32_t)cbSendLength;
    rc = cctx_call(c, IPC_CMD_CONTROL, true, &req, sizeof req, pbSendBuffer, cbSendLength, &r);
    if (rc == SCARD_S_SUCCESS) {
        memcpy(&rep, r.fixed, sizeof rep);
        rc = (LONG)r.status;
        if (rc == SCARD_S_SUCCESS && (rep.len != r.var_len || rep.len > req.recv_max))
            rc = SCARD_F_COMM_ERROR;
        if (rc == SCARD_S_SUCCESS && rep.len)
            memcpy(pbRecvBuffer, r.var, rep.len);
        if ((rc == SCARD_S_SUCCESS || rc == SCARD_E_INSUFFICIENT_BUFFER) && lpBytesReturned)
            *lpBytesReturned = rep.len;
    }
    card_end(c);
    return rc;
}

CLIENT_EXPORT LONG SCardGetAttrib(SCARDHANDLE hCard, DWORD dwAttrId, LPBYTE pbAttr,
                                  LPDWORD pcbAttrLen)
{
    struct ipc_getattr_req req = {.card = (uint64_t)hCard, .recv_max = IPC_DATA_MAX};
    struct ipc_data_rep rep;
    struct creply r;
    struct cctx *c;
    LONG rc;

    if (!pcbAttrLen)
        return SCARD_E_INVALID_PARAMETER;
    if (!fits_u32(dwAttrId))
        return SCARD_E_UNSUPPORTED_FEATURE;
    c = card_begin(hCard);
    if (!c)
        return SCARD_E_INVALID_HANDLE;
    req.attr = (uint32_t)dwAttrId;
    rc = cctx_call(c, IPC_CMD_GET_ATTRIB, true, &req, sizeof req, NULL, 0, &r);
    if (rc == SCARD_S_SUCCESS) {
        memcpy(&rep, r.fixed, sizeof rep);
        rc = (LONG)r.status;
        if (rc == SCARD_S_SUCCESS && rep.len != r.var_len)
            rc = SCARD_F_COMM_ERROR;
        if (rc == SCARD_S_SUCCESS)
            rc = client_copy_out(r.var, rep.len, pbAttr, pcbAttrLen);
    }
    card_end(c);
    return rc;
}

CLIENT_EXPORT LONG SCardSetAttrib(SCARDHANDLE hCard, DWORD dwAttrId, LPCBYTE pbAttr,
                                  DWORD cbAttrLen)
{
    struct ipc_setattr_req req = {.card = (uint64_t)hCard};
    struct creply r;
    struct cctx *c;
    LONG rc;

    if (!pbAttr || cbAttrLen == 0)
        return SCARD_E_INVALID_PARAMETER;
    if (cbAttrLen > IPC_DATA_MAX)
        return SCARD_E_INSUFFICIENT_BUFFER;
    if (!fits_u32(dwAttrId))
        return SCARD_E_UNSUPPORTED_FEATURE;
    c = card_begin(hCard);
    if (!c)
        return SCARD_E_INVALID_HANDLE;
    req.attr = (uint32_t)dwAttrId;
    req.len = (uint32_t)cbAttrLen;
    rc = cctx_call(c, IPC_CMD_SET_ATTRIB, true, &req, sizeof req, pbAttr, cbAttrLen, &r);
    if (rc == SCARD_S_SUCCESS)
        rc = (LONG)r.status;
    card_end(c);
    return rc;
}
