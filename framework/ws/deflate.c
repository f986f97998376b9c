/* SPDX-License-Identifier: MIT */
/* permessage-deflate on zlib (see deflate.h): the zlib states with their
 * counted allocations and per-thread cache, then sending, then receiving.
 *
 * Sending holds back the last 5 bytes of every read: the 4 of the flush's
 * 00 00 ff ff, which are only known to be the message's end once the flush
 * is over, and one more so that the piece that ends a message is never
 * empty (a frame writer would otherwise owe an empty final frame).
 */
#define ZLIB_CONST
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "base/thread_exit.h"
#include "ws/deflate.h"

/* What RFC 7692 7.2.1 leaves off and 7.2.2 puts back. */
static const uint8_t flush_tail[4] = {0x00, 0x00, 0xff, 0xff};

#define BUF_STEP 4096

struct corio__ws_zctx {
    z_stream zs;
    corio__ws_zctx *next; /* in the thread's cache */
    size_t bytes;         /* this struct and all zs allocated */
    int key;              /* what it was made with: deflate or not, bits, level, memLevel */
};

/* ---- zlib states: counted, cached per thread ------------------------------------------------ */

/* Every allocation carries its size in front, for the count at its free
 * (aligned as malloc's own blocks are). */
typedef struct alloc_hdr {
    _Alignas(max_align_t) size_t n;
} alloc_hdr;

static __thread size_t thread_bytes, thread_peak;

typedef struct zcache {
    corio__ws_zctx *head;
    int n;
} zcache;

static __thread zcache caches[2]; /* idle states: [0] deflate, [1] inflate */
static __thread bool cache_armed;

/* Adds (or takes) n bytes to z's count and the thread's, and keeps the
 * thread's peak: what corio__ws_pmd_bytes and _thread_bytes report. */
static void count(corio__ws_zctx *z, size_t n, bool add) {
    z->bytes = add ? z->bytes + n : z->bytes - n;
    thread_bytes = add ? thread_bytes + n : thread_bytes - n;
    if (thread_bytes > thread_peak)
        thread_peak = thread_bytes;
}

/* zlib's zalloc: opaque is the state being allocated for.  Z_NULL (zlib's
 * Z_MEM_ERROR) when malloc fails or items * size overflows. */
static voidpf zalloc_counted(voidpf opaque, uInt items, uInt size) {
    size_t n = (size_t)items * size;
    if (size && n / size != items)
        return Z_NULL;
    if (n > SIZE_MAX - sizeof(alloc_hdr))
        return Z_NULL;
    alloc_hdr *h = malloc(sizeof *h + n);
    if (!h)
        return Z_NULL;
    h->n = sizeof *h + n;
    count(opaque, h->n, true);
    return h + 1;
}

static void zfree_counted(voidpf opaque, voidpf p) {
    alloc_hdr *h = (alloc_hdr *)p - 1;
    count(opaque, h->n, false);
    free(h);
}

/* One int for what a state was made with, for the cache's lookups: bit
 * 16 deflate, bits 8-11 level + 1, 4-7 memLevel, 0-3 window bits. */
static int zkey(bool deflate, int bits, int level, int mem_level) {
    return (deflate ? 1 << 16 : 0) | bits | mem_level << 4 | (level + 1) << 8;
}

/* Frees z and all zlib allocated for it. */
static void zctx_free(corio__ws_zctx *z) {
    if (z->key >> 16)
        deflateEnd(&z->zs);
    else
        inflateEnd(&z->zs);
    count(z, sizeof *z, false);
    free(z);
}

/* Makes a zlib state: raw deflate (or inflate) with a window of 1 << bits.
 * Returns 0, CORIO_ENOMEM, or CORIO_EFAILED when zlib refuses the
 * parameters (corio__ws_pmd_init checked them: a bug). */
