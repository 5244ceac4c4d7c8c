// Counts malloc/calloc/realloc calls of one thread, for the tests that check the interpreter
// does not allocate per instruction (swift-nio's allocation-counter tests are the model).
//
// Linked into the test executable only: it replaces glibc's malloc, calloc and realloc with
// wrappers that count and call glibc's own (`__libc_malloc`, ...). Elsewhere (not glibc) the
// counter is unavailable and `mimic_malloc_counter_available` returns false; so it is in a build
// with a sanitizer (`swift test --sanitize=...`), whose runtime owns malloc.
#ifndef MIMIC_MALLOC_COUNTER_H
#define MIMIC_MALLOC_COUNTER_H

#include <stdbool.h>
#include <stdint.h>

/// Whether allocations are counted here (glibc, and the wrappers are the ones in use).
bool mimic_malloc_counter_available(void);
/// Starts counting the calling thread's allocations from zero.
void mimic_malloc_counter_start(void);
/// Stops counting and returns the number of allocations since `mimic_malloc_counter_start`.
uint64_t mimic_malloc_counter_stop(void);

#endif
