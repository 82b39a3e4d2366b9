/*
 * The libssh2 1.10 fast path: why it exists, what it assumes, how it is switched off.
 *
 * Why. libssh2 1.10 with OpenSSL 3 spends most of a tunnel's CPU in per-call overhead of OpenSSL,
 * not in cryptography: it makes one EVP_Cipher call per 16-byte block of every packet (about 40%
 * of dbgbox's CPU on a download), and for every packet a fresh HMAC context that fetches the digest
 * and hashes the padded key again, plus a RAND_bytes call for the padding that takes the DRBG's
 * locks (together 45% of dbgbox's user time on 64-byte echoes). This target defines those OpenSSL
 * functions in dbgbox's executable, so that the dynamic linker binds libssh2's calls to them, and
 * for calls from libssh2's code only:
 *  - aes_ctr.c: EVP_Cipher and EVP_CIPHER_CTX_free. AES-CTR keystream is made 8 KiB at a time
 *    from a copy of libssh2's context and each 16-byte call XORs the next bytes of it.
 *  - hmac_padding.c: HMAC_CTX_new, HMAC_CTX_free, HMAC_Init_ex, HMAC_Update, HMAC_Final (SHA-1,
 *    SHA-256, SHA-512 from per-key digest states kept in a small table) and RAND_bytes (padding
 *    from a per-thread pool of OpenSSL's random bytes).
 * Everything else, and everything when the fast path is off, goes to OpenSSL's own functions,
 * found with dlsym(RTLD_NEXT).
 *
 * What it assumes (facts of libssh2 1.10.x's OpenSSL backend and of OpenSSL 3.x's ABI):
 *  - libssh2 makes each cipher context with EVP_CIPHER_CTX_new + EVP_CipherInit, then only calls
 *    EVP_Cipher on it, one whole block per call, and frees it with EVP_CIPHER_CTX_free. It never
 *    uses the context's app_data, and OpenSSL's AES-CTR does not either: the keystream hangs there.
 *    EVP_CIPHER_CTX_copy gives an independent context at the same counter. OpenSSL 3's EVP_Cipher
 *    returns the byte count (-1 on error), which libssh2 1.10 checks against -1.
 *  - libssh2 treats HMAC_CTX as opaque: it touches one only through HMAC_CTX_new, HMAC_Init_ex(ctx,
 *    key, len, EVP_sha1/sha256/sha512(), NULL), HMAC_Update, HMAC_Final(ctx, out, NULL) and
 *    HMAC_CTX_free, so a context of our own can stand in for OpenSSL's. OpenSSL's SHA1_/SHA256_/
 *    SHA512_ low-level functions (deprecated in 3.x, still exported) give the digests.
 *  - libssh2's OpenSSL references are versioned (EVP_Cipher@OPENSSL_3.0.0); an unversioned
 *    definition in the executable, which comes first in the global search order, satisfies them.
 *    That needs the executable to export the eight symbols above (checked below).
 *  - A call comes from libssh2 when its return address lies in libssh2's executable segment.
 * So it turns itself on only when all of this can hold, checked once per process (pthread_once) on
 * first use: the SSH module's libssh2_init, dbgbox --version or status, or else libssh2's first
 * call to one of the eight:
 *  1. DBGBOX_LIBSSH2_BATCH is not "0" (the switch, for comparisons);
 *  2. the libssh2 loaded says 1.10.x (libssh2_version(0), at run time, not the header's);
 *  3. the libcrypto loaded is OpenSSL 3.x (OpenSSL_version_num() and OpenSSL_version());
 *  4. libssh2's code was found, OpenSSL's eight functions were found, and each of the eight names
 *     resolves in the global scope (dlsym(RTLD_DEFAULT), as libssh2's references do) to ours;
 *  5. a known-answer self-test passes through those very entry points, as libssh2 calls them:
 *     AES-128/192/256-CTR (NIST SP 800-38A F.5.1, F.5.4, F.5.5; block by block, as libssh2),
 *     HMAC-SHA-1 (RFC 2202 cases 1 and 2), HMAC-SHA-256 and HMAC-SHA-512 (RFC 4231 cases 1 and 2;
 *     each twice, the second from the key table), and two padding draws. It also checks that each
 *     call took the fast path. It takes some tens of microseconds (FastPathTests prints it),
 *     after OpenSSL's own first-use setup (milliseconds, timed apart: libssh2's first key exchange
 *     would pay it anyway).
 * If any fails, every call goes to plain OpenSSL for the rest of the process and
 * dbgbox_fastpath_get_report says why; dbgbox --version and dbgbox status print it, and a failed
 * self-test also gets a warning from the command layer (this layer never prints).
 */
