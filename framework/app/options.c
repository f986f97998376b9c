/* Command line and environment parsing for the runner (see corio/app.h).
 *
 * One table lists every option with its flag, its environment variable, its
 * kind and what it accepts; the parser, the environment pass and --help all
 * read it, so they cannot drift apart. */
#include <ctype.h>
#include <errno.h>
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
    K_WORKERS,
    K_FILE,
    K_COUNT,
    K_DURATION,
    K_LEVEL,
    K_BOOL, /* a flag without a value; its variable holds 1/0, true/false, yes/no, on/off */
    K_FLAG, /* --help, --version: no variable */
};

typedef struct option {
    const char *flag;
    const char *env;
    enum kind kind;
    size_t offset;
    const char *accepts; /* for messages and --help */
    const char *help;
} option;

#define OFF(field) offsetof(corio__app_opts, field)

static const option options[] = {
    {"host", "CORIO_HOST", K_HOST, OFF(host), "an IPv4 or IPv6 address", "address to bind"},
    {"port", "CORIO_PORT", K_PORT, OFF(port), "an integer 0..65535", "TCP port (0: any)"},
    {"unix", "CORIO_UNIX", K_PATH, OFF(unix_path), "a socket path of at most 107 bytes",
     "listen on a Unix socket instead of TCP"},
    {"workers", "CORIO_WORKERS", K_WORKERS, OFF(workers), "an integer 1..256 or 'auto'",
     "worker processes ('auto': one per CPU)"},
    {"tls-cert", "CORIO_TLS_CERT", K_FILE, OFF(tls_cert), "a readable PEM file",
     "TLS certificate chain"},
    {"tls-key", "CORIO_TLS_KEY", K_FILE, OFF(tls_key), "a readable PEM file", "TLS private key"},
    {"max-conns", "CORIO_MAX_CONNS", K_COUNT, OFF(max_conns), "an integer 0..10000000",
     "open connections per worker (0: no cap)"},
    {"read-timeout", "CORIO_READ_TIMEOUT", K_DURATION, OFF(read_timeout_ms),
     "a duration such as 500ms, 10s, 2m (0: none)", "a read without progress fails after this"},
    {"write-timeout", "CORIO_WRITE_TIMEOUT", K_DURATION, OFF(write_timeout_ms),
     "a duration such as 500ms, 10s, 2m (0: none)", "a write without progress fails after this"},
    {"drain-timeout", "CORIO_DRAIN_TIMEOUT", K_DURATION, OFF(drain_timeout_ms),
     "a duration such as 500ms, 10s, 2m", "graceful drain on SIGTERM before cancelling"},
    {"log-level", "CORIO_LOG_LEVEL", K_LEVEL, OFF(log_level), "error, warn, info or debug",
     "log verbosity"},
    {"reuse-port", "CORIO_REUSE_PORT", K_BOOL, OFF(reuse_port),
     "1 or 0 (true/false, yes/no, on/off)",
     "share the TCP port with a server already listening on it, for a rolling replacement of "
     "one instance by another"},
    {"help", NULL, K_FLAG, OFF(help), NULL, "show this help"},
    {"version", NULL, K_FLAG, OFF(version), NULL, "show the version"},
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
    case K_BOOL:
        return parse_bool(v, (bool *)field);
    case K_FLAG:
        *(bool *)field = true;
        return 0;
    }
    return CORIO_EINVAL;
}

static int fail(char *err, size_t len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return CORIO_EINVAL;
}

static const option *find_flag(const char *name, size_t len) {
    for (size_t i = 0; i < NOPTIONS; i++)
        if (strlen(options[i].flag) == len && strncmp(options[i].flag, name, len) == 0)
            return &options[i];
    return NULL;
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
    /* Flags first, then the environment for what no flag gave: a flag wins
     * over its variable even when the variable holds a bad value (a stale
     * CORIO_PORT=x must not make `--port 80` fail). */
    bool given[NOPTIONS] = {false};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0)
            return fail(err, errlen, "unexpected argument '%s' (see --help)", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const option *opt = find_flag(name, nlen);
        if (!opt)
            return fail(err, errlen, "unknown option '--%.*s' (see --help)", (int)nlen, name);
        const char *v;
        if (opt->kind == K_FLAG || opt->kind == K_BOOL) {
            if (eq)
                return fail(err, errlen, "--%s takes no value", opt->flag);
            v = opt->kind == K_BOOL ? "1" : "";
        } else if (eq) {
            v = eq + 1;
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            return fail(err, errlen, "--%s: missing value (expected %s)", opt->flag, opt->accepts);
        }
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
    bool flag_chose = given[iport] || given[iunix];
    given[iport] = given[iunix] = flag_chose;
    /* --help and --version answer even in a broken environment. */
    bool env_read = get_env && !o->help && !o->version;
    for (size_t i = 0; env_read && i < NOPTIONS; i++) {
        const char *v = options[i].env && !given[i] ? get_env(options[i].env) : NULL;
        if (v && set_value(o, &options[i], v) != 0)
            return fail(err, errlen, "%s: expected %s, got '%s'", options[i].env,
                        options[i].accepts, v);
    }
    if (env_read && !flag_chose && get_env(options[iport].env) && get_env(options[iunix].env))
        return fail(err, errlen, "%s and %s: give one or the other (a Unix socket has no port)",
                    options[iunix].env, options[iport].env);
    if (!o->help && !o->version && (!o->tls_cert) != (!o->tls_key))
        return fail(err, errlen, "--tls-cert and --tls-key: give both or neither");
    return 0;
}

void corio__app_usage(const corio_app *app, int fd) {
    const char *name = app && app->name ? app->name : "corio-app";
    dprintf(fd, "usage: %s [options]\n", name);
    if (app && app->description)
        dprintf(fd, "%s\n", app->description);
    dprintf(fd, "\noptions (environment variable in brackets):\n");
    for (size_t i = 0; i < NOPTIONS; i++) {
        const option *opt = &options[i];
        char flag[40];
        bool bare = opt->kind == K_FLAG || opt->kind == K_BOOL;
        snprintf(flag, sizeof flag, "--%s%s", opt->flag, bare ? "" : " VALUE");
        dprintf(fd, "  %-22s %s", flag, opt->help);
        if (opt->accepts)
            dprintf(fd, "; %s", opt->accepts);
        if (opt->env)
            dprintf(fd, " [%s]", opt->env);
        dprintf(fd, "\n");
    }
}
