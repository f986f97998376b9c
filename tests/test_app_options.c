/* SPDX-License-Identifier: MIT */
/* The runner's command line and environment (framework/app/options.c): every
 * flag in both spellings, every variable, flags over variables, every bad
 * value rejected with a message naming the flag and what it accepts. */
#include "corio_test.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "app/options.h"

/* ---- a fake environment ------------------------------------------------------------ */

static const char *fake_env[16][2];

static void env_clear(void) {
    memset(fake_env, 0, sizeof fake_env);
}

static void env_set(const char *name, const char *value) {
    for (size_t i = 0; i < sizeof fake_env / sizeof fake_env[0]; i++) {
        if (!fake_env[i][0] || strcmp(fake_env[i][0], name) == 0) {
            fake_env[i][0] = name;
            fake_env[i][1] = value;
            return;
        }
    }
    fail_msg("fake environment full");
}

static const char *get_fake_env(const char *name) {
    for (size_t i = 0; i < sizeof fake_env / sizeof fake_env[0] && fake_env[i][0]; i++)
        if (strcmp(fake_env[i][0], name) == 0)
            return fake_env[i][1];
    return NULL;
}

static const corio_app test_app = {.name = "t", .handler = NULL, .default_port = 7000};

static char err[256];

/* Parses a NULL-terminated argument list (argv[0] is supplied). */
static int parse_v(corio__app_opts *o, const char *const *args) {
    char *argv[32] = {"prog"};
    int argc = 1;
    for (; args[argc - 1]; argc++) {
        assert_true(argc < 32);
        argv[argc] = (char *)args[argc - 1];
    }
    err[0] = '\0';
    return corio__app_parse(o, &test_app, argc, argv, get_fake_env, err, sizeof err);
}

#define PARSE(o, ...) parse_v((o), (const char *const[]){__VA_ARGS__, NULL})
#define PARSE0(o) parse_v((o), (const char *const[]){NULL})

/* Asserts that parsing failed with one line naming `who` and containing `what`. */
static void expect_rejected(int rc, const char *who, const char *what) {
    assert_int_equal(rc, CORIO_EINVAL);
    if (!strstr(err, who) || (what && !strstr(err, what)))
        fail_msg("message '%s' should name '%s' and say '%s'", err, who, what ? what : "");
    assert_null(strchr(err, '\n'));
}

/* Two readable files for the TLS flags, made once. */
static char cert_path[64], key_path[64];

static int make_files(void **state) {
    (void)state;
    snprintf(cert_path, sizeof cert_path, "/tmp/corio_test_cert_%d.pem", (int)getpid());
    snprintf(key_path, sizeof key_path, "/tmp/corio_test_key_%d.pem", (int)getpid());
    FILE *f = fopen(cert_path, "w");
    FILE *g = fopen(key_path, "w");
    if (!f || !g)
        return -1;
    fputs("-----BEGIN CERTIFICATE-----\n", f);
    fputs("-----BEGIN PRIVATE KEY-----\n", g);
    fclose(f);
    fclose(g);
    return 0;
}

static int remove_files(void **state) {
    (void)state;
    unlink(cert_path);
    unlink(key_path);
    return 0;
}

static int reset_env(void **state) {
    (void)state;
    env_clear();
    return 0;
}

/* ---- defaults ------------------------------------------------------------------------ */

static void test_defaults_without_flags_or_env(void **state) {
    (void)state;
    corio__app_opts o;
    assert_int_equal(PARSE0(&o), 0);
    assert_string_equal(o.host, "127.0.0.1");
    assert_int_equal(o.port, 7000); /* the app's default port */
    assert_null(o.unix_path);
    assert_int_equal(o.workers, 1);
    assert_null(o.tls_cert);
    assert_null(o.tls_key);
    assert_int_equal(o.max_conns, 0);
    assert_int_equal(o.read_timeout_ms, 0);
    assert_int_equal(o.write_timeout_ms, 0);
    assert_int_equal(o.drain_timeout_ms, 25000);
    assert_int_equal(o.log_level, CORIO_LOG_INFO);
    assert_false(o.help);
    assert_false(o.version);
}

static void test_default_port_is_8080_when_app_has_none(void **state) {
    (void)state;
    corio_app app = {.name = "t"};
    corio__app_opts o;
    char *argv[] = {"prog"};
    assert_int_equal(corio__app_parse(&o, &app, 1, argv, NULL, err, sizeof err), 0);
    assert_int_equal(o.port, 8080);
    assert_int_equal(corio__app_parse(&o, NULL, 1, argv, NULL, err, sizeof err), 0);
    assert_int_equal(o.port, 8080);
}

/* ---- every flag, both spellings ------------------------------------------------------- */

