/* SPDX-License-Identifier: MIT */
/* Command line and environment parsing for the runner (see corio/app.h).
 *
 * One table lists every option with its flag, its environment variable, its
 * kind and what it accepts; the parser, the environment pass and --help all
 * read it, so they cannot drift apart. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "app/options.h"
#include "corio/corio.h"

enum kind {
    K_HOST,
    K_PORT,
    K_PATH,
    K_TEXT, /* any non-empty string */
    K_WORKERS,
    K_FILE,
    K_COUNT,
    K_DURATION,
    K_LEVEL,
    K_LOG_FORMAT,
    K_RESUMPTION, /* tickets, cache or off: corio_tls_resumption */
    K_ADMIN, /* [HOST:]PORT or off: corio__app_opts.admin, admin_host, admin_port */
    K_BOOL,  /* a flag without a value; its variable holds 1/0, true/false, yes/no, on/off */
    K_FLAG,  /* --help, --version: no variable */
};

typedef struct option {
    const char *flag;
    const char *env;
    enum kind kind;
    size_t offset;
    const char *accepts; /* for messages and --help */
    const char *help;
    const char *dflt; /* the default --help shows; NULL: none (--port: the app's) */
} option;

#define OFF(field) offsetof(corio__app_opts, field)

static const option options[] = {
    {"host", "CORIO_HOST", K_HOST, OFF(host), "an IPv4 or IPv6 address", "address to bind",
     "127.0.0.1"},
    {"port", "CORIO_PORT", K_PORT, OFF(port), "an integer 0..65535", "TCP port (0: any)", NULL},
    {"unix", "CORIO_UNIX", K_PATH, OFF(unix_path), "a socket path of at most 107 bytes",
     "listen on a Unix socket instead of TCP", NULL},
    {"workers", "CORIO_WORKERS", K_WORKERS, OFF(workers), "an integer 1..256 or 'auto'",
     "worker processes ('auto': one per CPU)", "1"},
    {"tls-cert", "CORIO_TLS_CERT", K_FILE, OFF(tls_cert), "a readable PEM file",
     "TLS certificate chain", NULL},
    {"tls-key", "CORIO_TLS_KEY", K_FILE, OFF(tls_key), "a readable PEM file", "TLS private key",
     NULL},
    {"tls-resumption", "CORIO_TLS_RESUMPTION", K_RESUMPTION, OFF(tls_resumption),
     "tickets, cache or off",
     "TLS session resumption: tickets (shared by the workers), a session cache per worker, or "
     "none",
     "tickets"},
    {"max-conns", "CORIO_MAX_CONNS", K_COUNT, OFF(max_conns), "an integer 0..10000000",
     "open connections per worker (0: no cap)", "0"},
    {"read-timeout", "CORIO_READ_TIMEOUT", K_DURATION, OFF(read_timeout_ms),
     "a duration such as 500ms, 10s, 2m (0: none)", "a read without progress fails after this",
     "0"},
    {"write-timeout", "CORIO_WRITE_TIMEOUT", K_DURATION, OFF(write_timeout_ms),
     "a duration such as 500ms, 10s, 2m (0: none)", "a write without progress fails after this",
     "0"},
    {"drain-timeout", "CORIO_DRAIN_TIMEOUT", K_DURATION, OFF(drain_timeout_ms),
     "a duration such as 500ms, 10s, 2m", "graceful drain on SIGTERM before cancelling", "25s"},
    {"log-level", "CORIO_LOG_LEVEL", K_LEVEL, OFF(log_level), "error, warn, info or debug",
     "log verbosity", "info"},
    {"log-format", "CORIO_LOG_FORMAT", K_LOG_FORMAT, OFF(log_format), "text or json",
     "log lines (and access log lines) as text or as JSON objects", "text"},
    {"access-log", "CORIO_ACCESS_LOG", K_TEXT, OFF(access_log), "off, on (stderr) or a file path",
     "HTTP access log, one line per response (overrides the application's setting)", NULL},
    {"reuse-port", "CORIO_REUSE_PORT", K_BOOL, OFF(reuse_port),
     "1 or 0 (true/false, yes/no, on/off)",
     "share the TCP port with a server already listening on it, for a rolling replacement of "
     "one instance by another",
     "off"},
    {"admin", "CORIO_ADMIN", K_ADMIN, OFF(admin),
     "[HOST:]PORT (HOST an IPv4 address or [IPv6]; 127.0.0.1 if left out) or off",
     "serve /healthz, /readyz and /metrics (or the app's admin routes) on a separate plain HTTP "
     "listener",
     "off"},
    {"help", NULL, K_FLAG, OFF(help), NULL, "show this help (also -h)", NULL},
    {"version", NULL, K_FLAG, OFF(version), NULL, "show the version", NULL},
};

