/*
 * Every numeric constant of <smc/defs.h> checked against the tables of docs/libsmc.md
 * (IOCTLs, states/protocols/power, sizes and T=1, attributes, reader types, status codes), which
 * give the values of Microsoft's winsmcrd.h, smclib.h and ntstatus.h. The expected values are typed
 * here from those tables, not derived from the header, so a wrong value in the X-macro list fails a test.
 */
#include "testutil.h"

#include <string.h>

#include "smc/defs.h"

struct expect {
    uint32_t got;
    uint32_t want;
    const char *name;
};

#define E(sym, val)                  \
    {                                \
        (uint32_t)(sym), (val), #sym \
    }

static void check(const struct expect *e, size_t n, const char *(*namefn)(uint32_t))
{
    for (size_t i = 0; i < n; i++) {
        if (e[i].got != e[i].want)
            fail_msg("%s = 0x%08X, spec says 0x%08X", e[i].name, e[i].got, e[i].want);
        if (namefn) {
            const char *nm = namefn(e[i].want);
            if (!nm || strcmp(nm, e[i].name) != 0)
                fail_msg("name of 0x%08X is %s, want %s", e[i].want, nm ? nm : "(null)", e[i].name);
        }
    }
}

#define CHECK(table, fn) check(table, sizeof(table) / sizeof(table[0]), fn)

static void test_ioctl_codes(void **state)
{
    (void)state;
    static const struct expect t[] = {
        E(IOCTL_SMARTCARD_POWER, 0x00310004),
        E(IOCTL_SMARTCARD_GET_ATTRIBUTE, 0x00310008),
        E(IOCTL_SMARTCARD_SET_ATTRIBUTE, 0x0031000C),
        E(IOCTL_SMARTCARD_CONFISCATE, 0x00310010),
        E(IOCTL_SMARTCARD_TRANSMIT, 0x00310014),
        E(IOCTL_SMARTCARD_EJECT, 0x00310018),
        E(IOCTL_SMARTCARD_SWALLOW, 0x0031001C),
        E(IOCTL_SMARTCARD_READ, 0x00310020),
        E(IOCTL_SMARTCARD_WRITE, 0x00310024),
        E(IOCTL_SMARTCARD_IS_PRESENT, 0x00310028),
        E(IOCTL_SMARTCARD_IS_ABSENT, 0x0031002C),
        E(IOCTL_SMARTCARD_SET_PROTOCOL, 0x00310030),
        E(IOCTL_SMARTCARD_GET_STATE, 0x00310038),
        E(IOCTL_SMARTCARD_GET_LAST_ERROR, 0x0031003C),
        E(IOCTL_SMARTCARD_GET_PERF_CNTR, 0x00310040),
        E(IOCTL_SMARTCARD_GET_FEATURE_REQUEST, 0x00313520),
    };
    CHECK(t, smc_ioctl_name);
}

static void test_vendor_range(void **state)
{
    (void)state;
    assert_int_equal(SMC_CTL_CODE(2048), 0x00312000);
    assert_int_equal(SMC_CTL_CODE(4095), 0x00313FFC);
    assert_true(SMC_IOCTL_IS_VENDOR(0x00312000u));
    assert_true(SMC_IOCTL_IS_VENDOR(0x00313FFCu));
    assert_false(SMC_IOCTL_IS_VENDOR(0x00311FFCu));
    assert_false(SMC_IOCTL_IS_VENDOR(0x00312001u)); /* method bits set */
    assert_false(SMC_IOCTL_IS_VENDOR(0x00322000u)); /* other device type */
    assert_string_equal(smc_ioctl_name(0x00312004u), "IOCTL_SMARTCARD_VENDOR");
    assert_null(smc_ioctl_name(0x00310034u)); /* function 13 unused */
}

static void test_states(void **state)
{
    (void)state;
    static const struct expect t[] = {
        E(SCARD_UNKNOWN, 0), E(SCARD_ABSENT, 1),     E(SCARD_PRESENT, 2),  E(SCARD_SWALLOWED, 3),
        E(SCARD_POWERED, 4), E(SCARD_NEGOTIABLE, 5), E(SCARD_SPECIFIC, 6),
    };
    CHECK(t, smc_state_name);
    assert_null(smc_state_name(7));
}