/* Checks every option set to the values of `every_flag_*` below. */
static void assert_every_option(const corio__app_opts *o) {
    assert_string_equal(o->host, "::1");
    assert_int_equal(o->port, 9001);
    assert_null(o->unix_path); /* not with a port: see test_unix_and_port_exclusive */
    assert_int_equal(o->workers, 3);
    assert_string_equal(o->tls_cert, cert_path);
    assert_string_equal(o->tls_key, key_path);
    assert_int_equal(o->max_conns, 123);
    assert_int_equal(o->read_timeout_ms, 250);
    assert_int_equal(o->write_timeout_ms, 10000);
    assert_int_equal(o->drain_timeout_ms, 120000);
    assert_int_equal(o->log_level, CORIO_LOG_DEBUG);
}

static void test_every_flag_with_separate_value(void **state) {
    (void)state;
    corio__app_opts o;
    int rc = PARSE(&o, "--host", "::1", "--port", "9001", "--workers", "3", "--tls-cert", cert_path,
                   "--tls-key", key_path, "--max-conns", "123", "--read-timeout", "250ms",
                   "--write-timeout", "10s", "--drain-timeout", "2m", "--log-level", "debug");
    assert_int_equal(rc, 0);
    assert_every_option(&o);
    assert_false(o.help);
    assert_false(o.version);
}

static void test_every_flag_with_equals(void **state) {
    (void)state;
    corio__app_opts o;
    char cert[96], key[96];
    snprintf(cert, sizeof cert, "--tls-cert=%s", cert_path);
    snprintf(key, sizeof key, "--tls-key=%s", key_path);
    int rc = PARSE(&o, "--host=::1", "--port=9001", "--workers=3", cert, key, "--max-conns=123",
                   "--read-timeout=250ms", "--write-timeout=10s", "--drain-timeout=2m",
                   "--log-level=debug");
    assert_int_equal(rc, 0);
    assert_every_option(&o);
}

static void test_help_and_version_flags(void **state) {
    (void)state;
    corio__app_opts o;
    assert_int_equal(PARSE(&o, "--help"), 0);
    assert_true(o.help);
    assert_false(o.version);
    assert_int_equal(PARSE(&o, "--version"), 0);
    assert_true(o.version);
    expect_rejected(PARSE(&o, "--help=yes"), "--help", "takes no value");
}

static void test_ipv4_host_and_log_levels(void **state) {
    (void)state;
    corio__app_opts o;
    assert_int_equal(PARSE(&o, "--host", "0.0.0.0"), 0);
    assert_string_equal(o.host, "0.0.0.0");
    const char *names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(PARSE(&o, "--log-level", names[i]), 0);
        assert_int_equal(o.log_level, i);
    }
}

static void test_last_flag_wins(void **state) {
    (void)state;
    corio__app_opts o;
    assert_int_equal(PARSE(&o, "--port", "1", "--port=2"), 0);
    assert_int_equal(o.port, 2);
}

static void test_port_bounds(void **state) {
    (void)state;
    corio__app_opts o;
    assert_int_equal(PARSE(&o, "--port", "0"), 0);
    assert_int_equal(o.port, 0);
    assert_int_equal(PARSE(&o, "--port", "65535"), 0);
    assert_int_equal(o.port, 65535);
}

static void test_workers_bounds_and_auto(void **state) {
    (void)state;
    corio__app_opts o;
    assert_int_equal(PARSE(&o, "--workers", "1"), 0);
    assert_int_equal(o.workers, 1);
    assert_int_equal(PARSE(&o, "--workers", "256"), 0);
    assert_int_equal(o.workers, 256);
    assert_int_equal(PARSE(&o, "--workers", "auto"), 0);
    assert_true(o.workers >= 1);
    assert_true(o.workers <= 256);
    env_set("CORIO_WORKERS", "auto");
    assert_int_equal(PARSE0(&o), 0);
    assert_true(o.workers >= 1);
}

/* ---- environment ------------------------------------------------------------------------ */

static void test_every_variable_used_without_flags(void **state) {
    (void)state;
    env_set("CORIO_HOST", "::1");
    env_set("CORIO_PORT", "9001");
    env_set("CORIO_WORKERS", "3");
    env_set("CORIO_TLS_CERT", cert_path);
    env_set("CORIO_TLS_KEY", key_path);
    env_set("CORIO_MAX_CONNS", "123");
    env_set("CORIO_READ_TIMEOUT", "250ms");
    env_set("CORIO_WRITE_TIMEOUT", "10s");
    env_set("CORIO_DRAIN_TIMEOUT", "2m");
    env_set("CORIO_LOG_LEVEL", "debug");
    corio__app_opts o;
    assert_int_equal(PARSE0(&o), 0);
    assert_every_option(&o);
}

static void test_flags_win_over_variables(void **state) {
    (void)state;
    env_set("CORIO_PORT", "1111");
    env_set("CORIO_WORKERS", "4");
    env_set("CORIO_DRAIN_TIMEOUT", "1s");
    env_set("CORIO_LOG_LEVEL", "error");
    corio__app_opts o;
    assert_int_equal(PARSE(&o, "--port", "2222", "--drain-timeout=3s"), 0);
    assert_int_equal(o.port, 2222);
    assert_int_equal(o.drain_timeout_ms, 3000);
    assert_int_equal(o.workers, 4); /* no flag: the variable */
    assert_int_equal(o.log_level, CORIO_LOG_ERROR);
}

