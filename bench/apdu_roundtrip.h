/* Interface between the two halves of bench/apdu_roundtrip (see apdu_roundtrip.c). */
#ifndef SCRM_BENCH_APDU_ROUNDTRIP_H
#define SCRM_BENCH_APDU_ROUNDTRIP_H

#include <stddef.h>

/* Run a daemon with `readers` simulated readers holding T=1 cards plus `empty` readers without a
 * card, on socket `sock`, until SIGTERM; returns the exit status. */
int bench_daemon_main(unsigned readers, unsigned empty, const char *sock);
/* Echo loop: read req_len bytes, answer rep_len bytes, until the peer closes. */
void bench_echo_server(int fd, size_t req_len, size_t rep_len);

#endif
