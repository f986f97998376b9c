/* SPDX-License-Identifier: MIT */
/* Work at a thread's exit (base/thread_exit.h): one pthread key whose
 * destructor runs the hooks this thread armed. */
#include <pthread.h>

#include "base/thread_exit.h"

#define MAX_HOOKS 4

static __thread struct {
    void (*fn[MAX_HOOKS])(void);
    bool *armed[MAX_HOOKS];
    int n;
} hooks;

static pthread_key_t key;
static bool key_ok;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void run_hooks(void *unused) {
    (void)unused;
    int n = hooks.n;
    hooks.n = 0; /* a hook armed again from here is run on the next round */
    for (int i = 0; i < n; i++) {
        hooks.fn[i]();
        *hooks.armed[i] = false;
    }
}

static void make_key(void) {
    key_ok = pthread_key_create(&key, run_hooks) == 0;
}

bool corio__thread_exit_arm_slow(void (*fn)(void), bool *armed) {
    pthread_once(&key_once, make_key);
    if (!key_ok || hooks.n == MAX_HOOKS || pthread_setspecific(key, &hooks) != 0)
        return false;
    hooks.fn[hooks.n] = fn;
    hooks.armed[hooks.n++] = armed;
    *armed = true;
    return true;
}
