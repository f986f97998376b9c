/* SPDX-License-Identifier: MIT */
/* Layer 5: reading a file range without blocking the loop (net/fileread.h).
 *
 * Files are written to $TMPDIR (else /var/tmp, else /tmp), unlinked at once
 * and read through their descriptor.  A cold file is one whose pages were
 * dropped from the page cache (fsync, then POSIX_FADV_DONTNEED, as
 * tests/pagecache.py does) and that mincore finds gone; where the file
 * system keeps them anyway (tmpfs), the test says so on stderr and still
 * checks the bytes.  Whether a read waited (went to the thread pool) is seen
 * by a bystander task that can only run while the reader awaits.  A reader
 * whose probe is set to CORIO__PROBE_NONE reads everything on the pool:
 * that is how the cut-short tests make sure a pool read is in flight.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "corio_test.h"
#include "net/fileread.h"

#define MIB (1024 * 1024)
#define TMPFS_MAGIC_ 0x01021994 /* linux/magic.h's TMPFS_MAGIC */

/* ---- helpers ----------------------------------------------------------------- */

/* The byte at offset i of every test file. */
static unsigned char byte_at(uint64_t i) {
    return (unsigned char)((i * 2654435761u) >> 11 ^ i >> 20);
}

static bool bytes_match(const unsigned char *buf, size_t len, uint64_t off) {
    for (size_t i = 0; i < len; i++)
        if (buf[i] != byte_at(off + i))
            return false;
    return true;
}

/* A new file of size bytes in dir (NULL: the default directory), written
 * and fsynced.  Returns its descriptor (read-write).  With path (4096
 * bytes) the file keeps its name, stored there; without, it is unlinked. */
static int make_file_in(const char *dir, size_t size, char *path) {
    if (!dir) {
        const char *t = getenv("TMPDIR");
        dir = t && *t ? t : "/var/tmp";
        if (access(dir, W_OK) != 0)
            dir = "/tmp";
    }
    char name[4096];
    snprintf(name, sizeof name, "%s/corio-fileread-XXXXXX", dir);
    int fd = mkstemp(name);
    assert_true(fd >= 0);
    if (path)
        memcpy(path, name, sizeof name);
    else
        unlink(name);
    unsigned char *chunk = malloc(MIB);
    assert_non_null(chunk);
    for (size_t off = 0; off < size; off += MIB) {
        size_t n = size - off < MIB ? size - off : MIB;
        for (size_t i = 0; i < n; i++)
            chunk[i] = byte_at(off + i);
        assert_int_equal(pwrite(fd, chunk, n, (off_t)off), (ssize_t)n);
    }
    free(chunk);
    assert_int_equal(fsync(fd), 0);
    return fd;
}

static int make_file(size_t size) {
    return make_file_in(NULL, size, NULL);
}

/* Bytes of fd's first size bytes in the page cache (mincore). */
static size_t resident(int fd, size_t size) {
    void *p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return size;
    long page = sysconf(_SC_PAGESIZE);
    size_t pages = (size + (size_t)page - 1) / (size_t)page, in = 0;
    unsigned char *vec = malloc(pages);
    if (vec && mincore(p, size, vec) == 0)
        for (size_t i = 0; i < pages; i++)
            in += vec[i] & 1;
    else
        in = pages;
    free(vec);
    munmap(p, size);
    return in * (size_t)page;
}

/* Drops fd's pages from the page cache, trying up to 50 times 20 ms apart
 * while some stay.  Returns whether the file is cold; says so on stderr
 * when it is not. */
