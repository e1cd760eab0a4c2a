/*
 * scrm spy's capture file (src/tools/spy_capture.c): the parsing of the daemon's spy lines, the
 * pairing of commands and responses across interleaved clients, and the bytes of the packets.
 */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/spy_capture.h"

static void test_parse_lines(void **state)
{
    (void)state;
    struct spy_apdu_line l;
    assert_true(spy_parse_apdu_line("12:00:01.123456 client 7 Sim Reader 0 > 00 20 00 81 02 ** **"
                                    "  (PIN redacted)",
                                    &l));
    assert_true(l.command);
    assert_int_equal(l.client, 7);
    assert_int_equal(l.key_len, strlen("client 7 Sim Reader 0"));
    assert_memory_equal(l.key, "client 7 Sim Reader 0", l.key_len);
    assert_int_equal(l.len, 7);
    assert_memory_equal(l.data, "\x00\x20\x00\x81\x02**", 7);
    free(l.data);

    assert_true(spy_parse_apdu_line("12:00:01.123789 client 7 R > X < 6A 88  wrong parameters "
                                    "(42 us)",
                                    &l));
    assert_false(l.command);
    assert_memory_equal(l.key, "client 7 R > X", l.key_len); /* the last mark counts */
    assert_int_equal(l.len, 2);
    assert_memory_equal(l.data, "\x6A\x88", 2);
    free(l.data);

    /* an error answer has no bytes */
    assert_true(spy_parse_apdu_line("t client 3 R < SCARD_W_REMOVED_CARD (9 us)", &l));
    assert_false(l.command);
    assert_null(l.data);
    assert_int_equal(l.len, 0);

    /* not APDU lines */
    assert_false(
        spy_parse_apdu_line("t ioctl R IOCTL_SMARTCARD_TRANSMIT -> STATUS_SUCCESS (25 us)", &l));
    assert_false(spy_parse_apdu_line("(3 line(s) dropped: the spy read too slowly)", &l));
    assert_false(spy_parse_apdu_line("t client x R > 00 A4 00 00", &l));
    assert_false(spy_parse_apdu_line("t client 1 R > 00 A4", &l)); /* shorter than a header */
    assert_false(spy_parse_apdu_line("t client 1 R", &l));
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static uint8_t buf[4096];
    *len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return buf;
}

static void test_pairs_and_packets(void **state)
{
    (void)state;
    char path[] = "/tmp/scrm-spy-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    struct spy_capture c;
    struct timeval tv = {.tv_sec = 1700000000, .tv_usec = 250};
    assert_int_equal(spy_capture_open(&c, path), 0);
    /* two clients interleaved; client 2's exchange ends in an error and writes nothing */
    assert_int_equal(spy_capture_line(&c, "t client 1 A > 00 B0 00 00 02", &tv), 0);
    assert_int_equal(spy_capture_line(&c, "t client 2 B > 00 A4 00 00", &tv), 0);
    assert_int_equal(spy_capture_line(&c, "t client 2 B < SCARD_E_TIMEOUT (1 us)", &tv), 0);
    assert_int_equal(spy_capture_line(&c, "t ioctl A IOCTL_SMARTCARD_TRANSMIT (1 us)", &tv), 0);
    assert_int_equal(spy_capture_line(&c, "t client 1 A < 01 02 90 00  success (5 us)", &tv), 0);
    /* a response without its command (the command line was dropped) writes nothing */
    assert_int_equal(spy_capture_line(&c, "t client 1 A < 90 00  success (5 us)", &tv), 0);
    assert_int_equal(c.packets, 1);
    assert_int_equal(spy_capture_close(&c), 0);

    size_t len;
    const uint8_t *b = slurp(path, &len);
    unlink(path);
    size_t pkt = 20 + 8 + 16 + 5 + 4; /* IPv4 + UDP + GSMTAP + command + response */
    assert_int_equal(len, 24 + 16 + pkt);
    assert_memory_equal(b, "\xD4\xC3\xB2\xA1\x02\x00\x04\x00", 8);
    assert_int_equal(b[20], 101); /* raw IP */
    const uint8_t *rec = b + 24, *ip = rec + 16, *udp = ip + 20, *gt = udp + 8;
    assert_int_equal(rec[0] | rec[1] << 8 | rec[2] << 16 | (uint32_t)rec[3] << 24, 1700000000u);
    assert_int_equal(rec[4], 250);
    assert_int_equal(rec[8], pkt);
    assert_int_equal(ip[0], 0x45);
    assert_int_equal(ip[9], 17);
    uint32_t sum = 0; /* the header checksum makes the one's complement sum 0xFFFF */
    for (int i = 0; i < 20; i += 2)
        sum += (uint32_t)ip[i] << 8 | ip[i + 1];
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    assert_int_equal(sum, 0xFFFF);
    assert_int_equal(udp[0] << 8 | udp[1], 1);    /* client 1 */
    assert_int_equal(udp[2] << 8 | udp[3], 4729); /* GSMTAP */
    assert_memory_equal(gt, "\x02\x04\x04", 3);   /* version 2, 4 words, type SIM */
    assert_memory_equal(gt + 16, "\x00\xB0\x00\x00\x02\x01\x02\x90\x00", 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_lines),
        cmocka_unit_test(test_pairs_and_packets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
