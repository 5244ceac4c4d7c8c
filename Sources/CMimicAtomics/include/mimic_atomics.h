// Atomic read-modify-write operations on raw memory, for the eBPF atomic instructions.
//
// Swift's standard library offers atomics only as typed storage, not on arbitrary aligned
// addresses inside a VM memory region; these thin wrappers over the compiler builtins fill
// that gap. Every function is sequentially consistent, as the kernel's BPF atomics are
// (fetch variants are full barriers). Callers guarantee natural alignment and bounds.
#ifndef MIMIC_ATOMICS_H
#define MIMIC_ATOMICS_H

#include <stdint.h>

#define MIMIC_ATOMIC_FOR(width, type)                                                              \
    static inline type mimic_atomic_fetch_add_##width(void *p, type v) {                           \
        return __atomic_fetch_add((type *)p, v, __ATOMIC_SEQ_CST);                                 \
    }                                                                                              \
    static inline type mimic_atomic_fetch_or_##width(void *p, type v) {                            \
        return __atomic_fetch_or((type *)p, v, __ATOMIC_SEQ_CST);                                  \
    }                                                                                              \
    static inline type mimic_atomic_fetch_and_##width(void *p, type v) {                           \
        return __atomic_fetch_and((type *)p, v, __ATOMIC_SEQ_CST);                                 \
    }                                                                                              \
    static inline type mimic_atomic_fetch_xor_##width(void *p, type v) {                           \
        return __atomic_fetch_xor((type *)p, v, __ATOMIC_SEQ_CST);                                 \
    }                                                                                              \
    static inline type mimic_atomic_exchange_##width(void *p, type v) {                            \
        return __atomic_exchange_n((type *)p, v, __ATOMIC_SEQ_CST);                                \
    }                                                                                              \
    /* Returns the value found at p; stores desired only when it equaled expected. */              \
    static inline type mimic_atomic_compare_exchange_##width(void *p, type expected,               \
                                                             type desired) {                       \
        __atomic_compare_exchange_n((type *)p, &expected, desired, 0, __ATOMIC_SEQ_CST,            \
                                    __ATOMIC_SEQ_CST);                                             \
        return expected;                                                                           \
    }

MIMIC_ATOMIC_FOR(32, uint32_t)
MIMIC_ATOMIC_FOR(64, uint64_t)

#undef MIMIC_ATOMIC_FOR

#endif
