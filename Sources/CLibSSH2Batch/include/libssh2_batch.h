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

/*
 * HMAC and padding bytes for libssh2 1.10 without OpenSSL 3's per-call setup (libssh2_mac.c).
 */

/* Whether libssh2's HMAC and RAND_bytes calls take the fast path in this process. */
int dbgbox_mac_enabled(void);

/* How many MACs libssh2 has started on the fast path so far (a probe for tests). */
uint64_t dbgbox_mac_count(void);

/* Wipes the table of MAC key states (the SSH module calls it whenever it frees a session; live
 * sessions derive theirs again on their next packet). */
void dbgbox_mac_forget(void);

/* Checks the fast HMAC against OpenSSL's HMAC (SHA-1, SHA-256, SHA-512; keys of libssh2's sizes,
 * longer than a block and empty; data in two pieces) over `rounds` MACs. Returns 0 when every
 * byte matches, else a positive code saying which check failed. */
int dbgbox_mac_selftest(size_t rounds);

#endif
