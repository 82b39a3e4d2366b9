#ifndef DBGBOX_LIBSSH2_BATCH_H
#define DBGBOX_LIBSSH2_BATCH_H

#include <stddef.h>
#include <stdint.h>

/*
 * AES-CTR in batches for libssh2 1.10 (see libssh2_batch.c). These functions are for the SSH
 * module and its tests; the work itself happens in the EVP_Cipher and EVP_CIPHER_CTX_free
 * definitions, which the dynamic linker binds libssh2's calls to.
 */

/* Whether libssh2's AES-CTR calls are batched in this process (0 after DBGBOX_LIBSSH2_BATCH=0,
 * or when libssh2's code could not be located). */
int dbgbox_batch_enabled(void);

/* How many libssh2 cipher contexts have been given a keystream so far (a probe for tests). */
uint64_t dbgbox_batch_contexts(void);

/* Checks the batched path against OpenSSL's own AES-CTR for every key size, over `rounds` calls
 * of irregular lengths (16-byte blocks as libssh2 makes them, and odd sizes). Returns 0 when every
 * byte matches, else a positive code saying which check failed. */
int dbgbox_batch_selftest(size_t rounds);

#endif