#define _GNU_SOURCE
#define OPENSSL_SUPPRESS_DEPRECATED
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "fastpath_internal.h"
#include "libssh2_fastpath.h"

uintptr_t dbgbox_libssh2_text_start;
uintptr_t dbgbox_libssh2_text_end;
_Atomic int dbgbox_fastpath_state = FASTPATH_UNDECIDED;
_Atomic int dbgbox_fastpath_used;
__thread int dbgbox_fastpath_selftest_thread;

static pthread_once_t locate_once = PTHREAD_ONCE_INIT;
static pthread_once_t decide_once = PTHREAD_ONCE_INIT;
/* Guards the report below (written by a decision, read by dbgbox_fastpath_get_report). */
static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dbgbox_fastpath_report report;

/* ---- Where libssh2's code lies. */

static int find_text(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    uintptr_t target = (uintptr_t)data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        uintptr_t end = start + ph->p_memsz;
        if (target >= start && target < end) {
            dbgbox_libssh2_text_start = start;
            dbgbox_libssh2_text_end = end;
            return 1;
        }
    }
    return 0;
}

static void locate(void) {
    void *libssh2_function = dlsym(RTLD_DEFAULT, "libssh2_session_init_ex");
    if (libssh2_function) dl_iterate_phdr(find_text, libssh2_function);
}

/* Before main (and so before any thread): libssh2's calls are recognised from the first one on,
 * and the first one decides. Touches neither libssh2 nor OpenSSL. */
__attribute__((constructor)) static void locate_at_load(void) { pthread_once(&locate_once, locate); }

/* ---- The eight entry points as libssh2 reaches them. */

struct entry_points {
    cipher_function cipher;
    cipher_free_function cipher_free;
    hmac_new_function hmac_new;
    hmac_free_function hmac_free;
    hmac_init_function hmac_init;
    hmac_update_function hmac_update;
    hmac_final_function hmac_final;
    rand_function rand_bytes;
};

/* Fills `bound` with what each name resolves to in the global scope; returns the first name that
 * does not resolve to this target's definition, or NULL when all do. */
static const char *bind_entry_points(struct entry_points *bound) {
    const struct { const char *name; void *ours; void **slot; } names[] = {
        { "EVP_Cipher", (void *)EVP_Cipher, (void **)&bound->cipher },
        { "EVP_CIPHER_CTX_free", (void *)EVP_CIPHER_CTX_free, (void **)&bound->cipher_free },
        { "HMAC_CTX_new", (void *)HMAC_CTX_new, (void **)&bound->hmac_new },
        { "HMAC_CTX_free", (void *)HMAC_CTX_free, (void **)&bound->hmac_free },
        { "HMAC_Init_ex", (void *)HMAC_Init_ex, (void **)&bound->hmac_init },
        { "HMAC_Update", (void *)HMAC_Update, (void **)&bound->hmac_update },
        { "HMAC_Final", (void *)HMAC_Final, (void **)&bound->hmac_final },
        { "RAND_bytes", (void *)RAND_bytes, (void **)&bound->rand_bytes },
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        *names[i].slot = dlsym(RTLD_DEFAULT, names[i].name);
        if (*names[i].slot != names[i].ours) return names[i].name;
    }
    return NULL;
}

/* ---- The known-answer self-test. */

