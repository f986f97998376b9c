/* SPDX-License-Identifier: MIT */
/* Fuzzes the Redis client's reply path where corio handles the bytes
 * itself: the copy of hiredis's reply tree into one block,
 * corio__redis_reply_copy (framework/client/redis_call.c, what every
 * command's caller receives), and the reply accessors, the typed one
 * corio_redis_reply_integer above all.
 *
 * Feeds: the input after byte 0 as the bytes a server sends (RESP2),
 * through hiredis's reader (redisReaderCreate, redisReaderFeed in pieces of
 * (byte 0 & 63) + 1 bytes, or whole when byte 0 is 0; redisReaderGetReply
 * after each piece), as the client's connection reads them; every reply the
 * reader makes goes through corio's copy.  An input announcing an array of
 * more than 65536 elements is skipped: hiredis 0.14 allocates the element
 * vector before the elements arrive (a hiredis matter, not corio's).
 *
 * Asserts, for every reply:
 *  - the copy is one allocation (under ASan: the heap grows by exactly its
 *    size) and holds no pointer into hiredis's tree (walked again after
 *    freeReplyObject, with the same checksum; ASan sees any such read);
 *  - through the accessors it is hiredis's tree: the type (1..6), a
 *    string's, status's or error's bytes and length, NUL-terminated (NULL
 *    and 0 for the other kinds), the elements of arrays, recursively, with
 *    NULL past the last and for non-arrays;
 *  - corio_redis_reply_integer: an integer reply's value; CORIO_ENOENT for
 *    nil; for a string, against a reference: -?[0-9]+ that fits int64 is
 *    read exactly, one that does not is CORIO_ERANGE, anything else
 *    CORIO_EINVAL; other kinds CORIO_EINVAL; *out untouched on failure;
 *  - that reference for strings of any length (redis.h: CORIO_ERANGE
 *    "beyond int64"; a string longer than 20 bytes was refused with
 *    CORIO_EINVAL before the fix this harness found, which
 *    FUZZ_REDIS_STRICT=0 tolerates again);
 *  - a protocol error leaves the reader's err set with a message; every
 *    reply and the reader are freed (ASan's leak check, valgrind). */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "client/redis_internal.h"
#include "fuzz.h"

/* Present under ASan. */
__attribute__((weak)) size_t __sanitizer_get_current_allocated_bytes(void);
__attribute__((weak)) size_t __sanitizer_get_allocated_size(const volatile void *p);

static bool strict;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *s = getenv("FUZZ_REDIS_STRICT");
    strict = !(s && *s == '0'); /* the contract; FUZZ_*_STRICT=0: the old leniency */
    return 0;
}

/* Whether the input announces an array ('*' then digits) above 65536. */
static bool huge_array(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '*')
            continue;
        uint64_t v = 0;
        for (size_t k = i + 1; k < n && p[k] >= '0' && p[k] <= '9'; k++)
            if ((v = v * 10 + (uint64_t)(p[k] - '0')) > 65536)
                return true;
    }
    return false;
}

/* -?[0-9]+ in s[0..n): 0 with *v, CORIO_ERANGE, or CORIO_EINVAL. */
static int ref_integer(const char *s, size_t n, int64_t *v) {
    bool neg = n > 0 && s[0] == '-';
    size_t i = neg;
    if (i == n)
        return CORIO_EINVAL;
    uint64_t mag = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    bool over = false;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return CORIO_EINVAL;
        uint64_t digit = (uint64_t)(s[i] - '0');
        if (!over && mag > (limit - digit) / 10)
            over = true;
        if (!over)
            mag = mag * 10 + digit;
    }
    if (over)
        return CORIO_ERANGE;
    *v = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
    return 0;
}

static void check_integer(const corio_redis_reply *c, const redisReply *r) {
    const int64_t canary = 0x1234567887654321;
    int64_t v = canary;
    int rc = corio_redis_reply_integer(c, &v);
    int want;
    int64_t wv = 0;
    switch (r->type) {
    case REDIS_REPLY_INTEGER:
        want = 0;
        wv = r->integer;
        break;
    case REDIS_REPLY_NIL:
        want = CORIO_ENOENT;
        break;
    case REDIS_REPLY_STRING:
        want = ref_integer(r->str, r->len, &wv);
        break;
    default:
        want = CORIO_EINVAL;
    }
    if (rc == CORIO_EINVAL && want != CORIO_EINVAL && !strict && r->type == REDIS_REPLY_STRING &&
        r->len > 20)
        want = CORIO_EINVAL; /* the known deviation (see the top) */
    FUZZ_CHECK(rc == want, "integer of a type %d reply '%.*s': %d, expected %d", r->type,
               r->str ? (int)(r->len > 64 ? 64 : r->len) : 0, r->str ? r->str : "", rc, want);
    if (rc == 0)
        FUZZ_CHECK(v == wv, "integer: %lld, expected %lld", (long long)v, (long long)wv);
    else
        FUZZ_CHECK(v == canary, "integer failed (%d) and wrote %lld", rc, (long long)v);
    FUZZ_CHECK(corio_redis_reply_integer(c, NULL) == CORIO_EINVAL, "integer into NULL");
}

