/*
 * vpcd_card [-q] PORT: the fast virtual card (vpcd_card.h) connected to the vpcd reader listening
 * on 127.0.0.1:PORT, until the reader closes the connection; -q: TCP_QUICKACK after every read.
 * Exit status 1 if it cannot connect.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

#include "vpcd_card.h"

int main(int argc, char **argv)
{
    bool quickack = argc == 3 && strcmp(argv[1], "-q") == 0;
    if (argc != 2 + quickack) {
        fprintf(stderr, "usage: vpcd_card [-q] PORT\n");
        return 2;
    }
    int fd = vpcd_card_connect((unsigned)strtoul(argv[argc - 1], NULL, 0));
    if (fd < 0) {
        perror("vpcd_card: connect");
        return 1;
    }
    vpcd_card_serve(fd, quickack);
    close(fd);
    return 0;
}
