#ifndef DBGBOX_LIBSSH2_FASTPATH_H
#define DBGBOX_LIBSSH2_FASTPATH_H

#include <stddef.h>
#include <stdint.h>

/*
 * The libssh2 1.10 fast path (fastpath.c says why, what it assumes and how it is switched off):
 * AES-CTR keystream in batches (aes_ctr.c), HMAC from kept key states and padding bytes from a
 * per-thread pool (hmac_padding.c). These functions are for the SSH module and its tests; the
 * work itself happens in the OpenSSL functions these files define, which the dynamic linker binds
 * libssh2's calls to.
 */

/* Why the fast path is on or off in this process. */
enum dbgbox_fastpath_cause {
    DBGBOX_FASTPATH_ON = 0,
    DBGBOX_FASTPATH_OFF_SWITCH = 1,      /* DBGBOX_LIBSSH2_BATCH=0 */
    DBGBOX_FASTPATH_OFF_VERSION = 2,     /* the libssh2 or OpenSSL loaded is not the one it was made for */
    DBGBOX_FASTPATH_OFF_UNAVAILABLE = 3, /* libssh2's code, an OpenSSL function or the interposing not found */
    DBGBOX_FASTPATH_OFF_SELFTEST = 4,    /* the known-answer self-test failed */
};

struct dbgbox_fastpath_report {
    int enabled;                   /* 1: libssh2's calls take the fast path */
    int cause;                     /* enum dbgbox_fastpath_cause */
    uint64_t selftest_nanoseconds; /* how long the self-test took; 0 when it did not run */
    uint64_t openssl_setup_nanoseconds; /* OpenSSL's first-use setup just before it (once per process) */
    char reason[192];              /* empty when on, else why off (one line, no period) */
    char libssh2_version[64];      /* of the libssh2 loaded (libssh2_version(0)), or "not loaded" */
    char openssl_version[96];      /* of the libcrypto loaded (OpenSSL_version(OPENSSL_VERSION)) */
};

/* Decides, on the first call in a process (once, thread-safely; libssh2's first call to one of the
 * interposed functions decides too), whether the fast path is on, running the self-test; then
 * fills `out`. Never fails. */
void dbgbox_fastpath_get_report(struct dbgbox_fastpath_report *out);

/* 1 when libssh2's calls take the fast path in this process (decides first if need be). */
int dbgbox_fastpath_enabled(void);

/*
 * TEST ONLY. Decides again, now, as if `fault` were true of this process, and returns the new
 * state's cause: for tests of the checks themselves. It never turns on what the real checks turned
 * off. It is safe while sessions run: a cipher context with a keystream keeps it to its end, an
 * HMAC context stays what it was made as, and a plain AES-CTR context takes a keystream from its
 * current counter when the fast path is on again. The same faults can be set for a whole process
 * with the environment variable DBGBOX_FASTPATH_TEST_FAULT=aes|hmac|libssh2|openssl (test only).
 */
enum dbgbox_fastpath_test_fault {
    DBGBOX_FASTPATH_FAULT_NONE = 0,
    DBGBOX_FASTPATH_FAULT_AES = 1,     /* one bit of the expected AES-128-CTR bytes flipped */
    DBGBOX_FASTPATH_FAULT_HMAC = 2,    /* one bit of the expected HMAC-SHA-256 bytes flipped */
    DBGBOX_FASTPATH_FAULT_LIBSSH2 = 3, /* libssh2 says 1.11.0 */
    DBGBOX_FASTPATH_FAULT_OPENSSL = 4, /* OpenSSL says 1.1.1w */
};
int dbgbox_fastpath_test_redecide(int fault);

/* Whether libssh2's AES-CTR calls are batched in this process (the fast path is on). */
int dbgbox_batch_enabled(void);

/* How many libssh2 cipher contexts have been given a keystream so far (a probe for tests). */
uint64_t dbgbox_batch_contexts(void);

/* Checks the batched path against OpenSSL's own AES-CTR for every key size, over `rounds` calls
 * of irregular lengths (16-byte blocks as libssh2 makes them, and odd sizes). Returns 0 when every
 * byte matches, else a positive code saying which check failed. */
int dbgbox_batch_selftest(size_t rounds);

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
