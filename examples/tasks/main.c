/* SPDX-License-Identifier: MIT */
/* The asyncio demo corio started from, in C.
 *
 *     async def f1(): print(1); await asyncio.sleep(2); print(2)
 *     async def f2(): print(3); await asyncio.sleep(2); print(4)
 *     async def main(): await asyncio.gather(f1(), f2())
 *
 * Both coroutines sleep at the same time, so the run takes about 2 s, not 4.
 */
#include <corio/corio.h>
#include <stdio.h>

static int f1(void *arg) {
    (void)arg;
    printf("1\n");
    int rc = corio_sleep(2000);
    if (rc < 0)
        return rc;
    printf("2\n");
    return 0;
}

static int f2(void *arg) {
    (void)arg;
    printf("3\n");
    int rc = corio_sleep(2000);
    if (rc < 0)
        return rc;
    printf("4\n");
    return 0;
}

static int amain(void *arg) {
    (void)arg;
    corio_task *a, *b;
    int rc = corio_spawn(&a, "f1", f1, NULL);
    if (rc < 0)
        return rc;
    rc = corio_spawn(&b, "f2", f2, NULL);
    if (rc < 0) {
        corio_task_release(a);
        return rc;
    }
    corio_future *both[] = {corio_task_future(a), corio_task_future(b)};
    uint64_t start = corio_now();
    rc = corio_gather(both, 2);
    printf("done in %.1f s\n", (double)(corio_now() - start) / 1000.0);
    corio_task_release(a);
    corio_task_release(b);
    return rc;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int rc = corio_run(amain, NULL);
    if (rc < 0) {
        fprintf(stderr, "tasks: %s\n", corio_strerror(rc));
        return 1;
    }
    return 0;
}
