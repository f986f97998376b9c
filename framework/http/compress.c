/* SPDX-License-Identifier: MIT */
/* gzip response compression (corio/http.h, "compression"): the middleware,
 * the decision taken when a response's head is about to go out, and the
 * deflate streams.
 *
 * The middleware only points the response at its compressor (res->gz);
 * response.c calls in here when a head is about to be queued.  The decision
 * reads the head being built (status, content type, the fields the handler
 * set in res->extra) and only then, for a response that could be
 * compressed, the request's Accept-Encoding.  A whole body is compressed in
 * one call into slices of the arena, with a window no larger than the body
 * needs (as nginx does: less memory to set up) and its stream freed before
 * the call returns; a streamed body keeps its stream (res->gzs) until its
 * end, and each write is flushed so that the client can decode everything
 * written so far.
 *
 * Memory: every block deflate allocates comes through gz_alloc, which counts
 * the calling thread's bytes (a loop runs on one thread) and refuses past
 * the compressor's max_memory; refused or failed, the response goes out
 * uncompressed.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "base/tchar.h"
#include "http/http_internal.h"

#define DEFAULT_LEVEL 1
#define DEFAULT_MIN_SIZE 1024
#define DEFAULT_WINDOW_BITS 15
#define DEFAULT_MEM_LEVEL 8
#define DEFAULT_MAX_MEMORY ((size_t)64 << 20)
#define GZIP_WRAPPER 16   /* added to windowBits: a gzip header and trailer, not zlib's */
#define MIN_LOOKAHEAD 262 /* zlib's: a window reaches back w_size - 262 bytes */
#define SLICE_FIRST 4000  /* a whole body's first output slice: within an arena chunk */
#define SLICE_MAX (64 * 1024)
#define OUT_MIN (4 * 1024) /* a stream's output buffer: its window's size, within these */
#define OUT_MAX (16 * 1024)
#define BLOCK_HEADER 16   /* before each block gz_alloc hands out: its size (keeps 16-alignment) */
#define MAGIC 0x677a6970u /* "gzip": what the middleware checks its arg for */

struct corio_http_compress {
    uint32_t magic; /* MAGIC: an arg that is something else is the caller's mistake */
    int level, window_bits, mem_level;
    size_t min_size, max_memory;
    const char *const *types; /* NULL-terminated, lower case */
};

static const char *const default_types[] = {
    "text/*",
    "application/json",
    "application/*+json",
    "application/javascript",
    "application/xml",
    "application/*+xml",
    "image/svg+xml",
    "application/x-ndjson",
    "application/wasm",
    "font/ttf",
    "font/otf",
    "image/x-icon",
    "image/bmp",
    NULL,
};

static const corio_http_compress defaults = {
    .magic = MAGIC,
    .level = DEFAULT_LEVEL,
    .window_bits = DEFAULT_WINDOW_BITS,
    .mem_level = DEFAULT_MEM_LEVEL,
    .min_size = DEFAULT_MIN_SIZE,
    .max_memory = DEFAULT_MAX_MEMORY,
    .types = default_types,
};

/* A compressed stream's state: deflate's and its output buffer. */
typedef struct corio__gz {
    z_stream z;
    size_t cap;
    unsigned char out[];
} corio__gz;

/* ---- memory --------------------------------------------------------------------------------- */

static __thread size_t live_bytes; /* deflate memory this thread holds */

size_t corio__gz_live_bytes(void) {
    return live_bytes;
}

/* zlib's allocator: malloc within the compressor's budget (opaque). */
static voidpf gz_alloc(voidpf opaque, uInt items, uInt size) {
    const corio_http_compress *gz = opaque;
    size_t n = (size_t)items * size + BLOCK_HEADER;
    if (n > gz->max_memory || live_bytes > gz->max_memory - n)
        return Z_NULL;
    size_t *p = malloc(n);
    if (!p)
        return Z_NULL;
    *p = n;
    live_bytes += n;
    return (char *)p + BLOCK_HEADER;
}

static void gz_free(voidpf opaque, voidpf ptr) {
    (void)opaque;
    if (!ptr)
        return;
    size_t *p = (size_t *)(void *)((char *)ptr - BLOCK_HEADER);
    live_bytes -= *p;
    free(p);
}