#define NOPTIONS (sizeof options / sizeof options[0])

/* Numbers must start with a digit: strtoull() alone would also take leading
 * blanks, a sign, and "-1" (as ULLONG_MAX). */
int corio__parse_duration(const char *s, uint64_t *ms) {
    if (!s || !isdigit((unsigned char)s[0]))
        return CORIO_EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || errno)
        return CORIO_EINVAL;
    uint64_t scale;
    if (*end == '\0' || strcmp(end, "ms") == 0)
        scale = 1;
    else if (strcmp(end, "s") == 0)
        scale = 1000;
    else if (strcmp(end, "m") == 0)
        scale = 60000;
    else
        return CORIO_EINVAL;
    if (v > UINT64_MAX / 1000 / 60 / 24)
        return CORIO_EINVAL; /* more than ~ 3.5e11 years of ms: surely a typo */
    *ms = (uint64_t)v * scale;
    return 0;
}

static int parse_uint(const char *s, unsigned long long max, unsigned long long *out) {
    if (!s || !isdigit((unsigned char)s[0]))
        return CORIO_EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno || v > max)
        return CORIO_EINVAL;
    *out = v;
    return 0;
}

/* A boolean variable's value. */
static int parse_bool(const char *s, bool *out) {
    static const char *const yes[] = {"1", "true", "yes", "on"}, *const no[] = {"0", "false", "no",
                                                                                "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return *out = true, 0;
        if (strcasecmp(s, no[i]) == 0)
            return *out = false, 0;
    }
    return CORIO_EINVAL;
}

/* --admin's value: "off", "PORT", "HOST:PORT" or "[IPV6]:PORT", into
 * o->admin, admin_host and admin_port. */
static int parse_admin(corio__app_opts *o, const char *v) {
    if (strcmp(v, "off") == 0) {
        o->admin = false;
        return 0;
    }
    const char *colon = strrchr(v, ':'), *port = colon ? colon + 1 : v;
    char host[sizeof o->admin_host] = "127.0.0.1";
    if (colon) {
        const char *h = v;
        size_t hlen = (size_t)(colon - v);
        bool v6 = hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']';
        if (v6) {
            h++;
            hlen -= 2;
        } else if (memchr(h, ':', hlen)) {
            return CORIO_EINVAL; /* an IPv6 address needs its brackets */
        }
        if (hlen == 0 || hlen >= sizeof host)
            return CORIO_EINVAL;
        memcpy(host, h, hlen);
        host[hlen] = '\0';
        unsigned char buf[sizeof(struct in6_addr)];
        int family = v6 ? AF_INET6 : AF_INET;
        if (uv_inet_pton(family, host, buf) != 0)
            return CORIO_EINVAL;
        /* ::ffff:a.b.c.d: an IPv4 address, which an IPv6-only socket
         * cannot bind; say it as a.b.c.d. */
        if (v6 && IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)buf))
            return CORIO_EINVAL;
    }
    unsigned long long n;
    if (parse_uint(port, 65535, &n))
        return CORIO_EINVAL;
    o->admin = true;
    memcpy(o->admin_host, host, sizeof host);
    o->admin_port = (uint16_t)n;
    return 0;
}