/* NIST SP 800-38A F.5: one counter block and plaintext for all three key sizes. */
static const unsigned char ctr_counter[16] = {
    0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff,
};
static const unsigned char ctr_plain[64] = {
    0x6b, 0xc1, 0xbe, 0xe2, 0x2e, 0x40, 0x9f, 0x96, 0xe9, 0x3d, 0x7e, 0x11, 0x73, 0x93, 0x17, 0x2a,
    0xae, 0x2d, 0x8a, 0x57, 0x1e, 0x03, 0xac, 0x9c, 0x9e, 0xb7, 0x6f, 0xac, 0x45, 0xaf, 0x8e, 0x51,
    0x30, 0xc8, 0x1c, 0x46, 0xa3, 0x5c, 0xe4, 0x11, 0xe5, 0xfb, 0xc1, 0x19, 0x1a, 0x0a, 0x52, 0xef,
    0xf6, 0x9f, 0x24, 0x45, 0xdf, 0x4f, 0x9b, 0x17, 0xad, 0x2b, 0x41, 0x7b, 0xe6, 0x6c, 0x37, 0x10,
};

struct ctr_vector {
    const char *name;
    const EVP_CIPHER *(*cipher)(void);
    int encrypt; /* 0: the vector runs backwards, ciphertext in, as libssh2's inbound contexts */
    unsigned char key[32];
    unsigned char cipher_text[64];
};

static const struct ctr_vector ctr_vectors[] = {
    { "AES-128-CTR (NIST SP 800-38A F.5.1)", EVP_aes_128_ctr, 1,
      { 0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c },
      { 0x87, 0x4d, 0x61, 0x91, 0xb6, 0x20, 0xe3, 0x26, 0x1b, 0xef, 0x68, 0x64, 0x99, 0x0d, 0xb6, 0xce,
        0x98, 0x06, 0xf6, 0x6b, 0x79, 0x70, 0xfd, 0xff, 0x86, 0x17, 0x18, 0x7b, 0xb9, 0xff, 0xfd, 0xff,
        0x5a, 0xe4, 0xdf, 0x3e, 0xdb, 0xd5, 0xd3, 0x5e, 0x5b, 0x4f, 0x09, 0x02, 0x0d, 0xb0, 0x3e, 0xab,
        0x1e, 0x03, 0x1d, 0xda, 0x2f, 0xbe, 0x03, 0xd1, 0x79, 0x21, 0x70, 0xa0, 0xf3, 0x00, 0x9c, 0xee } },
    { "AES-192-CTR (NIST SP 800-38A F.5.4)", EVP_aes_192_ctr, 0,
      { 0x8e, 0x73, 0xb0, 0xf7, 0xda, 0x0e, 0x64, 0x52, 0xc8, 0x10, 0xf3, 0x2b, 0x80, 0x90, 0x79, 0xe5,
        0x62, 0xf8, 0xea, 0xd2, 0x52, 0x2c, 0x6b, 0x7b },
      { 0x1a, 0xbc, 0x93, 0x24, 0x17, 0x52, 0x1c, 0xa2, 0x4f, 0x2b, 0x04, 0x59, 0xfe, 0x7e, 0x6e, 0x0b,
        0x09, 0x03, 0x39, 0xec, 0x0a, 0xa6, 0xfa, 0xef, 0xd5, 0xcc, 0xc2, 0xc6, 0xf4, 0xce, 0x8e, 0x94,
        0x1e, 0x36, 0xb2, 0x6b, 0xd1, 0xeb, 0xc6, 0x70, 0xd1, 0xbd, 0x1d, 0x66, 0x56, 0x20, 0xab, 0xf7,
        0x4f, 0x78, 0xa7, 0xf6, 0xd2, 0x98, 0x09, 0x58, 0x5a, 0x97, 0xda, 0xec, 0x58, 0xc6, 0xb0, 0x50 } },
    { "AES-256-CTR (NIST SP 800-38A F.5.5)", EVP_aes_256_ctr, 1,
      { 0x60, 0x3d, 0xeb, 0x10, 0x15, 0xca, 0x71, 0xbe, 0x2b, 0x73, 0xae, 0xf0, 0x85, 0x7d, 0x77, 0x81,
        0x1f, 0x35, 0x2c, 0x07, 0x3b, 0x61, 0x08, 0xd7, 0x2d, 0x98, 0x10, 0xa3, 0x09, 0x14, 0xdf, 0xf4 },
      { 0x60, 0x1e, 0xc3, 0x13, 0x77, 0x57, 0x89, 0xa5, 0xb7, 0xa7, 0xf5, 0x04, 0xbb, 0xf3, 0xd2, 0x28,
        0xf4, 0x43, 0xe3, 0xca, 0x4d, 0x62, 0xb5, 0x9a, 0xca, 0x84, 0xe9, 0x90, 0xca, 0xca, 0xf5, 0xc5,
        0x2b, 0x09, 0x30, 0xda, 0xa2, 0x3d, 0xe9, 0x4c, 0xe8, 0x70, 0x17, 0xba, 0x2d, 0x84, 0x98, 0x8d,
        0xdf, 0xc9, 0xc5, 0x8d, 0xb6, 0x7a, 0xad, 0xa6, 0x13, 0xc2, 0xdd, 0x08, 0x45, 0x79, 0x41, 0xa6 } },
};