static void test_flag_wins_over_bad_variable(void **state) {
    (void)state;
    env_set("CORIO_PORT", "x");
    corio__app_opts o;
    assert_int_equal(PARSE(&o, "--port", "2222"), 0);
    assert_int_equal(o.port, 2222);
    /* Without the flag the bad variable is an error naming the variable. */
    expect_rejected(PARSE0(&o), "CORIO_PORT", "0..65535");
    assert_non_null(strstr(err, "'x'"));
}

static void test_help_answers_in_a_bad_environment(void **state) {
    (void)state;
    env_set("CORIO_PORT", "x");
    corio__app_opts o;
    assert_int_equal(PARSE(&o, "--help"), 0);
    assert_true(o.help);
    assert_int_equal(PARSE(&o, "--version"), 0);
    assert_true(o.version);
}

static void test_bad_variables_rejected(void **state) {
    (void)state;
    static const char *const cases[][3] = {
        {"CORIO_HOST", "localhost", "IPv4 or IPv6"},
        {"CORIO_WORKERS", "0", "1..256"},
        {"CORIO_MAX_CONNS", "-5", "0..10000000"},
        {"CORIO_READ_TIMEOUT", "5x", "duration"},
        {"CORIO_WRITE_TIMEOUT", "-1", "duration"},
        {"CORIO_DRAIN_TIMEOUT", "", "duration"},
        {"CORIO_LOG_LEVEL", "loud", "debug"},
        {"CORIO_TLS_CERT", "/nonexistent/cert.pem", "readable"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        env_clear();
        env_set(cases[i][0], cases[i][1]);
        corio__app_opts o;
        expect_rejected(PARSE0(&o), cases[i][0], cases[i][2]);
    }
}

/* ---- bad flags ------------------------------------------------------------------------- */

typedef struct bad_case {
    const char *flag, *value, *accepts;
} bad_case;

static const bad_case bad_values[] = {
    {"port", "abc", "0..65535"},
    {"port", "70000", "0..65535"},
    {"port", "-1", "0..65535"},
    {"port", "", "0..65535"},
    {"port", " 80", "0..65535"},
    {"port", "+80", "0..65535"},
    {"port", "80x", "0..65535"},
    {"port", "99999999999999999999999", "0..65535"},
    {"workers", "0", "1..256"},
    {"workers", "257", "1..256"},
    {"workers", "x", "1..256"},
    {"workers", "-2", "1..256"},
    {"workers", "Auto", "'auto'"},
    {"max-conns", "10000001", "0..10000000"},
    {"max-conns", "many", "0..10000000"},
    {"read-timeout", "5x", "duration"},
    {"read-timeout", "-1", "duration"},
    {"write-timeout", "1.5s", "duration"},
    {"write-timeout", "ms", "duration"},
    {"drain-timeout", "5 s", "duration"},
    {"drain-timeout", "", "duration"},
    {"host", "localhost", "IPv4 or IPv6"},
    {"host", "1.2.3.4.5", "IPv4 or IPv6"},
    {"host", "", "IPv4 or IPv6"},
    {"unix", "", "107 bytes"},
    {"log-level", "verbose", "error, warn, info or debug"},
    {"tls-cert", "/nonexistent/cert.pem", "readable PEM file"},
    {"tls-key", "/nonexistent/key.pem", "readable PEM file"},
    {"tls-cert", "/tmp", "readable PEM file"}, /* a directory */
};

static void test_bad_values_rejected_naming_flag(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof bad_values / sizeof bad_values[0]; i++) {
        const bad_case *c = &bad_values[i];
        char flag[64], joined[128], quoted[96];
        snprintf(flag, sizeof flag, "--%s", c->flag);
        snprintf(joined, sizeof joined, "--%s=%s", c->flag, c->value);
        snprintf(quoted, sizeof quoted, "'%s'", c->value);
        corio__app_opts o;
        expect_rejected(PARSE(&o, flag, c->value), flag, c->accepts);
        assert_non_null(strstr(err, quoted)); /* and shows the bad value */
        expect_rejected(PARSE(&o, joined), flag, c->accepts);
    }
}

static void test_unix_path_too_long_rejected(void **state) {
    (void)state;
    char path[120];
    memset(path, 'a', sizeof path - 1);
    path[0] = '/';
    path[108] = '\0'; /* 108 bytes: one too many for sun_path */
    corio__app_opts o;
    expect_rejected(PARSE(&o, "--unix", path), "--unix", "107 bytes");
    path[107] = '\0';
    assert_int_equal(PARSE(&o, "--unix", path), 0);
}