static int set_value(corio__app_opts *o, const option *opt, const char *v) {
    char *field = (char *)o + opt->offset;
    unsigned long long n;
    switch (opt->kind) {
    case K_HOST: {
        unsigned char buf[sizeof(struct in6_addr)];
        if (uv_inet_pton(AF_INET, v, buf) != 0 && uv_inet_pton(AF_INET6, v, buf) != 0)
            return CORIO_EINVAL;
        *(const char **)field = v;
        return 0;
    }
    case K_PATH:
        if (!*v || strlen(v) > 107)
            return CORIO_EINVAL;
        *(const char **)field = v;
        return 0;
    case K_TEXT:
        if (!*v)
            return CORIO_EINVAL;
        *(const char **)field = v;
        return 0;
    case K_FILE: {
        /* access() alone would take a directory (readable, never a PEM file). */
        struct stat st;
        if (!*v || access(v, R_OK) != 0 || stat(v, &st) != 0 || S_ISDIR(st.st_mode))
            return CORIO_EINVAL;
        *(const char **)field = v;
        return 0;
    }
    case K_PORT:
        if (parse_uint(v, 65535, &n))
            return CORIO_EINVAL;
        *(uint16_t *)field = (uint16_t)n;
        return 0;
    case K_WORKERS:
        if (strcmp(v, "auto") == 0) {
            unsigned cpus = uv_available_parallelism();
            *(unsigned *)field = cpus ? (cpus > 256 ? 256 : cpus) : 1;
            return 0;
        }
        if (parse_uint(v, 256, &n) || n == 0)
            return CORIO_EINVAL;
        *(unsigned *)field = (unsigned)n;
        return 0;
    case K_COUNT:
        if (parse_uint(v, 10000000, &n))
            return CORIO_EINVAL;
        *(size_t *)field = (size_t)n;
        return 0;
    case K_DURATION:
        return corio__parse_duration(v, (uint64_t *)field);
    case K_LEVEL:
        return corio_log_level_parse(v, (corio_log_level *)field);
    case K_LOG_FORMAT:
        return corio_log_format_parse(v, (corio_log_format *)field);
    case K_RESUMPTION: {
        static const char *const names[] = {[CORIO_TLS_RESUME_TICKETS] = "tickets",
                                            [CORIO_TLS_RESUME_CACHE] = "cache",
                                            [CORIO_TLS_RESUME_OFF] = "off"};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (strcmp(v, names[i]) == 0) {
                *(corio_tls_resumption *)field = (corio_tls_resumption)i;
                return 0;
            }
        return CORIO_EINVAL;
    }
    case K_BOOL:
        return parse_bool(v, (bool *)field);
    case K_ADMIN:
        return parse_admin(o, v);
    case K_FLAG:
        *(bool *)field = true;
        return 0;
    }
    return CORIO_EINVAL;
}

/* msg into err (len bytes) as one line, whatever the values it quotes
 * hold: a control byte (a newline, an escape sequence) as \xNN; cut short
 * to fit, never inside an escape. */
static void one_line(char *err, size_t len, const char *msg) {
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (const unsigned char *c = (const unsigned char *)msg; *c; c++) {
        bool ctl = *c < 0x20 || *c == 0x7f;
        if (o + (ctl ? 4 : 1) >= len)
            break;
        if (ctl) {
            err[o++] = '\\';
            err[o++] = 'x';
            err[o++] = hex[*c >> 4];
            err[o++] = hex[*c & 15];
        } else {
            err[o++] = (char)*c;
        }
    }
    err[o] = '\0';
}