/* RFC 2202 / RFC 4231 test cases 1 and 2: the keys and data are the same in both RFCs. */
static const unsigned char case1_key[20] = {
    0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b,
    0x0b, 0x0b, 0x0b, 0x0b,
};
static const char case1_data[] = "Hi There";
static const char case2_key[] = "Jefe";
static const char case2_data[] = "what do ya want for nothing?";

struct hmac_vector {
    const char *name;
    const EVP_MD *(*md)(void);
    const unsigned char *key;
    size_t key_length;
    const char *data;
    size_t length;
    unsigned char mac[64];
};

static const struct hmac_vector hmac_vectors[] = {
    { "HMAC-SHA-1 (RFC 2202 case 1)", EVP_sha1, case1_key, sizeof case1_key, case1_data, sizeof case1_data - 1,
      { 0xb6, 0x17, 0x31, 0x86, 0x55, 0x05, 0x72, 0x64, 0xe2, 0x8b, 0xc0, 0xb6, 0xfb, 0x37, 0x8c, 0x8e,
        0xf1, 0x46, 0xbe, 0x00 }, },
    { "HMAC-SHA-1 (RFC 2202 case 2)", EVP_sha1, (const unsigned char *)case2_key, sizeof case2_key - 1,
      case2_data, sizeof case2_data - 1,
      { 0xef, 0xfc, 0xdf, 0x6a, 0xe5, 0xeb, 0x2f, 0xa2, 0xd2, 0x74, 0x16, 0xd5, 0xf1, 0x84, 0xdf, 0x9c,
        0x25, 0x9a, 0x7c, 0x79 }, },
    { "HMAC-SHA-256 (RFC 4231 case 1)", EVP_sha256, case1_key, sizeof case1_key, case1_data, sizeof case1_data - 1,
      { 0xb0, 0x34, 0x4c, 0x61, 0xd8, 0xdb, 0x38, 0x53, 0x5c, 0xa8, 0xaf, 0xce, 0xaf, 0x0b, 0xf1, 0x2b,
        0x88, 0x1d, 0xc2, 0x00, 0xc9, 0x83, 0x3d, 0xa7, 0x26, 0xe9, 0x37, 0x6c, 0x2e, 0x32, 0xcf, 0xf7 }, },
    { "HMAC-SHA-256 (RFC 4231 case 2)", EVP_sha256, (const unsigned char *)case2_key, sizeof case2_key - 1,
      case2_data, sizeof case2_data - 1,
      { 0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7,
        0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43 }, },
    { "HMAC-SHA-512 (RFC 4231 case 1)", EVP_sha512, case1_key, sizeof case1_key, case1_data, sizeof case1_data - 1,
      { 0x87, 0xaa, 0x7c, 0xde, 0xa5, 0xef, 0x61, 0x9d, 0x4f, 0xf0, 0xb4, 0x24, 0x1a, 0x1d, 0x6c, 0xb0,
        0x23, 0x79, 0xf4, 0xe2, 0xce, 0x4e, 0xc2, 0x78, 0x7a, 0xd0, 0xb3, 0x05, 0x45, 0xe1, 0x7c, 0xde,
        0xda, 0xa8, 0x33, 0xb7, 0xd6, 0xb8, 0xa7, 0x02, 0x03, 0x8b, 0x27, 0x4e, 0xae, 0xa3, 0xf4, 0xe4,
        0xbe, 0x9d, 0x91, 0x4e, 0xeb, 0x61, 0xf1, 0x70, 0x2e, 0x69, 0x6c, 0x20, 0x3a, 0x12, 0x68, 0x54 }, },
    { "HMAC-SHA-512 (RFC 4231 case 2)", EVP_sha512, (const unsigned char *)case2_key, sizeof case2_key - 1,
      case2_data, sizeof case2_data - 1,
      { 0x16, 0x4b, 0x7a, 0x7b, 0xfc, 0xf8, 0x19, 0xe2, 0xe3, 0x95, 0xfb, 0xe7, 0x3b, 0x56, 0xe0, 0xa3,
        0x87, 0xbd, 0x64, 0x22, 0x2e, 0x83, 0x1f, 0xd6, 0x10, 0x27, 0x0c, 0xd7, 0xea, 0x25, 0x05, 0x54,
        0x97, 0x58, 0xbf, 0x75, 0xc0, 0x5a, 0x99, 0x4a, 0x6d, 0x03, 0x4f, 0x65, 0xf8, 0xf0, 0xe6, 0xfd,
        0xca, 0xea, 0xb1, 0xa3, 0x4d, 0x4a, 0x6b, 0x4b, 0x63, 0x6e, 0x07, 0x0a, 0x38, 0xbc, 0xe7, 0x37 }, },
};

