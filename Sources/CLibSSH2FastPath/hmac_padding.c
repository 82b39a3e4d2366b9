/*
 * The fast path's HMAC and padding bytes for libssh2 1.10, without OpenSSL 3's per-call setup
 * (fastpath.c says why it exists, what it assumes, and when it is on).
 *
 * For every packet it sends or receives, libssh2 1.10 makes a fresh HMAC context: HMAC_CTX_new,
 * HMAC_Init_ex with the key and EVP_sha1()/EVP_sha256()/EVP_sha512(), the updates, HMAC_Final,
 * HMAC_CTX_free. In OpenSSL 3 the init fetches the digest by name and hashes the padded key
 * again every time. For every packet it sends it also asks RAND_bytes for 4 to 255 bytes of
 * padding, and each call takes OpenSSL's DRBG locks and two getpid system calls. Profiled on the
 * tunnel's 64-byte echoes (perf record -e cpu-clock:u), these were 45% of dbgbox's user time:
 * about 15 us of CPU per round trip, on its critical path.
 *
 * So, for calls from libssh2's code only:
 *  - The HMAC contexts are our own. The inner and outer digest states after the padded key
 *    (RFC 2104) are kept per key in a small table, and a packet's MAC starts from a copy of them:
 *    SHA-1/SHA-256/SHA-512 through OpenSSL's low-level digest functions (the same assembly,
 *    SHA-NI where the CPU has it). Any other digest gets a real OpenSSL context inside.
 *    The table holds what libssh2's session already holds (its MAC keys), only as long as that:
 *    dbgbox_mac_forget wipes it whenever a session is freed (the SSH module calls it), and an entry
 *    pushed out of the table is wiped too.
 *  - Padding comes from a per-thread pool of 4 KiB filled by RAND_bytes: the same DRBG's bytes,
 *    fetched once per few hundred packets. Bytes are wiped from the pool as they are handed out,
 *    and a forked child starts with an empty pool.
 * Byte for byte OpenSSL's HMAC (the start-up self-test checks RFC 2202/4231 vectors through these
 * entry points, dbgbox_mac_selftest compares with OpenSSL's), and a wrong MAC could not go
 * unnoticed: the peer checks every packet's. Everything else, and everything when the fast path is
 * off, goes to OpenSSL's functions, found with dlsym(RTLD_NEXT). A context of ours stays ours to
 * its end, even if a test turns the fast path off meanwhile.
 */
#define _GNU_SOURCE
#define OPENSSL_SUPPRESS_DEPRECATED
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "fastpath_internal.h"
#include "libssh2_fastpath.h"

#define MAC_MAGIC 0x64626762786d6331ULL /* "dbgbxmc1" */
#define MAX_BLOCK 128
#define MAX_DIGEST 64
#define MAX_KEY 128
#define TABLE_SIZE 16
#define POOL_BYTES 4096

union digest_state {
    SHA_CTX sha1;
    SHA256_CTX sha256;
    SHA512_CTX sha512;
};

/* One digest, through OpenSSL's low-level functions. */
struct digest {
    int nid;
    size_t block;
    size_t length;
    void (*init)(union digest_state *);
    void (*update)(union digest_state *, const void *, size_t);
    void (*final)(union digest_state *, unsigned char *);
};

static void sha1_init(union digest_state *s) { SHA1_Init(&s->sha1); }
static void sha1_update(union digest_state *s, const void *d, size_t n) { SHA1_Update(&s->sha1, d, n); }
static void sha1_final(union digest_state *s, unsigned char *out) { SHA1_Final(out, &s->sha1); }
static void sha256_init(union digest_state *s) { SHA256_Init(&s->sha256); }
static void sha256_update(union digest_state *s, const void *d, size_t n) { SHA256_Update(&s->sha256, d, n); }
static void sha256_final(union digest_state *s, unsigned char *out) { SHA256_Final(out, &s->sha256); }
static void sha512_init(union digest_state *s) { SHA512_Init(&s->sha512); }
static void sha512_update(union digest_state *s, const void *d, size_t n) { SHA512_Update(&s->sha512, d, n); }
static void sha512_final(union digest_state *s, unsigned char *out) { SHA512_Final(out, &s->sha512); }

static const struct digest digests[] = {
    { NID_sha1, 64, 20, sha1_init, sha1_update, sha1_final },
    { NID_sha256, 64, 32, sha256_init, sha256_update, sha256_final },
    { NID_sha512, 128, 64, sha512_init, sha512_update, sha512_final },
};

/* The digest states after the padded key: what a MAC with this key starts from. */
struct keyed {
    const struct digest *digest;
    union digest_state inner;
    union digest_state outer;
};

