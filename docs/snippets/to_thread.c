/* docs/snippets/to_thread.c: blocking work on the thread pool while the
 * loop goes on.
 *
 *     result = await asyncio.to_thread(slow_sum, 10_000_000)
 */
#include <corio/corio.h>
#include <stdio.h>

static int slow_sum(void *arg) { /* runs on a pool thread: no corio calls here */
    long n = (long)(intptr_t)arg, s = 0;
    for (long i = 0; i < n; i++)
        s += i % 7;
    return (int)(s % 1000);
}

static int amain(void *arg) {
    (void)arg;
    corio_future *f;
    int rc = corio_run_blocking(&f, slow_sum, (void *)(intptr_t)10000000);
    if (rc < 0)
        return rc;
    rc = corio_await(f); /* other tasks run meanwhile */
    printf("slow_sum: %d\n", rc);
    corio_future_release(f);
    return 0;
}

int main(void) {
    return corio_run(amain, NULL) < 0;
}
