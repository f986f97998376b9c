/* SPDX-License-Identifier: MIT */
/* Fuzzes the runner's command line and environment parsing, corio__app_parse
 * (framework/app/options.c), with the runner's flags and a program's own
 * (one of each type, ranged and not), through a fake environment as
 * tests/test_app_options.c drives it.
 *
 * Feeds: the input split at NUL bytes into words (as /proc/PID/cmdline
 * is).  A word "NAME=value" whose NAME is upper-case letters, digits and
 * '_' (CORIO_PORT=80, APP_COUNT=3) goes into the environment (at most 16);
 * every other word is an argument after argv[0] (at most 48).
 *
 * Asserts:
 *  - the result is 0 or CORIO_EINVAL, and the same on a second parse (all
 *    fields equal: deterministic, no state kept between calls);
 *  - on CORIO_EINVAL: the message is non-empty, one line (no CR or LF nor
 *    any other control byte), NUL-terminated within errlen, nothing written
 *    past errlen, and names what it refuses (a flag, a variable, an
 *    argument, an option); with a small errlen it is the same message cut
 *    short (by at most an escape's 4 bytes short of errlen - 1), still
 *    terminated;
 *  - on 0 without --help/--version: every field within its documented
 *    range (workers 1..256, max-conns 0..10000000, durations below the
 *    parser's cap, a known log level and format, a host that is an IPv4 or
 *    IPv6 address, a Unix path of 1..107 bytes, TLS files given both or
 *    neither and readable, an admin host that is an address and not
 *    IPv4-mapped, no inherited socket); every string points into an
 *    argument or an environment value, to its end (not copied, not cut), or
 *    is the documented default; the program's flags hold values in their
 *    ranges;
 *  - with --help or --version the program's flag targets are left alone. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "app/options.h"
#include "fuzz.h"

enum { MAX_ARGS = 48, MAX_ENV = 16, ERRLEN = 256, CANARY = 16 };

/* ---- the fake environment ------------------------------------------------------------- */

static const char *env_names[MAX_ENV];
static const char *env_values[MAX_ENV];
static size_t nenv;

static const char *get_env(const char *name) {
    for (size_t i = 0; i < nenv; i++)
        if (strcmp(env_names[i], name) == 0)
            return env_values[i];
    return NULL;
}

/* ---- the program's flags ------------------------------------------------------------- */

static int64_t count, offset;
static uint64_t timeout_ms;
static const char *root;
static bool verbose;
static int mode;

static int parse_mode(const char *v, void *target) {
    static const char *const modes[] = {"fast", "safe", "slow"};
    for (int i = 0; i < 3; i++)
        if (strcmp(v, modes[i]) == 0)
            return *(int *)target = i, 0;
    return CORIO_EINVAL;
}

static const corio_app_flag flags[] = {
    {.name = "count",
     .type = CORIO_APP_FLAG_INT,
     .target = &count,
     .env = "APP_COUNT",
     .min = 1,
     .max = 100},
    {.name = "offset", .type = CORIO_APP_FLAG_INT, .target = &offset, .env = "APP_OFFSET"},
    {.name = "timeout",
     .type = CORIO_APP_FLAG_DURATION,
     .target = &timeout_ms,
     .env = "APP_TIMEOUT",
     .min = 10,
     .max = 60000},
    {.name = "root", .type = CORIO_APP_FLAG_STRING, .target = &root, .env = "APP_ROOT"},
    {.name = "verbose", .type = CORIO_APP_FLAG_BOOL, .target = &verbose, .env = "APP_VERBOSE"},
    {.name = "mode",
     .type = CORIO_APP_FLAG_FUNC,
     .target = &mode,
     .parse = parse_mode,
     .env = "APP_MODE",
     .accepts = "fast, safe or slow"},
};

static const corio_app app = {
    .name = "fuzz", .default_port = 7000, .flags = flags, .nflags = sizeof flags / sizeof *flags};

static void app_defaults(void) {
    count = 5;
    offset = -3;
    timeout_ms = 1000;
    root = NULL;
    verbose = false;
    mode = 1;
}

/* ---- the checks --------------------------------------------------------------------- */

static char *argv_words[MAX_ARGS + 1];
static int argc_words;

/* s is one of the argument or environment strings, or a suffix of one
 * (--flag=value): it points into one and ends where it ends. */