/* c is r, through the accessors. */
static void check_same(const corio_redis_reply *c, const redisReply *r, int depth) {
    FUZZ_CHECK(depth < 64, "nesting");
    corio_redis_type t = corio_redis_reply_type(c);
    FUZZ_CHECK((int)t == r->type && t >= CORIO_REDIS_STRING && t <= CORIO_REDIS_ERROR,
               "type %d, hiredis says %d", (int)t, r->type);
    size_t len = 12345;
    const char *s = corio_redis_reply_str(c, &len);
    FUZZ_CHECK(s == corio_redis_reply_str(c, NULL), "str with and without len");
    if (t == CORIO_REDIS_STRING || t == CORIO_REDIS_STATUS || t == CORIO_REDIS_ERROR) {
        FUZZ_CHECK(s && len == r->len && (len == 0 || memcmp(s, r->str, len) == 0) &&
                       s[len] == '\0',
                   "the bytes of a type %d reply (%zu, hiredis %zu)", (int)t, len, r->len);
        FUZZ_CHECK(s != r->str, "the copy points into hiredis's reply");
    } else {
        FUZZ_CHECK(!s && len == 0, "bytes of a type %d reply", (int)t);
    }
    size_t n = corio_redis_reply_elements(c);
    if (t == CORIO_REDIS_ARRAY) {
        FUZZ_CHECK(n == r->elements, "%zu elements, hiredis %zu", n, r->elements);
        for (size_t i = 0; i < n; i++) {
            const corio_redis_reply *e = corio_redis_reply_element(c, i);
            FUZZ_CHECK(e, "element %zu of %zu", i, n);
            check_same(e, r->element[i], depth + 1);
        }
    } else {
        FUZZ_CHECK(n == 0, "%zu elements of a type %d reply", n, (int)t);
    }
    FUZZ_CHECK(corio_redis_reply_element(c, n) == NULL &&
                   corio_redis_reply_element(c, SIZE_MAX) == NULL,
               "an element past the last");
    check_integer(c, r);
}

/* A checksum of everything the accessors show of c (FNV-1a). */
static uint64_t digest(const corio_redis_reply *c, uint64_t h) {
    size_t len;
    const char *s = corio_redis_reply_str(c, &len);
    int64_t v = 0;
    int rc = corio_redis_reply_integer(c, &v);
    uint64_t parts[] = {(uint64_t)corio_redis_reply_type(c), len, (uint64_t)rc, (uint64_t)v,
                        corio_redis_reply_elements(c)};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
        h = (h ^ parts[i]) * 0x100000001b3ULL;
    for (size_t i = 0; s && i <= len; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    for (size_t i = 0; i < corio_redis_reply_elements(c); i++)
        h = digest(corio_redis_reply_element(c, i), h);
    return h;
}

static void check_reply(redisReply *r) {
    bool asan = __sanitizer_get_current_allocated_bytes && __sanitizer_get_allocated_size;
    size_t before = asan ? __sanitizer_get_current_allocated_bytes() : 0;
    corio_redis_reply *c = corio__redis_reply_copy(r);
    FUZZ_CHECK(c, "the copy failed");
    if (asan) {
        size_t grew = __sanitizer_get_current_allocated_bytes() - before;
        size_t block = __sanitizer_get_allocated_size(c);
        FUZZ_CHECK(grew == block, "the copy took %zu bytes, its block is %zu", grew, block);
    }
    check_same(c, r, 0);
    uint64_t h = digest(c, 0xcbf29ce484222325ULL);
    freeReplyObject(r);
    FUZZ_CHECK(digest(c, 0xcbf29ce484222325ULL) == h, "the copy changed with hiredis's reply");
    corio_redis_reply_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_in in = {data, size};
    size_t step = fuzz_u8(&in) & 63;
    if (huge_array(in.p, in.n))
        return 0;
    redisReader *rd = redisReaderCreate();
    if (!rd)
        abort();
    bool failed = false;
    for (size_t off = 0; off < in.n && !failed;) {
        size_t k = step ? step + 1 : in.n;
        if (k > in.n - off)
            k = in.n - off;
        FUZZ_CHECK(redisReaderFeed(rd, (const char *)in.p + off, k) == REDIS_OK, "feed");
        off += k;
        for (;;) {
            void *reply = NULL;
            if (redisReaderGetReply(rd, &reply) != REDIS_OK) {
                FUZZ_CHECK(rd->err && rd->errstr[0], "a failed read without an error");
                FUZZ_CHECK(!reply, "a failed read with a reply");
                failed = true;
                break;
            }
            if (!reply)
                break;
            check_reply(reply);
        }
    }
    /* Accessors on NULL. */
    FUZZ_CHECK(corio_redis_reply_type(NULL) == 0 && corio_redis_reply_str(NULL, NULL) == NULL &&
                   corio_redis_reply_elements(NULL) == 0 &&
                   corio_redis_reply_element(NULL, 0) == NULL,
               "accessors on NULL");
    int64_t v = 7;
    FUZZ_CHECK(corio_redis_reply_integer(NULL, &v) == CORIO_EINVAL && v == 7, "integer of NULL");
    corio_redis_reply_free(NULL);
    redisReaderFree(rd);
    return 0;
}