static void test_protocols_and_power(void **state)
{
    (void)state;
    static const struct expect p[] = {
        E(SCARD_PROTOCOL_UNDEFINED, 0x00000000), E(SCARD_PROTOCOL_T0, 0x00000001),
        E(SCARD_PROTOCOL_T1, 0x00000002),        E(SCARD_PROTOCOL_RAW, 0x00010000),
        E(SCARD_PROTOCOL_Tx, 0x00000003),        E(SCARD_PROTOCOL_DEFAULT, 0x80000000),
    };
    CHECK(p, smc_protocol_name);
    assert_int_equal(SCARD_PROTOCOL_OPTIMAL, 0);
    static const struct expect w[] = {
        E(SCARD_POWER_DOWN, 0),
        E(SCARD_COLD_RESET, 1),
        E(SCARD_WARM_RESET, 2),
    };
    CHECK(w, smc_power_name);
}

static void test_attributes(void **state)
{
    (void)state;
    static const struct expect t[] = {
        E(SCARD_ATTR_VENDOR_NAME, 0x00010100),
        E(SCARD_ATTR_VENDOR_IFD_TYPE, 0x00010101),
        E(SCARD_ATTR_VENDOR_IFD_VERSION, 0x00010102),
        E(SCARD_ATTR_VENDOR_IFD_SERIAL_NO, 0x00010103),
        E(SCARD_ATTR_CHANNEL_ID, 0x00020110),
        E(SCARD_ATTR_PROTOCOL_TYPES, 0x00030120),
        E(SCARD_ATTR_DEFAULT_CLK, 0x00030121),
        E(SCARD_ATTR_MAX_CLK, 0x00030122),
        E(SCARD_ATTR_DEFAULT_DATA_RATE, 0x00030123),
        E(SCARD_ATTR_MAX_DATA_RATE, 0x00030124),
        E(SCARD_ATTR_MAX_IFSD, 0x00030125),
        E(SCARD_ATTR_SYNC_PROTOCOL_TYPES, 0x00030126),
        E(SCARD_ATTR_POWER_MGMT_SUPPORT, 0x00040131),
        E(SCARD_ATTR_USER_TO_CARD_AUTH_DEVICE, 0x00050140),
        E(SCARD_ATTR_USER_AUTH_INPUT_DEVICE, 0x00050142),
        E(SCARD_ATTR_CHARACTERISTICS, 0x00060150),
        E(SCARD_ATTR_CURRENT_PROTOCOL_TYPE, 0x00080201),
        E(SCARD_ATTR_CURRENT_CLK, 0x00080202),
        E(SCARD_ATTR_CURRENT_F, 0x00080203),
        E(SCARD_ATTR_CURRENT_D, 0x00080204),
        E(SCARD_ATTR_CURRENT_N, 0x00080205),
        E(SCARD_ATTR_CURRENT_W, 0x00080206),
        E(SCARD_ATTR_CURRENT_IFSC, 0x00080207),
        E(SCARD_ATTR_CURRENT_IFSD, 0x00080208),
        E(SCARD_ATTR_CURRENT_BWT, 0x00080209),
        E(SCARD_ATTR_CURRENT_CWT, 0x0008020A),
        E(SCARD_ATTR_CURRENT_EBC_ENCODING, 0x0008020B),
        E(SCARD_ATTR_EXTENDED_BWT, 0x0008020C),
        E(SCARD_ATTR_ICC_PRESENCE, 0x00090300),
        E(SCARD_ATTR_ICC_INTERFACE_STATUS, 0x00090301),
        E(SCARD_ATTR_CURRENT_IO_STATE, 0x00090302),
        E(SCARD_ATTR_ATR_STRING, 0x00090303),
        E(SCARD_ATTR_ICC_TYPE_PER_ATR, 0x00090304),
        E(SCARD_ATTR_ESC_RESET, 0x0007A000),
        E(SCARD_ATTR_ESC_CANCEL, 0x0007A003),
        E(SCARD_ATTR_ESC_AUTHREQUEST, 0x0007A005),
        E(SCARD_ATTR_MAXINPUT, 0x0007A007),
        E(SCARD_ATTR_VENDOR_SPECIFIC_INFO, 0x0007A008),
        E(SCARD_ATTR_DEVICE_UNIT, 0x7FFF0001),
        E(SCARD_ATTR_DEVICE_IN_USE, 0x7FFF0002),
        E(SCARD_ATTR_DEVICE_FRIENDLY_NAME_A, 0x7FFF0003),
        E(SCARD_ATTR_DEVICE_SYSTEM_NAME_A, 0x7FFF0004),
        E(SCARD_ATTR_DEVICE_FRIENDLY_NAME_W, 0x7FFF0005),
        E(SCARD_ATTR_DEVICE_SYSTEM_NAME_W, 0x7FFF0006),
        E(SCARD_ATTR_SUPRESS_T1_IFS_REQUEST, 0x7FFF0007),
        E(SCARD_PERF_NUM_TRANSMISSIONS, 0x7FFE0001),
        E(SCARD_PERF_BYTES_TRANSMITTED, 0x7FFE0002),
        E(SCARD_PERF_TRANSMISSION_TIME, 0x7FFE0003),
    };
    CHECK(t, smc_attr_name);
    assert_int_equal(SCARD_ATTR_ASYNC_PROTOCOL_TYPES, 0x00030120);
    assert_int_equal(SCARD_ATTR_DEVICE_FRIENDLY_NAME, 0x7FFF0003);
    assert_int_equal(SCARD_ATTR_DEVICE_SYSTEM_NAME, 0x7FFF0004);
    assert_int_equal(SMC_ATTR_VALUE(SCARD_CLASS_ICC_STATE, 0x0303), 0x00090303);
    assert_int_equal(SCARD_CLASS_PERF, 0x7FFE);
    assert_int_equal(SCARD_CLASS_SYSTEM, 0x7FFF);
    assert_int_equal(smc_attr_format(SCARD_ATTR_VENDOR_NAME), SMC_AF_STRING);
    assert_int_equal(smc_attr_format(SCARD_ATTR_ATR_STRING), SMC_AF_BYTES);
    assert_int_equal(smc_attr_format(0x12345678), SMC_AF_NONE);
}