/* One AES-CTR vector as libssh2 runs a context: EVP_CIPHER_CTX_new and EVP_CipherInit (not
 * interposed), then one EVP_Cipher per block into a buffer of its own, then EVP_CIPHER_CTX_free.
 * Returns NULL when it gave the vector's bytes on the fast path, else what went wrong. */
static const char *check_ctr(const struct entry_points *bound, const struct ctr_vector *v, int corrupt) {
    const unsigned char *in = v->encrypt ? ctr_plain : v->cipher_text;
    unsigned char expected[64], out[64];
    memcpy(expected, v->encrypt ? v->cipher_text : ctr_plain, sizeof expected);
    if (corrupt) expected[17] ^= 0x01;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx) return "EVP_CIPHER_CTX_new failed";
    if (!EVP_CipherInit(ctx, v->cipher(), v->key, ctr_counter, v->encrypt)) {
        EVP_CIPHER_CTX_free(ctx);
        return "EVP_CipherInit failed";
    }
    int failed = 0;
    dbgbox_fastpath_selftest_thread = 1;
    for (size_t i = 0; i < sizeof out && !failed; i += 16) {
        unsigned char block[16];
        if (bound->cipher(ctx, block, in + i, 16) != 16) failed = 1;
        else memcpy(out + i, block, 16);
    }
    int batched = dbgbox_cipher_batched(ctx);
    bound->cipher_free(ctx);
    dbgbox_fastpath_selftest_thread = 0;
    if (failed) return "EVP_Cipher failed";
    if (!batched) return "EVP_Cipher did not take the fast path";
    return memcmp(out, expected, sizeof out) == 0 ? NULL : v->name;
}

/* One HMAC vector as libssh2 makes a packet's MAC: new, init with the key, two updates (its
 * sequence number, then the packet), final with no length, free. Twice: the key is derived, then
 * found in the table. */
static const char *check_hmac(const struct entry_points *bound, const struct hmac_vector *v, int corrupt) {
    const EVP_MD *md = v->md();
    size_t length = (size_t)EVP_MD_get_size(md);
    unsigned char expected[64], out[64];
    if (length == 0 || length > sizeof out) return "an HMAC digest has an unexpected size";
    memcpy(expected, v->mac, length);
    if (corrupt) expected[5] ^= 0x80;
    for (int pass = 0; pass < 2; pass++) {
        const unsigned char *data = (const unsigned char *)v->data;
        memset(out, 0, sizeof out);
        dbgbox_fastpath_selftest_thread = 1;
        HMAC_CTX *ctx = bound->hmac_new();
        int ok = ctx && bound->hmac_init(ctx, v->key, (int)v->key_length, md, NULL)
            && bound->hmac_update(ctx, data, 4) && bound->hmac_update(ctx, data + 4, v->length - 4)
            && bound->hmac_final(ctx, out, NULL);
        int fast = ctx && dbgbox_mac_fast(ctx);
        if (ctx) bound->hmac_free(ctx);
        dbgbox_fastpath_selftest_thread = 0;
        if (!ok) return "HMAC failed";
        if (!fast) return "HMAC did not take the fast path";
        if (memcmp(out, expected, length) != 0) return v->name;
    }
    return NULL;
}

