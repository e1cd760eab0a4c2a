/*
 * `scrm reader add DEVICE` and `scrm reader remove READER`: readers added and removed while scrmd
 * runs. These are administration commands, not PC/SC calls, so they use scrm's socket protocol
 * directly (scrm_ipc.c): HELLO, then READER_ADD or READER_REMOVE, one reply each. scrmd accepts
 * them from root, its own user and members of its admin group only; anyone else gets
 * SCARD_W_SECURITY_VIOLATION.
 * READER is resolved like every other READER argument (name, index, unique part of a name).
 */
#include <stdio.h>
#include <string.h>

#include "ipc/ipc.h"
#include "tools/scrm.h"
#include "tools/scrm_ipc.h"

static int fail_reader(const char *what, long rc)
{
    if ((unsigned long)rc == SCARD_W_SECURITY_VIOLATION)
        fprintf(stderr,
                "scrm: %s: refused: only root and scrmd's admin group may add or remove "
                "readers\n",
                what);
    return scrm_fail(what, (LONG)rc);
}

int scrm_cmd_reader(int argc, char **argv)
{
    char name[MAX_READERNAME] = "";
    bool add = argc == 3 && strcmp(argv[1], "add") == 0;
    bool remove = argc == 3 && strcmp(argv[1], "remove") == 0;
    if (!add && !remove) {
        fprintf(stderr, "usage: scrm reader add DEVICE | scrm reader remove READER\n");
        return SCRM_EXIT_USAGE;
    }
    if (add) {
        if (strlen(argv[2]) == 0 || strlen(argv[2]) > IPC_DEVICE_MAX) {
            fprintf(stderr, "scrm: reader add: the device string is empty or too long\n");
            return SCRM_EXIT_USAGE;
        }
        long rc = scrm_ipc_reader(IPC_CMD_READER_ADD, argv[2], name, sizeof name);
        if (rc != 0)
            return fail_reader("reader add", rc);
        printf("%s: reader added (%s)\n", *name ? name : "?", argv[2]);
        return SCRM_EXIT_OK;
    }
    SCARDCONTEXT ctx;
    char reader[MAX_READERNAME];
    if (!scrm_context(&ctx))
        return SCRM_EXIT_FAIL;
    bool found = scrm_reader(ctx, argv[2], reader, sizeof reader);
    SCardReleaseContext(ctx);
    if (!found)
        return SCRM_EXIT_FAIL;
    long rc = scrm_ipc_reader(IPC_CMD_READER_REMOVE, reader, name, sizeof name);
    if (rc != 0)
        return fail_reader("reader remove", rc);
    printf("%s: reader removed\n", reader);
    return SCRM_EXIT_OK;
}
