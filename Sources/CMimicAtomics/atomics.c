// The atomics are header-only (static inline); SwiftPM needs one source file per C target.
#include "mimic_atomics.h"