static void test_unknown_flag_rejected(void **state) {
    (void)state;
    corio__app_opts o;
    expect_rejected(PARSE(&o, "--bogus", "1"), "--bogus", "unknown");
    expect_rejected(PARSE(&o, "--bogus=1"), "--bogus", "unknown");
    expect_rejected(PARSE(&o, "--por", "1"), "--por", "unknown"); /* no prefix matching */
    expect_rejected(PARSE(&o, "-p", "1"), "-p", "unexpected argument");
    expect_rejected(PARSE(&o, "extra"), "extra", "unexpected argument");
}

static void test_missing_value_rejected(void **state) {
    (void)state;
    static const char *const flags[] = {"--host",          "--port",         "--unix",
                                        "--workers",       "--tls-cert",     "--tls-key",
                                        "--max-conns",     "--read-timeout", "--write-timeout",
                                        "--drain-timeout", "--log-level"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        corio__app_opts o;
        expect_rejected(PARSE(&o, flags[i]), flags[i], "missing value");
    }
    /* The next flag is not taken as a value by accident: it is one. */
    corio__app_opts o;
    expect_rejected(PARSE(&o, "--port", "--workers", "2"), "--port", "'--workers'");
}

static void test_tls_cert_and_key_go_together(void **state) {
    (void)state;
    corio__app_opts o;
    expect_rejected(PARSE(&o, "--tls-cert", cert_path), "--tls-cert", "--tls-key");
    expect_rejected(PARSE(&o, "--tls-key", key_path), "--tls-key", "--tls-cert");
    env_set("CORIO_TLS_KEY", key_path);
    assert_int_equal(PARSE(&o, "--tls-cert", cert_path), 0); /* key from the environment */
    assert_string_equal(o.tls_key, key_path);
}

/* What a parse saw, from a child that cannot read the file. */
typedef struct noread_result {
    int rc;
    bool dropped;     /* the child runs as a user other than root */
    bool open_denied; /* and open(2) on the file fails with EACCES */
    char err[256];
} noread_result;

/* Parses with `flag` naming a mode-000 file (the other TLS flag a readable
 * one) in a child process.  Root reads any file, so a child of root first
 * drops to nobody (uid and gid 65534, no supplementary groups): the check
 * then meets the same file an unprivileged deployment would. */
static noread_result parse_unreadable(const char *flag) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/corio_test_noread_%d.pem", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("-----BEGIN CERTIFICATE-----\n", f);
    fclose(f);
    assert_int_equal(chmod(path, 0), 0);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        noread_result r = {.rc = 1};
        close(fds[0]);
        if (geteuid() == 0 && (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0))
            _exit(3);
        r.dropped = getuid() != 0 && geteuid() != 0;
        int fd = open(path, O_RDONLY);
        r.open_denied = fd < 0 && errno == EACCES;
        if (fd >= 0)
            close(fd);
        corio__app_opts o;
        bool cert = strcmp(flag, "--tls-cert") == 0;
        r.rc =
            PARSE(&o, "--tls-cert", cert ? path : cert_path, "--tls-key", cert ? key_path : path);
        snprintf(r.err, sizeof r.err, "%s", err);
        _exit(write(fds[1], &r, sizeof r) == (ssize_t)sizeof r ? 0 : 4);
    }
    close(fds[1]);
    noread_result r;
    ssize_t n = read(fds[0], &r, sizeof r);
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    unlink(path);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || n != (ssize_t)sizeof r)
        fail_msg("child status %#x (3: could not drop privileges)", status);
    return r;
}

static void test_unreadable_file_rejected(void **state) {
    (void)state;
    const char *flags[] = {"--tls-cert", "--tls-key"};
    for (size_t i = 0; i < 2; i++) {
        noread_result r = parse_unreadable(flags[i]);
        assert_true(r.dropped);
        assert_true(r.open_denied); /* the file really is unreadable to the parser */
        snprintf(err, sizeof err, "%s", r.err);
        expect_rejected(r.rc, flags[i], "readable PEM file");
    }
}

static void test_message_truncated_to_buffer(void **state) {
    (void)state;
    char small[12];
    memset(small, 'Z', sizeof small);
    char *argv[] = {"prog", "--port", "abcdefghijklmnopqrstuvwxyz"};
    corio__app_opts o;
    assert_int_equal(corio__app_parse(&o, &test_app, 3, argv, NULL, small, 8), CORIO_EINVAL);
    assert_int_equal(strlen(small), 7);
    assert_int_equal(small[8], 'Z'); /* nothing written past errlen */
}

/* ---- durations ------------------------------------------------------------------------ */

static void test_durations_parsed(void **state) {
    (void)state;
    static const struct {
        const char *text;
        uint64_t ms;
    } good[] = {{"250ms", 250}, {"10s", 10000}, {"2m", 120000}, {"1500", 1500},
                {"0", 0},       {"0s", 0},      {"007s", 7000}, {"86400000", 86400000}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint64_t ms = 42;
        if (corio__parse_duration(good[i].text, &ms) != 0)
            fail_msg("'%s' rejected", good[i].text);
        assert_int_equal(ms, good[i].ms);
    }
}

