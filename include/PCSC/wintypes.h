/*
 * Windows-style scalar types of the PC/SC API as libpcsclite defines them on Linux.
 *
 * The widths are part of the ABI of libpcsclite.so.1 on LP64 systems: DWORD, ULONG and LONG are
 * `unsigned long` / `long`, i.e. 8 bytes on x86-64 (not 4 as on Windows or macOS). Applications
 * built against pcsc-lite's headers pass these widths, so scrm's headers must use the same ones.
 * Only the PC/SC surface (include/PCSC and src/client) uses these names.
 */
#ifndef SCRM_PCSC_WINTYPES_H
#define SCRM_PCSC_WINTYPES_H

#ifdef __cplusplus
extern "C" {
#endif

#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif

typedef unsigned char BYTE;
typedef unsigned char UCHAR;
typedef UCHAR *PUCHAR;
typedef unsigned short USHORT;
typedef unsigned short WORD;
typedef short BOOL;

typedef unsigned long ULONG;
typedef ULONG *PULONG;
typedef unsigned long DWORD;
typedef DWORD *PDWORD;
typedef DWORD *LPDWORD;
typedef long LONG;

typedef void *LPVOID;
typedef const void *LPCVOID;
typedef const BYTE *LPCBYTE;
typedef BYTE *LPBYTE;
typedef char *LPSTR;
typedef const char *LPCSTR;
typedef LPSTR LPTSTR;
typedef LPCSTR LPCTSTR;

#ifdef __cplusplus
}
#endif

#endif