static const char *status_name_u32(uint32_t s)
{
    return smc_status_name(s);
}

static void test_status_codes(void **state)
{
    (void)state;
    static const struct expect t[] = {
        E(STATUS_SUCCESS, 0x00000000),
        E(STATUS_TIMEOUT, 0x00000102),
        E(STATUS_PENDING, 0x00000103),
        E(STATUS_BUFFER_OVERFLOW, 0x80000005),
        E(STATUS_DEVICE_POWERED_OFF, 0x8000000F),
        E(STATUS_DEVICE_OFF_LINE, 0x80000010),
        E(STATUS_DEVICE_BUSY, 0x80000011),
        E(STATUS_UNSUCCESSFUL, 0xC0000001),
        E(STATUS_NOT_IMPLEMENTED, 0xC0000002),
        E(STATUS_INVALID_PARAMETER, 0xC000000D),
        E(STATUS_NO_SUCH_DEVICE, 0xC000000E),
        E(STATUS_INVALID_DEVICE_REQUEST, 0xC0000010),
        E(STATUS_UNRECOGNIZED_MEDIA, 0xC0000014),
        E(STATUS_MORE_PROCESSING_REQUIRED, 0xC0000016),
        E(STATUS_ACCESS_DENIED, 0xC0000022),
        E(STATUS_BUFFER_TOO_SMALL, 0xC0000023),
        E(STATUS_CRC_ERROR, 0xC000003F),
        E(STATUS_DELETE_PENDING, 0xC0000056),
        E(STATUS_INSUFFICIENT_RESOURCES, 0xC000009A),
        E(STATUS_DEVICE_NOT_CONNECTED, 0xC000009D),
        E(STATUS_IO_TIMEOUT, 0xC00000B5),
        E(STATUS_NOT_SUPPORTED, 0xC00000BB),
        E(STATUS_INVALID_PARAMETER_1, 0xC00000EF),
        E(STATUS_INVALID_PARAMETER_2, 0xC00000F0),
        E(STATUS_CANCELLED, 0xC0000120),
        E(STATUS_NO_MEDIA, 0xC0000178),
        E(STATUS_INVALID_DEVICE_STATE, 0xC0000184),
        E(STATUS_IO_DEVICE_ERROR, 0xC0000185),
        E(STATUS_DEVICE_PROTOCOL_ERROR, 0xC0000186),
    };
    CHECK(t, status_name_u32);
    assert_string_equal(smc_status_message(STATUS_NO_MEDIA), "no card in the reader");
    assert_null(smc_status_name(0xC0FFEE00u));
}

static void test_reader_types_and_mechanics(void **state)
{
    (void)state;
    static const struct expect t[] = {
        E(SCARD_READER_TYPE_SERIAL, 0x01),   E(SCARD_READER_TYPE_PARALELL, 0x02),
        E(SCARD_READER_TYPE_KEYBOARD, 0x04), E(SCARD_READER_TYPE_SCSI, 0x08),
        E(SCARD_READER_TYPE_IDE, 0x10),      E(SCARD_READER_TYPE_USB, 0x20),
        E(SCARD_READER_TYPE_PCMCIA, 0x40),   E(SCARD_READER_TYPE_TPM, 0x80),
        E(SCARD_READER_TYPE_NFC, 0x100),     E(SCARD_READER_TYPE_UICC, 0x200),
        E(SCARD_READER_TYPE_NGC, 0x400),     E(SCARD_READER_TYPE_EMBEDDEDSE, 0x800),
        E(SCARD_READER_TYPE_VENDOR, 0xF0),
    };
    CHECK(t, smc_reader_type_name);
    static const struct expect m[] = {
        E(SCARD_READER_SWALLOWS, 1),
        E(SCARD_READER_EJECTS, 2),
        E(SCARD_READER_CONFISCATES, 4),
        E(SCARD_READER_CONTACTLESS, 8),
    };
    CHECK(m, NULL);
}