static void test_bad_durations_rejected(void **state) {
    (void)state;
    static const char *const bad[] = {"5x",
                                      "-1",
                                      "",
                                      "ms",
                                      "s",
                                      " 5s",
                                      "+5",
                                      "5 s",
                                      "5S",
                                      "5sec",
                                      "1.5s",
                                      "5h",
                                      "1e3",
                                      "99999999999999999999",
                                      "184467440737095516m"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t ms = 42;
        if (corio__parse_duration(bad[i], &ms) != CORIO_EINVAL)
            fail_msg("'%s' accepted", bad[i]);
        assert_int_equal(ms, 42); /* untouched */
    }
    uint64_t ms = 42;
    assert_int_equal(corio__parse_duration(NULL, &ms), CORIO_EINVAL);
}

/* ---- --unix ------------------------------------------------------------------------- */

static void test_unix_and_port_exclusive(void **state) {
    (void)state;
    corio__app_opts o;
    assert_int_equal(PARSE(&o, "--unix", "/tmp/corio.sock"), 0);
    assert_string_equal(o.unix_path, "/tmp/corio.sock");
    assert_int_equal(PARSE(&o, "--unix=/tmp/corio.sock"), 0);
    assert_string_equal(o.unix_path, "/tmp/corio.sock");
    expect_rejected(PARSE(&o, "--unix", "/tmp/corio.sock", "--port", "9001"), "--unix and --port",
                    "one or the other");
    expect_rejected(PARSE(&o, "--port=0", "--unix=/tmp/corio.sock"), "--unix and --port", NULL);
    env_set("CORIO_UNIX", "/tmp/corio.sock");
    assert_int_equal(PARSE0(&o), 0);
    assert_string_equal(o.unix_path, "/tmp/corio.sock");
    env_set("CORIO_PORT", "9001");
    expect_rejected(PARSE0(&o), "CORIO_UNIX and CORIO_PORT", "one or the other");
    /* A flag wins over the other's variable, as over its own. */
    assert_int_equal(PARSE(&o, "--port", "9002"), 0);
    assert_null(o.unix_path);
    assert_int_equal(o.port, 9002);
    assert_int_equal(PARSE(&o, "--unix", "/tmp/other.sock"), 0);
    assert_string_equal(o.unix_path, "/tmp/other.sock");
    assert_int_equal(o.port, 7000); /* the default, unused */
}

/* ---- --reuse-port ----------------------------------------------------------------- */

static void test_reuse_port_flag_and_variable(void **state) {
    (void)state;
    corio__app_opts o;
    assert_int_equal(PARSE0(&o), 0);
    assert_false(o.reuse_port); /* a port in use is refused unless asked */
    assert_int_equal(PARSE(&o, "--reuse-port"), 0);
    assert_true(o.reuse_port);
    expect_rejected(PARSE(&o, "--reuse-port=1"), "--reuse-port", "takes no value");
    static const char *const yes[] = {"1", "true", "YES", "on"}, *const no[] = {"0", "false", "no",
                                                                                "Off"};
    for (size_t i = 0; i < 4; i++) {
        env_set("CORIO_REUSE_PORT", yes[i]);
        assert_int_equal(PARSE0(&o), 0);
        assert_true(o.reuse_port);
        env_set("CORIO_REUSE_PORT", no[i]);
        assert_int_equal(PARSE0(&o), 0);
        assert_false(o.reuse_port);
    }
    env_set("CORIO_REUSE_PORT", "maybe");
    expect_rejected(PARSE0(&o), "CORIO_REUSE_PORT", "got 'maybe'");
    env_set("CORIO_REUSE_PORT", "0");
    assert_int_equal(PARSE(&o, "--reuse-port"), 0); /* the flag wins */
    assert_true(o.reuse_port);
}

/* ---- --admin ------------------------------------------------------------------------- */