/* deflateInit2 for gz with this window and hash memory; z is zeroed here. */
static bool deflate_init(z_stream *z, const corio_http_compress *gz, int wbits, int mem) {
    memset(z, 0, sizeof *z);
    z->zalloc = gz_alloc;
    z->zfree = gz_free;
    z->opaque = (voidpf)gz;
    return deflateInit2(z, gz->level, Z_DEFLATED, wbits + GZIP_WRAPPER, mem, Z_DEFAULT_STRATEGY) ==
           Z_OK;
}

/* ---- the compressor ------------------------------------------------------------------------- */

/* A type pattern: type/subtype characters and at most one '*'. */
static bool pattern_ok(const char *p) {
    size_t stars = 0, n = strlen(p);
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '*')
            stars++;
        else if (!corio__is_tchar((unsigned char)p[i]) && p[i] != '/')
            return false;
    }
    return n > 0 && stars <= 1;
}

static int in_range(int v, int dflt, int lo, int hi, int *out) {
    *out = v ? v : dflt;
    return *out >= lo && *out <= hi ? 0 : CORIO_EINVAL;
}

int corio_http_compress_new(corio_http_compress **out, const corio_http_compress_opts *opts) {
    static const corio_http_compress_opts zero;
    if (!out)
        return CORIO_EINVAL;
    if (!opts)
        opts = &zero;
    corio_http_compress cfg = {
        .magic = MAGIC,
        .min_size = opts->min_size ? opts->min_size : DEFAULT_MIN_SIZE,
        .max_memory = opts->max_memory ? opts->max_memory : DEFAULT_MAX_MEMORY,
    };
    if (in_range(opts->level, DEFAULT_LEVEL, 1, 9, &cfg.level) ||
        in_range(opts->window_bits, DEFAULT_WINDOW_BITS, 9, 15, &cfg.window_bits) ||
        in_range(opts->mem_level, DEFAULT_MEM_LEVEL, 1, 9, &cfg.mem_level))
        return CORIO_EINVAL;
    const char *const *types = opts->types ? opts->types : default_types;
    size_t n = 0, bytes = 0;
    for (; types[n]; n++) {
        if (!pattern_ok(types[n]))
            return CORIO_EINVAL;
        bytes += strlen(types[n]) + 1;
    }
    if (n == 0)
        return CORIO_EINVAL;
    /* One block: the struct, the pointers, the strings (lower-cased). */
    corio_http_compress *gz = malloc(sizeof *gz + (n + 1) * sizeof(char *) + bytes);
    if (!gz)
        return CORIO_ENOMEM;
    *gz = cfg;
    const char **list = (const char **)(void *)(gz + 1);
    char *text = (char *)(list + n + 1);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(types[i]);
        for (size_t k = 0; k < len; k++) /* ASCII, whatever the locale */
            text[k] =
                (char)(types[i][k] >= 'A' && types[i][k] <= 'Z' ? types[i][k] + 32 : types[i][k]);
        text[len] = '\0';
        list[i] = text;
        text += len + 1;
    }
    list[n] = NULL;
    gz->types = list;
    *out = gz;
    return 0;
}

void corio_http_compress_free(corio_http_compress *gz) {
    if (gz)
        gz->magic = 0;
    free(gz);
}

int corio_http_compress_middleware(corio_req *req, corio_res *res, corio_next *next, void *arg) {
    (void)req;
    const corio_http_compress *gz = arg ? arg : &defaults;
    if (!res || !next)
        return CORIO_EINVAL;
    if (gz->magic != MAGIC) { /* the options, say, rather than the compressor made of them */
        static bool told;
        if (!__atomic_exchange_n(&told, true, __ATOMIC_RELAXED))
            corio__report("corio_http_compress_middleware: its arg is not a corio_http_compress "
                          "(corio_http_compress_new) nor NULL");
        return CORIO_EINVAL;
    }
    if (!res->started)
        res->gz = gz;
    return corio_next_call(next);
}

void corio_res_no_compress(corio_res *res) {
    if (res && !res->started)
        res->gz = NULL;
}

/* ---- reading the head being built ----------------------------------------------------------- */

static bool ows(char ch) {
    return ch == ' ' || ch == '\t';
}

static corio_strv trim(const char *p, size_t n) {
    while (n && ows(*p))
        p++, n--;
    while (n && ows(p[n - 1]))
        n--;
    return (corio_strv){p, n};
}

static bool strv_ieq(corio_strv v, const char *s) {
    return strlen(s) == v.len && strncasecmp(v.ptr, s, v.len) == 0;
}

