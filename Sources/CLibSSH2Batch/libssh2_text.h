/*
 * Shared by the interposers of this target (libssh2_batch.c, libssh2_mac.c): where libssh2's code
 * lies, so that each interposed OpenSSL function acts only on calls made from libssh2, and
 * whether interposing is wanted at all (DBGBOX_LIBSSH2_BATCH=0 turns every one of them off).
 */
#ifndef DBGBOX_LIBSSH2_TEXT_H
#define DBGBOX_LIBSSH2_TEXT_H

#include <stdint.h>

extern uintptr_t dbgbox_libssh2_text_start;
extern uintptr_t dbgbox_libssh2_text_end;

/* Finds libssh2's executable segment (once; later calls return at once). Returns 1 when
 * interposing is wanted and libssh2 was found, else 0. */
int dbgbox_libssh2_locate(void);

static inline int dbgbox_from_libssh2(const void *return_address) {
    uintptr_t address = (uintptr_t)return_address;
    return address >= dbgbox_libssh2_text_start && address < dbgbox_libssh2_text_end;
}

#endif