static bool from_input(const char *s) {
    for (int i = 0; i < argc_words; i++) {
        const char *w = argv_words[i];
        if (s >= w && s <= w + strlen(w))
            return true;
    }
    for (size_t i = 0; i < nenv; i++) {
        const char *w = env_values[i];
        if (s >= w && s <= w + strlen(w))
            return true;
    }
    return false;
}

/* An IPv4 address, or an IPv6 one with an optional "%zone" (as libuv
 * takes it, an empty zone included): *v6 and buf say which and what. */
static bool is_address(const char *s, bool *v6, unsigned char buf[16]) {
    *v6 = false;
    if (inet_pton(AF_INET, s, buf) == 1)
        return true;
    char a[64];
    size_t n = strcspn(s, "%");
    if (n >= sizeof a)
        return false;
    memcpy(a, s, n);
    a[n] = '\0';
    *v6 = true;
    return inet_pton(AF_INET6, a, buf) == 1;
}

static void check_string(const char *what, const char *s, bool may_be_empty) {
    if (!s)
        return;
    FUZZ_CHECK(from_input(s), "%s '%s' does not point into the arguments or environment", what, s);
    FUZZ_CHECK(may_be_empty || *s, "%s is empty", what);
}

static void check_opts(const corio__app_opts *o) {
    FUZZ_CHECK(o->inherited_fd == -1, "inherited_fd %d", o->inherited_fd);
    if (o->help || o->version) {
        FUZZ_CHECK(count == 5 && offset == -3 && timeout_ms == 1000 && !root && !verbose &&
                       mode == 1,
                   "--help or --version wrote a program flag's target");
        return;
    }
    bool v6;
    unsigned char buf[16];
    FUZZ_CHECK(o->host && is_address(o->host, &v6, buf), "host '%s'", o->host ? o->host : "(null)");
    if (strcmp(o->host, "127.0.0.1") != 0)
        check_string("host", o->host, false);
    FUZZ_CHECK(o->workers >= 1 && o->workers <= 256, "workers %u", o->workers);
    FUZZ_CHECK(o->max_conns <= 10000000, "max_conns %zu", o->max_conns);
    const uint64_t cap = UINT64_MAX / 1000 / 60 / 24 * 60000;
    FUZZ_CHECK(o->read_timeout_ms <= cap && o->write_timeout_ms <= cap &&
                   o->drain_timeout_ms <= cap,
               "a duration past the cap");
    FUZZ_CHECK((unsigned)o->log_level <= CORIO_LOG_DEBUG, "log level %d", (int)o->log_level);
    FUZZ_CHECK((unsigned)o->log_format <= CORIO_LOG_JSON, "log format %d", (int)o->log_format);
    if (o->unix_path) {
        size_t n = strlen(o->unix_path);
        FUZZ_CHECK(n >= 1 && n <= 107, "unix path of %zu bytes", n);
        check_string("unix path", o->unix_path, false);
    }
    FUZZ_CHECK(!o->tls_cert == !o->tls_key, "one TLS file without the other");
    if (o->tls_cert) {
        check_string("tls-cert", o->tls_cert, false);
        check_string("tls-key", o->tls_key, false);
        FUZZ_CHECK(access(o->tls_cert, R_OK) == 0 && access(o->tls_key, R_OK) == 0,
                   "a TLS file not readable");
    }
    check_string("access log", o->access_log, false);
    if (o->admin) {
        FUZZ_CHECK(memchr(o->admin_host, '\0', sizeof o->admin_host), "admin host unterminated");
        FUZZ_CHECK(is_address(o->admin_host, &v6, buf), "admin host '%s'", o->admin_host);
        FUZZ_CHECK(!v6 || !IN6_IS_ADDR_V4MAPPED((struct in6_addr *)buf),
                   "admin host '%s' is IPv4-mapped", o->admin_host);
    }
    /* The program's flags. */
    FUZZ_CHECK(count >= 1 && count <= 100, "--count %lld", (long long)count);
    FUZZ_CHECK(timeout_ms >= 10 && timeout_ms <= 60000, "--timeout %llu",
               (unsigned long long)timeout_ms);
    check_string("--root", root, false);
    FUZZ_CHECK(mode >= 0 && mode <= 2, "--mode %d", mode);
}