static int fail(char *err, size_t len, const char *fmt, ...) {
    if (!err || !len)
        return CORIO_EINVAL;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *msg = n >= 0 ? malloc((size_t)n + 1) : NULL;
    va_start(ap, fmt);
    vsnprintf(msg ? msg : err, msg ? (size_t)n + 1 : len, fmt, ap);
    va_end(ap);
    if (msg) {
        one_line(err, len, msg);
        free(msg);
    } else { /* out of memory: the controls blanked in place */
        for (char *c = err; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                *c = '?';
    }
    return CORIO_EINVAL;
}

static const option *find_flag(const char *name, size_t len) {
    for (size_t i = 0; i < NOPTIONS; i++)
        if (strlen(options[i].flag) == len && strncmp(options[i].flag, name, len) == 0)
            return &options[i];
    return NULL;
}

/* ---- the program's own flags (corio_app.flags) --------------------------------------- */

static const corio_app_flag *find_app_flag(const corio_app *app, const char *name, size_t len) {
    for (size_t i = 0; app && i < app->nflags; i++)
        if (strlen(app->flags[i].name) == len && strncmp(app->flags[i].name, name, len) == 0)
            return &app->flags[i];
    return NULL;
}

/* What a value of f may be: its own words, else the type's and range's
 * (in buf, len bytes). */
static const char *app_accepts(const corio_app_flag *f, char *buf, size_t len) {
    bool ranged = f->min || f->max;
    if (f->accepts)
        return f->accepts;
    switch (f->type) {
    case CORIO_APP_FLAG_STRING:
        return "a non-empty value";
    case CORIO_APP_FLAG_INT:
        if (!ranged)
            return "an integer";
        snprintf(buf, len, "an integer %" PRId64 "..%" PRId64, f->min, f->max);
        return buf;
    case CORIO_APP_FLAG_DURATION:
        if (!ranged)
            return "a duration such as 500ms, 10s, 2m";
        snprintf(buf, len, "a duration such as 500ms, 10s, 2m, from %" PRId64 " to %" PRId64 " ms",
                 f->min, f->max);
        return buf;
    case CORIO_APP_FLAG_BOOL:
        return "1 or 0 (true/false, yes/no, on/off)";
    case CORIO_APP_FLAG_FUNC:
        break;
    }
    return "a valid value";
}

/* The default --help shows for f (in buf, len bytes), or NULL. */
static const char *app_default(const corio_app_flag *f, char *buf, size_t len) {
    if (f->default_text || !f->target)
        return f->default_text;
    switch (f->type) {
    case CORIO_APP_FLAG_STRING:
        return *(const char *const *)f->target;
    case CORIO_APP_FLAG_INT:
        snprintf(buf, len, "%" PRId64, *(const int64_t *)f->target);
        return buf;
    case CORIO_APP_FLAG_DURATION: {
        uint64_t ms = *(const uint64_t *)f->target;
        if (ms && ms % 60000 == 0)
            snprintf(buf, len, "%" PRIu64 "m", ms / 60000);
        else if (ms && ms % 1000 == 0)
            snprintf(buf, len, "%" PRIu64 "s", ms / 1000);
        else
            snprintf(buf, len, "%" PRIu64 "ms", ms);
        return buf;
    }
    case CORIO_APP_FLAG_BOOL:
        return *(const bool *)f->target ? "on" : "off";
    case CORIO_APP_FLAG_FUNC:
        break;
    }
    return NULL;
}

static int parse_int64(const char *s, int64_t *out) {
    const char *digits = s[0] == '-' ? s + 1 : s;
    if (!isdigit((unsigned char)digits[0]))
        return CORIO_EINVAL;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end || errno)
        return CORIO_EINVAL;
    *out = v;
    return 0;
}

/* Checks value v for f and writes f's target.  Returns 0 or CORIO_EINVAL. */
static int set_app_value(const corio_app_flag *f, const char *v) {
    bool ranged = f->min || f->max;
    int64_t n;
    uint64_t ms;
    switch (f->type) {
    case CORIO_APP_FLAG_STRING:
        if (!*v)
            return CORIO_EINVAL;
        *(const char **)f->target = v;
        return 0;
    case CORIO_APP_FLAG_INT:
        if (parse_int64(v, &n) || (ranged && (n < f->min || n > f->max)))
            return CORIO_EINVAL;
        *(int64_t *)f->target = n;
        return 0;
    case CORIO_APP_FLAG_DURATION:
        if (corio__parse_duration(v, &ms) ||
            (ranged && (ms > INT64_MAX || (int64_t)ms < f->min || (int64_t)ms > f->max)))
            return CORIO_EINVAL;
        *(uint64_t *)f->target = ms;
        return 0;
    case CORIO_APP_FLAG_BOOL:
        return parse_bool(v, (bool *)f->target);
    case CORIO_APP_FLAG_FUNC:
        return f->parse(v, f->target) < 0 ? CORIO_EINVAL : 0;
    }
    return CORIO_EINVAL;
}

/* A flag table's mistakes are the program's, found before any flag is
 * read: a name taken twice (or one of the runner's), a missing target or
 * parser, a range upside down. */
static int check_app_flags(const corio_app *app, char *err, size_t errlen) {
    for (size_t i = 0; app && i < app->nflags; i++) {
        const corio_app_flag *f = &app->flags[i];
        const char *why = NULL;
        if (!f->name || !*f->name || f->name[0] == '-' || strchr(f->name, '='))
            why = "a name without dashes or '=' is needed";
        else if (find_flag(f->name, strlen(f->name)) || strcmp(f->name, "h") == 0)
            why = "the runner has a flag of that name";
        else if (find_app_flag(app, f->name, strlen(f->name)) != f)
            why = "declared twice";
        else if ((unsigned)f->type > CORIO_APP_FLAG_FUNC)
            why = "unknown type";
        else if (f->type == CORIO_APP_FLAG_FUNC ? !f->parse : !f->target)
            why = f->type == CORIO_APP_FLAG_FUNC ? "a FUNC flag needs a parser"
                                                 : "a target is needed";
        else if (f->min > f->max)
            why = "min is above max";
        if (why)
            return fail(err, errlen, "flag table: '%s': %s", f->name ? f->name : "(null)", why);
    }
    return 0;
}