/* libssh2's HMAC_CTX: ours, or OpenSSL's inside (`real`) for a digest not above. */
struct mac_context {
    uint64_t magic;
    HMAC_CTX *real;
    int ready;
    struct keyed start;
    union digest_state running;
};

/* A key seen lately, with its states. */
struct table_entry {
    uint64_t last_use; /* 0: unused */
    int nid;
    size_t key_length;
    unsigned char key[MAX_KEY];
    struct keyed keyed;
};

static hmac_new_function openssl_hmac_new;
static hmac_free_function openssl_hmac_free;
static hmac_init_function openssl_hmac_init;
static hmac_update_function openssl_hmac_update;
static hmac_final_function openssl_hmac_final;
static rand_function openssl_rand_bytes;
static int resolved; /* OpenSSL's functions found, the pool's key and fork handler set */
static _Atomic uint64_t fast_macs;
static pthread_once_t setup_once = PTHREAD_ONCE_INIT;

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct table_entry table[TABLE_SIZE];
static uint64_t table_clock;

struct pool {
    size_t position;
    size_t length;
    unsigned char bytes[POOL_BYTES];
};
static __thread struct pool *thread_pool;
static pthread_key_t pool_key;

static void pool_destroy(void *data) {
    if (!data) return;
    OPENSSL_cleanse(data, sizeof(struct pool));
    free(data);
}

/* In a forked child only the forking thread lives on: its pool must not repeat the parent's. */
static void pool_after_fork(void) {
    if (thread_pool) thread_pool->position = thread_pool->length = 0;
}

static void setup(void) {
    openssl_hmac_new = (hmac_new_function)dlsym(RTLD_NEXT, "HMAC_CTX_new");
    openssl_hmac_free = (hmac_free_function)dlsym(RTLD_NEXT, "HMAC_CTX_free");
    openssl_hmac_init = (hmac_init_function)dlsym(RTLD_NEXT, "HMAC_Init_ex");
    openssl_hmac_update = (hmac_update_function)dlsym(RTLD_NEXT, "HMAC_Update");
    openssl_hmac_final = (hmac_final_function)dlsym(RTLD_NEXT, "HMAC_Final");
    openssl_rand_bytes = (rand_function)dlsym(RTLD_NEXT, "RAND_bytes");
    int found = openssl_hmac_new && openssl_hmac_free && openssl_hmac_init && openssl_hmac_update
        && openssl_hmac_final && openssl_rand_bytes;
    resolved = found && pthread_key_create(&pool_key, pool_destroy) == 0
        && pthread_atfork(NULL, NULL, pool_after_fork) == 0;
}

int dbgbox_mac_resolve(void) {
    pthread_once(&setup_once, setup);
    return resolved;
}

/* Set up before main (and so before any thread). */
__attribute__((constructor)) static void setup_at_load(void) { pthread_once(&setup_once, setup); }

static inline void ensure_setup(void) {
    if (__builtin_expect(!openssl_hmac_new, 0)) pthread_once(&setup_once, setup);
}

static const struct digest *digest_for(const EVP_MD *md) {
    int nid = EVP_MD_get_type(md);
    for (size_t i = 0; i < sizeof digests / sizeof digests[0]; i++)
        if (digests[i].nid == nid) return &digests[i];
    return NULL;
}

/* RFC 2104: the states after (key XOR ipad) and (key XOR opad), a longer key hashed first. */
static void derive(struct keyed *out, const struct digest *d, const unsigned char *key, size_t length) {
    unsigned char block[MAX_BLOCK], hashed[MAX_DIGEST];
    memset(block, 0, sizeof block);
    if (length > d->block) {
        union digest_state s;
        d->init(&s);
        d->update(&s, key, length);
        d->final(&s, hashed);
        OPENSSL_cleanse(&s, sizeof s);
        memcpy(block, hashed, d->length);
    } else {
        memcpy(block, key, length);
    }
    out->digest = d;
    for (size_t i = 0; i < d->block; i++) block[i] ^= 0x36;
    d->init(&out->inner);
    d->update(&out->inner, block, d->block);
    for (size_t i = 0; i < d->block; i++) block[i] ^= 0x36 ^ 0x5c;
    d->init(&out->outer);
    d->update(&out->outer, block, d->block);
    OPENSSL_cleanse(block, sizeof block);
    OPENSSL_cleanse(hashed, sizeof hashed);
}

/* The key's states, from the table or derived (and then remembered in place of the entry used
 * least lately, which is wiped). */