/* The next field the handler set (res->extra holds "Name: value\r\n"
 * lines) from *pos on named `name` (lower case): its value, or false. */
static bool next_field(const corio_res *res, size_t *pos, const char *name, corio_strv *value) {
    size_t nlen = strlen(name);
    while (*pos < res->extra_len) {
        const char *line = res->extra + *pos;
        const char *eol = memchr(line, '\r', res->extra_len - *pos); /* values hold no CR */
        if (!eol)
            break;
        *pos = (size_t)(eol - res->extra) + 2;
        if ((size_t)(eol - line) >= nlen + 2 && line[nlen] == ':' &&
            strncasecmp(line, name, nlen) == 0) {
            *value = (corio_strv){line + nlen + 2, (size_t)(eol - line) - nlen - 2};
            return true;
        }
    }
    return false;
}

static bool has_field(const corio_res *res, const char *name) {
    size_t pos = 0;
    corio_strv v;
    return next_field(res, &pos, name, &v);
}

/* Whether a list field named `name` (every line of it) has an element
 * `elem` (a directive's name before any '='). */
static bool field_has(const corio_res *res, const char *name, const char *elem) {
    size_t pos = 0;
    corio_strv v;
    while (next_field(res, &pos, name, &v)) {
        for (size_t i = 0; i < v.len;) {
            size_t end = i;
            while (end < v.len && v.ptr[end] != ',')
                end++;
            corio_strv e = trim(v.ptr + i, end - i);
            const char *eq = memchr(e.ptr, '=', e.len);
            if (eq)
                e = trim(e.ptr, (size_t)(eq - e.ptr));
            if (strv_ieq(e, elem))
                return true;
            i = end + 1;
        }
    }
    return false;
}

/* Whether the media type of a Content-Type value matches one of gz's
 * patterns ('*': any run of characters). */
static bool type_matches(const corio_http_compress *gz, corio_strv ctype) {
    const char *semi = memchr(ctype.ptr, ';', ctype.len);
    corio_strv t = trim(ctype.ptr, semi ? (size_t)(semi - ctype.ptr) : ctype.len);
    for (const char *const *p = gz->types; *p; p++) {
        const char *star = strchr(*p, '*');
        if (!star) {
            if (strv_ieq(t, *p))
                return true;
            continue;
        }
        size_t pre = (size_t)(star - *p), suf = strlen(star + 1);
        if (t.len >= pre + suf && strncasecmp(t.ptr, *p, pre) == 0 &&
            strncasecmp(t.ptr + t.len - suf, star + 1, suf) == 0)
            return true;
    }
    return false;
}

/* ---- Accept-Encoding (RFC 9110 12.5.3) ------------------------------------------------------ */

/* Weights in thousandths, or -1 for a coding the field does not name. */
typedef struct weights {
    int gzip, identity, star;
} weights;

/* A qvalue: "0", "0." and up to three digits, "1", "1." and up to three
 * zeros.  Returns 0..1000, or -1 when malformed. */
static int qvalue(corio_strv v) {
    if (v.len == 0 || (v.ptr[0] != '0' && v.ptr[0] != '1') || v.len > 5)
        return -1;
    if (v.len > 1 && v.ptr[1] != '.')
        return -1;
    int q = (v.ptr[0] - '0') * 1000, scale = 100;
    for (size_t i = 2; i < v.len; i++, scale /= 10) {
        if (v.ptr[i] < '0' || v.ptr[i] > '9')
            return -1;
        q += (v.ptr[i] - '0') * scale;
    }
    return q <= 1000 ? q : -1;
}

/* Records one element ("gzip;q=0.5") of the list.  A malformed weight counts
 * as 0 (refused), a coding named twice keeps its lowest weight. */
static void weigh(weights *w, corio_strv elem) {
    const char *semi = memchr(elem.ptr, ';', elem.len);
    corio_strv coding = trim(elem.ptr, semi ? (size_t)(semi - elem.ptr) : elem.len);
    int q = 1000;
    while (semi) {
        const char *p = semi + 1, *end = elem.ptr + elem.len;
        semi = memchr(p, ';', (size_t)(end - p));
        corio_strv param = trim(p, (size_t)((semi ? semi : end) - p));
        if (param.len >= 2 && (param.ptr[0] == 'q' || param.ptr[0] == 'Q') && param.ptr[1] == '=') {
            int v = qvalue(trim(param.ptr + 2, param.len - 2));
            q = v < 0 ? 0 : v;
        }
    }
    int *slot = NULL;
    if (strv_ieq(coding, "gzip") || strv_ieq(coding, "x-gzip"))
        slot = &w->gzip;
    else if (strv_ieq(coding, "identity"))
        slot = &w->identity;
    else if (strv_ieq(coding, "*"))
        slot = &w->star;
    if (slot && (*slot < 0 || q < *slot))
        *slot = q;
}

