/*
 * bcryptprimitives.dll for wine before 8.13, which lacks ProcessPrng.
 *
 * Rust's standard library (1.78 and later) takes its random bytes from
 * ProcessPrng in bcryptprimitives.dll; a program that imports a function
 * the DLL does not export does not start (wine 8.0, Debian 12's, exits with
 * status 53 before main). This DLL exports ProcessPrng and nothing else,
 * filled by RtlGenRandom (advapi32's SystemFunction036), which wine has
 * long had. Built with mingw by .ci/wine-tests and copied into a
 * throwaway wine prefix; never shipped.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