static void test_admin_addresses(void **state) {
    (void)state;
    corio__app_opts o;
    assert_int_equal(PARSE0(&o), 0);
    assert_false(o.admin); /* off unless asked */
    assert_int_equal(PARSE(&o, "--admin", "9090"), 0);
    assert_true(o.admin);
    assert_string_equal(o.admin_host, "127.0.0.1"); /* loopback unless a host is given */
    assert_int_equal(o.admin_port, 9090);
    assert_int_equal(PARSE(&o, "--admin=0.0.0.0:1"), 0);
    assert_string_equal(o.admin_host, "0.0.0.0");
    assert_int_equal(o.admin_port, 1);
    assert_int_equal(PARSE(&o, "--admin", "[::1]:0"), 0);
    assert_string_equal(o.admin_host, "::1");
    assert_int_equal(o.admin_port, 0);
    assert_int_equal(PARSE(&o, "--admin", "[fe80::1:2:3:4]:65535"), 0);
    assert_string_equal(o.admin_host, "fe80::1:2:3:4");
    assert_int_equal(o.admin_port, 65535);
    assert_int_equal(PARSE(&o, "--admin", "9090", "--admin", "off"), 0); /* the last wins */
    assert_false(o.admin);
    static const char *const bad[] = {"",
                                      "off2",
                                      "foo",
                                      "-1",
                                      "65536",
                                      "1.2.3:80",
                                      "::1:80",
                                      "[::1]",
                                      "[127.0.0.1]:80",
                                      ":80",
                                      "127.0.0.1:",
                                      "[::1]:",
                                      "[]:80",
                                      "1.2.3.4:+80",
                                      "localhost:80",
                                      "9090 ",
                                      " 9090",
                                      "[::1:80",
                                      "[::ffff:127.0.0.1]:80",
                                      "[0000:0000:0000:0000:0000:0000:0000:0000:0000:0001]:80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (PARSE(&o, "--admin", bad[i]) == 0)
            fail_msg("--admin '%s' accepted", bad[i]);
        if (!strstr(err, "--admin: expected [HOST:]PORT"))
            fail_msg("--admin '%s': %s", bad[i], err);
    }
}

static void test_admin_variable(void **state) {
    (void)state;
    corio__app_opts o;
    env_set("CORIO_ADMIN", "127.0.0.2:9100");
    assert_int_equal(PARSE0(&o), 0);
    assert_true(o.admin);
    assert_string_equal(o.admin_host, "127.0.0.2");
    assert_int_equal(o.admin_port, 9100);
    assert_int_equal(PARSE(&o, "--admin", "off"), 0); /* the flag wins */
    assert_false(o.admin);
    env_set("CORIO_ADMIN", "nope");
    expect_rejected(PARSE0(&o), "CORIO_ADMIN", "got 'nope'");
    assert_int_equal(PARSE(&o, "--admin", "9101"), 0); /* the flag wins over a bad variable */
    assert_int_equal(o.admin_port, 9101);
    /* The admin port equal to the server's is refused by corio_app_main,
     * once it knows the server's port (an inherited socket's included):
     * tests/test_admin.py. */
}

/* ---- --help -------------------------------------------------------------------------- */