/* Whether the client takes gzip, and prefers it at least as much as no
 * coding.  No Accept-Encoding field, or an empty one: no. */
static bool accepts_gzip(corio__hconn *c) {
    corio__req_track_head(c); /* an answer of the server's after the handler: unpinned */
    const corio_req *req = &c->req;
    weights w = {-1, -1, -1};
    bool named = false;
    size_t n = corio_req_header_count(req);
    for (size_t i = 0; i < n; i++) {
        corio_strv name, v;
        if (!corio_req_header_at(req, i, &name, &v) || !strv_ieq(name, "accept-encoding"))
            continue;
        named = true;
        for (size_t k = 0; k < v.len;) {
            size_t end = k;
            while (end < v.len && v.ptr[end] != ',')
                end++;
            weigh(&w, (corio_strv){v.ptr + k, end - k});
            k = end + 1;
        }
    }
    if (!named)
        return false;
    int gzip = w.gzip >= 0 ? w.gzip : w.star >= 0 ? w.star : 0;
    int identity = w.identity >= 0 ? w.identity : w.star; /* -1: acceptable, not weighed */
    return gzip > 0 && gzip >= identity;
}

/* ---- the decision --------------------------------------------------------------------------- */

typedef enum verdict {
    NEVER,    /* this response is never compressed, for any client: as it is */
    VARY,     /* it could be, not for this request: as it is, with Vary */
    COMPRESS, /* compressed, with Vary */
} verdict;

/* The Content-Type the head will carry: the argument, else the handler's
 * field; false for none. */
static bool content_type(const corio_res *res, const char *ctype, corio_strv *out) {
    if (ctype) {
        *out = (corio_strv){ctype, strlen(ctype)};
        return true;
    }
    size_t pos = 0;
    return next_field(res, &pos, "content-type", out);
}

/* Whether this response's body could be compressed for some client,
 * whatever its status: not already encoded, not a range, not forbidden
 * to transform, of a type gz compresses. */
static bool compressible(const corio_res *res, const char *ctype) {
    corio_strv t;
    return !has_field(res, "content-encoding") && !has_field(res, "content-range") &&
           !field_has(res, "cache-control", "no-transform") && content_type(res, ctype, &t) &&
           type_matches(res->gz, t);
}

static verdict judge(const corio_res *res, int status, const char *ctype, bool length_known,
                     uint64_t length, bool can_frame) {
    /* the cheap tests first: most small answers end here */
    if (status == 204 || status == 206 || status == 304 ||
        (length_known && length < res->gz->min_size) || !compressible(res, ctype))
        return NEVER;
    if (!can_frame)
        return VARY;
    return accepts_gzip(res->c) ? COMPRESS : VARY;
}

/* Adds "Vary: Accept-Encoding" unless a Vary field covers it already. */
static int add_vary(corio_res *res) {
    if (field_has(res, "vary", "accept-encoding") || field_has(res, "vary", "*"))
        return 0;
    return corio_res_header(res, "Vary", "Accept-Encoding");
}

int corio__gz_file(corio_res *res, const char *ctype, uint64_t length, bool *compress) {
    *compress = false;
    if (!res->gz)
        return 0;
    verdict v = judge(res, 200, ctype, true, length, true);
    if (v == VARY)
        return add_vary(res);
    *compress = v == COMPRESS;
    return 0;
}

/* A strong ETag set by the handler becomes weak: the compressed bytes are
 * not the identity representation's (RFC 9110 8.8.1). */
static int weaken_etag(corio_res *res) {
    size_t pos = 0;
    corio_strv v;
    if (!next_field(res, &pos, "etag", &v) || v.len == 0 || v.ptr[0] != '"')
        return 0;
    size_t at = (size_t)(v.ptr - res->extra);
    char *p = corio__arena_alloc(&res->c->arena, res->extra_len + 2);
    if (!p)
        return CORIO_ENOMEM;
    memcpy(p, res->extra, at);
    memcpy(p + at, "W/", 2);
    memcpy(p + at + 2, res->extra + at, res->extra_len - at);
    res->extra = p;
    res->extra_len += 2;
    res->extra_cap = res->extra_len;
    return 0;
}