static void check_message(const char *err, size_t errlen) {
    const char *nul = memchr(err, '\0', errlen);
    FUZZ_CHECK(nul, "message not terminated within %zu bytes", errlen);
    for (size_t i = errlen; i < errlen + CANARY; i++)
        FUZZ_CHECK(err[i] == 'Z', "byte %zu written past errlen %zu", i, errlen);
    for (const char *c = err; c < nul; c++)
        FUZZ_CHECK((unsigned char)*c >= 0x20 && *c != 0x7f,
                   "control byte 0x%02x at %zu of the message '%s'", (unsigned char)*c,
                   (size_t)(c - err), err);
}

static bool same_opts(const corio__app_opts *a, const corio__app_opts *b) {
    return a->host == b->host && a->port == b->port && a->unix_path == b->unix_path &&
           a->inherited_fd == b->inherited_fd && a->workers == b->workers &&
           a->tls_cert == b->tls_cert && a->tls_key == b->tls_key && a->max_conns == b->max_conns &&
           a->read_timeout_ms == b->read_timeout_ms && a->write_timeout_ms == b->write_timeout_ms &&
           a->drain_timeout_ms == b->drain_timeout_ms && a->log_level == b->log_level &&
           a->log_format == b->log_format && a->reuse_port == b->reuse_port &&
           a->access_log == b->access_log && a->admin == b->admin &&
           strcmp(a->admin_host, b->admin_host) == 0 && a->admin_port == b->admin_port &&
           a->help == b->help && a->version == b->version;
}

static bool env_word(const char *w) {
    size_t n = strspn(w, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
    return n > 0 && w[n] == '=';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';
    char *names = malloc(size + 1); /* the variables' names, copied apart */
    if (!names)
        abort();
    memcpy(names, text, size + 1);

    char *argv[MAX_ARGS + 2] = {"fuzz"};
    int argc = 1;
    nenv = 0;
    for (size_t at = 0; at <= size;) {
        char *w = text + at;
        size_t n = strlen(w);
        if (env_word(w) && nenv < MAX_ENV) {
            size_t eq = strcspn(w, "=");
            names[at + eq] = '\0';
            env_names[nenv] = names + at;
            env_values[nenv++] = w + eq + 1;
        } else if (argc <= MAX_ARGS && (n || at < size)) {
            argv[argc++] = w;
        }
        at += n + 1;
    }
    argv[argc] = NULL;
    for (int i = 0; i < argc; i++)
        argv_words[i] = argv[i];
    argc_words = argc;

    static char err[ERRLEN + CANARY];
    corio__app_opts o, o2;
    memset(err, 'Z', sizeof err);
    app_defaults();
    int rc = corio__app_parse(&o, &app, argc, argv, get_env, err, ERRLEN);
    FUZZ_CHECK(rc == 0 || rc == CORIO_EINVAL, "returned %d", rc);
    if (rc == 0) {
        check_opts(&o);
    } else {
        check_message(err, ERRLEN);
        FUZZ_CHECK(err[0], "an empty message");
        FUZZ_CHECK(strncmp(err, "--", 2) == 0 || strncmp(err, "CORIO_", 6) == 0 ||
                       strncmp(err, "APP_", 4) == 0 ||
                       strncmp(err, "unexpected argument", 19) == 0 ||
                       strncmp(err, "unknown option", 14) == 0,
                   "the message names nothing: '%s'", err);
    }

    /* Again: the same result; with a small buffer, the message cut short. */
    size_t small = 1 + size % 24;
    char err2[ERRLEN + CANARY];
    memset(err2, 'Z', sizeof err2);
    int64_t c1 = count, f1 = offset;
    uint64_t t1 = timeout_ms;
    const char *r1 = root;
    bool v1 = verbose;
    int m1 = mode;
    app_defaults();
    int rc2 = corio__app_parse(&o2, &app, argc, argv, get_env, err2, small);
    FUZZ_CHECK(rc2 == rc, "a second parse returned %d, the first %d", rc2, rc);
    if (rc == 0) {
        FUZZ_CHECK(same_opts(&o, &o2), "a second parse gave other options");
        FUZZ_CHECK(c1 == count && f1 == offset && t1 == timeout_ms && r1 == root && v1 == verbose &&
                       m1 == mode,
                   "a second parse gave other program flags");
    } else {
        check_message(err2, small);
        FUZZ_CHECK(strlen(err2) + 4 >= small || strcmp(err2, err) == 0,
                   "message cut at %zu: '%s' (whole: '%s')", small, err2, err);
        FUZZ_CHECK(strncmp(err2, err, strlen(err2)) == 0, "message cut at %zu: '%s' not of '%s'",
                   small, err2, err);
    }
    free(names);
    free(text);
    return 0;
}