static bool evict(int fd, size_t size) {
    size_t left = 0;
    for (int i = 0; i < 50; i++) {
        if (i)
            usleep(20 * 1000);
        (void)fsync(fd);
        (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        if ((left = resident(fd, size)) == 0)
            return true;
    }
    fprintf(stderr, "    SKIP coldness: %zu of %zu bytes stay cached; bytes still checked\n", left,
            size);
    return false;
}

/* Open descriptors of this process. */
static int open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* A task that only notes that it ran: it runs only while the reader awaits. */
static int bystander(void *arg) {
    *(bool *)arg = true;
    return 0;
}

/* ---- a cached file is read on the loop --------------------------------------- */

typedef struct cached_ctx {
    int fd;
    size_t size;
} cached_ctx;

static int cached_main(void *arg) {
    cached_ctx *c = arg;
    corio__fread r;
    corio__fread_init(&r, c->fd);
    SOFT(r.probe == CORIO__PROBE_UNTRIED);
    unsigned char *buf = malloc(c->size);
    SOFT(buf != NULL);
    bool ran = false;
    corio_task *t = corio_test_spawn("bystander", bystander, &ran);
    SOFT(corio__fread_all(&r, buf, 300000, 12345) == 0);
    SOFT(bytes_match(buf, 300000, 12345));
    SOFT(r.probe == CORIO__PROBE_NOWAIT || r.probe == CORIO__PROBE_MEMORY);
    SOFT(!ran); /* no await: the loop did the read */
    SOFT(corio__fread_nowait(&r, buf, c->size, 0) == (ssize_t)c->size);
    SOFT(bytes_match(buf, c->size, 0));
    SOFT(corio__fread_is_cached(&r, 0, c->size));
    SOFT(corio__fread_is_cached(&r, c->size - 1, 1));
    SOFT(corio__fread_all(&r, buf, 0, 0) == 0); /* nothing to read */
    SOFT(!ran);
    SOFT(corio_test_join(t) == 0);
    SOFT(ran);
    free(buf);
    return 0;
}

static void test_fread_cached_file_is_read_on_the_loop_without_waiting(void **state) {
    (void)state;
    cached_ctx c = {.size = MIB + 777};
    c.fd = make_file(c.size);
    corio_test_run_checked(cached_main, &c);
    close(c.fd);
}

/* ---- past the end of the file ------------------------------------------------ */

static int eof_main(void *arg) {
    int fd = *(int *)arg;
    char buf[4096];
    corio__fread r;
    corio__fread_init(&r, fd);
    SOFT(corio__fread_all(&r, buf, 1000, 9000) == 0); /* the last 1000 bytes */
    SOFT(bytes_match((unsigned char *)buf, 1000, 9000));
    SOFT(corio__fread_all(&r, buf, 2000, 9000) == CORIO_EOF);  /* ends inside */
    SOFT(corio__fread_all(&r, buf, 1, 10000) == CORIO_EOF);    /* starts at the end */
    SOFT(corio__fread_all(&r, buf, 10, 1 << 30) == CORIO_EOF); /* far beyond */
    SOFT(corio__fread_nowait(&r, buf, 10, 10000) == CORIO_EOF);
    SOFT(corio__fread_nowait(&r, buf, 2000, 9000) == 1000); /* what is there */
    SOFT(corio__fread_is_cached(&r, 9000, 2000));           /* the end counts as cached */

    corio__fread_buf *b = (corio__fread_buf *)&r; /* must be set to NULL */
    SOFT(corio__fread_pool(&r, 2000, 9000, &b) == CORIO_EOF);
    SOFT(b == NULL);
    SOFT(corio__fread_pool(&r, 1000, 9000, &b) == 0);
    SOFT(b && b->len == 1000 && bytes_match((unsigned char *)b->data, 1000, 9000));
    corio__fread_buf_free(b);
    corio__fread_buf_free(NULL);

    corio__fread pool;
    corio__fread_init(&pool, fd);
    pool.probe = CORIO__PROBE_NONE; /* every read on the pool */
    SOFT(corio__fread_nowait(&pool, buf, 10, 0) == 0);
    SOFT(corio__fread_all(&pool, buf, 2000, 9000) == CORIO_EOF);
    SOFT(corio__fread_all(&pool, buf, 2000, 8000) == 0);
    SOFT(bytes_match((unsigned char *)buf, 2000, 8000));
    return 0;
}

static void test_fread_past_the_end_is_eof_on_the_loop_and_on_the_pool(void **state) {
    (void)state;
    int fd = make_file(10000);
    int before = open_fds();
    corio_test_run_checked(eof_main, &fd);
    assert_int_equal(open_fds(), before);
    close(fd);
}

/* ---- a cold file ------------------------------------------------------------- */

typedef struct cold_ctx {
    int fd;
    size_t size;
    bool cold; /* eviction worked every time */
} cold_ctx;

static int cold_main(void *arg) {
    cold_ctx *c = arg;
    unsigned char *buf = malloc(c->size);
    SOFT(buf != NULL);
    corio__fread r;
    corio__fread_init(&r, c->fd);
    bool nowait = corio__fread_nowait(&r, buf, 1, 0) == 1 && r.probe == CORIO__PROBE_NOWAIT;
    if (!nowait)
        fprintf(stderr, "    SKIP coldness: no RWF_NOWAIT here (probe %d)\n", (int)r.probe);

    /* The loop will not wait for the disk: the first page is not read. */
    /* Something outside the test may fault the page back in between the
     * eviction and the read (CI saw it once): a few tries, and one clean
     * refusal is proof enough; a reader that always waits fails them all. */
    c->cold = evict(c->fd, c->size) && nowait;
    if (c->cold) {
        ssize_t got = corio__fread_nowait(&r, buf, 4096, 0);
        for (int i = 0; i < 4 && got != 0 && (c->cold = evict(c->fd, c->size)); i++)
            got = corio__fread_nowait(&r, buf, 4096, 0);
        if (c->cold)
            SOFT(got == 0);
    }

    /* The whole file, read on the pool (the bystander runs meanwhile). */
    c->cold = evict(c->fd, c->size) && c->cold;
    memset(buf, 0, c->size);
    bool ran = false;
    corio_task *t = corio_test_spawn("bystander", bystander, &ran);
    SOFT(corio__fread_all(&r, buf, c->size, 0) == 0);
    SOFT(bytes_match(buf, c->size, 0));
    if (c->cold)
        SOFT(ran);
    SOFT(corio_test_join(t) == 0);

    /* Read once, it is cached; evicted again, it is not. */
    SOFT(corio__fread_is_cached(&r, 0, c->size));
    c->cold = evict(c->fd, c->size) && c->cold;
    if (c->cold)
        SOFT(!corio__fread_is_cached(&r, 0, c->size));

    /* A range at an odd offset, cold. */
    SOFT(corio__fread_all(&r, buf, 3 * MIB + 5, MIB + 3) == 0);
    SOFT(bytes_match(buf, 3 * MIB + 5, MIB + 3));
    free(buf);
    return 0;
}

static void test_fread_evicted_file_is_read_on_the_pool_with_its_bytes(void **state) {
    (void)state;
    cold_ctx c = {.size = 8 * MIB};
    c.fd = make_file(c.size);
    int before = open_fds();
    corio_test_run_checked(cold_main, &c);
    assert_int_equal(open_fds(), before); /* every pool job's descriptor closed */
    close(c.fd);
}

/* ---- a pool read cut short finishes on its own ------------------------------- */

typedef struct cut_ctx {
    const char *path; /* re-opened by the reader, closed as soon as it is cut */
    size_t size;
    int rc;
} cut_ctx;

static int cut_reader(void *arg) {
    cut_ctx *c = arg;
    int fd = open(c->path, O_RDONLY | O_CLOEXEC);
    SOFT(fd >= 0);
    char *buf = malloc(c->size);
    SOFT(buf != NULL);
    corio__fread r;
    corio__fread_init(&r, fd);
    r.probe = CORIO__PROBE_NONE; /* on the pool */
    c->rc = corio__fread_all(&r, buf, c->size, 0);
    free(buf); /* the thread writes into memory of its own */
    close(fd); /* and reads a descriptor of its own */
    return c->rc;
}

static int cancel_main(void *arg) {
    cut_ctx *c = arg;
    corio_task *t = corio_test_spawn("reader", cut_reader, c);
    SOFT(corio_yield() == 0); /* the reader starts the pool read and waits */
    SOFT(corio_cancel(t) == 0);
    SOFT(corio_test_join(t) == CORIO_ECANCELED);
    return 0;
}

static int deadline_main(void *arg) {
    cut_ctx *c = arg;
    c->rc = 1;
    CORIO_WITH(corio_timeout_scope(0)) cut_reader(c);
    SOFT(c->rc == CORIO_ETIMEDOUT);

    /* The same through corio__fread_pool. */
    int fd = open(c->path, O_RDONLY | O_CLOEXEC);
    SOFT(fd >= 0);
    corio__fread r;
    corio__fread_init(&r, fd);
    corio__fread_buf *b = NULL;
    int rc = 1;
    CORIO_WITH(corio_timeout_scope(0)) rc = corio__fread_pool(&r, c->size, 0, &b);
    SOFT(rc == CORIO_ETIMEDOUT);
    SOFT(b == NULL);
    close(fd);
    return 0;
}

static char cut_path[4096]; /* the named file of run_cut, unlinked by cut_teardown */

/* Runs fn on a cold file of 16 MiB named by path; the loop ends only once
 * the pool reads have (corio_run waits for them), and then no descriptor
 * and (under valgrind) no memory is left. */
static void run_cut(corio_task_fn fn) {
    cut_ctx c = {.path = cut_path, .size = 16 * MIB};
    int fd = make_file_in(NULL, c.size, cut_path);
    (void)evict(fd, c.size);
    close(fd);
    int before = open_fds();
    corio_test_run_checked(fn, &c);
    assert_int_equal(open_fds(), before);
}

static int cut_teardown(void **state) {
    (void)state;
    if (cut_path[0])
        unlink(cut_path);
    cut_path[0] = '\0';
    return 0;
}

static void test_fread_pool_read_cancelled_finishes_and_frees_itself(void **state) {
    (void)state;
    run_cut(cancel_main);
}

static void test_fread_pool_read_past_its_deadline_is_etimedout_and_frees_itself(void **state) {
    (void)state;
    run_cut(deadline_main);
}

/* ---- a file in memory -------------------------------------------------------- */

static int tmpfs_main(void *arg) {
    int fd = *(int *)arg;
    size_t len = 2 * MIB;
    unsigned char *buf = malloc(len); /* not on the task's stack */
    SOFT(buf != NULL);
    corio__fread r;
    corio__fread_init(&r, fd);
    bool ran = false;
    corio_task *t = corio_test_spawn("bystander", bystander, &ran);
    SOFT(corio__fread_all(&r, buf, len, 100) == 0);
    SOFT(bytes_match(buf, len, 100));
    SOFT(r.probe == CORIO__PROBE_NOWAIT || r.probe == CORIO__PROBE_MEMORY);
    SOFT(!ran);
    SOFT(corio__fread_is_cached(&r, 0, 3 * MIB));
    SOFT(corio_test_join(t) == 0);
    free(buf);
    return 0;
}

static void test_fread_tmpfs_file_is_read_on_the_loop(void **state) {
    (void)state;
    struct statfs fs;
    if (statfs("/dev/shm", &fs) != 0 || fs.f_type != TMPFS_MAGIC_ || access("/dev/shm", W_OK)) {
        fprintf(stderr, "    SKIP: /dev/shm is not a writable tmpfs\n");
        skip();
    }
    int fd = make_file_in("/dev/shm", 3 * MIB, NULL);
    corio_test_run_checked(tmpfs_main, &fd);
    close(fd);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fread_cached_file_is_read_on_the_loop_without_waiting),
        cmocka_unit_test(test_fread_past_the_end_is_eof_on_the_loop_and_on_the_pool),
        cmocka_unit_test(test_fread_evicted_file_is_read_on_the_pool_with_its_bytes),
        cmocka_unit_test_teardown(test_fread_pool_read_cancelled_finishes_and_frees_itself,
                                  cut_teardown),
        cmocka_unit_test_teardown(
            test_fread_pool_read_past_its_deadline_is_etimedout_and_frees_itself, cut_teardown),
        cmocka_unit_test(test_fread_tmpfs_file_is_read_on_the_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