static int zctx_make(corio__ws_zctx **out, bool deflate, int bits, int level, int mem_level) {
    corio__ws_zctx *z = calloc(1, sizeof *z);
    if (!z)
        return CORIO_ENOMEM;
    z->zs.zalloc = zalloc_counted;
    z->zs.zfree = zfree_counted;
    z->zs.opaque = z;
    z->key = zkey(deflate, bits, level, mem_level);
    count(z, sizeof *z, true);
    int rc = deflate ? deflateInit2(&z->zs, level, Z_DEFLATED, -bits, mem_level, Z_DEFAULT_STRATEGY)
                     : inflateInit2(&z->zs, -bits);
    if (rc != Z_OK) { /* zlib freed what it had allocated */
        count(z, sizeof *z, false);
        free(z);
        return rc == Z_MEM_ERROR ? CORIO_ENOMEM : CORIO_EFAILED;
    }
    *out = z;
    return 0;
}

/* A state made with these parameters: an idle one of the thread's cache,
 * or a new one.  Returns what zctx_make returns. */
static int zctx_get(corio__ws_zctx **out, bool deflate, int bits, int level, int mem_level) {
    zcache *c = &caches[!deflate];
    int key = zkey(deflate, bits, level, mem_level);
    for (corio__ws_zctx **pz = &c->head; *pz; pz = &(*pz)->next) {
        if ((*pz)->key == key) {
            *out = *pz;
            *pz = (*pz)->next;
            c->n--;
            return 0;
        }
    }
    return zctx_make(out, deflate, bits, level, mem_level);
}

/* Gives z back, reset: to the thread's cache while it has room (and the
 * thread's exit can free it), else to free().  zlib's resets leave the
 * caller's fields alone: a state given back in the middle of a message
 * (its connection failed) would hand its next owner input that pointed
 * into a freed buffer. */
static void zctx_put(corio__ws_zctx *z) {
    bool deflate = z->key >> 16;
    zcache *c = &caches[!deflate];
    int rc = deflate ? deflateReset(&z->zs) : inflateReset(&z->zs);
    z->zs.next_in = NULL;
    z->zs.avail_in = 0;
    z->zs.next_out = NULL;
    z->zs.avail_out = 0;
    if (rc == Z_OK && c->n < CORIO__WS_PMD_CACHE_MAX &&
        corio__thread_exit_arm(corio__ws_pmd_cache_clear, &cache_armed)) {
        z->next = c->head;
        c->head = z;
        c->n++;
        return;
    }
    zctx_free(z);
}

void corio__ws_pmd_cache_clear(void) {
    for (int i = 0; i < 2; i++) {
        while (caches[i].head) {
            corio__ws_zctx *z = caches[i].head;
            caches[i].head = z->next;
            zctx_free(z);
        }
        caches[i].n = 0;
    }
}

size_t corio__ws_pmd_thread_bytes(size_t *peak) {
    if (peak)
        *peak = thread_peak;
    return thread_bytes;
}

void corio__ws_pmd_peak_reset(void) {
    thread_peak = thread_bytes;
}

/* ---- the connection ------------------------------------------------------------------------- */

void corio__ws_pmd_params_init(corio__ws_pmd_params *p) {
    *p = (corio__ws_pmd_params){
        .server_max_window_bits = 15,
        .client_max_window_bits = 15,
        .level = Z_DEFAULT_COMPRESSION,
        .mem_level = 8,
        .max_message = (size_t)1 << 20,
        .min_compress = 128,
    };
}

/* RFC 7692 7.1.2: window bits are 8..15. */
static bool bits_ok(int bits) {
    return bits >= 8 && bits <= 15;
}

int corio__ws_pmd_init(corio__ws_pmd *d, const corio__ws_pmd_params *p, bool server) {
    if (!bits_ok(p->server_max_window_bits) || !bits_ok(p->client_max_window_bits) ||
        p->level < -1 || p->level > 9 || p->mem_level < 1 || p->mem_level > 9 ||
        p->max_message == SIZE_MAX)
        return CORIO_EINVAL;
    int own = server ? p->server_max_window_bits : p->client_max_window_bits;
    int peer = server ? p->client_max_window_bits : p->server_max_window_bits;
    *d = (corio__ws_pmd){.p = *p};
    d->deflate_bits = own; /* 8: nothing is compressed (deflate.h) */
    d->inflate_bits = peer < 9 ? 9 : peer;
    d->deflate_reset = server ? p->server_no_context_takeover : p->client_no_context_takeover;
    d->inflate_reset = server ? p->client_no_context_takeover : p->server_no_context_takeover;
    return 0;
}

