/*
 * The fast path's AES-CTR keystream in batches (fastpath.c says why it exists, what it assumes,
 * and when it is on).
 *
 * libssh2 1.10 encrypts and decrypts every packet one cipher block at a time: transport.c calls
 * crypt() per 16 bytes, and openssl.c turns each into one EVP_Cipher call. A call costs far more
 * than the 16 bytes it processes (a serial AES-NI round chain plus EVP dispatch): profiled on a
 * tunnel download, about 40% of dbgbox's CPU went there (scripts/bench.sh; the issue-3 note).
 *
 * In CTR mode the keystream does not depend on the data. So for libssh2's own AES-CTR contexts we
 * make the keystream 8 KiB at a time from a copy of the context (one EVP_Cipher call on zeros,
 * where AES-NI pipelines) and XOR each 16-byte call with the next bytes of it. The bytes are
 * exactly OpenSSL's (the start-up self-test and dbgbox_batch_selftest compare them), and a wrong
 * byte could not pass unnoticed anyway: every packet's MAC covers its plaintext.
 *
 * How: this file defines EVP_Cipher and EVP_CIPHER_CTX_free, which libssh2's calls bind to. They
 * act only when the caller's return address lies in libssh2's code, and hand everything else (and
 * everything when the fast path is off) to OpenSSL's functions, found with dlsym(RTLD_NEXT). The
 * keystream hangs off the context's app_data, which libssh2's EVP path leaves unused, and is wiped
 * and freed when libssh2 frees the context (every rekey makes new ones). A context that has a
 * keystream keeps it to its end; a plain one takes one, from its current counter, on its first
 * call while the fast path is on (a test can turn it off and on in a running process). A context
 * is used by one thread at a time (one libssh2 session), so no lock is needed on the hot path.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>

#include "fastpath_internal.h"
#include "libssh2_fastpath.h"

#define KEYSTREAM_BYTES 8192
#define KEYSTREAM_MAGIC 0x64626762786b7331ULL /* "dbgbxks1" */

struct keystream {
    uint64_t magic;
    const EVP_CIPHER_CTX *owner;
    EVP_CIPHER_CTX *generator; /* a copy of the owner, run ahead on zeros */
    size_t position;
    size_t length;
    unsigned char bytes[KEYSTREAM_BYTES];
};

/* app_data of libssh2 contexts that are not AES-CTR: looked at once, then passed through. */
static const uint64_t not_ctr_marker = 0;
#define NOT_CTR ((void *)&not_ctr_marker)

static cipher_function openssl_cipher;
static cipher_free_function openssl_free;
static _Atomic uint64_t contexts;
/* Bumped whenever a keystream is freed: a thread's one-entry cache below is trusted only while
 * this has not moved (a freed context's address may come back for a new one). */
static _Atomic uint64_t releases;
static pthread_once_t setup_once = PTHREAD_ONCE_INIT;

/* The last context this thread batched and its keystream: libssh2 makes runs of calls on one
 * context (a packet's blocks), so this skips the app_data lookup for nearly every call. */
static __thread EVP_CIPHER_CTX *cached_ctx;
static __thread struct keystream *cached_ks;
static __thread uint64_t cached_releases;
static const unsigned char zeros[KEYSTREAM_BYTES];

static void setup(void) {
    openssl_cipher = (cipher_function)dlsym(RTLD_NEXT, "EVP_Cipher");
    openssl_free = (cipher_free_function)dlsym(RTLD_NEXT, "EVP_CIPHER_CTX_free");
}

int dbgbox_cipher_resolve(void) {
    pthread_once(&setup_once, setup);
    return openssl_cipher && openssl_free;
}

static void release(struct keystream *ks) {
    atomic_fetch_add_explicit(&releases, 1, memory_order_release);
    if (ks->generator) openssl_free(ks->generator);
    OPENSSL_cleanse(ks, sizeof *ks);
    free(ks);
}

/* The context's keystream, made on first use if `make`; NULL when the context is not AES-CTR (or
 * a copy failed, or it has none and `make` is 0): then OpenSSL does the work as before. */