/* ---- the command line ------------------------------------------------------------------ */

/* Reads the flag at argv[*i] and its value (stepping *i over a separate
 * one): the runner's (*opt) or the program's (*aflag).  Returns 0, or
 * CORIO_EINVAL with the message in err. */
static int next_flag(const corio_app *app, int argc, char **argv, int *i, const option **opt,
                     const corio_app_flag **aflag, const char **value, char *err, size_t errlen) {
    const char *a = argv[*i];
    *opt = NULL;
    *aflag = NULL;
    *value = "1"; /* a flag without a value: set (K_FLAG, K_BOOL, CORIO_APP_FLAG_BOOL) */
    if (strcmp(a, "-h") == 0) {
        *opt = find_flag("help", 4);
        return 0;
    }
    if (strncmp(a, "--", 2) != 0)
        return fail(err, errlen, "unexpected argument '%s' (see --help)", a);
    const char *name = a + 2, *eq = strchr(name, '=');
    size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
    *opt = find_flag(name, nlen);
    *aflag = *opt ? NULL : find_app_flag(app, name, nlen);
    if (!*opt && !*aflag)
        return fail(err, errlen, "unknown option '--%.*s' (see --help)", (int)nlen, name);
    const char *flag = *opt ? (*opt)->flag : (*aflag)->name;
    bool bare = *opt ? (*opt)->kind == K_FLAG || (*opt)->kind == K_BOOL
                     : (*aflag)->type == CORIO_APP_FLAG_BOOL;
    if (bare && eq)
        return fail(err, errlen, "--%s takes no value", flag);
    if (bare)
        return 0;
    if (eq) {
        *value = eq + 1;
        return 0;
    }
    if (*i + 1 < argc) {
        *value = argv[++*i];
        return 0;
    }
    char buf[128];
    const char *acc = *opt ? (*opt)->accepts : app_accepts(*aflag, buf, sizeof buf);
    return fail(err, errlen, "--%s: missing value; --%s needs %s", flag, flag, acc);
}

static bool app_flag_given(const corio_app *app, int argc, char **argv, const corio_app_flag *f) {
    char err[8];
    for (int i = 1; i < argc; i++) {
        const option *opt;
        const corio_app_flag *af;
        const char *v;
        if (next_flag(app, argc, argv, &i, &opt, &af, &v, err, sizeof err) == 0 && af == f)
            return true;
    }
    return false;
}

/* The program's flags, in their order on the command line, then the
 * variables of those not given ("" counts as unset). */
static int apply_app_flags(const corio_app *app, int argc, char **argv,
                           const char *(*get_env)(const char *name), char *err, size_t errlen) {
    char buf[128];
    for (int i = 1; app && app->nflags && i < argc; i++) {
        const option *opt;
        const corio_app_flag *f;
        const char *v;
        int rc = next_flag(app, argc, argv, &i, &opt, &f, &v, err, errlen);
        if (rc)
            return rc;
        if (f && set_app_value(f, v) != 0)
            return fail(err, errlen, "--%s: expected %s, got '%s'", f->name,
                        app_accepts(f, buf, sizeof buf), v);
    }
    for (size_t k = 0; app && get_env && k < app->nflags; k++) {
        const corio_app_flag *f = &app->flags[k];
        const char *v = f->env ? get_env(f->env) : NULL;
        if (!v || !*v || app_flag_given(app, argc, argv, f))
            continue;
        if (set_app_value(f, v) != 0)
            return fail(err, errlen, "%s: expected %s, got '%s'", f->env,
                        app_accepts(f, buf, sizeof buf), v);
    }
    return 0;
}