void corio__ws_pmd_release(corio__ws_pmd *d) {
    if (d->def)
        zctx_put(d->def);
    if (d->inf)
        zctx_put(d->inf);
    d->def = d->inf = NULL;
    d->dopen = d->iopen = false;
}

size_t corio__ws_pmd_bytes(const corio__ws_pmd *d) {
    return (d->def ? d->def->bytes : 0) + (d->inf ? d->inf->bytes : 0);
}

void corio__ws_buf_release(corio__ws_buf *b) {
    free(b->data);
    *b = (corio__ws_buf){0};
}

/* Makes room for at least `want` bytes after b->len, growing by doubling
 * but never past `limit` bytes in all.  Returns 0, CORIO_ENOMEM, or
 * CORIO_ERANGE when limit leaves no room. */
static int buf_room(corio__ws_buf *b, size_t want, size_t limit) {
    if (b->cap - b->len >= want)
        return 0;
    size_t cap = b->cap > SIZE_MAX / 2 ? SIZE_MAX : b->cap * 2;
    if (cap < b->len + BUF_STEP)
        cap = b->len > SIZE_MAX - BUF_STEP ? SIZE_MAX : b->len + BUF_STEP;
    if (cap > limit)
        cap = limit;
    if (cap <= b->len)
        return CORIO_ERANGE;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return CORIO_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

/* ---- sending -------------------------------------------------------------------------------- */

bool corio__ws_deflate_wanted(const corio__ws_pmd *d, size_t len) {
    return d->deflate_bits >= 9 && len >= d->p.min_compress;
}

int corio__ws_deflate_feed(corio__ws_pmd *d, const void *in, size_t n, bool last) {
    if (d->deflate_bits < 9)
        return CORIO_ENOTSUP;
    if (d->dlast || d->din_len || (d->def && d->def->zs.avail_in))
        return CORIO_EINVAL;
    if (!d->dopen) {
        if (!d->def) {
            int rc = zctx_get(&d->def, true, d->deflate_bits, d->p.level, d->p.mem_level);
            if (rc)
                return rc;
        }
        d->dopen = true;
        d->dout = 0;
        d->nhold = 0;
    }
    d->din = in;
    d->din_len = n;
    d->dlast = last;
    return 0;
}

/* Deflates what was fed into out[*len..cap), handing zlib the input in
 * slices it can count, and flushing once the last is in.  *done: the
 * flush that ends the message is over.  Returns 0 or CORIO_EFAILED. */
static int deflate_into(corio__ws_pmd *d, uint8_t *out, size_t cap, size_t *len, bool *done) {
    z_stream *zs = &d->def->zs;
    for (;;) {
        if (zs->avail_in == 0 && d->din_len) {
            uInt k = d->din_len > UINT_MAX ? UINT_MAX : (uInt)d->din_len;
            zs->next_in = d->din;
            zs->avail_in = k;
            d->din += k;
            d->din_len -= k;
        }
        if (*len == cap)
            return 0;
        int flush = d->dlast && d->din_len == 0 ? Z_SYNC_FLUSH : Z_NO_FLUSH;
        uInt room = cap - *len > UINT_MAX ? UINT_MAX : (uInt)(cap - *len);
        zs->next_out = out + *len;
        zs->avail_out = room;
        int rc = deflate(zs, flush); /* Z_BUF_ERROR: nothing to do, not an error */
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return CORIO_EFAILED;
        *len += room - zs->avail_out;
        d->dout += room - zs->avail_out;
        if (zs->avail_out == 0 || zs->avail_in || d->din_len)
            continue; /* out of room (checked above), or more input to hand over */
        *done = flush == Z_SYNC_FLUSH;
        return 0;
    }
}

/* The flush is over: out[0..len) ends the message.  Leaves off its
 * 00 00 ff ff; when zlib made nothing at all (an empty message right after
 * another one's flush: zlib declines a second flush in a row), the message
 * is the byte 00, the empty block of RFC 7692 7.2.3.6.  Closes the message
 * and, without context takeover, gives the state back. */
static int deflate_end(corio__ws_pmd *d, uint8_t *out, size_t len, size_t *outlen, bool *fin) {
    if (d->dout == 0) {
        out[0] = 0x00;
        len = 1;
    } else if (len < sizeof flush_tail + 1 ||
               memcmp(out + len - sizeof flush_tail, flush_tail, sizeof flush_tail) != 0) {
        return CORIO_EFAILED; /* a sync flush always ends so */
    } else {
        len -= sizeof flush_tail;
    }
    *outlen = len;
    *fin = true;
    d->dopen = d->dlast = false;
    if (d->deflate_reset) {
        zctx_put(d->def);
        d->def = NULL;
    }
    return 0;
}

int corio__ws_deflate_read(corio__ws_pmd *d, void *out, size_t cap, size_t *outlen, bool *fin) {
    *outlen = 0;
    *fin = false;
    if (cap < CORIO__WS_DEFLATE_READ_MIN)
        return CORIO_EINVAL;
    if (!d->dopen)
        return 0;
    uint8_t *o = out;
    size_t len = d->nhold;
    memcpy(o, d->hold, d->nhold);
    d->nhold = 0;
    bool done = false;
    int rc = deflate_into(d, o, cap, &len, &done);
    if (rc)
        return rc;
    if (done)
        return deflate_end(d, o, len, outlen, fin);
    d->nhold = (uint8_t)(len < sizeof d->hold ? len : sizeof d->hold); /* 5: see above */
    memcpy(d->hold, o + len - d->nhold, d->nhold);
    *outlen = len - d->nhold;
    return 0;
}

int corio__ws_deflate_buf(corio__ws_pmd *d, const void *in, size_t n, bool last,
                          corio__ws_buf *out) {
    int rc = corio__ws_deflate_feed(d, in, n, last);
    for (size_t k = 1; rc == 0;) {
        bool fin;
        rc = buf_room(out, CORIO__WS_DEFLATE_READ_MIN, SIZE_MAX);
        if (rc == 0)
            rc = corio__ws_deflate_read(d, out->data + out->len, out->cap - out->len, &k, &fin);
        out->len += rc == 0 ? k : 0;
        if (rc == 0 && (fin || k == 0))
            break;
    }
    return rc;
}

/* ---- receiving ------------------------------------------------------------------------------ */

/* Fails the message with rc, for good (the connection is to be closed),
 * and frees the zlib state. */
static int inflate_fail(corio__ws_pmd *d, int rc) {
    d->ierr = rc;
    d->iopen = false;
    if (d->inf) {
        zctx_free(d->inf);
        d->inf = NULL;
    }
    return rc;
}

int corio__ws_inflate_feed(corio__ws_pmd *d, const void *in, size_t n, bool last) {
    if (d->ierr)
        return d->ierr;
    if (d->ilast || d->iin_len || (d->inf && d->inf->zs.avail_in))
        return CORIO_EINVAL;
    if (!d->iopen) {
        if (!d->inf) {
            int rc = zctx_get(&d->inf, false, d->inflate_bits, -1, 0);
            if (rc)
                return rc;
        }
        d->iopen = true;
        d->inflated = 0;
        d->tail_given = d->ended = d->more_out = d->boundary = d->payload = false;
    }
    d->iin = in;
    d->iin_len = n;
    d->ilast = last;
    d->payload = d->payload || n;
    return 0;
}

/* Hands zlib its next input: a slice of what was fed, or after the
 * message's last byte its 00 00 ff ff (none after no payload at all).
 * False when there is none. */
static bool inflate_refill(corio__ws_pmd *d) {
    z_stream *zs = &d->inf->zs;
    if (d->iin_len) {
        uInt k = d->iin_len > UINT_MAX ? UINT_MAX : (uInt)d->iin_len;
        zs->next_in = d->iin;
        zs->avail_in = k;
        d->iin += k;
        d->iin_len -= k;
        return true;
    }
    if (d->ilast && !d->tail_given) {
        d->tail_given = true;
        if (!d->payload) { /* nothing to inflate: an empty message (deflate.h) */
            d->boundary = true;
            return false;
        }
        zs->next_in = flush_tail;
        zs->avail_in = sizeof flush_tail;
        return true;
    }
    return false;
}

/* Inflates what was fed into out[*len..cap), never more than one byte past
 * max_message for the message.  Once the peer's stream has ended (BFINAL)
 * the rest of the message is dropped.  Returns 0, CORIO_ERANGE,
 * CORIO_EBADMSG or CORIO_ENOMEM. */
static int inflate_into(corio__ws_pmd *d, uint8_t *out, size_t cap, size_t *len) {
    z_stream *zs = &d->inf->zs;
    for (;;) {
        if (d->ended) {
            zs->avail_in = 0;
            d->iin_len = 0;
            d->tail_given = d->ilast;
            d->more_out = false;
            return 0;
        }
        if (zs->avail_in == 0 && !d->more_out && !inflate_refill(d))
            return 0;
        if (*len == cap)
            return 0;
        size_t room = cap - *len, left = d->p.max_message - d->inflated;
        if (room > left + 1)
            room = left + 1;
        uInt r = room > UINT_MAX ? UINT_MAX : (uInt)room;
        zs->next_out = out + *len;
        zs->avail_out = r;
        int rc = inflate(zs, Z_SYNC_FLUSH);
        *len += r - zs->avail_out;
        d->inflated += r - zs->avail_out;
        if (d->inflated > d->p.max_message)
            return CORIO_ERANGE;
        if (rc == Z_MEM_ERROR)
            return CORIO_ENOMEM;
        if (rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END)
            return CORIO_EBADMSG; /* Z_DATA_ERROR; Z_NEED_DICT cannot be raw */
        d->ended = rc == Z_STREAM_END;
        d->more_out = zs->avail_out == 0;
        /* zlib says so after each call, but a call that can make no progress
         * (Z_BUF_ERROR) has already left the between-blocks state it reports */
        if (rc != Z_BUF_ERROR)
            d->boundary = zs->data_type & 128;
    }
}

/* All of the message went through zlib: it must have stopped between two
 * blocks (the appended 00 00 ff ff completed an empty stored block), or
 * ended its stream.  Closes the message; without context takeover gives
 * the state back, and a stream that ended starts again.  Returns 0 or
 * CORIO_EBADMSG (a truncated message). */
static int inflate_end(corio__ws_pmd *d) {
    z_stream *zs = &d->inf->zs;
    if (!d->ended && !d->boundary)
        return CORIO_EBADMSG;
    d->iopen = d->ilast = false;
    if (d->inflate_reset) {
        zctx_put(d->inf);
        d->inf = NULL;
    } else if (d->ended && inflateReset(zs) != Z_OK) {
        return CORIO_EBADMSG;
    }
    return 0;
}

int corio__ws_inflate_read(corio__ws_pmd *d, void *out, size_t cap, size_t *outlen, bool *fin) {
    *outlen = 0;
    *fin = false;
    if (d->ierr)
        return d->ierr;
    if (!d->iopen)
        return 0;
    size_t len = 0;
    int rc = inflate_into(d, out, cap, &len);
    if (rc)
        return inflate_fail(d, rc);
    *outlen = len;
    z_stream *zs = &d->inf->zs;
    if (d->ilast && d->tail_given && d->iin_len == 0 && zs->avail_in == 0 && !d->more_out) {
        rc = inflate_end(d);
        if (rc)
            return inflate_fail(d, rc);
        *fin = true;
    }
    return 0;
}

int corio__ws_inflate_buf(corio__ws_pmd *d, const void *in, size_t n, bool last,
                          corio__ws_buf *out) {
    int rc = corio__ws_inflate_feed(d, in, n, last);
    if (rc)
        return rc;
    /* max_message - inflated more bytes, and the one that says too many */
    size_t left = d->p.max_message - d->inflated;
    size_t limit = out->len > SIZE_MAX - left - 1 ? SIZE_MAX : out->len + left + 1;
    for (size_t k = 1; rc == 0;) {
        bool fin;
        rc = buf_room(out, 1, limit);
        if (rc) /* the message cannot go on without its bytes */
            return inflate_fail(d, rc);
        rc = corio__ws_inflate_read(d, out->data + out->len, out->cap - out->len, &k, &fin);
        out->len += rc == 0 ? k : 0;
        if (rc == 0 && (fin || k == 0))
            break;
    }
    return rc;
}