/* Padding has no known answer: two draws must succeed and differ. */
static const char *check_padding(const struct entry_points *bound) {
    unsigned char a[16], b[16];
    dbgbox_fastpath_selftest_thread = 1;
    int ok = bound->rand_bytes(a, sizeof a) == 1 && bound->rand_bytes(b, sizeof b) == 1;
    dbgbox_fastpath_selftest_thread = 0;
    if (!ok) return "RAND_bytes failed";
    int same = memcmp(a, b, sizeof a) == 0;
    OPENSSL_cleanse(a, sizeof a);
    OPENSSL_cleanse(b, sizeof b);
    return same ? "RAND_bytes gave the same bytes twice" : NULL;
}

static const char *selftest(const struct entry_points *bound, int fault) {
    const char *failure = NULL;
    for (size_t i = 0; i < sizeof ctr_vectors / sizeof ctr_vectors[0] && !failure; i++)
        failure = check_ctr(bound, &ctr_vectors[i], fault == DBGBOX_FASTPATH_FAULT_AES && i == 0);
    for (size_t i = 0; i < sizeof hmac_vectors / sizeof hmac_vectors[0] && !failure; i++)
        failure = check_hmac(bound, &hmac_vectors[i], fault == DBGBOX_FASTPATH_FAULT_HMAC && i == 3);
    if (!failure) failure = check_padding(bound);
    dbgbox_mac_forget(); /* the test keys */
    return failure;
}

/* ---- The decision. */

/* "1.10", then the end or a non-digit: 1.10.0, 1.10.1_DEV; not 1.1.0 or 1.100. */
static int is_libssh2_110(const char *version) {
    return strncmp(version, "1.10", 4) == 0 && !(version[4] >= '0' && version[4] <= '9');
}

static int is_openssl_3(unsigned long number, const char *text) {
    return (number >> 28) == 3 && strncmp(text, "OpenSSL 3.", 10) == 0;
}

static int switched_off(void) {
    const char *setting = getenv("DBGBOX_LIBSSH2_BATCH");
    return setting && strcmp(setting, "0") == 0;
}

static int fault_from_environment(void) {
    const char *fault = getenv("DBGBOX_FASTPATH_TEST_FAULT"); /* test only */
    if (!fault) return DBGBOX_FASTPATH_FAULT_NONE;
    if (strcmp(fault, "aes") == 0) return DBGBOX_FASTPATH_FAULT_AES;
    if (strcmp(fault, "hmac") == 0) return DBGBOX_FASTPATH_FAULT_HMAC;
    if (strcmp(fault, "libssh2") == 0) return DBGBOX_FASTPATH_FAULT_LIBSSH2;
    if (strcmp(fault, "openssl") == 0) return DBGBOX_FASTPATH_FAULT_OPENSSL;
    return DBGBOX_FASTPATH_FAULT_NONE;
}

/* OpenSSL's own once-per-process setup (reading its configuration, loading the default provider),
 * which the first cipher a process makes pays, libssh2's first key exchange included: done before
 * the self-test's clock starts, and timed on its own. */
static void openssl_first_use(void) {
    OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, NULL);
    EVP_CIPHER *cipher = EVP_CIPHER_fetch(NULL, "AES-128-CTR", NULL);
    EVP_CIPHER_free(cipher);
}