/* PC/SC part 10 feature tags, typed from the PC/SC Workgroup's part 10 (and <PCSC/reader.h>). */
static void test_pcsc_feature_names(void **state)
{
    (void)state;
    static const struct {
        uint32_t tag;
        const char *name;
    } t[] = {
        {0x01, "FEATURE_VERIFY_PIN_START"},   {0x06, "FEATURE_VERIFY_PIN_DIRECT"},
        {0x07, "FEATURE_MODIFY_PIN_DIRECT"},  {0x0A, "FEATURE_IFD_PIN_PROPERTIES"},
        {0x12, "FEATURE_GET_TLV_PROPERTIES"}, {0x13, "FEATURE_CCID_ESC_COMMAND"},
        {0x20, "FEATURE_EXECUTE_PACE"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        const char *n = smc_pcsc_feature_name(t[i].tag);
        if (!n || strcmp(n, t[i].name) != 0)
            fail_msg("feature 0x%02X is %s, want %s", t[i].tag, n ? n : "(null)", t[i].name);
    }
    assert_null(smc_pcsc_feature_name(0x14));
    assert_null(smc_pcsc_feature_name(0));
}

static void test_sizes_and_t1(void **state)
{
    (void)state;
    static const struct expect t[] = {
        E(SMCLIB_VERSION, 0x150),
        E(SMCLIB_VERSION_REQUIRED, 0x100),
        E(MIN_BUFFER_SIZE, 288),
        E(MAXIMUM_ATR_CODES, 4),
        E(MAXIMUM_ATR_LENGTH, 33),
        E(SCARD_ATR_LENGTH, 33),
        E(MAXIMUM_ATTR_STRING_LENGTH, 32),
        E(MAXIMUM_SMARTCARD_READERS, 10),
        E(SCARD_T0_HEADER_LENGTH, 7),
        E(SCARD_T0_CMD_LENGTH, 5),
        E(SCARD_T1_PROLOGUE_LENGTH, 3),
        E(SCARD_T1_EPILOGUE_LENGTH, 2),
        E(SCARD_T1_MAX_IFS, 254),
        E(T1_INIT, 0),
        E(T1_START, 1),
        E(T1_I_BLOCK, 2),
        E(T1_R_BLOCK, 3),
        E(T1_RESTART, 4),
        E(T1_RESYNCH_REQUEST, 0xC0),
        E(T1_RESYNCH_RESPONSE, 0xE0),
        E(T1_IFS_REQUEST, 0xC1),
        E(T1_IFS_RESPONSE, 0xE1),
        E(T1_ABORT_REQUEST, 0xC2),
        E(T1_ABORT_RESPONSE, 0xE2),
        E(T1_WTX_REQUEST, 0xC3),
        E(T1_WTX_RESPONSE, 0xE3),
        E(T1_VPP_ERROR, 0xE4),
        E(T1_IFSD, 254),
        E(T1_IFSD_DEFAULT, 32),
        E(T1_MAX_RETRIES, 2),
        E(T1_MORE_DATA, 0x20),
        E(T1_ERROR_CHKSUM, 1),
        E(T1_ERROR_OTHER, 2),
        E(T1_CRC_CHECK, 1),
        E(T1_CWI_DEFAULT, 13),
        E(T1_BWI_DEFAULT, 4),
        E(PTS_TYPE_DEFAULT, 0),
        E(PTS_TYPE_OPTIMAL, 1),
        E(PTS_TYPE_USER, 2),
        E(SMC_ICC_ABSENT, 0),
        E(SMC_ICC_PRESENT, 1),
        E(SMC_ICC_SWALLOWED, 2),
        E(SMC_ICC_CONFISCATED, 4),
    };
    CHECK(t, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ioctl_codes),
        cmocka_unit_test(test_vendor_range),
        cmocka_unit_test(test_states),
        cmocka_unit_test(test_protocols_and_power),
        cmocka_unit_test(test_attributes),
        cmocka_unit_test(test_status_codes),
        cmocka_unit_test(test_reader_types_and_mechanics),
        cmocka_unit_test(test_pcsc_feature_names),
        cmocka_unit_test(test_sizes_and_t1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