/* Vary (when a verdict is not NEVER) and, when compressing, the
 * encoding's fields.  Returns the verdict that stands: COMPRESS only when
 * every field went in. */
static verdict mark(corio_res *res, verdict v) {
    if (v == NEVER || add_vary(res) != 0)
        return NEVER; /* no compressed answer without its Vary */
    if (v == COMPRESS &&
        (weaken_etag(res) != 0 || corio_res_header(res, "Content-Encoding", "gzip") != 0))
        return VARY;
    return v;
}

/* ---- whole bodies --------------------------------------------------------------------------- */

/* Appends a slice to out's list (in the arena).  Returns false when out of
 * memory. */
static bool add_slice(corio__arena *a, corio__gz_out *out, size_t *cap, void *p, size_t n) {
    if (n == 0)
        return true;
    if (out->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 4;
        struct iovec *iov = corio__arena_alloc(a, ncap * sizeof *iov);
        if (!iov)
            return false;
        if (out->n)
            memcpy(iov, out->iov, out->n * sizeof *iov);
        out->iov = iov;
        *cap = ncap;
    }
    out->iov[out->n++] = (struct iovec){.iov_base = p, .iov_len = n};
    out->len += n;
    return true;
}

/* Compresses len bytes into slices of the arena.  Returns false (nothing
 * to undo: the arena's memory goes with the request) when deflate's
 * memory or the arena's runs out. */
static bool compress_whole(corio_res *res, const void *body, size_t len, corio__gz_out *out) {
    const corio_http_compress *gz = res->gz;
    corio__arena *a = &res->c->arena;
    /* The smallest window that still reaches back over the whole body, and
     * the hash memory reduced with it. */
    int wbits = gz->window_bits, mem = gz->mem_level;
    while (wbits > 9 && len < ((size_t)1 << (wbits - 1)) - MIN_LOOKAHEAD) {
        wbits--;
        if (mem > 1)
            mem--;
    }
    z_stream z;
    if (!deflate_init(&z, gz, wbits, mem))
        return false;
    *out = (corio__gz_out){0};
    size_t cap_iov = 0, bound = deflateBound(&z, len > ULONG_MAX ? ULONG_MAX : (uLong)len);
    size_t slice = bound < SLICE_FIRST ? bound : SLICE_FIRST;
    const unsigned char *in = body;
    size_t left = len;
    unsigned char *cur = NULL;
    bool ok = true;
    for (;;) {
        if (z.avail_in == 0 && left) {
            uInt n = left > UINT_MAX ? UINT_MAX : (uInt)left;
            z.next_in = (Bytef *)(uintptr_t)in;
            z.avail_in = n;
            in += n;
            left -= n;
        }
        if (!cur || z.avail_out == 0) { /* a slice full (or none yet): the next one */
            if (cur) {
                ok = add_slice(a, out, &cap_iov, cur, slice);
                slice = slice * 2 < SLICE_MAX ? slice * 2 : SLICE_MAX;
            }
            cur = ok ? corio__arena_alloc(a, slice) : NULL;
            if (!cur) {
                ok = false;
                break;
            }
            z.next_out = cur;
            z.avail_out = (uInt)slice;
        }
        int zrc = deflate(&z, left ? Z_NO_FLUSH : Z_FINISH);
        if (zrc == Z_STREAM_END) {
            ok = add_slice(a, out, &cap_iov, cur, slice - z.avail_out);
            break;
        }
        if (zrc != Z_OK && zrc != Z_BUF_ERROR) {
            ok = false;
            break;
        }
    }
    deflateEnd(&z);
    return ok;
}

corio__gz_how corio__gz_send(corio_res *res, int status, const char *ctype, const void *body,
                             size_t len, corio__gz_out *out) {
    if (status == 304) {
        /* No body; the Vary the 200 would carry (RFC 9110 15.4.5), when the
         * handler says of what type it would be. */
        if (ctype && compressible(res, ctype))
            add_vary(res);
        return CORIO__GZ_PLAIN;
    }
    verdict v = judge(res, status, ctype, true, len, true);
    if (v == COMPRESS && !res->c->req.head_method && !compress_whole(res, body, len, out))
        v = VARY; /* out of memory: as it is */
    v = mark(res, v);
    if (v != COMPRESS)
        return CORIO__GZ_PLAIN;
    return res->c->req.head_method ? CORIO__GZ_HEAD : CORIO__GZ_BODY;
}