static void keyed_for(struct keyed *out, const struct digest *d, const unsigned char *key, size_t length) {
    if (length > MAX_KEY) {
        derive(out, d, key, length);
        return;
    }
    pthread_mutex_lock(&table_lock);
    for (size_t i = 0; i < TABLE_SIZE; i++) {
        struct table_entry *e = &table[i];
        if (!e->last_use || e->nid != d->nid || e->key_length != length || memcmp(e->key, key, length) != 0) continue;
        e->last_use = ++table_clock;
        *out = e->keyed;
        pthread_mutex_unlock(&table_lock);
        return;
    }
    pthread_mutex_unlock(&table_lock);
    derive(out, d, key, length);
    pthread_mutex_lock(&table_lock);
    struct table_entry *victim = &table[0];
    for (size_t i = 1; i < TABLE_SIZE; i++)
        if (table[i].last_use < victim->last_use) victim = &table[i];
    OPENSSL_cleanse(victim, sizeof *victim);
    victim->last_use = ++table_clock;
    victim->nid = d->nid;
    victim->key_length = length;
    memcpy(victim->key, key, length);
    victim->keyed = *out;
    pthread_mutex_unlock(&table_lock);
}

/* A MAC with `d` and the key (NULL: the context's key again) starts. */
static int mac_start(struct mac_context *m, const struct digest *d, const unsigned char *key, size_t length) {
    if (key) {
        keyed_for(&m->start, d, key, length);
    } else if (m->start.digest != d) {
        return 0; /* no key yet for this digest */
    }
    m->running = m->start.inner;
    m->ready = 1;
    return 1;
}

/* The MAC into `out` (the digest's length); the context needs a start again after. */
static void mac_finish(struct mac_context *m, unsigned char *out) {
    const struct digest *d = m->start.digest;
    unsigned char inner[MAX_DIGEST];
    d->final(&m->running, inner);
    m->running = m->start.outer;
    d->update(&m->running, inner, d->length);
    d->final(&m->running, out);
    OPENSSL_cleanse(inner, sizeof inner);
    OPENSSL_cleanse(&m->running, sizeof m->running);
    m->ready = 0;
}

/* libssh2's context when it is one of ours (made while the fast path was on), else NULL. */
static inline struct mac_context *ours(HMAC_CTX *ctx, const void *return_address) {
    if (!ctx || !dbgbox_fastpath_was_used() || !dbgbox_from_libssh2(return_address)) return NULL;
    struct mac_context *m = (struct mac_context *)ctx;
    return m->magic == MAC_MAGIC ? m : NULL;
}

HMAC_CTX *HMAC_CTX_new(void) {
    ensure_setup();
    if (!openssl_hmac_new) return NULL;
    if (!dbgbox_from_libssh2(__builtin_return_address(0)) || !dbgbox_fastpath_on()) return openssl_hmac_new();
    struct mac_context *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->magic = MAC_MAGIC;
    return (HMAC_CTX *)m;
}

void HMAC_CTX_free(HMAC_CTX *ctx) {
    ensure_setup();
    if (!openssl_hmac_free) return;
    struct mac_context *m = ours(ctx, __builtin_return_address(0));
    if (!m) {
        openssl_hmac_free(ctx);
        return;
    }
    if (m->real) openssl_hmac_free(m->real);
    OPENSSL_cleanse(m, sizeof *m);
    free(m);
}

int HMAC_Init_ex(HMAC_CTX *ctx, const void *key, int len, const EVP_MD *md, ENGINE *impl) {
    ensure_setup();
    if (!openssl_hmac_init) return 0;
    struct mac_context *m = ours(ctx, __builtin_return_address(0));
    if (!m) return openssl_hmac_init(ctx, key, len, md, impl);
    const struct digest *d = md ? digest_for(md) : m->start.digest;
    if (m->real || (md && !d) || impl) {
        /* Not ours to do: OpenSSL's context does it from here on. */
        if (!m->real && !(m->real = openssl_hmac_new())) return 0;
        return openssl_hmac_init(m->real, key, len, md, impl);
    }
    if (!d || len < 0 || !mac_start(m, d, key, (size_t)len)) return 0;
    atomic_fetch_add_explicit(&fast_macs, 1, memory_order_relaxed);
    return 1;
}

int HMAC_Update(HMAC_CTX *ctx, const unsigned char *data, size_t len) {
    ensure_setup();
    if (!openssl_hmac_update) return 0;
    struct mac_context *m = ours(ctx, __builtin_return_address(0));
    if (!m) return openssl_hmac_update(ctx, data, len);
    if (m->real) return openssl_hmac_update(m->real, data, len);
    if (!m->ready) return 0;
    if (len) m->start.digest->update(&m->running, data, len);
    return 1;
}

int HMAC_Final(HMAC_CTX *ctx, unsigned char *out, unsigned int *len) {
    ensure_setup();
    if (!openssl_hmac_final) return 0;
    struct mac_context *m = ours(ctx, __builtin_return_address(0));
    if (!m) return openssl_hmac_final(ctx, out, len);
    if (m->real) return openssl_hmac_final(m->real, out, len);
    if (!m->ready || !out) return 0;
    mac_finish(m, out);
    if (len) *len = (unsigned int)m->start.digest->length;
    return 1;
}

