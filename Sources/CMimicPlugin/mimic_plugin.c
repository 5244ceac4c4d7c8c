// The plugin ABI is declarations only (mimic_plugin.h); SwiftPM needs one source file per C target.
#include "mimic_plugin.h"
