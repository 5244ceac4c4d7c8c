#include "mimic_malloc_counter.h"

#include <stdlib.h>

// Sanitizers replace malloc themselves (and run it before this file's thread-local storage
// exists): with one, nothing is replaced and the counter is unavailable.
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define MIMIC_SANITIZED 1
#endif
#endif

#if defined(__GLIBC__) && !defined(MIMIC_SANITIZED)

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);

// Per thread, so tests running in parallel count only their own allocations. Initial-exec TLS
// lives in the executable's static TLS block: reading it never allocates.
#define THREAD_LOCAL __thread __attribute__((tls_model("initial-exec")))
static THREAD_LOCAL bool counting;
static THREAD_LOCAL uint64_t allocations;

static inline void note_allocation(void) {
    if (counting) allocations += 1;
}

void *malloc(size_t size) {
    note_allocation();
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size) {
    note_allocation();
    return __libc_calloc(count, size);
}

void *realloc(void *pointer, size_t size) {
    note_allocation();
    return __libc_realloc(pointer, size);
}

void mimic_malloc_counter_start(void) {
    allocations = 0;
    counting = true;
}

uint64_t mimic_malloc_counter_stop(void) {
    counting = false;
    return allocations;
}

bool mimic_malloc_counter_available(void) {
    mimic_malloc_counter_start();
    void *volatile probe = malloc(24);
    free(probe);
    return mimic_malloc_counter_stop() == 1;
}

#else

bool mimic_malloc_counter_available(void) { return false; }
void mimic_malloc_counter_start(void) {}
uint64_t mimic_malloc_counter_stop(void) { return 0; }

#endif