/* ---- streams -------------------------------------------------------------------------------- */

bool corio__gz_start(corio_res *res, int status, const char *ctype, bool length_known,
                     uint64_t length) {
    verdict v =
        judge(res, status, ctype, length_known, length, !length_known || res->c->req.minor >= 1);
    if (v == COMPRESS && !res->c->req.head_method) {
        const corio_http_compress *gz = res->gz;
        size_t cap = (size_t)1 << gz->window_bits;
        cap = cap < OUT_MIN ? OUT_MIN : cap > OUT_MAX ? OUT_MAX : cap;
        corio__gz *s = gz_alloc((voidpf)gz, 1, (uInt)(sizeof *s + cap));
        if (s && deflate_init(&s->z, gz, gz->window_bits, gz->mem_level)) {
            s->cap = cap;
            res->gzs = s;
        } else {
            gz_free(NULL, s);
            v = VARY; /* out of memory, or past max_memory: as it is */
        }
    }
    v = mark(res, v);
    if (v != COMPRESS)
        corio__gz_release(res);
    return v == COMPRESS;
}

int corio__gz_write(corio_res *res, const void *data, size_t len) {
    corio__gz *s = res->gzs;
    const unsigned char *in = data;
    for (;;) {
        if (s->z.avail_in == 0 && len) {
            uInt n = len > UINT_MAX ? UINT_MAX : (uInt)len;
            s->z.next_in = (Bytef *)(uintptr_t)in;
            s->z.avail_in = n;
            in += n;
            len -= n;
        }
        s->z.next_out = s->out;
        s->z.avail_out = (uInt)s->cap;
        /* A sync flush once all of it is in: everything written so far
         * can be decoded by the client (a server-sent event shows). */
        int zrc = deflate(&s->z, len ? Z_NO_FLUSH : Z_SYNC_FLUSH);
        if (zrc != Z_OK && zrc != Z_BUF_ERROR)
            return CORIO_EFAILED; /* a stream deflate calls inconsistent: not ours */
        size_t n = s->cap - s->z.avail_out;
        if (n) {
            int rc = corio__res_emit(res, s->out, n);
            if (rc)
                return rc;
        }
        if (!len && s->z.avail_in == 0 && s->z.avail_out != 0)
            return 0; /* flushed whole */
    }
}

/* Queues the stream's last n bytes (borrowed), framed, in a copy in the
 * arena: they leave with the last chunk, in the batch's write.  Written
 * at once (and not batched) when the arena is out of memory. */
static int queue_last(corio_res *res, const void *p, size_t n) {
    char *b = corio__arena_alloc(&res->c->arena, n + 24);
    if (!b)
        return corio__res_emit(res, p, n);
    size_t k = res->chunked ? (size_t)snprintf(b, 24, "%zx\r\n", n) : 0;
    memcpy(b + k, p, n);
    k += n;
    if (res->chunked) {
        memcpy(b + k, "\r\n", 2);
        k += 2;
    }
    res->body_bytes += n;
    return corio__hconn_queue(res->c, b, k);
}

int corio__gz_finish(corio_res *res) {
    corio__gz *s = res->gzs;
    int rc = 0;
    for (;;) {
        s->z.next_out = s->out;
        s->z.avail_out = (uInt)s->cap;
        int zrc = deflate(&s->z, Z_FINISH);
        size_t n = s->cap - s->z.avail_out;
        if (zrc == Z_STREAM_END) {
            rc = n ? queue_last(res, s->out, n) : 0;
            break;
        }
        if (zrc != Z_OK && zrc != Z_BUF_ERROR) {
            rc = CORIO_EFAILED;
            break;
        }
        /* More than a buffer's worth (not after a sync flush): out now. */
        if (n && (rc = corio__res_emit(res, s->out, n)) != 0)
            break;
    }
    corio__gz_release(res);
    return rc;
}

void corio__gz_release(corio_res *res) {
    corio__gz *s = res->gzs;
    if (!s)
        return;
    res->gzs = NULL;
    deflateEnd(&s->z);
    gz_free(NULL, s);
}