static void test_usage_lists_every_flag_and_variable(void **state) {
    (void)state;
    char path[64];
    snprintf(path, sizeof path, "/tmp/corio_test_usage_%d.txt", (int)getpid());
    FILE *f = fopen(path, "w+");
    assert_non_null(f);
    corio_app app = {.name = "myapp", .description = "does things"};
    corio__app_usage(&app, fileno(f));
    char text[8192];
    rewind(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    unlink(path);
    static const char *const want[] = {"usage: myapp",    "does things",
                                       "--host",          "CORIO_HOST",
                                       "--port",          "CORIO_PORT",
                                       "--unix",          "CORIO_UNIX",
                                       "--workers",       "CORIO_WORKERS",
                                       "--tls-cert",      "CORIO_TLS_CERT",
                                       "--tls-key",       "CORIO_TLS_KEY",
                                       "--max-conns",     "CORIO_MAX_CONNS",
                                       "--read-timeout",  "CORIO_READ_TIMEOUT",
                                       "--write-timeout", "CORIO_WRITE_TIMEOUT",
                                       "--drain-timeout", "CORIO_DRAIN_TIMEOUT",
                                       "--log-level",     "CORIO_LOG_LEVEL",
                                       "--reuse-port",    "CORIO_REUSE_PORT",
                                       "--admin",         "CORIO_ADMIN",
                                       "--help",          "--version"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(text, want[i]))
            fail_msg("--help lacks '%s':\n%s", want[i], text);
}

/* ---- the program's own flags (corio_app.flags) ---------------------------------------- */

static const char *f_str;
static int64_t f_int;
static uint64_t f_ms;
static bool f_bool;
static char f_seen[64]; /* what the FUNC flag took, in order */

static int take_word(const char *v, void *target) {
    if (strcmp(v, "bad") == 0)
        return CORIO_EINVAL;
    strcat(strcat((char *)target, v), ";");
    return 0;
}

static const corio_app_flag app_flags[] = {
    {.name = "root",
     .type = CORIO_APP_FLAG_STRING,
     .target = &f_str,
     .env = "T_ROOT",
     .accepts = "a directory",
     .help = "what to serve"},
    {.name = "pool",
     .type = CORIO_APP_FLAG_INT,
     .target = &f_int,
     .env = "T_POOL",
     .min = 1,
     .max = 10,
     .help = "connections"},
    {.name = "wait",
     .type = CORIO_APP_FLAG_DURATION,
     .target = &f_ms,
     .min = 1,
     .max = 600000,
     .help = "how long"},
    {.name = "fast",
     .type = CORIO_APP_FLAG_BOOL,
     .target = &f_bool,
     .env = "T_FAST",
     .help = "go fast"},
    {.name = "word",
     .type = CORIO_APP_FLAG_FUNC,
     .parse = take_word,
     .target = f_seen,
     .accepts = "a word but 'bad'",
     .help = "a word, repeatable"},
};

static const corio_app flag_app = {
    .name = "t", .default_port = 7000, .flags = app_flags, .nflags = 5};

static int parse_app_v(corio__app_opts *o, const corio_app *app, const char *const *args) {
    char *argv[32] = {"prog"};
    int argc = 1;
    for (; args[argc - 1]; argc++)
        argv[argc] = (char *)args[argc - 1];
    err[0] = '\0';
    f_str = "default";
    f_int = 5;
    f_ms = 2000;
    f_bool = false;
    f_seen[0] = '\0';
    return corio__app_parse(o, app, argc, argv, get_fake_env, err, sizeof err);
}

#define PARSE_APP(o, ...) parse_app_v((o), &flag_app, (const char *const[]){__VA_ARGS__, NULL})

static void test_app_flags_parsed_with_the_runners(void **state) {
    (void)state;
    corio__app_opts o;
    assert_int_equal(PARSE_APP(&o, "--root", "/srv", "--port", "9001", "--pool=7", "--wait", "2m",
                               "--fast", "--word", "a", "--word=b"),
                     0);
    assert_string_equal(f_str, "/srv");
    assert_int_equal(o.port, 9001);
    assert_int_equal(f_int, 7);
    assert_int_equal(f_ms, 120000);
    assert_true(f_bool);
    assert_string_equal(f_seen, "a;b;");               /* a FUNC flag: each occurrence, in order */
    assert_int_equal(PARSE_APP(&o, "--port", "1"), 0); /* none given: the defaults stay */
    assert_string_equal(f_str, "default");
    assert_int_equal(f_int, 5);
    assert_false(f_bool);
}

static void test_app_flag_variables(void **state) {
    (void)state;
    corio__app_opts o;
    env_set("T_ROOT", "/env");
    env_set("T_POOL", "3");
    env_set("T_FAST", "yes");
    assert_int_equal(PARSE_APP(&o, "--port", "1"), 0);
    assert_string_equal(f_str, "/env");
    assert_int_equal(f_int, 3);
    assert_true(f_bool);
    env_set("T_POOL", "99"); /* a bad variable under a flag is not read */
    assert_int_equal(PARSE_APP(&o, "--pool", "4", "--root", "/flag"), 0);
    assert_int_equal(f_int, 4);
    assert_string_equal(f_str, "/flag");
    expect_rejected(PARSE_APP(&o, "--port", "1"), "T_POOL", "an integer 1..10, got '99'");
    env_set("T_POOL", ""); /* "" counts as unset */
    env_set("T_ROOT", "");
    assert_int_equal(PARSE_APP(&o, "--port", "1"), 0);
    assert_int_equal(f_int, 5);
    assert_string_equal(f_str, "default");
}

static void test_app_flag_bad_values_rejected(void **state) {
    (void)state;
    corio__app_opts o;
    expect_rejected(PARSE_APP(&o, "--pool", "11"), "--pool", "an integer 1..10, got '11'");
    expect_rejected(PARSE_APP(&o, "--pool", "0"), "--pool", "1..10");
    expect_rejected(PARSE_APP(&o, "--pool", "x"), "--pool", "got 'x'");
    expect_rejected(PARSE_APP(&o, "--pool", "5x"), "--pool", "got '5x'");
    expect_rejected(PARSE_APP(&o, "--wait", "soon"), "--wait", "duration");
    expect_rejected(PARSE_APP(&o, "--wait", "11m"), "--wait", "duration");
    expect_rejected(PARSE_APP(&o, "--wait", "0"), "--wait", "from 1 to 600000 ms");
    expect_rejected(PARSE_APP(&o, "--root", ""), "--root", "expected a directory, got ''");
    expect_rejected(PARSE_APP(&o, "--root"), "--root", "--root needs a directory");
    expect_rejected(PARSE_APP(&o, "--fast=1"), "--fast", "takes no value");
    expect_rejected(PARSE_APP(&o, "--word", "bad"), "--word", "a word but 'bad'");
    expect_rejected(PARSE_APP(&o, "--wrod", "x"), "--wrod", "unknown option");
    env_set("T_FAST", "maybe");
    expect_rejected(PARSE_APP(&o, "--port", "1"), "T_FAST", "got 'maybe'");
}

static void test_app_flags_untouched_by_help_and_version(void **state) {
    (void)state;
    corio__app_opts o;
    env_set("T_POOL", "3");
    assert_int_equal(PARSE_APP(&o, "--pool", "9", "--word", "a", "--help"), 0);
    assert_true(o.help);
    assert_int_equal(f_int, 5);
    assert_string_equal(f_seen, "");
    assert_int_equal(PARSE_APP(&o, "-h"), 0);
    assert_true(o.help);
    assert_int_equal(PARSE_APP(&o, "--root", "/x", "--version"), 0);
    assert_string_equal(f_str, "default");
    expect_rejected(PARSE_APP(&o, "-x"), "-x", "unexpected argument");
}

static void test_bad_flag_tables_rejected(void **state) {
    (void)state;
    static const corio_app_flag clash[] = {
        {.name = "port", .type = CORIO_APP_FLAG_INT, .target = &f_int}};
    static const corio_app_flag h[] = {
        {.name = "h", .type = CORIO_APP_FLAG_BOOL, .target = &f_bool}};
    static const corio_app_flag twice[] = {
        {.name = "a", .type = CORIO_APP_FLAG_BOOL, .target = &f_bool},
        {.name = "a", .type = CORIO_APP_FLAG_INT, .target = &f_int}};
    static const corio_app_flag no_target[] = {{.name = "a", .type = CORIO_APP_FLAG_INT}};
    static const corio_app_flag no_parser[] = {{.name = "a", .type = CORIO_APP_FLAG_FUNC}};
    static const corio_app_flag dashes[] = {
        {.name = "--a", .type = CORIO_APP_FLAG_BOOL, .target = &f_bool}};
    static const corio_app_flag range[] = {
        {.name = "a", .type = CORIO_APP_FLAG_INT, .target = &f_int, .min = 2, .max = 1}};
    const struct {
        const corio_app_flag *flags;
        const char *why;
    } bad[] = {{clash, "runner has"},      {h, "runner has"},     {twice, "twice"},
               {no_target, "target"},      {no_parser, "parser"}, {dashes, "without dashes"},
               {range, "min is above max"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        corio_app app = {.name = "t", .flags = bad[i].flags, .nflags = i == 2 ? 2 : 1};
        corio__app_opts o;
        expect_rejected(parse_app_v(&o, &app, (const char *const[]){NULL}), "flag table",
                        bad[i].why);
    }
}

static void test_usage_lists_app_flags_and_defaults(void **state) {
    (void)state;
    char path[64];
    snprintf(path, sizeof path, "/tmp/corio_test_usage_%d.txt", (int)getpid());
    FILE *f = fopen(path, "w+");
    assert_non_null(f);
    f_str = "/srv/www";
    f_int = 5;
    f_ms = 2000;
    f_bool = false;
    corio__app_usage(&flag_app, fileno(f));
    char text[8192];
    rewind(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    unlink(path);
    static const char *const want[] = {"(default: 127.0.0.1)",
                                       "(default: 7000)",
                                       "(default: 25s)",
                                       "(default: info)",
                                       "(default: off)",
                                       "also -h",
                                       "t options:",
                                       "--root VALUE",
                                       "what to serve; a directory [T_ROOT] (default: /srv/www)",
                                       "--pool VALUE",
                                       "an integer 1..10 [T_POOL] (default: 5)",
                                       "--wait VALUE",
                                       "(default: 2s)",
                                       "--fast ",
                                       "go fast [T_FAST] (default: off)",
                                       "--word VALUE",
                                       "a word but 'bad'"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(text, want[i]))
            fail_msg("--help lacks '%s':\n%s", want[i], text);
    assert_null(
        strstr(text, "--word VALUE           a word, repeatable; a word but 'bad' (default"));
}

#define T(fn) cmocka_unit_test_setup(fn, reset_env)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_defaults_without_flags_or_env),
        T(test_default_port_is_8080_when_app_has_none),
        T(test_every_flag_with_separate_value),
        T(test_every_flag_with_equals),
        T(test_help_and_version_flags),
        T(test_ipv4_host_and_log_levels),
        T(test_last_flag_wins),
        T(test_port_bounds),
        T(test_workers_bounds_and_auto),
        T(test_every_variable_used_without_flags),
        T(test_flags_win_over_variables),
        T(test_flag_wins_over_bad_variable),
        T(test_help_answers_in_a_bad_environment),
        T(test_bad_variables_rejected),
        T(test_bad_values_rejected_naming_flag),
        T(test_unix_path_too_long_rejected),
        T(test_unknown_flag_rejected),
        T(test_missing_value_rejected),
        T(test_tls_cert_and_key_go_together),
        T(test_unreadable_file_rejected),
        T(test_message_truncated_to_buffer),
        T(test_durations_parsed),
        T(test_bad_durations_rejected),
        T(test_unix_and_port_exclusive),
        T(test_reuse_port_flag_and_variable),
        T(test_admin_addresses),
        T(test_admin_variable),
        T(test_usage_lists_every_flag_and_variable),
        T(test_app_flags_parsed_with_the_runners),
        T(test_app_flag_variables),
        T(test_app_flag_bad_values_rejected),
        T(test_app_flags_untouched_by_help_and_version),
        T(test_bad_flag_tables_rejected),
        T(test_usage_lists_app_flags_and_defaults),
    };
    return cmocka_run_group_tests(tests, make_files, remove_files);
}