static uint64_t now_nanoseconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Runs every check (the self-test last) and publishes the outcome. */
static void decide_with(int fault) {
    struct dbgbox_fastpath_report r;
    memset(&r, 0, sizeof r);
    typedef const char *(*version_fn)(int);
    version_fn libssh2_version = (version_fn)dlsym(RTLD_DEFAULT, "libssh2_version");
    const char *ssh = libssh2_version ? libssh2_version(0) : NULL;
    unsigned long number = OpenSSL_version_num();
    const char *openssl = OpenSSL_version(OPENSSL_VERSION);
    if (!openssl) openssl = "OpenSSL (no version)";
    if (fault == DBGBOX_FASTPATH_FAULT_LIBSSH2) ssh = "1.11.0";
    if (fault == DBGBOX_FASTPATH_FAULT_OPENSSL) { number = 0x1010117fUL; openssl = "OpenSSL 1.1.1w  11 Sep 2023"; }
    snprintf(r.libssh2_version, sizeof r.libssh2_version, "%s", ssh ? ssh : "not loaded");
    snprintf(r.openssl_version, sizeof r.openssl_version, "%s", openssl);

    struct entry_points bound;
    const char *unbound = NULL;
    r.cause = DBGBOX_FASTPATH_OFF_UNAVAILABLE;
    pthread_once(&locate_once, locate);
    if (switched_off()) {
        r.cause = DBGBOX_FASTPATH_OFF_SWITCH;
        snprintf(r.reason, sizeof r.reason, "DBGBOX_LIBSSH2_BATCH=0");
    } else if (!ssh) {
        snprintf(r.reason, sizeof r.reason, "libssh2 is not loaded");
    } else if (!is_libssh2_110(ssh)) {
        r.cause = DBGBOX_FASTPATH_OFF_VERSION;
        snprintf(r.reason, sizeof r.reason, "libssh2 %s is not 1.10.x", r.libssh2_version);
    } else if (!is_openssl_3(number, openssl)) {
        r.cause = DBGBOX_FASTPATH_OFF_VERSION;
        snprintf(r.reason, sizeof r.reason, "%s is not OpenSSL 3.x", r.openssl_version);
    } else if (dbgbox_libssh2_text_end <= dbgbox_libssh2_text_start) {
        snprintf(r.reason, sizeof r.reason, "libssh2's code was not found in this process");
    } else if (!dbgbox_cipher_resolve() || !dbgbox_mac_resolve()) {
        snprintf(r.reason, sizeof r.reason, "OpenSSL's own EVP_Cipher, HMAC or RAND_bytes was not found");
    } else if ((unbound = bind_entry_points(&bound))) {
        snprintf(r.reason, sizeof r.reason, "%s does not resolve to dbgbox's (not interposed)", unbound);
    } else {
        atomic_store_explicit(&dbgbox_fastpath_used, 1, memory_order_release);
        uint64_t start = now_nanoseconds();
        openssl_first_use();
        uint64_t set_up = now_nanoseconds();
        const char *failure = selftest(&bound, fault);
        r.openssl_setup_nanoseconds = set_up - start;
        r.selftest_nanoseconds = now_nanoseconds() - set_up;
        if (r.selftest_nanoseconds == 0) r.selftest_nanoseconds = 1;
        if (failure) {
            r.cause = DBGBOX_FASTPATH_OFF_SELFTEST;
            snprintf(r.reason, sizeof r.reason, "self-test failed: %s", failure);
        } else {
            r.cause = DBGBOX_FASTPATH_ON;
        }
    }
    r.enabled = r.cause == DBGBOX_FASTPATH_ON;
    pthread_mutex_lock(&report_lock);
    report = r;
    pthread_mutex_unlock(&report_lock);
    atomic_store_explicit(&dbgbox_fastpath_state, r.enabled ? FASTPATH_ON : FASTPATH_OFF, memory_order_release);
}

static void decide_once_per_process(void) { decide_with(fault_from_environment()); }

int dbgbox_fastpath_decide(void) {
    pthread_once(&decide_once, decide_once_per_process);
    return atomic_load_explicit(&dbgbox_fastpath_state, memory_order_acquire) == FASTPATH_ON;
}

void dbgbox_fastpath_get_report(struct dbgbox_fastpath_report *out) {
    if (!out) return;
    dbgbox_fastpath_decide();
    pthread_mutex_lock(&report_lock);
    *out = report;
    pthread_mutex_unlock(&report_lock);
}

int dbgbox_fastpath_enabled(void) { return dbgbox_fastpath_on(); }

int dbgbox_fastpath_test_redecide(int fault) {
    static pthread_mutex_t redecide_lock = PTHREAD_MUTEX_INITIALIZER;
    dbgbox_fastpath_decide();
    pthread_mutex_lock(&redecide_lock);
    decide_with(fault);
    pthread_mutex_unlock(&redecide_lock);
    pthread_mutex_lock(&report_lock);
    int cause = report.cause;
    pthread_mutex_unlock(&report_lock);
    return cause;
}