static struct keystream *keystream_for(EVP_CIPHER_CTX *ctx, int make) {
    void *data = EVP_CIPHER_CTX_get_app_data(ctx);
    if (data == NOT_CTR) return NULL;
    if (data) {
        struct keystream *ks = data;
        return (ks->magic == KEYSTREAM_MAGIC && ks->owner == ctx) ? ks : NULL;
    }
    if (!make) return NULL;
    int nid = EVP_CIPHER_CTX_get_nid(ctx);
    if (nid != NID_aes_128_ctr && nid != NID_aes_192_ctr && nid != NID_aes_256_ctr) {
        EVP_CIPHER_CTX_set_app_data(ctx, NOT_CTR);
        return NULL;
    }
    struct keystream *ks = calloc(1, sizeof *ks);
    if (!ks) return NULL;
    ks->generator = EVP_CIPHER_CTX_new();
    if (!ks->generator || !EVP_CIPHER_CTX_copy(ks->generator, ctx)) {
        release(ks);
        EVP_CIPHER_CTX_set_app_data(ctx, NOT_CTR);
        return NULL;
    }
    ks->magic = KEYSTREAM_MAGIC;
    ks->owner = ctx;
    EVP_CIPHER_CTX_set_app_data(ctx, ks);
    atomic_fetch_add_explicit(&contexts, 1, memory_order_relaxed);
    return ks;
}

/* out = in XOR k, n bytes. */
static inline void xor_bytes(unsigned char *out, const unsigned char *in, const unsigned char *k, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t a, b;
        memcpy(&a, in + i, 8);
        memcpy(&b, k + i, 8);
        a ^= b;
        memcpy(out + i, &a, 8);
    }
    for (; i < n; i++) out[i] = in[i] ^ k[i];
}

/* out = in XOR the next `length` keystream bytes. Returns 0, or -1 if OpenSSL failed. Kept out
 * of line: EVP_Cipher runs once per 16 bytes, and its one-block path stays small without it. */
__attribute__((noinline)) static int batch_crypt(struct keystream *ks, unsigned char *out, const unsigned char *in, size_t length) {
    size_t done = 0;
    while (done < length) {
        if (ks->position == ks->length) {
            int made = openssl_cipher(ks->generator, ks->bytes, zeros, KEYSTREAM_BYTES);
            if (made == -1 || made == 0) return -1;
            ks->position = 0;
            ks->length = KEYSTREAM_BYTES;
        }
        size_t n = length - done;
        if (n > ks->length - ks->position) n = ks->length - ks->position;
        xor_bytes(out + done, in + done, ks->bytes + ks->position, n);
        ks->position += n;
        done += n;
    }
    return 0;
}

/* Set up before main (and so before any thread), so the hot path reads plain globals. */
__attribute__((constructor)) static void setup_at_load(void) { pthread_once(&setup_once, setup); }

int EVP_Cipher(EVP_CIPHER_CTX *ctx, unsigned char *out, const unsigned char *in, unsigned int inl) {
    if (__builtin_expect(!openssl_cipher, 0)) {
        pthread_once(&setup_once, setup);
        if (!openssl_cipher) return -1;
    }
    if (!ctx || !out || !in || !dbgbox_from_libssh2(__builtin_return_address(0)))
        return openssl_cipher(ctx, out, in, inl);
    int on = dbgbox_fastpath_on();
    if (!on && !dbgbox_fastpath_was_used()) return openssl_cipher(ctx, out, in, inl);
    struct keystream *ks;
    uint64_t now = atomic_load_explicit(&releases, memory_order_acquire);
    if (ctx == cached_ctx && now == cached_releases) {
        ks = cached_ks;
    } else {
        ks = keystream_for(ctx, on);
        if (!ks) return openssl_cipher(ctx, out, in, inl);
        cached_ctx = ctx;
        cached_ks = ks;
        cached_releases = now;
    }
    /* libssh2's calls are one 16-byte block: with the size known, the XOR is two words. */
    if (inl == 16 && ks->length - ks->position >= 16) {
        xor_bytes(out, in, ks->bytes + ks->position, 16);
        ks->position += 16;
        return 16;
    }
    return batch_crypt(ks, out, in, inl) == 0 ? (int)inl : -1;
}

