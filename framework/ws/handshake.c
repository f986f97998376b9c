/* SPDX-License-Identifier: MIT */
/* The opening handshake's pure parts (see ws/handshake.h): keys, list
 * headers, subprotocols, and the permessage-deflate negotiation.
 *
 * Header values are read where they lie, as slices.  Case is ignored with
 * our own ASCII comparison, not strncasecmp, whose result depends on the
 * locale.  Sec-WebSocket-Extensions is parsed by a small cursor over RFC
 * 6455 9.1's grammar (with the optional whitespace of RFC 9110 5.6.3
 * around each separator); an element that does not parse is skipped up to
 * the next comma outside a quoted string, so one bad offer does not hide
 * the good ones after it.
 */
#include <string.h>

#include <openssl/evp.h>

#include "base/tchar.h"
#include "ws/handshake.h"

#define GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define GUID_LEN 36

/* ---- keys ------------------------------------------------------------------------------------ */

static bool is_b64(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

bool corio__ws_key_valid(const char *key, size_t len) {
    if (len != CORIO__WS_KEY_LEN || key[22] != '=' || key[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++)
        if (!is_b64((unsigned char)key[i]))
            return false;
    return true;
}

int corio__ws_accept_key(const char *key, size_t len, char *out) {
    if (!corio__ws_key_valid(key, len))
        return CORIO_EINVAL;
    unsigned char in[CORIO__WS_KEY_LEN + GUID_LEN];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    memcpy(in, key, CORIO__WS_KEY_LEN);
    memcpy(in + CORIO__WS_KEY_LEN, GUID, GUID_LEN);
    if (!EVP_Digest(in, sizeof in, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
        return CORIO_EFAILED;
    EVP_EncodeBlock((unsigned char *)out, md, 20); /* 28 characters and a NUL */
    return 0;
}

int corio__ws_accept_check(const char *key, size_t key_len, const char *accept, size_t accept_len) {
    char want[CORIO__WS_ACCEPT_LEN + 1];
    int rc = corio__ws_accept_key(key, key_len, want);
    if (rc)
        return rc;
    if (accept_len != CORIO__WS_ACCEPT_LEN || memcmp(accept, want, CORIO__WS_ACCEPT_LEN) != 0)
        return CORIO_EBADMSG;
    return 0;
}

void corio__ws_client_key(char *out, const uint8_t nonce[16]) {
    EVP_EncodeBlock((unsigned char *)out, nonce, 16); /* 24 characters and a NUL */
}

/* ---- list headers -------------------------------------------------------------------------- */

static unsigned char lower(unsigned char c) {
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

static bool same(const char *a, const char *b, size_t n, bool nocase) {
    if (!nocase)
        return memcmp(a, b, n) == 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

static bool is_ows(char c) {
    return c == ' ' || c == '\t';
}

/* Whether the list holds token as one of its elements. */
static bool list_has(const char *v, size_t len, const char *token, bool nocase) {
    if (len == 0)
        return false; /* and v may be NULL: no arithmetic on it */
    size_t tl = strlen(token);
    const char *end = v + len;
    while (v < end) {
        const char *comma = memchr(v, ',', (size_t)(end - v));
        const char *e = comma ? comma : end;
        while (v < e && is_ows(*v))
            v++;
        const char *t = e;
        while (t > v && is_ows(t[-1]))
            t--;
        if ((size_t)(t - v) == tl && same(v, token, tl, nocase))
            return true;
        v = comma ? comma + 1 : end;
    }
    return false;
}

bool corio__ws_has_token(const char *value, size_t len, const char *token) {
    return list_has(value, len, token, true);
}

int corio__ws_subprotocol_select(const char *offered, size_t len, const char *const *prefs,
                                 size_t nprefs) {
    for (size_t i = 0; i < nprefs; i++)
        if (list_has(offered, len, prefs[i], false))
            return (int)i;
    return CORIO_ENOENT;
}

/* ---- Sec-WebSocket-Extensions --------------------------------------------------------------- */

typedef struct cursor {
    const char *p, *end;
} cursor;

static void skip_ows(cursor *c) {
    while (c->p < c->end && is_ows(*c->p))
        c->p++;
}

static bool at(const cursor *c, char ch) {
    return c->p < c->end && *c->p == ch;
}

/* Takes a token (possibly empty) and the whitespace after it. */
static size_t take_token(cursor *c, const char **tok) {
    *tok = c->p;
    while (c->p < c->end && corio__is_tchar((unsigned char)*c->p))
        c->p++;
    size_t n = (size_t)(c->p - *tok);
    skip_ows(c);
    return n;
}

/* The longest parameter value kept: window bits are 1 or 2 digits, and a
 * longer value is wrong whatever it says. */
#define VALUE_MAX 4

typedef struct value {
    char text[VALUE_MAX];
    size_t len; /* the whole value's length, even past VALUE_MAX */
    bool token; /* it is a token (RFC 6455 9.1 requires it, quoted or not) */
} value;

static void value_put(value *v, unsigned char ch) {
    if (v->len < VALUE_MAX)
        v->text[v->len] = (char)ch;
    v->len++;
    v->token = v->token && corio__is_tchar(ch);
}

/* Takes a quoted-string (c at its opening quote), unescaped into *v.
 * Returns false when it does not end. */
static bool take_quoted(cursor *c, value *v) {
    for (c->p++; c->p < c->end; c->p++) {
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '"') {
            c->p++;
            return true;
        }
        if (ch == '\\' && ++c->p == c->end)
            break;
        value_put(v, (unsigned char)*c->p);
    }
    return false;
}

/* Takes a parameter's value after its '=': a token or a quoted string, and
 * the whitespace after it.  Returns false on a syntax error. */
static bool take_value(cursor *c, value *v) {
    *v = (value){.token = true};
    skip_ows(c);
    if (at(c, '"')) {
        if (!take_quoted(c, v))
            return false;
    } else {
        const char *t;
        size_t n = take_token(c, &t);
        if (n == 0)
            return false;
        for (size_t i = 0; i < n; i++)
            value_put(v, (unsigned char)t[i]);
    }
    skip_ows(c);
    return v->len > 0;
}

/* Moves c past the next comma outside a quoted string (or to the end):
 * the rest of an element that did not parse. */
static void skip_element(cursor *c) {
    bool quoted = false;
    for (; c->p < c->end; c->p++) {
        if (quoted && *c->p == '\\' && c->p + 1 < c->end)
            c->p++;
        else if (*c->p == '"')
            quoted = !quoted;
        else if (*c->p == ',' && !quoted)
            break;
    }
    if (c->p < c->end)
        c->p++;
}

/* Moves c to the start of the next element, past whitespace and empty
 * elements.  Returns false at the end of the value. */
static bool next_element(cursor *c) {
    while (c->p < c->end && (is_ows(*c->p) || *c->p == ','))
        c->p++;
    return c->p < c->end;
}

/* ---- permessage-deflate ------------------------------------------------------------------- */

/* An element as read, or an answer to send.  Window bits are ABSENT,
 * NO_VALUE (the parameter without "=", which only client_max_window_bits
 * in an offer may be) or 8 to 15. */
enum { ABSENT = -1, NO_VALUE = 0 };

typedef struct pmd {
    bool named; /* the element is permessage-deflate */
    bool bad;   /* a parameter unknown, repeated or with a bad value */
    bool snct, cnct;
    int smwb, cmwb;
} pmd;

/* Window bits from a value: "8" to "15", no leading zero (RFC 7692
 * 7.1.2).  Returns 0 for anything else. */
static int window_bits(const value *v) {
    if (!v->token || v->len < 1 || v->len > 2 || v->text[0] == '0')
        return 0;
    int n = 0;
    for (size_t i = 0; i < v->len; i++) {
        if (v->text[i] < '0' || v->text[i] > '9')
            return 0;
        n = n * 10 + (v->text[i] - '0');
    }
    return n >= 8 && n <= 15 ? n : 0;
}

static bool name_is(const char *name, size_t len, const char *want) {
    return len == strlen(want) && memcmp(name, want, len) == 0;
}

/* Records parameter name (with value v, or NULL for none) of an element:
 * an unknown name, a second time, a value where none belongs or a bad
 * one make the element bad. */
static void pmd_param(pmd *o, const char *name, size_t len, const value *v) {
    bool *flag = NULL;
    int *bits = NULL;
    if (name_is(name, len, "server_no_context_takeover"))
        flag = &o->snct;
    else if (name_is(name, len, "client_no_context_takeover"))
        flag = &o->cnct;
    else if (name_is(name, len, "server_max_window_bits"))
        bits = &o->smwb;
    else if (name_is(name, len, "client_max_window_bits"))
        bits = &o->cmwb;
    if (flag) {
        o->bad = o->bad || *flag || v != NULL;
        *flag = true;
    } else if (bits) {
        o->bad = o->bad || *bits != ABSENT;
        *bits = v ? window_bits(v) : NO_VALUE;
        o->bad = o->bad || (v && *bits == 0) || (!v && bits == &o->smwb);
    } else {
        o->bad = true;
    }
}

/* Parses one element: name, then "; param[=value]" pairs, up to a comma
 * or the end.  Returns false on a syntax error. */
static bool parse_element(cursor *c, pmd *o) {
    const char *name;
    size_t n = take_token(c, &name);
    if (n == 0)
        return false;
    o->named = name_is(name, n, "permessage-deflate");
    while (at(c, ';')) {
        c->p++;
        skip_ows(c);
        n = take_token(c, &name);
        if (n == 0)
            return false;
        value v;
        bool has = at(c, '=');
        if (has) {
            c->p++;
            if (!take_value(c, &v))
                return false;
        }
        pmd_param(o, name, n, has ? &v : NULL);
    }
    return c->p == c->end || at(c, ',');
}

/* Reads the element at c and moves past the comma that ends it.  Returns
 * false on a syntax error, c then past the element all the same. */
static bool read_element(cursor *c, pmd *o) {
    *o = (pmd){.smwb = ABSENT, .cmwb = ABSENT};
    if (!parse_element(c, o)) {
        skip_element(c);
        return false;
    }
    if (c->p < c->end)
        c->p++;
    return true;
}

static bool config_ok(const corio__ws_pmd_config *cfg) {
    unsigned s = cfg->server_max_window_bits, k = cfg->client_max_window_bits;
    return (s == 0 || (s >= 9 && s <= 15)) && (k == 0 || (k >= 9 && k <= 15));
}

static int smaller(int a, int b) {
    return a < b ? a : b;
}

/* The server's answer r to a well-formed offer o under cfg (a window
 * ABSENT in r is not sent).  Every well-formed offer can be answered: a
 * window of 8 is taken as it is (handshake.h). */
static void server_answer(const corio__ws_pmd_config *cfg, const pmd *o, pmd *r) {
    int own_s = cfg->server_max_window_bits, own_c = cfg->client_max_window_bits;
    *r = (pmd){.named = true,
               .snct = o->snct || cfg->server_no_context_takeover,
               .cnct = o->cnct || cfg->client_no_context_takeover,
               .smwb = ABSENT,
               .cmwb = ABSENT};
    if (o->smwb != ABSENT) /* must be answered, with at most the offered value */
        r->smwb = smaller(o->smwb, own_s ? own_s : 15);
    else if (own_s)
        r->smwb = own_s;
    if (o->cmwb > 0) /* the client limits itself: at most that, or ours */
        r->cmwb = own_c ? smaller(o->cmwb, own_c) : o->cmwb;
    else if (o->cmwb == NO_VALUE && own_c) /* ABSENT: may not be answered */
        r->cmwb = own_c;
}

/* Whether the client can take the server's response r to its offer. */
static bool client_accepts(const corio__ws_pmd_config *cfg, const pmd *r) {
    unsigned own_s = cfg->server_max_window_bits, own_c = cfg->client_max_window_bits;
    if (!r->named || r->bad || r->cmwb == NO_VALUE)
        return false;
    if (cfg->server_no_context_takeover && !r->snct)
        return false;
    if (own_s && (r->smwb == ABSENT || (unsigned)r->smwb > own_s))
        return false;
    if (r->cmwb != ABSENT && (!own_c || (unsigned)r->cmwb > own_c))
        return false;
    return true;
}

static void agreed_from(const pmd *r, int client_bits, corio__ws_pmd_agreed *a) {
    *a = (corio__ws_pmd_agreed){
        .server_no_context_takeover = r->snct,
        .client_no_context_takeover = r->cnct,
        .server_max_window_bits = (uint8_t)(r->smwb > 0 ? r->smwb : 15),
        .client_max_window_bits = (uint8_t)(r->cmwb > 0 ? r->cmwb : client_bits),
    };
}

/* Appends s to out (n bytes used of cap), NUL-ended.  False if no room. */
static bool put(char *out, size_t cap, size_t *n, const char *s) {
    size_t len = strlen(s);
    if (cap - *n <= len)
        return false;
    memcpy(out + *n, s, len + 1);
    *n += len;
    return true;
}

/* Appends "; name=bits" ("; name" for NO_VALUE, nothing for ABSENT). */
static bool put_bits(char *out, size_t cap, size_t *n, const char *param, int bits) {
    if (bits == ABSENT)
        return true;
    if (!put(out, cap, n, param))
        return false;
    if (bits == NO_VALUE)
        return true;
    char num[4] = {'=', (char)('0' + bits / 10), (char)('0' + bits % 10), '\0'};
    if (bits < 10) {
        num[1] = (char)('0' + bits);
        num[2] = '\0';
    }
    return put(out, cap, n, num);
}

/* Writes the element r into out.  Returns its length or CORIO_ERANGE. */
static int format(const pmd *r, char *out, size_t cap) {
    size_t n = 0;
    bool ok = put(out, cap, &n, "permessage-deflate");
    if (r->snct)
        ok = ok && put(out, cap, &n, "; server_no_context_takeover");
    if (r->cnct)
        ok = ok && put(out, cap, &n, "; client_no_context_takeover");
    ok = ok && put_bits(out, cap, &n, "; server_max_window_bits", r->smwb);
    ok = ok && put_bits(out, cap, &n, "; client_max_window_bits", r->cmwb);
    return ok ? (int)n : CORIO_ERANGE;
}

int corio__ws_pmd_accept(const corio__ws_pmd_config *cfg, const char *offers, size_t len,
                         corio__ws_pmd_agreed *agreed, char *resp, size_t cap) {
    if (!config_ok(cfg))
        return CORIO_EINVAL;
    if (len == 0)
        return 0;
    cursor c = {offers, offers + len};
    while (next_element(&c)) {
        pmd o, r;
        if (!read_element(&c, &o) || !o.named || o.bad)
            continue;
        server_answer(cfg, &o, &r);
        int n = format(&r, resp, cap);
        if (n > 0)
            agreed_from(&r, 15, agreed);
        return n;
    }
    return 0;
}

int corio__ws_pmd_offer(const corio__ws_pmd_config *cfg, char *out, size_t cap) {
    if (!config_ok(cfg))
        return CORIO_EINVAL;
    pmd o = {.named = true,
             .snct = cfg->server_no_context_takeover,
             .cnct = cfg->client_no_context_takeover,
             .smwb = cfg->server_max_window_bits ? cfg->server_max_window_bits : ABSENT,
             .cmwb = cfg->client_max_window_bits ? cfg->client_max_window_bits : ABSENT};
    return format(&o, out, cap);
}

int corio__ws_pmd_confirm(const corio__ws_pmd_config *cfg, const char *resp, size_t len,
                          corio__ws_pmd_agreed *agreed) {
    if (!config_ok(cfg))
        return CORIO_EINVAL;
    if (len == 0)
        return CORIO_EBADMSG;
    cursor c = {resp, resp + len};
    pmd r;
    if (!next_element(&c) || !read_element(&c, &r) || next_element(&c))
        return CORIO_EBADMSG; /* not exactly one element */
    if (!client_accepts(cfg, &r))
        return CORIO_EBADMSG;
    int own_c = cfg->client_max_window_bits;
    agreed_from(&r, own_c ? own_c : 15, agreed);
    /* What we offered, we keep to, whether or not the server repeats it. */
    agreed->client_no_context_takeover = r.cnct || cfg->client_no_context_takeover;
    return 0;
}