int RAND_bytes(unsigned char *buf, int num) {
    ensure_setup();
    if (!openssl_rand_bytes) return 0;
    if (num <= 0 || num > 256 || !buf || !dbgbox_from_libssh2(__builtin_return_address(0)) || !dbgbox_fastpath_on())
        return openssl_rand_bytes(buf, num);
    struct pool *p = thread_pool;
    if (!p) {
        p = calloc(1, sizeof *p);
        if (!p) return openssl_rand_bytes(buf, num);
        if (pthread_setspecific(pool_key, p) != 0) {
            free(p);
            return openssl_rand_bytes(buf, num);
        }
        thread_pool = p;
    }
    if (p->length - p->position < (size_t)num) {
        OPENSSL_cleanse(p->bytes, sizeof p->bytes);
        p->position = p->length = 0;
        if (openssl_rand_bytes(p->bytes, POOL_BYTES) != 1) return openssl_rand_bytes(buf, num);
        p->length = POOL_BYTES;
    }
    memcpy(buf, p->bytes + p->position, (size_t)num);
    OPENSSL_cleanse(p->bytes + p->position, (size_t)num);
    p->position += (size_t)num;
    return 1;
}

void dbgbox_mac_forget(void) {
    pthread_mutex_lock(&table_lock);
    OPENSSL_cleanse(table, sizeof table);
    pthread_mutex_unlock(&table_lock);
}

int dbgbox_mac_enabled(void) {
    return dbgbox_fastpath_on();
}

int dbgbox_mac_fast(HMAC_CTX *ctx) {
    const struct mac_context *m = (const struct mac_context *)ctx;
    return m->magic == MAC_MAGIC && !m->real;
}

uint64_t dbgbox_mac_count(void) {
    return atomic_load_explicit(&fast_macs, memory_order_relaxed);
}

int dbgbox_mac_selftest(size_t rounds) {
    pthread_once(&setup_once, setup);
    if (!openssl_hmac_new || !openssl_hmac_init || !openssl_hmac_update || !openssl_hmac_final) return 1;
    const EVP_MD *mds[] = { EVP_sha1(), EVP_sha256(), EVP_sha512() };
    unsigned char key[200], expected[MAX_DIGEST], actual[MAX_DIGEST];
    unsigned char *data = malloc(70000);
    if (!data) return 2;
    uint32_t state = 0x85ebca6bu;
    #define NEXT() (state ^= state << 13, state ^= state >> 17, state ^= state << 5, state)
    int failure = 0;
    for (size_t r = 0; r < rounds && !failure; r++) {
        const EVP_MD *md = mds[r % 3];
        const struct digest *d = digest_for(md);
        if (!d) { failure = 3; break; }
        /* libssh2's key sizes mostly, sometimes longer than a block (hashed first) or empty. */
        size_t key_length = (r % 7 == 0) ? NEXT() % sizeof key : d->length;
        for (size_t i = 0; i < key_length; i++) key[i] = (unsigned char)NEXT();
        size_t length = (r % 5 == 0) ? NEXT() % 70000 : 16 + NEXT() % 300;
        for (size_t i = 0; i < length; i++) data[i] = (unsigned char)NEXT();
        size_t split = length ? NEXT() % length : 0;
        unsigned int expected_length = 0, actual_length = 0;
        HMAC_CTX *reference = openssl_hmac_new();
        if (!reference || !openssl_hmac_init(reference, key, (int)key_length, md, NULL)
            || !openssl_hmac_update(reference, data, split)
            || !openssl_hmac_update(reference, data + split, length - split)
            || !openssl_hmac_final(reference, expected, &expected_length)) failure = 4;
        if (reference) openssl_hmac_free(reference);
        if (failure) break;
        /* Three times: from the key (derived, then from the table), then with the key left out (the
         * context's key again). */
        struct mac_context m = { .magic = MAC_MAGIC };
        for (int pass = 0; pass < 3 && !failure; pass++) {
            if (!mac_start(&m, d, pass == 2 ? NULL : key, key_length)) { failure = 6; break; }
            d->update(&m.running, data, split);
            d->update(&m.running, data + split, length - split);
            mac_finish(&m, actual);
            actual_length = (unsigned int)d->length;
            if (expected_length != actual_length || memcmp(expected, actual, actual_length) != 0) failure = 5;
        }
        OPENSSL_cleanse(&m, sizeof m);
    }
    #undef NEXT
    free(data);
    dbgbox_mac_forget();
    return failure;
}