void EVP_CIPHER_CTX_free(EVP_CIPHER_CTX *ctx) {
    pthread_once(&setup_once, setup);
    if (!openssl_free) return;
    if (ctx && dbgbox_fastpath_was_used() && dbgbox_from_libssh2(__builtin_return_address(0))) {
        void *data = EVP_CIPHER_CTX_get_app_data(ctx);
        if (data == NOT_CTR) {
            EVP_CIPHER_CTX_set_app_data(ctx, NULL);
        } else if (data) {
            struct keystream *ks = data;
            if (ks->magic == KEYSTREAM_MAGIC && ks->owner == ctx) {
                EVP_CIPHER_CTX_set_app_data(ctx, NULL);
                release(ks);
            }
        }
    }
    openssl_free(ctx);
}

int dbgbox_batch_enabled(void) {
    return dbgbox_fastpath_on();
}

int dbgbox_cipher_batched(EVP_CIPHER_CTX *ctx) {
    void *data = EVP_CIPHER_CTX_get_app_data(ctx);
    const struct keystream *ks = data;
    return data && data != NOT_CTR && ks->magic == KEYSTREAM_MAGIC && ks->owner == ctx;
}

uint64_t dbgbox_batch_contexts(void) {
    return atomic_load_explicit(&contexts, memory_order_relaxed);
}

int dbgbox_batch_selftest(size_t rounds) {
    pthread_once(&setup_once, setup);
    if (!openssl_cipher || !openssl_free) return 1;
    const EVP_CIPHER *ciphers[] = { EVP_aes_128_ctr(), EVP_aes_192_ctr(), EVP_aes_256_ctr() };
    unsigned char key[32], iv[16];
    unsigned char *plain = malloc(65536), *expected = malloc(65536), *actual = malloc(65536);
    if (!plain || !expected || !actual) { free(plain); free(expected); free(actual); return 2; }
    uint32_t state = 0x9e3779b9u;
    #define NEXT() (state ^= state << 13, state ^= state >> 17, state ^= state << 5, state)
    int failure = 0;
    for (size_t c = 0; c < 3 && !failure; c++) {
        for (size_t i = 0; i < sizeof key; i++) key[i] = (unsigned char)NEXT();
        for (size_t i = 0; i < sizeof iv; i++) iv[i] = (unsigned char)NEXT();
        iv[15] = 0xf0; iv[14] = 0xff; /* the counter carries across bytes soon */
        EVP_CIPHER_CTX *reference = EVP_CIPHER_CTX_new();
        EVP_CIPHER_CTX *batched = EVP_CIPHER_CTX_new();
        if (!reference || !batched
            || !EVP_CipherInit(reference, ciphers[c], key, iv, 1)
            || !EVP_CipherInit(batched, ciphers[c], key, iv, 1)) {
            failure = 3;
        }
        struct keystream *ks = failure ? NULL : keystream_for(batched, 1);
        if (!failure && !ks) failure = 4;
        for (size_t r = 0; r < rounds && !failure; r++) {
            /* Mostly single blocks, as libssh2 calls; sometimes runs of blocks or a whole
             * keystream and more (refills mid-call). */
            size_t length = 16;
            uint32_t pick = NEXT() % 16;
            if (pick == 0) length = 16 * (1 + NEXT() % 2048);
            else if (pick == 1) length = 1 + NEXT() % 40000;
            for (size_t i = 0; i < length; i++) plain[i] = (unsigned char)NEXT();
            int made = openssl_cipher(reference, expected, plain, (unsigned int)length);
            if (made == -1 || made == 0) { failure = 5; break; }
            if (batch_crypt(ks, actual, plain, length) != 0) { failure = 6; break; }
            if (memcmp(expected, actual, length) != 0) { failure = 7; break; }
        }
        if (ks) { EVP_CIPHER_CTX_set_app_data(batched, NULL); release(ks); }
        if (reference) openssl_free(reference);
        if (batched) openssl_free(batched);
    }
    #undef NEXT
    free(plain); free(expected); free(actual);
    return failure;
}