int corio__app_parse(corio__app_opts *o, const corio_app *app, int argc, char **argv,
                     const char *(*get_env)(const char *name), char *err, size_t errlen) {
    memset(o, 0, sizeof *o);
    o->inherited_fd = -1;
    o->host = "127.0.0.1";
    o->port = app && app->default_port ? app->default_port : 8080;
    o->workers = 1;
    o->drain_timeout_ms = 25000;
    o->log_level = CORIO_LOG_INFO;
    o->log_format = CORIO_LOG_TEXT;
    int rc = check_app_flags(app, err, errlen);
    if (rc)
        return rc;
    /* The runner's flags first; the program's are only read for their shape
     * here, and set below once --help and --version are ruled out (--help
     * then shows their defaults).  Then the environment for what no flag
     * gave: a flag wins over its variable even when the variable holds a
     * bad value (a stale CORIO_PORT=x must not make `--port 80` fail). */
    bool given[NOPTIONS] = {false};
    for (int i = 1; i < argc; i++) {
        const option *opt;
        const corio_app_flag *af;
        const char *v;
        if ((rc = next_flag(app, argc, argv, &i, &opt, &af, &v, err, errlen)) != 0)
            return rc;
        if (!opt)
            continue;
        if (set_value(o, opt, v) != 0)
            return fail(err, errlen, "--%s: expected %s, got '%s'", opt->flag, opt->accepts, v);
        given[opt - options] = true;
    }
    /* A Unix socket has no port: both given is a mistake, not a choice
     * between them.  One given as a flag wins over the other's variable. */
    size_t iport = (size_t)(find_flag("port", 4) - options);
    size_t iunix = (size_t)(find_flag("unix", 4) - options);
    if (given[iport] && given[iunix])
        return fail(err, errlen,
                    "--unix and --port: give one or the other (a Unix socket has no port)");
    /* --help and --version answer even in a broken environment. */
    if (o->help || o->version)
        return 0;
    bool flag_chose = given[iport] || given[iunix];
    given[iport] = given[iunix] = flag_chose;
    for (size_t i = 0; get_env && i < NOPTIONS; i++) {
        const char *v = options[i].env && !given[i] ? get_env(options[i].env) : NULL;
        if (v && set_value(o, &options[i], v) != 0)
            return fail(err, errlen, "%s: expected %s, got '%s'", options[i].env,
                        options[i].accepts, v);
    }
    if (get_env && !flag_chose && get_env(options[iport].env) && get_env(options[iunix].env))
        return fail(err, errlen, "%s and %s: give one or the other (a Unix socket has no port)",
                    options[iunix].env, options[iport].env);
    if ((!o->tls_cert) != (!o->tls_key))
        return fail(err, errlen, "--tls-cert and --tls-key: give both or neither");
    return apply_app_flags(app, argc, argv, get_env, err, errlen);
}

/* ---- --help ------------------------------------------------------------------------------ */

static void usage_line(int fd, const char *flag, bool bare, const char *help, const char *accepts,
                       const char *env, const char *dflt) {
    char f[48];
    snprintf(f, sizeof f, "--%s%s", flag, bare ? "" : " VALUE");
    dprintf(fd, "  %-24s %s", f, help ? help : "");
    if (accepts && !bare)
        dprintf(fd, "; %s", accepts);
    if (env)
        dprintf(fd, " [%s]", env);
    if (dflt && *dflt)
        dprintf(fd, " (default: %s)", dflt);
    dprintf(fd, "\n");
}

void corio__app_usage(const corio_app *app, int fd) {
    const char *name = app && app->name ? app->name : "corio-app";
    dprintf(fd, "usage: %s [options]\n", name);
    if (app && app->description)
        dprintf(fd, "%s\n", app->description);
    dprintf(fd, "\noptions (environment variable in brackets):\n");
    char port[8];
    snprintf(port, sizeof port, "%d", app && app->default_port ? app->default_port : 8080);
    for (size_t i = 0; i < NOPTIONS; i++) {
        const option *opt = &options[i];
        bool bare = opt->kind == K_FLAG || opt->kind == K_BOOL;
        const char *dflt = opt->kind == K_PORT ? port : opt->dflt;
        usage_line(fd, opt->flag, bare, opt->help, opt->accepts, opt->env, dflt);
    }
    if (!app || !app->nflags)
        return;
    dprintf(fd, "\n%s options:\n", name);
    for (size_t i = 0; i < app->nflags; i++) {
        const corio_app_flag *f = &app->flags[i];
        char acc[128], dflt[32];
        usage_line(fd, f->name, f->type == CORIO_APP_FLAG_BOOL, f->help,
                   app_accepts(f, acc, sizeof acc), f->env, app_default(f, dflt, sizeof dflt));
    }
}
