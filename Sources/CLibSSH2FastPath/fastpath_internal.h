/*
 * Shared by the interposers of this target (aes_ctr.c, hmac_padding.c) and the gate (fastpath.c):
 * whether a call comes from libssh2's code, and whether the fast path is on.
 */
#ifndef DBGBOX_FASTPATH_INTERNAL_H
#define DBGBOX_FASTPATH_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include <openssl/types.h>

/* libssh2's executable segment (set by the gate; empty until then). */
extern uintptr_t dbgbox_libssh2_text_start;
extern uintptr_t dbgbox_libssh2_text_end;

enum { FASTPATH_UNDECIDED = 0, FASTPATH_ON = 1, FASTPATH_OFF = 2 };
extern _Atomic int dbgbox_fastpath_state;
/* 1 once fast-path contexts may exist (the first self-test makes some): from then on the
 * interposers look for theirs on every libssh2 call, even if a test turned the fast path off. */
extern _Atomic int dbgbox_fastpath_used;
/* 1 on the thread running the self-test, around its calls of the interposed functions: they then
 * act as for libssh2's calls. */
extern __thread int dbgbox_fastpath_selftest_thread;

/* Runs the checks and the self-test once per process (pthread_once); returns 1 when on. */
int dbgbox_fastpath_decide(void);

static inline int dbgbox_from_libssh2(const void *return_address) {
    uintptr_t address = (uintptr_t)return_address;
    return (address >= dbgbox_libssh2_text_start && address < dbgbox_libssh2_text_end)
        || dbgbox_fastpath_selftest_thread;
}

/* Whether new contexts, MACs and padding take the fast path: one load once decided. */
static inline int dbgbox_fastpath_on(void) {
    int state = atomic_load_explicit(&dbgbox_fastpath_state, memory_order_acquire);
    if (__builtin_expect(state == FASTPATH_ON, 1)) return 1;
    if (dbgbox_fastpath_selftest_thread) return 1;
    if (state == FASTPATH_OFF) return 0;
    return dbgbox_fastpath_decide();
}

static inline int dbgbox_fastpath_was_used(void) {
    return atomic_load_explicit(&dbgbox_fastpath_used, memory_order_acquire);
}

/* The eight interposed OpenSSL functions' types. */
typedef int (*cipher_function)(EVP_CIPHER_CTX *, unsigned char *, const unsigned char *, unsigned int);
typedef void (*cipher_free_function)(EVP_CIPHER_CTX *);
typedef HMAC_CTX *(*hmac_new_function)(void);
typedef void (*hmac_free_function)(HMAC_CTX *);
typedef int (*hmac_init_function)(HMAC_CTX *, const void *, int, const EVP_MD *, ENGINE *);
typedef int (*hmac_update_function)(HMAC_CTX *, const unsigned char *, size_t);
typedef int (*hmac_final_function)(HMAC_CTX *, unsigned char *, unsigned int *);
typedef int (*rand_function)(unsigned char *, int);

/* Each interposer file finds OpenSSL's own functions (dlsym(RTLD_NEXT)) once; 1 when all found. */
int dbgbox_cipher_resolve(void);
int dbgbox_mac_resolve(void);

/* For the self-test: whether libssh2's context is on the fast path (a keystream of ours; one of our
 * HMAC contexts, its MAC made here rather than by OpenSSL inside). */
int dbgbox_cipher_batched(EVP_CIPHER_CTX *ctx);
int dbgbox_mac_fast(HMAC_CTX *ctx);

#endif
