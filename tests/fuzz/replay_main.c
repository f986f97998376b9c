/* SPDX-License-Identifier: MIT */
/* main() for a fuzz harness outside libFuzzer (gcc builds, ASan, valgrind):
 * runs LLVMFuzzerTestOneInput once on every file named on the command line
 * and on every file of every directory named (in name order, dot files left
 * out); with no path, on the harness's committed corpus (CORIO_FUZZ_CORPUS,
 * set by tests/fuzz/CMakeLists.txt).  Arguments starting with '-' are
 * libFuzzer's flags and are ignored, so a libFuzzer command line replays
 * here too.  Each input is passed in a buffer of exactly its size, as
 * libFuzzer does, so ASan and valgrind see a read past its end.
 *
 * Exits 0 after the last input; 1 if a path cannot be read or nothing was
 * run (a missing corpus is an error, not a pass).  A harness that finds a
 * violated invariant aborts: the input's path is printed first (from the
 * SIGABRT/SIGILL handler, or the sanitizer's death callback). */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

#ifndef CORIO_FUZZ_CORPUS
#define CORIO_FUZZ_CORPUS "corpus"
#endif

/* Optional in a harness. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);
/* Present when a sanitizer runtime is linked in. */
__attribute__((weak)) void __sanitizer_set_death_callback(void (*callback)(void));

static char current[4096]; /* the input being run, for the crash message */

static void say_current(void) {
    static const char pre[] = "\nreplay: the failing input is ";
    if (!current[0])
        return;
    ssize_t rc = write(2, pre, sizeof pre - 1);
    rc = write(2, current, strlen(current));
    rc = write(2, "\n", 1);
    (void)rc;
}

static void on_fatal_signal(int sig) {
    say_current();
    signal(sig, SIG_DFL);
    raise(sig);
}

static int run_file(const char *path, size_t *count) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fprintf(stderr, "replay: out of memory reading %s\n", path);
            fclose(f);
            return -1;
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *more = realloc(buf, cap * 2);
        if (!more)
            free(buf);
        buf = more;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, "replay: %s: read error\n", path);
        free(buf);
        return -1;
    }
    /* Exactly n bytes, so that a read past the input is caught. */
    uint8_t *data = malloc(n ? n : 1);
    if (!data) {
        free(buf);
        return -1;
    }
    memcpy(data, buf, n);
    free(buf);
    snprintf(current, sizeof current, "%s", path);
    LLVMFuzzerTestOneInput(data, n);
    current[0] = '\0';
    free(data);
    (*count)++;
    return 0;
}

static int not_hidden(const struct dirent *e) {
    return e->d_name[0] != '.';
}

static int run_path(const char *path, size_t *count) {
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(path, count);
    struct dirent **names;
    int n = scandir(path, &names, not_hidden, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char file[4096];
        snprintf(file, sizeof file, "%s/%s", path, names[i]->d_name);
        if (rc == 0 && stat(file, &st) == 0 && S_ISREG(st.st_mode))
            rc = run_file(file, count);
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv) {
    signal(SIGABRT, on_fatal_signal);
    signal(SIGILL, on_fatal_signal); /* __builtin_trap */
    if (__sanitizer_set_death_callback)
        __sanitizer_set_death_callback(say_current);
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    size_t count = 0, paths = 0;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-')
            continue;
        paths++;
        if (run_path(argv[i], &count) != 0)
            return 1;
    }
    if (paths == 0 && run_path(CORIO_FUZZ_CORPUS, &count) != 0)
        return 1;
    if (count == 0) {
        fprintf(stderr, "replay: no input found\n");
        return 1;
    }
    printf("replay: %zu inputs, no finding\n", count);
    return 0;
}
